/**
 * The engine on in-memory stores (no registry): targets refused up front, the limits on claimed
 * sizes and manifest counts, the events a caller sees first, a time budget that pauses only once
 * something has moved, what a copy writes and reports (untagged targets, the tagged manifest
 * put once, platforms and attestations, non-distributable layers left or copied), and what it
 * says when a target refuses a manifest for the foreign layers it names.
 */
import { copy, DEFAULT_MAX_BLOB_BYTES } from '../../src/copy/engine.js';
import { CopyError } from '../../src/copy/errors.js';
import { MemoryStore } from '../../src/copy/memory-store.js';
import type { Stores } from '../../src/copy/store.js';
import type { ProgressEvent } from '../../src/copy/types.js';
import { sha256 } from '../../src/registry/digest.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseReference, type Reference } from '../../src/registry/reference.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar';

interface Pushed {
  digest: string;
  bytes: Buffer;
  blobs: Array<{ digest: string; size: number }>;
}

const src = parseReference('memory.test/app:v1');
const repo = src.withRepository('app');
let source: MemoryStore;
let target: MemoryStore;

async function putManifest(ref: Reference, mediaType: string, json: object): Promise<Pushed> {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...json }));
  const digest = sha256(bytes);
  await source.putManifest(ref, { digest, mediaType, bytes });
  return { digest, bytes, blobs: [] };
}

/** An image whose config and two layers are held by the source; `claims` overrides a layer's size. */
async function putImage(ref: Reference, seed: string, claims?: number): Promise<Pushed> {
  const parts = [`config ${seed}`, `layer one of ${seed}`, `layer two of ${seed}`].map((text) => Buffer.from(text));
  const blobs = parts.map((bytes) => ({ digest: source.addBlob(repo, bytes), size: bytes.length }));
  if (claims !== undefined) blobs[2].size = claims;
  const [config, ...layers] = blobs;
  const pushed = await putManifest(ref, OCI_MANIFEST, { config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: layers.map((l) => ({ mediaType: LAYER, ...l })) });
  return { ...pushed, blobs };
}

function between(): Stores {
  return { source: () => source, target: () => target };
}

function recorder(): { events: ProgressEvent[]; onProgress: (event: ProgressEvent) => void } {
  const events: ProgressEvent[] = [];
  return { events, onProgress: (event) => events.push(event) };
}

beforeEach(() => {
  source = new MemoryStore();
  target = new MemoryStore();
});

describe('copy, before any bytes move', () => {
  it('refuses a request without targets', async () => {
    await putImage(src, 'a');

    const error = await copy({ source: src, targets: [] }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({ code: 'INVALID_TARGET', side: 'target', message: 'no target given: name at least one target reference' });
  });

  it('refuses a target that names another digest than the copy produces, and writes nothing', async () => {
    const image = await putImage(src, 'a');
    const other = `sha256:${'0'.repeat(64)}`;
    const dst = parseReference(`memory.test/copy:v1@${other}`);

    const error = await copy({ source: src, targets: [dst] }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({ code: 'INVALID_TARGET', side: 'target' });
    expect((error as Error).message).toBe(`target ${dst} names digest ${other}, but the copy produces ${image.digest}; drop the digest from the target or fix it`);
    expect(target.blob(dst, image.blobs[0].digest)).toBeUndefined();
  });

  it('copies to a target that names the digest it produces', async () => {
    const image = await putImage(src, 'a');
    const dst = parseReference(`memory.test/copy:v1@${image.digest}`);

    const result = await copy({ source: src, targets: [dst] }, { stores: between() });

    expect(result.status).toBe('completed');
    expect(target.tags(dst).get('v1')).toBe(image.digest);
  });

  it('refuses a blob claimed over the default limit of 200 GiB, and accepts one at it', async () => {
    const oversized = await putImage(src, 'a', DEFAULT_MAX_BLOB_BYTES + 1);
    const error = await copy({ source: src, targets: [parseReference('memory.test/copy:v1')] }, { stores: between() }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'BLOB_TOO_LARGE',
      side: 'source',
      message: `blob ${oversized.blobs[2].digest} claims ${DEFAULT_MAX_BLOB_BYTES + 1} bytes, over the limit of ${DEFAULT_MAX_BLOB_BYTES} bytes (HOIST_MAX_BLOB_BYTES): raise the limit if the blob is really that large; nothing was copied`,
    });
    expect(DEFAULT_MAX_BLOB_BYTES).toBe(200 * 1024 ** 3);

    await putImage(src, 'b', DEFAULT_MAX_BLOB_BYTES);
    const planned = await copy({ source: src, targets: [parseReference('memory.test/copy:v1')], dryRun: true }, { stores: between() });
    expect(planned.plan.bytesTotal).toBeGreaterThan(DEFAULT_MAX_BLOB_BYTES);
  });

  it('refuses more manifests than maxManifests, and only when it is given', async () => {
    const [a, b] = [await putImage(repo, 'a'), await putImage(repo, 'b')];
    await putManifest(src, OCI_INDEX, { manifests: [a, b].map((m) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.bytes.length })) });
    const dst = parseReference('memory.test/copy:v1');

    const error = await copy({ source: src, targets: [dst] }, { stores: between(), maxManifests: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({
      code: 'TOO_MANY_MANIFESTS',
      side: 'source',
      message: 'the source has 3 manifests to copy, over the limit of 2 per import (HOIST_MAX_MANIFESTS): copy a subset of its platforms, or raise the limit; nothing was copied',
    });
    expect(target.tags(dst).size).toBe(0);

    expect((await copy({ source: src, targets: [dst] }, { stores: between(), maxManifests: 3 })).status).toBe('completed');
    expect((await copy({ source: src, targets: [dst] }, { stores: between() })).status).toBe('completed');
  });

  it('reports the source it resolved, then the plan, before any blob', async () => {
    const image = await putImage(src, 'a');
    const dst = parseReference('memory.test/copy:v1');
    // The target already holds the config: present in the plan, not moved.
    target.addBlob(dst, Buffer.from('config a'));
    const { events, onProgress } = recorder();

    const result = await copy({ source: src, targets: [dst] }, { stores: between(), onProgress });

    const sizes = image.blobs.map((b) => b.size);
    expect(events[0]).toEqual({ type: 'resolved', source: src.toString(), digest: image.digest, mediaType: OCI_MANIFEST });
    expect(events[1]).toEqual({ type: 'plan', manifests: 1, blobs: 3, bytesTotal: sizes[0] + sizes[1] + sizes[2], bytesToMove: sizes[1] + sizes[2], blobsPresent: 1, blobsExternal: 0 });
    expect(result).toMatchObject({ indexDigestChanged: false, blobs: { total: 3, copied: 2, skipped: 1, mounted: 0 }, bytes: { total: sizes[0] + sizes[1] + sizes[2], moved: sizes[1] + sizes[2] } });
  });

  it('says when a platform subset changed the index digest', async () => {
    const [a, b] = [await putImage(repo, 'a'), await putImage(repo, 'b')];
    const platforms = ['amd64', 'arm64'];
    const index = await putManifest(src, OCI_INDEX, { manifests: [a, b].map((m, i) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.bytes.length, platform: { os: 'linux', architecture: platforms[i] } })) });

    const whole = await copy({ source: src, targets: [parseReference('memory.test/copy:all')], dryRun: true }, { stores: between() });
    const subset = await copy({ source: src, targets: [parseReference('memory.test/copy:arm')], platforms: [{ os: 'linux', architecture: 'arm64' }], dryRun: true }, { stores: between() });

    expect(whole).toMatchObject({ sourceDigest: index.digest, targetDigest: index.digest, indexDigestChanged: false });
    expect(subset.sourceDigest).toBe(index.digest);
    expect(subset.targetDigest).not.toBe(index.digest);
    expect(subset.indexDigestChanged).toBe(true);
  });
});

describe('a time budget', () => {
  it('pauses once something has moved, and a later call finishes the copy', async () => {
    const image = await putImage(src, 'a');
    const dst = parseReference('memory.test/copy:v1');

    const first = await copy({ source: src, targets: [dst] }, { stores: between(), timeBudgetInMs: 0, concurrency: 1 });
    expect(first.status).toBe('paused');
    expect(first.blobs).toEqual({ total: 3, copied: 1, skipped: 0, mounted: 0 });
    expect(target.tags(dst).size).toBe(0);

    const { events, onProgress } = recorder();
    const second = await copy({ source: src, targets: [dst] }, { stores: between(), timeBudgetInMs: 60_000, concurrency: 1, onProgress });
    expect(second.status).toBe('completed');
    expect(second.blobs).toEqual({ total: 3, copied: 2, skipped: 1, mounted: 0 });
    expect(events.filter((e) => e.type === 'blob-done').map((e) => e.type === 'blob-done' && e.outcome)).toEqual(['skipped', 'copied', 'copied']);
    expect(target.tags(dst).get('v1')).toBe(image.digest);
  });

  it('does not count blobs the target already held as moved', async () => {
    await putImage(src, 'a');
    const dst = parseReference('memory.test/copy:v1');
    for (const text of ['config a', 'layer one of a']) target.addBlob(dst, Buffer.from(text));

    const result = await copy({ source: src, targets: [dst] }, { stores: between(), timeBudgetInMs: 0, concurrency: 1 });

    // Two skipped blobs moved nothing: the budget lets the third one through, then the copy ends.
    expect(result.blobs).toEqual({ total: 3, copied: 1, skipped: 2, mounted: 0 });
  });
});

const FOREIGN = 'application/vnd.oci.image.layer.nondistributable.v1.tar';

/** An image with an ordinary layer and two foreign ones (one without urls), the foreign ones in the source only when `held`. */
async function putForeignImage(held: boolean) {
  const config = Buffer.from('config');
  const layer = Buffer.from('an ordinary layer');
  const foreign = [Buffer.from('a foreign layer'), Buffer.from('another foreign layer')];
  const configDigest = source.addBlob(repo, config);
  const layerDigest = source.addBlob(repo, layer);
  const foreignDigests = foreign.map((bytes) => (held ? source.addBlob(repo, bytes) : sha256(bytes)));
  const layers = [
    { mediaType: LAYER, digest: layerDigest, size: layer.length },
    { mediaType: FOREIGN, digest: foreignDigests[0], size: foreign[0].length, urls: ['https://layers.example/one'] },
    { mediaType: FOREIGN, digest: foreignDigests[1], size: foreign[1].length },
  ];
  await putManifest(src, OCI_MANIFEST, { config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers });
  return { layers, configDigest };
}

describe('what a copy writes and reports', () => {
  const dest = src.withRepository('dest');

  it('writes an untagged target by digest, and says whether this copy wrote it', async () => {
    const image = await putImage(src, 'a');

    const first = await copy({ source: src, targets: [dest] }, { stores: between() });
    const again = await copy({ source: src, targets: [dest] }, { stores: between() });

    expect(first.targets).toEqual([{ reference: `memory.test/dest@${image.digest}`, digest: image.digest, written: true }]);
    expect(first.manifests).toStrictEqual([{ digest: image.digest, mediaType: OCI_MANIFEST, target: 'memory.test/dest' }]);
    expect(await target.headManifest(dest.withDigest(image.digest))).toMatchObject({ digest: image.digest });
    expect(again.targets).toEqual([{ reference: `memory.test/dest@${image.digest}`, digest: image.digest, written: false }]);
    expect(again.manifests).toEqual([]);
  });

  it('puts the manifest a tag names once, under the tag, and reports it only when written', async () => {
    const image = await putImage(src, 'a');
    const put = vi.spyOn(target, 'putManifest');
    const tagged = dest.withTag('v1');

    const first = await copy({ source: src, targets: [tagged] }, { stores: between() });
    const again = await copy({ source: src, targets: [tagged] }, { stores: between() });

    expect(put.mock.calls.map(([ref]) => ref.toString())).toEqual(['memory.test/dest:v1']);
    expect(first.manifests).toStrictEqual([{ digest: image.digest, mediaType: OCI_MANIFEST, target: 'memory.test/dest' }]);
    expect(first.targets).toEqual([{ reference: 'memory.test/dest:v1', digest: image.digest, written: true }]);
    expect(again.manifests).toEqual([]);
    expect(again.targets).toEqual([{ reference: 'memory.test/dest:v1', digest: image.digest, written: false }]);
  });

  it('names each child of an index by its platform, and an attestation by the image it attests', async () => {
    const [a, b] = [await putImage(repo, 'a'), await putImage(repo, 'b')];
    const attestation = await putImage(repo, 'attestation of a');
    const index = await putManifest(src, OCI_INDEX, {
      manifests: [
        { mediaType: OCI_MANIFEST, digest: a.digest, size: a.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: b.digest, size: b.bytes.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        {
          mediaType: OCI_MANIFEST,
          digest: attestation.digest,
          size: attestation.bytes.length,
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': a.digest },
        },
      ],
    });

    const result = await copy({ source: src, targets: [dest.withTag('v1')] }, { stores: between() });

    expect(result.plan.manifests).toStrictEqual([
      { digest: a.digest, mediaType: OCI_MANIFEST, size: a.bytes.length, platform: 'linux/amd64' },
      { digest: b.digest, mediaType: OCI_MANIFEST, size: b.bytes.length, platform: 'linux/arm64/v8' },
      { digest: attestation.digest, mediaType: OCI_MANIFEST, size: attestation.bytes.length, platform: 'unknown/unknown', attestationFor: a.digest },
      { digest: index.digest, mediaType: OCI_INDEX, size: index.bytes.length, platform: undefined },
    ]);
    expect(result.manifests).toStrictEqual([
      { digest: a.digest, mediaType: OCI_MANIFEST, target: 'memory.test/dest', platform: 'linux/amd64' },
      { digest: b.digest, mediaType: OCI_MANIFEST, target: 'memory.test/dest', platform: 'linux/arm64/v8' },
      { digest: attestation.digest, mediaType: OCI_MANIFEST, target: 'memory.test/dest', platform: 'unknown/unknown' },
      { digest: index.digest, mediaType: OCI_INDEX, target: 'memory.test/dest' },
    ]);
  });

  describe('non-distributable layers', () => {
    it('stay referenced by URL: listed apart, neither checked nor moved', async () => {
      const { layers, configDigest } = await putForeignImage(false);

      const result = await copy({ source: src, targets: [dest.withTag('v1')] }, { stores: between() });

      expect(result.plan.externalBlobs).toStrictEqual([
        { digest: layers[1].digest, size: layers[1].size, mediaType: FOREIGN, urls: ['https://layers.example/one'] },
        { digest: layers[2].digest, size: layers[2].size, mediaType: FOREIGN, urls: [] },
      ]);
      expect(result.plan.blobs.map((b) => b.digest).sort()).toEqual([configDigest, layers[0].digest].sort());
      expect(target.blob(dest, layers[1].digest)).toBeUndefined();
      expect(result.blobs).toMatchObject({ total: 2, copied: 2 });
    });

    it('are copied when asked, and planned with their URLs', async () => {
      const { layers } = await putForeignImage(true);

      const result = await copy({ source: src, targets: [dest.withTag('v1')], allowNondistributableArtifacts: true }, { stores: between() });

      expect(result.plan.externalBlobs).toEqual([]);
      const planned = new Map(result.plan.blobs.map((b) => [b.digest, b]));
      expect(planned.get(layers[1].digest)).toMatchObject({ urls: ['https://layers.example/one'] });
      expect(planned.get(layers[2].digest)).toMatchObject({ urls: [] });
      expect(planned.get(layers[0].digest)).not.toHaveProperty('urls');
      expect(target.blob(dest, layers[1].digest)).toEqual(Buffer.from('a foreign layer'));
      expect(result.blobs).toMatchObject({ total: 4, copied: 4 });
    });
  });
});

describe('a target that refuses a manifest naming non-distributable layers', () => {
  const dest = src.withRepository('dest').withTag('v1');

  /** A target that answers every manifest PUT as distribution 2.8 answers one whose layer URLs it does not allow. */
  function refusing(code = 'MANIFEST_BLOB_UNKNOWN', status = 500): MemoryStore {
    const store = new MemoryStore();
    store.putManifest = (ref) =>
      Promise.reject(new RegistryError({ code: 'UNKNOWN', status, method: 'PUT', url: 'http://memory.test/v2/', reference: ref.toString(), details: [{ code: 'UNKNOWN', message: 'unknown error' }, { code, message: 'blob unknown to registry' }] }));
    return store;
  }

  it('names the layers and the way out: copy them, or allow their URLs', async () => {
    const { layers } = await putForeignImage(true);
    target = refusing();

    const error = await copy({ source: src, targets: [dest] }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({ code: 'NONDISTRIBUTABLE', side: 'target' });
    expect((error as Error).message).toBe(
      `the target refused manifest memory.test/dest:v1, which references non-distributable layer(s) by URL (${layers[1].digest}, ${layers[2].digest}): it answered HTTP 500 UNKNOWN, MANIFEST_BLOB_UNKNOWN. copy the layers into the target with --allow-nondistributable-artifacts (API: "allowNondistributableArtifacts": true), or allow foreign URLs on the target registry (distribution: validation.manifests.urls.allow); nothing was tagged`,
    );
  });

  it('names what a registry that says BLOB_UNKNOWN answered, and keeps its error as the cause', async () => {
    const { layers } = await putForeignImage(true);
    target = refusing('BLOB_UNKNOWN', 400);

    const error = (await copy({ source: src, targets: [dest] }, { stores: between() }).catch((e: unknown) => e)) as CopyError;

    expect(error).toMatchObject({ code: 'NONDISTRIBUTABLE' });
    expect(error.message).toContain(`by URL (${layers[1].digest}, ${layers[2].digest}): it answered HTTP 400 UNKNOWN, BLOB_UNKNOWN.`);
    expect(error.cause).toBeInstanceOf(RegistryError);
  });

  it('says the URLs themselves are refused when the layers were copied', async () => {
    await putForeignImage(true);
    target = refusing('MANIFEST_INVALID', 400);

    const error = await copy({ source: src, targets: [dest], allowNondistributableArtifacts: true }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'NONDISTRIBUTABLE' });
    expect((error as Error).message).toContain('it answered HTTP 400 UNKNOWN, MANIFEST_INVALID. the layers were copied, so the target refuses the URLs themselves: allow them on the target registry');
  });

  it('leaves any other refusal, or one of an image without such layers, as it is', async () => {
    await putForeignImage(true);
    target = refusing('DENIED', 403);
    expect(await copy({ source: src, targets: [dest] }, { stores: between() }).catch((e: unknown) => e)).toMatchObject({ code: 'AUTH_FAILED' });

    source = new MemoryStore();
    await putImage(src, 'plain');
    target = refusing();
    expect(await copy({ source: src, targets: [dest] }, { stores: between() }).catch((e: unknown) => e)).toMatchObject({ code: 'REGISTRY_ERROR' });
  });
});

describe('the no-force check of target tags', () => {
  it('looks up tags only: an untagged target beside a repository\'s other tags is no conflict', async () => {
    const [a, b] = [await putImage(src, 'a'), await putImage(src.withTag('b'), 'b')];
    const dest = src.withRepository('dest');
    await copy({ source: src.withTag('b'), targets: [dest.withTag('latest')] }, { stores: between() });

    const result = await copy({ source: src, targets: [dest] }, { stores: between() });

    expect(result.targets).toEqual([{ reference: `memory.test/dest@${a.digest}`, digest: a.digest, written: true }]);
    expect(target.tags(dest).get('latest')).toBe(b.digest);
  });

  it('names every tag that holds another digest', async () => {
    await putImage(src, 'a');
    const other = await putImage(src.withTag('other'), 'other');
    const [one, two] = [src.withRepository('dest').withTag('one'), src.withRepository('dest').withTag('two')];
    await copy({ source: src.withTag('other'), targets: [one, two] }, { stores: between() });

    const error = await copy({ source: src, targets: [one, two] }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'TAG_EXISTS', side: 'target', message: `target tag already exists: memory.test/dest:one (now ${other.digest}), memory.test/dest:two (now ${other.digest})` });
  });

  it('is the target\'s failure, before any bytes move, when the target cannot be asked', async () => {
    const image = await putImage(src, 'a');
    target.headManifest = (ref) => Promise.reject(new RegistryError({ code: 'DENIED', status: 403, method: 'HEAD', url: 'http://memory.test/v2/', reference: ref.toString() }));
    const dest = src.withRepository('dest');

    const error = await copy({ source: src, targets: [dest.withTag('v1')] }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'AUTH_FAILED', side: 'target' });
    for (const blob of image.blobs) expect(target.blob(dest, blob.digest)).toBeUndefined();
  });
});

describe('the tag read back after it is written', () => {
  it('fails TAG_EXISTS, naming what the tag now holds, when another writer moved it right after', async () => {
    await putImage(src, 'a');
    const theirs = await putImage(src.withTag('theirs'), 'theirs');
    const dest = src.withRepository('dest').withTag('v1');
    const put = target.putManifest.bind(target);
    // Another writer's PUT lands right after this copy's.
    target.putManifest = async (ref, manifest) => {
      const answer = await put(ref, manifest);
      if (ref.tag === 'v1') await put(ref, { digest: theirs.digest, mediaType: OCI_MANIFEST, bytes: theirs.bytes });
      return answer;
    };

    const error = await copy({ source: src, targets: [dest] }, { stores: between() }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'TAG_EXISTS', side: 'target', message: expect.stringContaining(`another writer moved target tag ${dest} right after this copy wrote`) });
    expect((error as Error).message).toContain(`it now holds ${theirs.digest}; nothing was overwritten back`);
    expect(target.tags(dest).get('v1')).toBe(theirs.digest);
  });
});
