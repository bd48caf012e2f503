/**
 * Resumable chunked uploads: a copy stopped mid-blob continues from its checkpoints, in another
 * process, without resending bytes; a lost or disagreeing upload restarts cleanly; and a resumed
 * blob whose bytes are corrupt is still refused.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { copy, CopyError, type CopyResult, type ProgressEvent } from '../../src/copy/index.js';
import { FileCheckpointStore } from '../../src/copy/file-checkpoints.js';
import { BIG_LAYER_SIZE, pushBigLayer, pushImage, rawRequest, type PushedManifest } from '../helpers/fixtures.js';
import { corruptResponses, startProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget, ref } from './support.js';

const CHUNK = 1024 * 1024;
const STOP_AFTER = 8 * CHUNK;
const run = promisify(execFile);

describe('resumable chunked copy of a 64 MiB+ layer', () => {
  let source: TestRegistry;
  let target: TestRegistry;
  let image: PushedManifest;
  let bigLayer: PushedManifest['blobs'][number];
  let dir: string;

  beforeAll(async () => {
    source = await startRegistry();
    image = await pushBigLayer(source, 'big/src', 'v1');
    bigLayer = image.blobs.find((b) => b.size === BIG_LAYER_SIZE)!;
    dir = await mkdtemp(join(tmpdir(), 'hoist-resume-'));
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), dir && rm(dir, { recursive: true, force: true })]);
  });
  // A fresh target per test: this process remembers where it put each blob and would mount the
  // big layer from an earlier test's repository instead of uploading it.
  beforeEach(async () => {
    target = await startRegistry();
  });
  afterEach(async () => {
    await target?.stop();
  });

  /** Copies with checkpoints, stopping once the big layer has `STOP_AFTER` bytes on the target. */
  async function copyUntilStopped(repository: string, checkpoints: FileCheckpointStore): Promise<CopyResult> {
    const controller = new AbortController();
    const onProgress = (event: ProgressEvent) => {
      if (event.type === 'blob-progress' && event.digest === bigLayer.digest && event.bytesDone >= STOP_AFTER) controller.abort();
    };
    return copy(
      { source: ref(source, 'big/src:v1'), targets: [ref(target, `${repository}:v1`)] },
      { checkpoints, chunkSizeInBytes: CHUNK, abortSignal: controller.signal, onProgress, concurrency: 1 },
    );
  }

  function patches(repository: string) {
    return target.accessLog().filter((r) => r.method === 'PATCH' && r.uri.startsWith(`/v2/${repository}/blobs/uploads/`));
  }

  /** One PATCH per chunk, but for each blob's last chunk, which goes with its closing PUT. */
  function patchesForImage(): number {
    return image.blobs.reduce((sum, b) => sum + Math.ceil(b.size / CHUNK) - 1, 0);
  }

  async function tagStatus(repository: string): Promise<number> {
    return (await rawRequest(`${target.url}/v2/${repository}/manifests/v1`, { method: 'HEAD', headers: { accept: image.mediaType } })).status;
  }

  it('continues in a new process from the checkpoint, resending nothing', async () => {
    const checkpoints = new FileCheckpointStore(join(dir, 'a'));
    const first = await copyUntilStopped('big/a', checkpoints);
    expect(first.status).toBe('paused');
    const saved = await checkpoints.load(`${target.host}/big/a`, bigLayer.digest);
    expect(saved?.offset).toBe(STOP_AFTER);
    expect(await tagStatus('big/a')).toBe(404);

    const child = await run(process.execPath, ['bin/hoist.js', 'copy', `${source.host}/big/src:v1`, `${target.host}/big/a:v1`, '--resume-dir', join(dir, 'a'), '--chunk-size', String(CHUNK), '--json', '--concurrency', '1']);
    const events = child.stderr.trim().split('\n').map((l) => JSON.parse(l) as ProgressEvent);
    expect(events).toContainEqual(expect.objectContaining({ type: 'blob-start', digest: bigLayer.digest, offset: STOP_AFTER }));
    const result = JSON.parse(child.stdout) as CopyResult;
    expect(result.status).toBe('completed');

    // Every byte crossed once: one PATCH per 1 MiB chunk of each blob, but for its last.
    expect(patches('big/a')).toHaveLength(patchesForImage());
    expect(await readdir(join(dir, 'a'))).toEqual([]);
    await expectIdenticalInTarget(target, 'big/a', 'v1', [image]);
  });

  it('continues after the target registry restarts (stable http.secret)', async () => {
    const checkpoints = new FileCheckpointStore(join(dir, 'b'));
    expect((await copyUntilStopped('big/b', checkpoints)).status).toBe('paused');
    await target.restart();
    const result = await copy({ source: ref(source, 'big/src:v1'), targets: [ref(target, 'big/b:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK, concurrency: 1 });
    expect(result.status).toBe('completed');
    expect(patches('big/b')).toHaveLength(patchesForImage());
  });

  it('restarts the blob cleanly when the registry lost the upload', async () => {
    const checkpoints = new FileCheckpointStore(join(dir, 'c'));
    expect((await copyUntilStopped('big/c', checkpoints)).status).toBe('paused');
    const saved = (await checkpoints.load(`${target.host}/big/c`, bigLayer.digest))!;
    // Lose the upload for real: remove the session's data from the registry's storage.
    const uuid = /\/blobs\/uploads\/([^/?]+)/.exec(saved.location)![1];
    await rm(join(target.rootDirectory, 'docker/registry/v2/repositories/big/c/_uploads', uuid), { recursive: true, force: true });

    const result = await copy({ source: ref(source, 'big/src:v1'), targets: [ref(target, 'big/c:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK, concurrency: 1 });
    expect(result.status).toBe('completed');
    await expectIdenticalInTarget(target, 'big/c', 'v1', [image]);
  });

  it('resumes where the registry is when the checkpoint is behind it, resending nothing', async () => {
    const checkpoints = new FileCheckpointStore(join(dir, 'd'));
    expect((await copyUntilStopped('big/d', checkpoints)).status).toBe('paused');
    const saved = (await checkpoints.load(`${target.host}/big/d`, bigLayer.digest))!;
    // The session is valid, but the checkpoint counts a chunk fewer than the registry holds.
    await checkpoints.save({ ...saved, offset: saved.offset - CHUNK });

    const events: ProgressEvent[] = [];
    const result = await copy({ source: ref(source, 'big/src:v1'), targets: [ref(target, 'big/d:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK, concurrency: 1, onProgress: (e) => events.push(e) });
    expect(result.status).toBe('completed');
    expect(events).toContainEqual(expect.objectContaining({ type: 'blob-start', digest: bigLayer.digest, offset: STOP_AFTER }));
    expect(patches('big/d')).toHaveLength(patchesForImage());
    await expectIdenticalInTarget(target, 'big/d', 'v1', [image]);
  });

  it('restarts from zero when distribution 2.8 holds more than the checkpoint (it cannot tell how much)', async () => {
    const checkpoints = new FileCheckpointStore(join(dir, 'f'));
    expect((await copyUntilStopped('big/f', checkpoints)).status).toBe('paused');
    const saved = (await checkpoints.load(`${target.host}/big/f`, bigLayer.digest))!;
    // The next chunk lands, but its answer (the new _state) is lost, as when the process dies
    // between the 202 and its checkpoint: the saved Location is now stale.
    const next = (await rawRequest(`${source.url}/v2/big/src/blobs/${bigLayer.digest}`, { method: 'GET', headers: { range: `bytes=${saved.offset}-${saved.offset + CHUNK - 1}` } })).body;
    const landed = await rawRequest(saved.location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': String(next.length) }, body: next });
    expect(landed.status).toBe(202);

    const events: ProgressEvent[] = [];
    const result = await copy({ source: ref(source, 'big/src:v1'), targets: [ref(target, 'big/f:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK, concurrency: 1, onProgress: (e) => events.push(e) });
    expect(result.status).toBe('completed');
    expect(events).toContainEqual(expect.objectContaining({ type: 'blob-start', digest: bigLayer.digest, offset: 0 }));
    await expectIdenticalInTarget(target, 'big/f', 'v1', [image]);
  });

  it('moves at least one chunk per call, however short the time budget', async () => {
    const small = await pushImage(source, 'budget/src', 'v1', { layers: [5 * CHUNK] });
    const checkpoints = new FileCheckpointStore(join(dir, 'budget'));
    const statuses: string[] = [];
    for (let call = 0; call < 20 && statuses.at(-1) !== 'completed'; call++) {
      const result = await copy({ source: ref(source, 'budget/src:v1'), targets: [ref(target, 'budget/dst:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK, timeBudgetInMs: 1, concurrency: 1 });
      statuses.push(result.status);
    }
    expect(statuses.at(-1)).toBe('completed');
    expect(statuses.length).toBeGreaterThan(2);
    await expectIdenticalInTarget(target, 'budget/dst', 'v1', [small]);
  });

  it('refuses a resumed blob whose remaining bytes are corrupt, and tags nothing', async () => {
    const checkpoints = new FileCheckpointStore(join(dir, 'e'));
    expect((await copyUntilStopped('big/e', checkpoints)).status).toBe('paused');
    const proxy = await startProxy(source.url, [corruptResponses({ offset: 12345 })]);
    try {
      const error = await copy({ source: ref(proxy, 'big/src:v1'), targets: [ref(target, 'big/e:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK, concurrency: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CopyError);
      expect((error as CopyError).code).toBe('INTEGRITY');
      // The target's digest check refuses the resumed upload; the registry does not hold the blob,
      // so it starts over from its first byte (a refused commit may be a lost race), and the
      // source's bytes then fail the copy's own check.
      expect((error as CopyError).side).toBe('source');
      expect(await tagStatus('big/e')).toBe(404);
    } finally {
      await proxy.stop();
    }
  });

  it('closes a checkpointed upload that already holds every byte, reading nothing from the source', async () => {
    const small = await pushImage(source, 'full/src', 'v1', { layers: [100_000] });
    const layer = small.blobs.find((b) => b.size === 100_000)!;
    // A session with the whole layer in it and no closing PUT yet, as a process that died right
    // after its last PATCH (or an earlier Hoist, which PATCHed every chunk) leaves it.
    const bytes = (await rawRequest(`${source.url}/v2/full/src/blobs/${layer.digest}`, { method: 'GET' })).body;
    const opened = await rawRequest(`${target.url}/v2/full/dst/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
    const location = new URL(opened.headers.location as string, target.url);
    const patched = await rawRequest(location.href, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, body: bytes });
    expect(patched.status).toBe(202);
    const checkpoints = new FileCheckpointStore(join(dir, 'full'));
    await checkpoints.save({ target: `${target.host}/full/dst`, digest: layer.digest, size: layer.size, location: new URL(patched.headers.location as string, target.url).href, offset: layer.size, chunkSize: CHUNK, updatedAt: new Date().toISOString() });

    const mark = source.accessLog().length;
    const result = await copy({ source: ref(source, 'full/src:v1'), targets: [ref(target, 'full/dst:v1')] }, { checkpoints, chunkSizeInBytes: CHUNK });
    expect(result.status).toBe('completed');
    expect(source.accessLog().slice(mark).filter((r) => r.uri.endsWith(layer.digest))).toEqual([]);
    await expectIdenticalInTarget(target, 'full/dst', 'v1', [small]);
  });
});
