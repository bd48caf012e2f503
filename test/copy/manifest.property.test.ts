/**
 * readManifest under random and malformed manifests: never a crash, and always either a node
 * whose blobs Hoist can verify or a CopyError UNSUPPORTED_MANIFEST blaming the source.
 */
import fc from 'fast-check';
import { CopyError } from '../../src/copy/errors.js';
import { readManifest, type ManifestNode } from '../../src/copy/manifest.js';
import { sha256 } from '../../src/registry/digest.js';
import { MediaType } from '../../src/registry/media-types.js';

const MEDIA_TYPES = [MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList, MediaType.OciArtifactManifest, 'application/json', 'text/plain'];

const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), minLength: length, maxLength: length });
/** Digests as found in the wild and as broken by a bad registry. */
const digest = fc.oneof(
  hex(64).map((h) => `sha256:${h}`),
  hex(128).map((h) => `sha512:${h}`),
  hex(64).map((h) => `blake3:${h}`),
  fc.string({ maxLength: 80 }),
  fc.constantFrom('sha256:', ':abc', 'sha256:ABC', 'sha256:../../etc'),
  // A well-formed digest inside junk: only the whole string may match.
  fc.tuple(fc.string({ maxLength: 4 }), hex(64), fc.string({ maxLength: 4 })).map(([before, h, after]) => `${before}sha256:${h}${after}`),
);
/** Sizes: valid, negative, fractional, unsafe, non-numeric. */
const size = fc.oneof(
  fc.nat(),
  fc.integer({ min: -1000, max: -1 }),
  fc.double({ noNaN: false }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, 1e300),
  fc.string({ maxLength: 5 }),
  fc.constant(null),
);
const descriptor = fc.record(
  {
    mediaType: fc.oneof(fc.constantFrom(...MEDIA_TYPES), fc.integer()),
    digest,
    size,
    annotations: fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })), fc.jsonValue()),
    platform: fc.oneof(fc.record({ os: fc.constantFrom('linux', 'windows'), architecture: fc.constantFrom('amd64', 'arm64') }), fc.jsonValue()),
    urls: fc.oneof(fc.array(fc.string({ maxLength: 5 })), fc.jsonValue()),
  },
  { requiredKeys: [] },
);
const manifestJson = fc.record(
  {
    schemaVersion: fc.oneof(fc.constantFrom(1, 2), fc.double(), fc.string({ maxLength: 3 })),
    mediaType: fc.constantFrom(...MEDIA_TYPES),
    config: fc.oneof(descriptor, fc.jsonValue()),
    layers: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.jsonValue()),
    manifests: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.jsonValue()),
    blobs: fc.array(descriptor, { maxLength: 2 }),
    subject: descriptor,
    annotations: fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })), fc.jsonValue()),
  },
  { requiredKeys: [] },
);
/** Bytes a registry might answer with: manifests, any JSON, text, and broken or truncated JSON. */
const body = fc.oneof(
  manifestJson.map((m) => Buffer.from(JSON.stringify(m))),
  fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j) ?? 'undefined')),
  manifestJson.chain((m) => {
    const text = JSON.stringify(m);
    return fc.nat({ max: text.length }).map((cut) => Buffer.from(text.slice(0, cut)));
  }),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
);

function readOrError(bytes: Buffer, mediaType: string): ManifestNode | CopyError {
  try {
    return readManifest({ digest: sha256(bytes), mediaType, bytes }, 'src/x:1');
  } catch (error) {
    if (error instanceof CopyError) return error;
    throw error;
  }
}

describe('readManifest (properties)', () => {
  it('returns a node with verifiable, well-formed blobs, or refuses with UNSUPPORTED_MANIFEST naming the manifest', () => {
    fc.assert(
      fc.property(body, fc.constantFrom(...MEDIA_TYPES, MediaType.DockerSchema1Signed), (bytes, mediaType) => {
        const result = readOrError(bytes, mediaType);
        if (result instanceof CopyError) {
          expect(result.code).toBe('UNSUPPORTED_MANIFEST');
          expect(result.side).toBe('source');
          expect(result.message).toMatch(/^src\/x:1 /);
          return;
        }
        expect(result.manifest.bytes).toBe(bytes);
        for (const blob of [...result.blobs, ...result.children]) {
          expect(Number.isSafeInteger(blob.size) && blob.size >= 0, `size ${blob.size}`).toBe(true);
          expect(typeof blob.mediaType).toBe('string');
        }
        for (const blob of result.blobs) expect(blob.digest).toMatch(/^sha(256|512):/);
        // Digests go into URLs: every one read is ALGORITHM:ENCODED and nothing else.
        for (const d of [...result.blobs, ...result.children]) expect(d.digest).toMatch(/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/);
        if (result.isIndex) expect(result.blobs).toEqual([]);
        else expect(result.children).toEqual([]);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads every well-formed image manifest and index whole: its config and layers, or its children', () => {
    const good = fc.record({ mediaType: fc.constantFrom(MediaType.OciManifest, MediaType.DockerManifest), digest: fc.oneof(hex(64).map((h) => `sha256:${h}`), hex(128).map((h) => `sha512:${h}`)), size: fc.nat() });
    fc.assert(
      fc.property(good, fc.array(good, { maxLength: 5 }), fc.boolean(), (config, layers, asIndex) => {
        const json = asIndex ? { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: layers } : { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
        const result = readOrError(Buffer.from(JSON.stringify(json)), json.mediaType);
        expect(result).not.toBeInstanceOf(CopyError);
        const node = result as ManifestNode;
        expect(node.isIndex).toBe(asIndex);
        expect(asIndex ? node.children : node.blobs).toEqual(asIndex ? layers : [config, ...layers]);
      }),
      { numRuns: 500 },
    );
  });
});
