/**
 * The engine's coordination hook against real registries, with an in-memory coordination (the
 * service's Tables-backed one is tested in test/jobs): tags and missing blobs are written under
 * their locks, a blob another writer put in place meanwhile is skipped, and a wait that is told
 * to stop pauses the copy with nothing tagged.
 */
import { copy } from '../../src/copy/index.js';
import type { CopyCoordination, ProgressEvent, ReleaseLock } from '../../src/copy/types.js';
import { MIN_LOCK_WAIT_IN_MS } from '../../src/copy/engine.js';
import type { Reference } from '../../src/registry/reference.js';
import { CopyError } from '../../src/copy/errors.js';
import { FixtureClient, pushImage, pushImageWithLyingSize, seededBytes } from '../helpers/fixtures.js';
import { settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startProxy } from '../helpers/proxy.js';
import { ref } from './support.js';

let source: TestRegistry;
let target: TestRegistry;

beforeAll(async () => {
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
});

/**
 * Records every lock taken and released; `onLock` may act (as another writer) or refuse (the
 * wait then ends only when its `shouldStop` says so); blob
 * locks name `mountFrom` as where earlier holders wrote.
 */
function recordingCoordination(onLock: (subject: string, shouldStop: () => boolean) => Promise<boolean> = async () => true, mountFrom?: string[]): CopyCoordination & { log: string[] } {
  const log: string[] = [];
  const lock = async (subject: string, shouldStop: () => boolean): Promise<ReleaseLock | undefined> => {
    if (!(await onLock(subject, shouldStop)) && shouldStop()) return undefined;
    log.push(`lock ${subject}`);
    return async () => void log.push(`release ${subject}`);
  };
  return {
    log,
    lockTag: (tag: Reference, shouldStop) => lock(`tag ${tag}`, shouldStop),
    lockBlob: async (target, digest, shouldStop) => {
      const subject = `blob ${target.registry.name}@${digest}`;
      const release = await lock(subject, shouldStop);
      return release && { release, keepForResume: async () => void log.push(`keep ${subject}`), ...(mountFrom && { mountFrom }) };
    },
  };
}

describe('copy with a coordination', () => {
  it('writes tags and missing blobs under their locks, and skips a blob another writer put in place while it waited', async () => {
    const image = await pushImage(source, 'co/src', 'v1', { layers: [1000, 2000] });
    const [config, first, second] = image.blobs;
    const coordination = recordingCoordination(async (subject) => {
      // Another writer uploads the first layer while this copy waits for its lock.
      if (subject.endsWith(first.digest)) await new FixtureClient(target).pushBlob('co/dst', { data: seededBytes(`co/src:v1:amd64/layer-0`, 1000) });
      return true;
    });
    const result = await copy({ source: ref(source, 'co/src:v1'), targets: [ref(target, 'co/dst:v1')] }, { coordination, concurrency: 1 });
    expect(result.status).toBe('completed');
    expect(result.blobs).toEqual({ total: 3, copied: 2, skipped: 1, mounted: 0 });
    expect(result.targets).toEqual([{ reference: `${target.host}/co/dst:v1`, digest: image.digest, written: true }]);
    for (const blob of [config, first, second]) {
      expect(coordination.log.indexOf(`release blob ${target.host}@${blob.digest}`)).toBeGreaterThan(coordination.log.indexOf(`lock blob ${target.host}@${blob.digest}`));
    }
    expect(coordination.log.slice(-2)).toEqual([`lock tag ${target.host}/co/dst:v1`, `release tag ${target.host}/co/dst:v1`]);
  });

  it('fails, untagged, when the blob another writer put in place while it waited is not the size its descriptor claims', async () => {
    const { honest } = await pushImageWithLyingSize(source, 'co/lie', 'v1', { blob: 0, size: 1001 }, { layers: [1000] });
    const coordination = recordingCoordination(async (subject) => {
      // The other writer uploads the true 1000 bytes; this copy's descriptor says 1001.
      if (subject.endsWith(honest.digest)) {
        const bytes = Buffer.from(await (await fetch(`${source.url}/v2/co/lie/blobs/${honest.digest}`)).arrayBuffer());
        await new FixtureClient(target).pushBlob('co/lie-dst', { data: bytes });
      }
      return true;
    });
    const failure = await copy({ source: ref(source, 'co/lie:v1'), targets: [ref(target, 'co/lie-dst:v1')] }, { coordination, concurrency: 1 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CopyError);
    expect(failure).toMatchObject({ code: 'INTEGRITY', side: 'source' });
    expect(coordination.log.some((l) => l.startsWith('lock tag'))).toBe(false);
    expect(await new FixtureClient(target).getManifest('co/lie-dst', 'v1')).toMatchObject({ status: 404 });
  });

  it('mounts a blob from the repository a holder it waited for wrote it to', async () => {
    const image = await pushImage(source, 'co/mount-src', 'v1', { layers: [1200] });
    // Another writer (not this process, whose own hints would know) put its blobs in another
    // repository of the target.
    for (const blob of image.blobs) {
      const bytes = Buffer.from(await (await fetch(`${source.url}/v2/co/mount-src/blobs/${blob.digest}`)).arrayBuffer());
      await new FixtureClient(target).pushBlob('co/other', { data: bytes });
    }
    const mark = target.accessLog().length;
    const coordination = recordingCoordination(async () => true, ['co/other']);
    const result = await copy({ source: ref(source, 'co/mount-src:v1'), targets: [ref(target, 'co/mounted:v1')] }, { coordination });
    expect(result.blobs).toEqual({ total: 2, copied: 0, skipped: 0, mounted: 2 });
    expect(result.targets[0]).toMatchObject({ digest: image.digest, written: true });
    const posts = (await settledAccessLog(target)).slice(mark).filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.status)).toEqual([201, 201]);
  });

  it('keeps the lock of a blob whose upload paused, and releases the others', async () => {
    const image = await pushImage(source, 'co/pause', 'v1', { layers: [3 * 1024 * 1024 + 5] });
    const layer = image.blobs[1];
    const coordination = recordingCoordination();
    const abort = new AbortController();
    // The layer goes first (largest first) and the config beside it in a small-blob lane: pause
    // once the layer has sent a chunk and the config is in place, whichever comes last.
    let layerSent = false;
    let configDone = false;
    const onProgress = (e: ProgressEvent) => {
      if (e.type === 'blob-progress' && e.digest === layer.digest) layerSent = true;
      if (e.type === 'blob-done' && e.digest === image.blobs[0].digest) configDone = true;
      if (layerSent && configDone) abort.abort();
    };
    const result = await copy(
      { source: ref(source, 'co/pause:v1'), targets: [ref(target, 'co/pause:v1')] },
      { coordination, uploadMode: 'chunked', chunkSizeInBytes: 1024 * 1024, abortSignal: abort.signal, onProgress },
    );
    expect(result.status).toBe('paused');
    const subject = `blob ${target.host}@${layer.digest}`;
    expect(coordination.log).toContain(`keep ${subject}`);
    expect(coordination.log).not.toContain(`release ${subject}`);
    expect(coordination.log).toContain(`release blob ${target.host}@${image.blobs[0].digest}`);
  });

  it('releases, not keeps, the lock of a blob in flight when the copy fails', async () => {
    // The small layer lies about its size, and the target holds its true bytes: its check fails
    // the plan (INTEGRITY) while the big layer is uploading.
    const { honest, manifest } = await pushImageWithLyingSize(source, 'co/fail', 'v1', { blob: 1, size: 1001 }, { layers: [3 * 1024 * 1024 + 5, 1000] });
    const big = JSON.parse(manifest.manifestBytes.toString('utf8')) as { layers: Array<{ digest: string }> };
    const bigDigest = big.layers[0].digest;
    const bytes = Buffer.from(await (await fetch(`${source.url}/v2/co/fail/blobs/${honest.digest}`)).arrayBuffer());
    await new FixtureClient(target).pushBlob('co/fail-dst', { data: bytes });

    const until = async (condition: () => boolean) => {
      while (!condition()) await new Promise((resolve) => setImmediate(resolve));
    };
    let bigMoved!: () => void;
    const moved = new Promise<void>((resolve) => (bigMoved = resolve));
    let stopBig: (() => boolean) | undefined;
    let patches = 0;
    const proxy = await startProxy(target.url, [
      // The failing check answers only once the big layer has moved a chunk…
      (r) => (r.method === 'HEAD' && r.pathname.endsWith(honest.digest) ? { type: 'forward', waitFor: moved } : undefined),
      // …(progress events wait for the plan, so the proxy tells), and the big layer's next chunk
      // goes only once the copy knows it failed.
      (r) => {
        if (r.method !== 'PATCH') return undefined;
        return patches++ === 0 ? { type: 'forward', afterUpstream: async () => bigMoved() } : { type: 'forward', waitFor: until(() => stopBig?.() === true) };
      },
    ]);
    try {
      const recording = recordingCoordination();
      const coordination: CopyCoordination = {
        ...recording,
        lockBlob: (repo, digest, shouldStop) => {
          if (digest === bigDigest) stopBig = shouldStop;
          return recording.lockBlob(repo, digest, shouldStop);
        },
      };
      const failure = await copy(
        { source: ref(source, 'co/fail:v1'), targets: [ref(proxy, 'co/fail-dst:v1')] },
        { coordination, uploadMode: 'chunked', chunkSizeInBytes: 1024 * 1024 },
      ).catch((e: unknown) => e);
      expect(failure).toMatchObject({ code: 'INTEGRITY' });
      const subject = `blob ${proxy.host}@${bigDigest}`;
      expect(recording.log).toContain(`lock ${subject}`);
      expect(recording.log).toContain(`release ${subject}`);
      expect(recording.log).not.toContain(`keep ${subject}`);
    } finally {
      await proxy.stop();
    }
  });

  it.each(['tag', 'blob'])('pauses, tagging nothing, when a wait for a %s lock is told to stop', async (kind) => {
    await pushImage(source, `co/stop-${kind}`, 'v1', { layers: [1500] });
    // The stop: an abort (a lost job lease, a shutdown) that comes while it waits, which ends a
    // wait at once, even within the time budget.
    const abort = new AbortController();
    const coordination = recordingCoordination(async (subject) => {
      if (!subject.startsWith(kind)) return true;
      abort.abort();
      return false;
    });
    const options = { coordination, abortSignal: abort.signal, timeBudgetInMs: 60_000 };
    const result = await copy({ source: ref(source, `co/stop-${kind}:v1`), targets: [ref(target, `co/stop-${kind}:v1`)] }, options);
    expect(result.status).toBe('paused');
    expect(coordination.log.filter((l) => l.startsWith(`lock ${kind}`))).toEqual([]);
    expect(await new FixtureClient(target).getManifest(`co/stop-${kind}`, 'v1')).toMatchObject({ status: 404 });
  });

  it('waits for a held blob lock past a spent budget while it has moved nothing, then copies', async () => {
    const image = await pushImage(source, 'co/turn', 'v1', { layers: [1500] });
    // The other holder releases after a few polls; each asks first whether to stop waiting.
    const coordination = recordingCoordination(async (subject, shouldStop) => {
      if (!subject.startsWith('blob')) return true;
      for (let poll = 0; poll < 3; poll++) {
        if (shouldStop()) return false;
        await new Promise((resolve) => setImmediate(resolve));
      }
      return true;
    });
    const result = await copy({ source: ref(source, 'co/turn:v1'), targets: [ref(target, 'co/turn:v1')] }, { coordination, timeBudgetInMs: 0 });
    expect(result.status).toBe('completed');
    expect(result.targets[0]).toMatchObject({ digest: image.digest, written: true });
  });

  it(`ends a wait for a blob lock at a spent budget once it has waited ${MIN_LOCK_WAIT_IN_MS} ms`, async () => {
    await pushImage(source, 'co/waited', 'v1', { layers: [1500] });
    const clock = Date.now.bind(Date);
    let shift = 0;
    const now = vi.spyOn(Date, 'now').mockImplementation(() => clock() + shift);
    try {
      const coordination = recordingCoordination(async (subject, shouldStop) => {
        if (!subject.startsWith('blob')) return true;
        expect(shouldStop()).toBe(false);
        // The holder keeps the lock for the whole minimum wait.
        shift += MIN_LOCK_WAIT_IN_MS;
        return false;
      });
      const result = await copy({ source: ref(source, 'co/waited:v1'), targets: [ref(target, 'co/waited:v1')] }, { coordination, timeBudgetInMs: 0, concurrency: 1 });
      expect(result.status).toBe('paused');
      expect(coordination.log.filter((l) => l.startsWith('lock'))).toEqual([]);
      expect(await new FixtureClient(target).getManifest('co/waited', 'v1')).toMatchObject({ status: 404 });
    } finally {
      now.mockRestore();
    }
  });
});
