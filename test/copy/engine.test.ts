/**
 * The engine's planning and its promises before any bytes move, on in-memory stores (no
 * registry): targets refused up front, the limits on claimed sizes and manifest counts, the
 * events a caller sees first, and a time budget that pauses only once something has moved.
 */
import { copy, DEFAULT_MAX_BLOB_BYTES } from '../../src/copy/engine.js';
import { CopyError } from '../../src/copy/errors.js';
import { MemoryStore } from '../../src/copy/memory-store.js';
import type { Stores } from '../../src/copy/store.js';
import type { ProgressEvent } from '../../src/copy/types.js';
import { sha256 } from '../../src/registry/digest.js';
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
    await putImage(src, 'a', DEFAULT_MAX_BLOB_BYTES + 1);
    const error = await copy({ source: src, targets: [parseReference('memory.test/copy:v1')] }, { stores: between() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BLOB_TOO_LARGE', side: 'source' });
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
    expect(error).toMatchObject({ code: 'TOO_MANY_MANIFESTS', side: 'source' });
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
    expect(first.blobs.copied).toBe(1);
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
