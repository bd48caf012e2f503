/**
 * readManifest on its own: what it refuses before any copy starts.
 */
import { readManifest } from '../../src/copy/manifest.js';
import { CopyError } from '../../src/copy/errors.js';
import { sha256 } from '../../src/registry/digest.js';

function manifestOf(layerDigest: string) {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: 10 }],
    }),
  );
  return { digest: sha256(bytes), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes };
}

it('reads blobs with sha256 and sha512 digests, which copies can verify', () => {
  expect(readManifest(manifestOf(`sha512:${'b'.repeat(128)}`), 'r/x:1').blobs.map((b) => b.digest.split(':')[0])).toEqual(['sha256', 'sha512']);
});

it('refuses a blob whose digest algorithm cannot be verified, naming it', () => {
  let error: unknown;
  try {
    readManifest(manifestOf(`blake3:${'c'.repeat(64)}`), 'r/x:1');
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(CopyError);
  expect((error as CopyError).code).toBe('UNSUPPORTED_MANIFEST');
  expect((error as CopyError).message).toMatch(/blob blake3:c+, whose digest algorithm cannot be verified \(sha256 and sha512 can\)/);
});
