/**
 * The copy's scheduling across platforms, against real distribution registries: the largest
 * blobs of every platform start first, and the platform manifests go up together, before the
 * index that names them. The order is read from what happened (progress events, requests the
 * target received), never from timing.
 */
import { copy } from '../../src/copy/index.js';
import { mapLargestFirst } from '../../src/copy/limit.js';
import type { ProgressEvent } from '../../src/copy/types.js';
import { pushImage, pushIndex, type PushedManifest } from '../helpers/fixtures.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { deferred } from '../../src/copy/deferred.js';
import { startDelayProxy, type HeldRequest } from '../e2e/delay-proxy.js';
import { expectIdenticalInTarget, ref } from './support.js';

const MIB = 1024 * 1024;

async function pushTwoPlatforms(source: TestRegistry, repository: string, amd64Layers: number[], arm64Layers: number[]): Promise<{ index: PushedManifest; children: PushedManifest[] }> {
  const children: PushedManifest[] = [];
  for (const [platform, layers] of [
    [{ os: 'linux', architecture: 'amd64' }, amd64Layers],
    [{ os: 'linux', architecture: 'arm64' }, arm64Layers],
  ] as const) {
    const pushed = await pushImage(source, repository, undefined, { layers: [...layers], platform });
    children.push({ ...pushed, descriptor: { ...pushed.descriptor, platform } });
  }
  return { index: await pushIndex(source, repository, 'v1', children), children };
}

describe('copy scheduling', () => {
  let source: TestRegistry;
  let target: TestRegistry;
  beforeAll(async () => {
    [source, target] = await Promise.all([startRegistry(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('starts the largest layers of every platform first, not the first platform whole', async () => {
    // The first platform's layers are the smaller ones: in platform order they would go first.
    const { index, children } = await pushTwoPlatforms(source, 'sched/largest', [1.5 * MIB, 2 * MIB], [3 * MIB, 2.5 * MIB]);
    const largest = children.flatMap((c) => c.blobs).find((b) => b.size === 3 * MIB)!;
    // A blob whose existence check has not answered holds no slot, so which check answers first
    // would decide the first pick. The other blobs' checks wait until the first upload opens (its
    // POST reaches the registry): by the time the single slot frees again, every check answered.
    const firstUpload = deferred<void>();
    const proxy = await startProxy(target.url, [
      (r) => {
        if (r.method === 'POST' && r.pathname.includes('/blobs/uploads/')) firstUpload.resolve();
        return r.method === 'HEAD' && r.pathname.includes('/blobs/') && !r.pathname.endsWith(largest.digest) ? { type: 'forward', waitFor: firstUpload.promise } : undefined;
      },
    ]);
    const events: ProgressEvent[] = [];
    const onProgress = (e: ProgressEvent) => events.push(e);
    let result;
    try {
      result = await copy({ source: ref(source, 'sched/largest:v1'), targets: [ref(proxy, 'sched/largest:v1')] }, { concurrency: 1, onProgress });
    } finally {
      await proxy.stop();
    }
    expect(result.blobs.copied).toBe(children.flatMap((c) => c.blobs).length);
    // One transfer slot for blobs over 1 MiB: they start one at a time, in the order chosen.
    const largeStarts = events.flatMap((e) => (e.type === 'blob-start' && e.size > MIB ? [e.size] : []));
    expect(largeStarts).toEqual([...largeStarts].sort((a, b) => b - a));
    expect(largeStarts).toHaveLength(4);
    await expectIdenticalInTarget(target, 'sched/largest', 'v1', [index, ...children]);
  });

  it('pushes the platform manifests together, and the index only after them', async () => {
    const { index, children } = await pushTwoPlatforms(source, 'sched/together', [1000, 2000], [3000, 4000]);
    const proxy = await startDelayProxy(target.url, { delayInMs: 0, methods: ['PUT'] });
    try {
      let blobsLeft = Number.POSITIVE_INFINITY;
      let firstHeld: Promise<HeldRequest> | undefined;
      const copying = copy(
        { source: ref(source, 'sched/together:v1'), targets: [ref(proxy, 'sched/together:v1')] },
        {
          onProgress: (e) => {
            if (e.type === 'plan') blobsLeft = e.blobs;
            // Every blob is in: the next PUT is the first manifest's. Hold it.
            if (e.type === 'blob-done' && --blobsLeft === 0) firstHeld = proxy.holdNext();
          },
        },
      );
      copying.catch(() => undefined);
      await vi.waitFor(() => expect(firstHeld).toBeDefined());
      const first = await firstHeld!;
      const childPaths = children.map((c) => `/v2/sched/together/manifests/${c.digest}`);
      expect(childPaths).toContain(first.request.path);
      const other = childPaths.find((p) => p !== first.request.path);
      // With the first platform manifest held, the other one arrives all the same: they go up
      // together. (Pushed one after another, it would never come while the first is held.)
      await vi.waitFor(() => expect(proxy.requests.some((r) => r.method === 'PUT' && r.path === other)).toBe(true), { timeout: 30_000 });
      const indexPut = (r: { method: string; path: string }) => r.method === 'PUT' && r.path === '/v2/sched/together/manifests/v1';
      expect(proxy.requests.some(indexPut)).toBe(false);
      first.release();
      const result = await copying;
      expect(result.manifests.map((m) => m.digest)).toEqual([...children.map((c) => c.digest), index.digest]);
      const puts = proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')).map((r) => r.path);
      expect(puts).toEqual([first.request.path, other, '/v2/sched/together/manifests/v1']);
      await expectIdenticalInTarget(target, 'sched/together', 'v1', [index, ...children]);
    } finally {
      await proxy.stop();
    }
  });

  it("fetches an index's platform manifests from the source together", async () => {
    const { index, children } = await pushTwoPlatforms(source, 'sched/fetch', [1000], [2000]);
    const proxy = await startDelayProxy(source.url, { delayInMs: 0, methods: ['GET'] });
    try {
      const indexGet = proxy.holdNext();
      const copying = copy({ source: ref(proxy, 'sched/fetch:v1'), targets: [ref(target, 'sched/fetch:v1')] });
      copying.catch(() => undefined);
      const held = await indexGet;
      expect(held.request.path).toBe('/v2/sched/fetch/manifests/v1');
      const childGet = proxy.holdNext();
      held.release();
      const first = await childGet;
      const childPaths = children.map((c) => `/v2/sched/fetch/manifests/${c.digest}`);
      expect(childPaths).toContain(first.request.path);
      const other = childPaths.find((p) => p !== first.request.path);
      // Fetched one after another, the other would never be asked for while the first is held.
      await vi.waitFor(() => expect(proxy.requests.some((r) => r.method === 'GET' && r.path === other)).toBe(true), { timeout: 30_000 });
      first.release();
      const result = await copying;
      expect(result.targetDigest).toBe(index.digest);
      await expectIdenticalInTarget(target, 'sched/fetch', 'v1', [index, ...children]);
    } finally {
      await proxy.stop();
    }
  });
});

describe('mapLargestFirst', () => {
  it('gives large items to the main workers largest first, and small ones to the extra workers smallest first', async () => {
    const started: number[] = [];
    const sizes = [5, 900, 1, 700, 3, 800];
    const results = await mapLargestFirst(sizes, (s) => s, { concurrency: 1, smallConcurrency: 1, smallMaxSize: 10 }, async (size) => {
      started.push(size);
      await new Promise((resolve) => setImmediate(resolve));
      return size * 2;
    });
    expect(results).toEqual(sizes.map((s) => s * 2));
    // The main worker took 900, 800, 700; the small one 1, 3, 5; they alternate as both await.
    expect(started.filter((s) => s > 10)).toEqual([900, 800, 700]);
    expect(started.filter((s) => s <= 10)).toEqual([1, 3, 5]);
  });

  it('lets an item waiting to be ready hold no worker: the largest ready one goes first', async () => {
    const started: number[] = [];
    let readyBig = () => {};
    const bigReady = new Promise<void>((resolve) => (readyBig = resolve));
    const sizes = [900, 500, 300];
    await mapLargestFirst(sizes, (s) => s, { concurrency: 1, smallConcurrency: 0, smallMaxSize: 0, ready: (s) => (s === 900 ? bigReady : Promise.resolve()) }, async (size) => {
      started.push(size);
      // The largest becomes ready only once another item has started.
      readyBig();
      return size;
    });
    expect(started).toEqual([500, 900, 300]);
  });

  it('leaves small items to the small workers while a large one is still to become ready', async () => {
    const started: number[] = [];
    let readyBig = () => {};
    const bigReady = new Promise<void>((resolve) => (readyBig = resolve));
    await mapLargestFirst([900, 5, 3], (s) => s, { concurrency: 1, smallConcurrency: 1, smallMaxSize: 10, ready: (s) => (s === 900 ? bigReady : Promise.resolve()) }, async (size) => {
      started.push(size);
      // The large item becomes ready once both small ones have started.
      if (started.filter((s) => s <= 10).length === 2) readyBig();
      await new Promise((resolve) => setImmediate(resolve));
      return size;
    });
    // The main worker waited for 900 instead of taking 5: the small worker took 3, then 5.
    expect(started).toEqual([3, 5, 900]);
  });

  it('starts nothing new on either end after a failure, and settles only once the started tasks have', async () => {
    const started: number[] = [];
    let settledSlow = false;
    let releaseSlow = () => {};
    const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
    const run = mapLargestFirst([100, 50, 2, 1], (s) => s, { concurrency: 1, smallConcurrency: 1, smallMaxSize: 10 }, async (size) => {
      started.push(size);
      if (size === 1) {
        // The largest goes on only once the failure has been seen (setImmediate runs after it).
        setImmediate(releaseSlow);
        throw new Error('small one failed');
      }
      if (size === 100) {
        await slow;
        settledSlow = true;
      }
      return size;
    });
    await expect(run).rejects.toThrow('small one failed');
    expect(settledSlow).toBe(true);
    expect(started.sort((a, b) => a - b)).toEqual([1, 100]);
  });
});
