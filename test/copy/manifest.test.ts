/**
 * readManifest on its own: what it refuses before any copy starts.
 */
import { attestedImage, MAX_OS_VERSION_LENGTH, readManifest } from '../../src/copy/manifest.js';
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

describe('what readManifest refuses or reads by its content (gaps surviving mutants showed)', () => {
  const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
  const read = (json: unknown, mediaType: string) => {
    const bytes = Buffer.from(typeof json === 'string' ? json : JSON.stringify(json));
    return readManifest({ digest: sha256(bytes), mediaType, bytes }, 'r/x:1');
  };
  const refusal = (json: unknown, mediaType: string): CopyError => {
    try {
      read(json, mediaType);
    } catch (error) {
      if (error instanceof CopyError) return error;
      throw error;
    }
    throw new Error('expected a CopyError');
  };
  const child = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'d'.repeat(64)}`, size: 10 };

  it('refuses schema1 by its media type, whatever the body', () => {
    expect(refusal('not json at all', 'application/vnd.docker.distribution.manifest.v1+prettyjws').message).toMatch(/^r\/x:1 is a Docker schema1 manifest \(application\/vnd\.docker\.distribution\.manifest\.v1\+prettyjws\)/);
  });

  it('refuses schema1 by its body when served under another media type', () => {
    expect(refusal({ schemaVersion: 1, name: 'x', tag: '1', fsLayers: [] }, 'application/json').message).toMatch(/^r\/x:1 is a Docker schema1 manifest; registries refuse schema1/);
  });

  it('says which field of an invalid manifest is wrong', () => {
    expect(refusal({ schemaVersion: 2, config: child, layers: [{ ...child, size: -1 }] }, 'application/vnd.oci.image.manifest.v1+json').message).toMatch(/^r\/x:1 has an invalid manifest: layers\.0\.size: /);
  });

  it('reads an index by its content when the media type does not say (manifests, no config)', () => {
    const node = read({ schemaVersion: 2, manifests: [child] }, 'application/json');
    expect(node.isIndex).toBe(true);
    expect(node.children).toEqual([child]);
    expect(node.blobs).toEqual([]);
    // With a config it is an image, whatever else it lists.
    const image = read({ schemaVersion: 2, config: child, manifests: [child] }, 'application/json');
    expect(image.isIndex).toBe(false);
    expect(image.blobs).toEqual([child]);
    // An index media type makes an index even of an empty list.
    expect(read({ schemaVersion: 2, manifests: [] }, OCI_INDEX).isIndex).toBe(true);
  });

  it('refuses what is neither an index nor an image, but accepts an artifact manifest without blobs', () => {
    expect(refusal({ schemaVersion: 2 }, 'application/vnd.oci.image.manifest.v1+json').message).toMatch(/^r\/x:1 \(application\/vnd\.oci\.image\.manifest\.v1\+json\) is neither an index nor an image manifest/);
    expect(read({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json', artifactType: 'x/y' }, 'application/vnd.oci.artifact.manifest.v1+json').blobs).toEqual([]);
  });

  it('refuses an index entry whose platform has the wrong types (platform selection reads them)', () => {
    expect(refusal({ schemaVersion: 2, manifests: [{ ...child, platform: { os: 1, architecture: 'amd64' } }] }, OCI_INDEX).message).toMatch(/has an invalid manifest: manifests\.0\.platform\.os: /);
  });

  it.each(['evil/sha256:abc', 'sha256:abc/..', 'sha256:', ':abc', 'Sha256:abc', 'sha256:abc\n'])('refuses a child digest %j that is not ALGORITHM:ENCODED (it goes into URLs)', (digest) => {
    expect(refusal({ schemaVersion: 2, manifests: [{ ...child, digest }] }, OCI_INDEX).message).toMatch(/has an invalid manifest: manifests\.0\.digest/);
  });
});

describe('text a source manifest carries into the job record', () => {
  const indexWith = (entry: Record<string, unknown>) => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'d'.repeat(64)}`, size: 10, ...entry }] }));
    return { digest: sha256(bytes), mediaType: 'application/vnd.oci.image.index.v1+json', bytes };
  };

  it('refuses an os.version of 10 KB, naming the field and the limit', () => {
    let error: unknown;
    try {
      readManifest(indexWith({ platform: { os: 'windows', architecture: 'amd64', 'os.version': '1'.repeat(10_000) } }), 'r/x:1');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({ code: 'UNSUPPORTED_MANIFEST', side: 'source' });
    expect((error as CopyError).message).toBe(`r/x:1 has an invalid manifest: manifests.0.platform.os.version: got 10000 characters; expected at most ${MAX_OS_VERSION_LENGTH}`);
  });

  it('takes an os.version of the longest accepted length', () => {
    const read = readManifest(indexWith({ platform: { os: 'windows', architecture: 'amd64', 'os.version': '1'.repeat(MAX_OS_VERSION_LENGTH) } }), 'r/x:1');
    expect(read.children).toHaveLength(1);
  });

  it.each([
    ['a digest', `sha256:${'e'.repeat(64)}`, `sha256:${'e'.repeat(64)}`],
    ['text that is no digest', 'see https://example.com/\u001b[31m', undefined],
    ['a digest-shaped string of 10 KB', `sha256:${'e'.repeat(10_000)}`, undefined],
  ])('takes the image an attestation is for only when it is a digest: %s', (_name, reference, expected) => {
    const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'d'.repeat(64)}`, size: 10, annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': reference } };
    expect(attestedImage(entry)).toBe(expected);
  });
});
