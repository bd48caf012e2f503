/**
 * Merging the referrers fallback index (tag `sha256-<hex>`) on a target without the referrers
 * API: entries are added, never dropped, so referrers pushed by others survive; a source index
 * listing exactly the copied referrers is reused byte for byte.
 */
import { readManifest } from '../../src/copy/manifest.js';
import { mergeFallbackIndex } from '../../src/copy/referrers.js';
import type { Manifest } from '../../src/registry/client.js';
import { sha256 } from '../../src/registry/digest.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

function manifest(mediaType: string, json: object): Manifest {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...json }));
  return { digest: sha256(bytes), mediaType, bytes };
}

function referrer(seed: string) {
  const config = { mediaType: 'application/vnd.example.sbom', digest: sha256(Buffer.from(seed)), size: seed.length };
  return readManifest(manifest(OCI_MANIFEST, { artifactType: 'application/vnd.example.sbom', config, layers: [config], annotations: { seed } }), seed);
}

const entryOf = (node: ReturnType<typeof referrer>) => ({ mediaType: OCI_MANIFEST, digest: node.manifest.digest, size: node.manifest.bytes.length, artifactType: 'application/vnd.example.sbom', annotations: node.parsed.annotations });
const listed = (index: Manifest | undefined) => (JSON.parse(index!.bytes.toString('utf8')) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest);

const [a, b, c] = [referrer('a'), referrer('b'), referrer('c')];

describe('mergeFallbackIndex', () => {
  it('writes a new OCI index of the referrers when the target has none and the source gave none', () => {
    const index = mergeFallbackIndex(undefined, [a, b], undefined)!;

    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.digest).toBe(sha256(index.bytes));
    expect(JSON.parse(index.bytes.toString('utf8'))).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [entryOf(a), entryOf(b)] });
  });

  it("reuses the source's index byte for byte when it lists exactly these referrers, in any order", () => {
    const source = manifest(OCI_INDEX, { manifests: [entryOf(b), entryOf(a)], annotations: { from: 'source' } });

    expect(mergeFallbackIndex(undefined, [a, b], source)).toBe(source);
  });

  it("writes its own index when the source's lists other referrers, or more, or fewer", () => {
    for (const listedBySource of [[entryOf(a), entryOf(c)], [entryOf(a), entryOf(b), entryOf(c)], [entryOf(a)], [entryOf(a), entryOf(a)]]) {
      const source = manifest(OCI_INDEX, { manifests: listedBySource });
      const index = mergeFallbackIndex(undefined, [a, b], source);
      expect(index).not.toBe(source);
      expect(listed(index)).toEqual([a.manifest.digest, b.manifest.digest]);
    }
    const empty = manifest(OCI_INDEX, {});
    expect(listed(mergeFallbackIndex(undefined, [a], empty))).toEqual([a.manifest.digest]);
  });

  it("adds what the target's index lacks after what it has, dropping nothing and keeping its other fields", () => {
    const current = manifest(OCI_INDEX, { manifests: [entryOf(c), entryOf(a)], annotations: { kept: 'yes' } });

    const merged = mergeFallbackIndex(current, [a, b], undefined)!;

    expect(listed(merged)).toEqual([c.manifest.digest, a.manifest.digest, b.manifest.digest]);
    expect(JSON.parse(merged.bytes.toString('utf8'))).toMatchObject({ annotations: { kept: 'yes' } });
    expect(merged.digest).toBe(sha256(merged.bytes));
  });

  it("writes nothing when the target's index lists every referrer already", () => {
    expect(mergeFallbackIndex(manifest(OCI_INDEX, { manifests: [entryOf(b), entryOf(c), entryOf(a)] }), [a, b], undefined)).toBeUndefined();
  });

  it("fills a target index that has no manifests field", () => {
    expect(listed(mergeFallbackIndex(manifest(OCI_INDEX, {}), [a], undefined))).toEqual([a.manifest.digest]);
  });
});
