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

describe('descriptor sizes', () => {
  const withLayerSize = (size: string) => {
    const bytes = Buffer.from(
      `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
        `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:${'a'.repeat(64)}","size":2},` +
        `"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:${'b'.repeat(64)}","size":${size}}]}`,
    );
    return { digest: sha256(bytes), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes };
  };

  it.each(['9007199254740992', '1e400', '-1', '1.5', '"10"', 'null'])('refuses a size of %s, naming the field and what is accepted', (size) => {
    let error: unknown;
    try {
      readManifest(withLayerSize(size), 'r/x:1');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CopyError);
    expect((error as CopyError).code).toBe('UNSUPPORTED_MANIFEST');
    expect((error as CopyError).message).toContain('r/x:1 has an invalid manifest: layers.0.size: ');
    expect((error as CopyError).message).toContain(`got ${size === '1e400' ? 'Infinity' : size}; expected a whole number of bytes from 0 to 9007199254740991`);
  });

  it('reads the largest size a descriptor can hold exactly', () => {
    expect(readManifest(withLayerSize('9007199254740991'), 'r/x:1').blobs[1]?.size).toBe(Number.MAX_SAFE_INTEGER);
  });
});
