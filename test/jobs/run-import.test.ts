import { randomBytes } from 'node:crypto';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { CopyError } from '../../src/copy/errors.js';
import { RegistryError } from '../../src/registry/errors.js';
import { UrlBlobError } from '../../src/registry/url-blob.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { cancelImport } from '../../src/jobs/cancel-import.js';
import type { JobEvent } from '../../src/jobs/job-events.js';
import { describeFailure, MAX_FAILURE_MESSAGE_LENGTH, runImport, type RunImportDeps } from '../../src/jobs/run-import.js';
import { SecretBox } from '../../src/jobs/secret-box.js';
import { toStatusDocument } from '../../src/jobs/status-document.js';
import { sealCredentials } from '../../src/jobs/source-credentials.js';
import { copy } from '../../src/copy/index.js';
import { rawRequest, pushImage } from '../helpers/fixtures.js';
import { startRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget } from '../copy/support.js';
import { startAzurite, type TestAzurite } from './azurite.js';
import { EntityTooLargeError, SERVICE_TLS_ADVICE } from '../../src/jobs/errors.js';
import { BLOB_DIGEST, MANIFEST_TYPE, SOURCE_DIGEST, scriptedEngine, type ScriptedEngine } from './scripted-engine.js';

const MIB = 1024 * 1024;
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const TARGET_PASSWORD = `tpw-${randomBytes(12).toString('hex')}`;
const box = SecretBox.fromSetting(randomBytes(32).toString('base64'))!;

let azurite: TestAzurite;
let queues = 0;

beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

interface Harness {
  storage: JobStorage;
  logs: string[];
  deps: (engine: Pick<ScriptedEngine, 'copy'>, overrides?: Partial<RunImportDeps>) => RunImportDeps;
  /** Receives (and deletes) every visible message, decoded. */
  drain: () => Promise<unknown[]>;
  /** Messages in the queue, visible or not. */
  count: () => Promise<number>;
  createJob: (overrides?: Partial<JobRecord>) => Promise<JobRecord>;
  job: (id: string) => Promise<JobRecord>;
}

async function harness(): Promise<Harness> {
  const storage = await openJobStorage(azurite.connectionString, { queueName: `imports-${++queues}` });
  await storage.queue.queue.createIfNotExists();
  const logs: string[] = [];
  return {
    storage,
    logs,
    deps: (engine, overrides = {}) => ({
      jobs: storage.jobs,
      checkpoints: storage.checkpoints,
      queue: storage.queue,
      copy: engine.copy,
      hosts: new RegistryHosts(),
      secretBox: box,
      targetCredentials: { username: 'pusher', password: TARGET_PASSWORD },
      timeBudgetInMs: 60_000,
      leaseDurationInMs: 30_000,
      maxDequeueCount: 5,
      progressIntervalInMs: 50,
      log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) },
      ...overrides,
    }),
    drain: async () => {
      const { receivedMessageItems } = await storage.queue.queue.receiveMessages({ numberOfMessages: 32 });
      for (const m of receivedMessageItems) await storage.queue.queue.deleteMessage(m.messageId, m.popReceipt);
      return receivedMessageItems.map((m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as unknown);
    },
    count: async () => (await storage.queue.queue.getProperties()).approximateMessagesCount ?? 0,
    createJob: async (overrides = {}) => {
      const id = newJobId();
      const record = {
        ...newJobRecord({
          id,
          source: 'src.example/team/app:v1',
          targets: [
            { reference: 'localhost:5000/app:v1', tagged: true },
            { reference: 'localhost:5000/mirror', tagged: false },
          ],
          force: false,
          platforms: ['linux/amd64'],
          referrers: false,
          sealedCredentials: sealCredentials(box, id, { username: 'reader', password: PASSWORD }),
        }),
        ...overrides,
      };
      await storage.jobs.create(record);
      return record;
    },
    job: async (id) => (await storage.jobs.get(id))!.value,
  };
}

const delivery = (jobId: string, extra: { continuation?: number; dequeueCount?: number } = {}) => ({
  message: { jobId, continuation: extra.continuation ?? 0 },
  dequeueCount: extra.dequeueCount ?? 1,
  invocationId: `inv-${randomBytes(4).toString('hex')}`,
});

/** Settles once `signal` has aborted: a scripted copy held until the worker stops it. */
const aborted = (signal: AbortSignal) => new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));

describe('runImport', () => {
  it('copies a job to success: manifests, targets, final progress; credentials and checkpoints removed', async () => {
    const h = await harness();
    const engine = scriptedEngine({ size: 8, chunk: 2 });
    const job = await h.createJob();
    expect(await runImport(delivery(job.id), h.deps(engine))).toBe('succeeded');

    const { request, options } = engine.calls[0];
    expect(request.source.toString()).toBe('src.example/team/app:v1');
    expect(request.targets.map(String)).toEqual(['localhost:5000/app:v1', 'localhost:5000/mirror']);
    expect(request.targets[1].tag).toBeUndefined();
    expect(request.platforms).toEqual([{ os: 'linux', architecture: 'amd64' }]);
    expect(options.uploadMode).toBe('chunked');
    const credentials = options.hosts!.credentials;
    expect(await credentials.getCredentials('src.example', [])).toEqual({ kind: 'basic', username: 'reader', password: PASSWORD });
    expect(await credentials.getCredentials('localhost:5000', [])).toEqual({ kind: 'basic', username: 'pusher', password: TARGET_PASSWORD });
    // Keyed by the job, never by a secret.
    expect(credentials.id).toBe(`job:${job.id}`);

    // A job queued under another target registry gets no target credentials.
    const elsewhere = await h.createJob();
    await runImport(delivery(elsewhere.id), h.deps(engine, { targetRegistries: ['new-target.example'] }));
    expect(await engine.calls[1].options.hosts!.credentials.getCredentials('localhost:5000', [])).toBeUndefined();
    // A job written to any of the listed targets gets them.
    const second = await h.createJob();
    await runImport(delivery(second.id), h.deps(engine, { targetRegistries: ['new-target.example', 'localhost:5000'] }));
    expect(await engine.calls[2].options.hosts!.credentials.getCredentials('localhost:5000', [])).toEqual({ kind: 'basic', username: 'pusher', password: TARGET_PASSWORD });

    const done = await h.job(job.id);
    expect(done).toMatchObject({ status: 'succeeded', sourceDigest: SOURCE_DIGEST, sourceMediaType: MANIFEST_TYPE, targetDigest: SOURCE_DIGEST, attempts: 1 });
    expect(done.manifests).toEqual([{ digest: SOURCE_DIGEST, mediaType: MANIFEST_TYPE, written: true }]);
    expect(done.targets).toEqual([
      { reference: 'localhost:5000/app:v1', tagged: true, digest: SOURCE_DIGEST, written: true },
      { reference: 'localhost:5000/mirror', tagged: false, digest: SOURCE_DIGEST },
    ]);
    expect(done.progress).toEqual({ blobs: { total: 1, done: 1, skipped: 0, mounted: 0 }, bytes: { total: 8, done: 8 } });
    expect(done.completedAt).toBeDefined();
    expect(done.sealedCredentials).toBeUndefined();
    expect(done.leaseOwner).toBeUndefined();
    expect(await h.storage.checkpoints.forJob(job.id).load('localhost:5000/app', BLOB_DIGEST)).toBeUndefined();
    expect(await h.count()).toBe(0);
    // A redelivery of the finished job does nothing.
    expect(await runImport(delivery(job.id), h.deps(engine))).toBe('finished');
    expect(engine.calls).toHaveLength(3);
  });

  it('records the layers left referenced by URL, bounded, and the attestations, and shows them in the status document', async () => {
    const h = await harness();
    const engine = scriptedEngine({ size: 4, chunk: 2 });
    const longUrl = `https://layers.example/${'x'.repeat(2000)}`;
    const attestation = `sha256:${'a7'.repeat(32)}`;
    const copy: typeof engine.copy = async (request, options = {}) => {
      for (let i = 0; i < 25; i++) {
        const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
        options.onProgress?.({ type: 'blob-external', digest, size: 1000 + i, mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', urls: [longUrl, 'https://b.example/l', 'https://c.example/l'] });
      }
      const result = await engine.copy(request, options);
      result.plan.manifests.push({ digest: attestation, mediaType: MANIFEST_TYPE, size: 300, platform: 'unknown/unknown', attestationFor: SOURCE_DIGEST });
      return result;
    };
    const job = await h.createJob();
    expect(await runImport(delivery(job.id), h.deps({ ...engine, copy }))).toBe('succeeded');
    const status = toStatusDocument(await h.job(job.id));
    expect(status.externalBlobs).toHaveLength(20);
    expect(status.manifests).toContainEqual({ digest: attestation, mediaType: MANIFEST_TYPE, platform: 'unknown/unknown', attestationFor: SOURCE_DIGEST, written: false });
    expect(status.externalBlobs![0]).toEqual({ digest: `sha256:${'0'.repeat(64)}`, size: 1000, mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', urls: [longUrl.slice(0, 512), 'https://b.example/l'] });
    // A job without external layers has no such field.
    const plain = await h.createJob();
    await runImport(delivery(plain.id), h.deps(engine));
    expect(toStatusDocument(await h.job(plain.id))).not.toHaveProperty('externalBlobs');
  });

  it('pauses at the time budget, queues a continuation, and resumes from the checkpoint each time (real engine, registries and Azurite)', async () => {
    const h = await harness();
    const [source, target] = await Promise.all([startRegistry(), startRegistry()]);
    try {
      const image = await pushImage(source, 'worker/src', 'v1', { layers: [6 * MIB + 1] });
      const layer = image.blobs.find((b) => b.size === 6 * MIB + 1)!;
      const job = await h.createJob({ source: `${source.host}/worker/src:v1`, targets: [{ reference: `${target.host}/worker/dst:v1`, tagged: true }], platforms: [] });
      // A budget spent at once: each invocation moves one chunk (the engine's minimum), then pauses.
      const deps = h.deps({ copy }, { timeBudgetInMs: 1, chunkSizeInBytes: MIB, concurrency: 1 });
      let message: unknown = { jobId: job.id, continuation: 0 };
      const outcomes: string[] = [];
      const progress: number[] = [];
      for (let i = 0; i < 20; i++) {
        const outcome = await runImport({ message, dequeueCount: 1, invocationId: `inv-${i}` }, deps);
        outcomes.push(outcome);
        progress.push((await h.job(job.id)).progress.bytes.done);
        if (outcome !== 'paused') break;
        const queued = await h.drain();
        expect(queued).toEqual([{ jobId: job.id, continuation: i + 1 }]);
        const between = await h.job(job.id);
        expect(between).toMatchObject({ status: 'running', attempts: 1 });
        expect(between.leaseOwner).toBeUndefined();
        // The checkpoint the next invocation resumes from is what the registry holds.
        const saved = await h.storage.checkpoints.forJob(job.id).load(`${target.host}/worker/dst`, layer.digest);
        if (saved) expect((await rawRequest(saved.location, { method: 'GET' })).headers.range).toBe(`0-${saved.offset - 1}`);
        message = queued[0];
      }
      expect(outcomes.at(-1)).toBe('succeeded');
      expect(outcomes.filter((o) => o === 'paused').length).toBeGreaterThanOrEqual(3);
      // Every chunk crossed once, in one upload session: 6 PATCHes, the last byte with the closing PUT.
      const uploads = target.accessLog().filter((r) => r.uri.startsWith('/v2/worker/dst/blobs/uploads/'));
      expect(uploads.filter((r) => r.method === 'PATCH' && r.status === 202)).toHaveLength(6);
      expect(uploads.filter((r) => r.method === 'POST')).toHaveLength(2);
      for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]);
      const done = await h.job(job.id);
      expect(done).toMatchObject({ status: 'succeeded', attempts: 1, continuations: outcomes.length - 1, targetDigest: image.digest });
      expect(done.progress.bytes).toEqual({ total: image.blobs.reduce((sum, b) => sum + b.size, 0), done: image.blobs.reduce((sum, b) => sum + b.size, 0) });
      await expectIdenticalInTarget(target, 'worker/dst', 'v1', [image]);
    } finally {
      await Promise.all([source.stop(), target.stop()]);
    }
  });

  it('moves the job\'s byte progress while a blob is in flight', async () => {
    const h = await harness();
    const job = await h.createJob();
    // The copy holds at two points mid-blob until the job shows the bytes sent so far. (A poller
    // racing 30 ms chunks could miss every write on a loaded machine.)
    const seen: number[] = [];
    const engine = scriptedEngine({
      size: 20,
      chunk: 1,
      beforeChunk: async (offset) => {
        if (offset !== 5 && offset !== 12) return;
        await vi.waitFor(async () => expect((await h.job(job.id)).progress.bytes.done).toBe(offset), { timeout: 30_000, interval: 20 });
        seen.push(offset);
      },
    });
    expect(await runImport(delivery(job.id), h.deps(engine, { progressIntervalInMs: 100 }))).toBe('succeeded');
    expect(seen).toEqual([5, 12]);
  });

  it('fails at once on a permanent error, without retry', async () => {
    const h = await harness();
    const engine = scriptedEngine({ fail: () => new CopyError('SOURCE_NOT_FOUND', 'the source src.example/team/app:v1 was not found: MANIFEST_UNKNOWN; check the tag', 'source') });
    const job = await h.createJob();
    expect(await runImport(delivery(job.id), h.deps(engine))).toBe('failed');
    const failed = await h.job(job.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toEqual({ code: 'SOURCE_NOT_FOUND', message: 'the source src.example/team/app:v1 was not found: MANIFEST_UNKNOWN; check the tag' });
    expect(failed.sealedCredentials).toBeUndefined();
    expect(failed.completedAt).toBeDefined();
    expect(await h.count()).toBe(0);
  });

  it('records a failure whose message would not fit the job record, cut short', async () => {
    const h = await harness();
    // 600,000 characters: 1.2 MB in Azure Tables, over the 1 MiB an entity may hold.
    const engine = scriptedEngine({ fail: () => new CopyError('SOURCE_NOT_FOUND', `the source was not found: ${'x'.repeat(600_000)}`, 'source') });
    const job = await h.createJob();
    expect(await runImport(delivery(job.id), h.deps(engine))).toBe('failed');
    const failed = await h.job(job.id);
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('SOURCE_NOT_FOUND');
    expect(failed.error?.message.length).toBeLessThan(MAX_FAILURE_MESSAGE_LENGTH + 100);
    expect(failed.error?.message).toMatch(/^the source was not found: x+… \(message cut: 600026 characters in all\)$/);
  });

  it('logs the error that failed a job, without its secrets, when recording the failure fails too', async () => {
    const h = await harness();
    const engine = scriptedEngine({ fail: () => new CopyError('SOURCE_NOT_FOUND', `the source was not found (asked with ${PASSWORD})`, 'source') });
    const job = await h.createJob();
    const deps = h.deps(engine);
    // Azure Tables refusing the failed record cannot be had on cue from Azurite: the store's own
    // refusal is raised for that write only.
    const jobs = Object.create(deps.jobs) as typeof deps.jobs;
    jobs.replace = (record, etag) => (record.status === 'failed' ? Promise.reject(new EntityTooLargeError(`job ${record.id}`, 'too many bytes')) : deps.jobs.replace(record, etag));
    await expect(runImport(delivery(job.id), { ...deps, jobs })).rejects.toBeInstanceOf(EntityTooLargeError);
    const logged = h.logs.find((l) => l.includes('SOURCE_NOT_FOUND'));
    expect(logged).toMatch(/failed: SOURCE_NOT_FOUND: the source was not found \(asked with \[REDACTED\]\); recording the failure failed too: job \S+ is too large/);
    expect(h.logs.join('\n')).not.toContain(PASSWORD);
  });

  it('throws on a transient error so the host retries, and fails the job on the last attempt', async () => {
    const h = await harness();
    const transient = () =>
      new CopyError('REGISTRY_ERROR', 'source registry error: SERVER_ERROR (HTTP 503)', 'source', {
        cause: new RegistryError({ code: 'SERVER_ERROR', status: 503, method: 'GET', url: 'https://src.example/v2/', reference: 'src.example/team/app:v1' }),
      });
    const engine = scriptedEngine({ fail: transient });
    const job = await h.createJob();
    for (let attempt = 1; attempt < 5; attempt++) {
      await expect(runImport(delivery(job.id, { dequeueCount: attempt }), h.deps(engine))).rejects.toThrow(/REGISTRY_ERROR/);
      const retrying = await h.job(job.id);
      expect(retrying.status).toBe('running');
      expect(retrying.lastError).toMatchObject({ code: 'REGISTRY_ERROR' });
      expect(retrying.leaseOwner).toBeUndefined();
      expect(retrying.sealedCredentials).toBeDefined();
    }
    await expect(runImport(delivery(job.id, { dequeueCount: 5 }), h.deps(engine))).rejects.toThrow(/last attempt/);
    const failed = await h.job(job.id);
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('REGISTRY_ERROR');
    expect(failed.error?.message).toMatch(/gave up after 5 attempts/);
    expect(failed.sealedCredentials).toBeUndefined();
    expect(failed.attempts).toBe(5);
  });

  it.each([
    ['a URL host answering 503 is retried', 503, true],
    ['a layer URL gone everywhere (404) fails the job for good', 404, false],
  ])('a non-distributable layer none of whose URLs served it: %s', async (_name, status, transient) => {
    const h = await harness();
    const cause = new UrlBlobError(BLOB_DIGEST, [`https://layers.example/l: answered ${status}`], transient);
    const engine = scriptedEngine({ fail: () => new CopyError('NONDISTRIBUTABLE', `non-distributable layer ${BLOB_DIGEST} is not in the source registry, and ${cause.message}`, 'source', { cause }) });
    const job = await h.createJob();
    if (transient) {
      await expect(runImport(delivery(job.id), h.deps(engine))).rejects.toThrow(/NONDISTRIBUTABLE/);
      expect(await h.job(job.id)).toMatchObject({ status: 'running', lastError: { code: 'NONDISTRIBUTABLE' } });
    } else {
      expect(await runImport(delivery(job.id), h.deps(engine))).toBe('failed');
      expect(await h.job(job.id)).toMatchObject({ status: 'failed', error: { code: 'NONDISTRIBUTABLE' } });
    }
  });

  it('treats unknown errors as transient and keeps secrets out of the recorded error', async () => {
    const h = await harness();
    const engine = scriptedEngine({ fail: () => new Error(`socket hang up while sending ${PASSWORD}`) });
    const job = await h.createJob();
    const error = await runImport(delivery(job.id), h.deps(engine)).then(() => undefined, (e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect(error?.message).not.toContain(PASSWORD);
    const retrying = await h.job(job.id);
    expect(retrying.lastError?.code).toBe('INTERNAL_ERROR');
    expect(JSON.stringify(retrying.lastError)).not.toContain(PASSWORD);
  });

  it('runs a job delivered twice at once only once; the duplicate re-queues itself with a delay', async () => {
    const h = await harness();
    // The copy holds at its first chunk until the other delivery has settled, so that one meets
    // the job leased however slowly it runs (with 30 ms chunks the winner could finish first on a
    // loaded machine). A second copy starting opens the hold too: a broken lease then fails the
    // checks below instead of hanging.
    let open!: () => void;
    const hold = new Promise<void>((resolve) => (open = resolve));
    const engine = scriptedEngine({ size: 5, chunk: 1, beforeChunk: (offset) => (offset === 0 ? hold : undefined) });
    const scriptedCopy = engine.copy;
    engine.copy = (request, options) => {
      if (engine.calls.length > 0) open();
      return scriptedCopy(request, options);
    };
    const job = await h.createJob();
    const runs = [runImport(delivery(job.id), h.deps(engine)), runImport(delivery(job.id), h.deps(engine))];
    void Promise.race(runs).then(open, open);
    const outcomes = await Promise.all(runs);
    expect(outcomes.sort()).toEqual(['requeued', 'succeeded']);
    expect(engine.calls).toHaveLength(1);
    expect(engine.sent).toEqual([0, 1, 2, 3, 4]);
    // The re-queued copy is invisible for now (delayed), and finds the job finished later.
    expect(await h.count()).toBe(1);
    expect(await h.drain()).toEqual([]);
    expect(await runImport(delivery(job.id), h.deps(engine))).toBe('finished');
  });

  it('stops without writing when its lease is taken over mid-copy', async () => {
    const h = await harness();
    const job = await h.createJob();
    // Taken over at chunk 5, as by another instance while this one was suspended; the copy goes on
    // only once the worker has noticed (its lease renewal aborts the copy's signal). A 150 ms sleep
    // before the theft raced a 1 s copy.
    const engine = scriptedEngine({
      size: 50,
      chunk: 1,
      beforeChunk: async (offset, options) => {
        if (offset !== 5) return;
        for (let stolen = false; !stolen; ) {
          const current = (await h.storage.jobs.get(job.id))!;
          stolen = await h.storage.jobs
            .replace({ ...current.value, leaseOwner: 'other-instance', leaseExpiresAt: new Date(Date.now() + 60_000).toISOString() }, current.etag)
            .then(() => true, () => false);
        }
        await aborted(options.abortSignal!);
      },
    });
    const running = runImport(delivery(job.id), h.deps(engine, { leaseDurationInMs: 600 }));
    expect(await running).toBe('lease-lost');
    const after = await h.job(job.id);
    expect(after.leaseOwner).toBe('other-instance');
    expect(after.status).toBe('running');
    expect(engine.sent.length).toBeLessThan(50);
    expect(await h.count()).toBe(0);
  });

  it('ends a job canceled while it runs with a canceled transition event, after its started one', async () => {
    const h = await harness();
    const job = await h.createJob();
    // The cancel arrives once the worker holds the job: it learns of it at its next progress write,
    // and the copy holds at chunk 10 until then (a 1 s copy of 20 ms chunks raced that write).
    const inner = scriptedEngine({ size: 50, chunk: 1, beforeChunk: (offset, options) => (offset === 10 ? aborted(options.abortSignal!) : undefined) });
    const engine = { copy: (async (request, options) => {
      expect((await cancelImport(job.id, { jobs: h.storage.jobs, checkpoints: h.storage.checkpoints })).outcome).toBe('requested');
      return inner.copy(request, options);
    }) as ScriptedEngine['copy'] };
    const events: JobEvent[] = [];
    const log = { info: (m: string) => h.logs.push(m), warn: (m: string) => h.logs.push(m), error: (m: string) => h.logs.push(m), event: (_: unknown, __: string, e: JobEvent) => events.push(e) };
    expect(await runImport(delivery(job.id), h.deps(engine, { log }))).toBe('canceled');
    expect((await h.job(job.id)).status).toBe('canceled');
    expect(events.map((e) => e.transition)).toEqual(['started', 'canceled']);
    expect(events[1]).toMatchObject({ jobId: job.id, outcome: 'canceled', continuation: 0, dequeueCount: 1 });
  });

  it('ends a job canceled between continuations with a canceled transition event, once', async () => {
    const h = await harness();
    const job = await h.createJob({ status: 'running', continuations: 1, attempts: 1, cancelRequestedAt: new Date().toISOString() });
    const events: JobEvent[] = [];
    const log = { info: (m: string) => h.logs.push(m), warn: (m: string) => h.logs.push(m), error: (m: string) => h.logs.push(m), event: (_: unknown, __: string, e: JobEvent) => events.push(e) };
    const engine = scriptedEngine();
    expect(await runImport(delivery(job.id, { continuation: 1 }), h.deps(engine, { log }))).toBe('finished');
    expect(await runImport(delivery(job.id, { continuation: 1, dequeueCount: 2 }), h.deps(engine, { log }))).toBe('finished');
    expect(engine.calls).toHaveLength(0);
    expect((await h.job(job.id)).status).toBe('canceled');
    expect(events).toEqual([expect.objectContaining({ transition: 'canceled', jobId: job.id, outcome: 'canceled', continuation: 1, dequeueCount: 1 })]);
  });

  it('drops stale continuations, missing jobs and messages that are not job messages', async () => {
    const h = await harness();
    const engine = scriptedEngine();
    const job = await h.createJob({ continuations: 2 });
    expect(await runImport(delivery(job.id, { continuation: 1 }), h.deps(engine))).toBe('stale');
    expect(await runImport(delivery(newJobId()), h.deps(engine))).toBe('missing');
    for (const message of ['not json', { jobId: '../x', continuation: 0 }, { jobId: job.id }, 42]) {
      expect(await runImport({ message, dequeueCount: 1, invocationId: 'i' }, h.deps(engine))).toBe('invalid-message');
    }
    // Text and base64 text, as a raw runner might deliver them, are read too.
    const text = JSON.stringify({ jobId: job.id, continuation: 2 });
    expect(await runImport({ message: Buffer.from(text).toString('base64'), dequeueCount: 1, invocationId: 'i' }, h.deps(engine))).toBe('succeeded');
    expect(engine.calls).toHaveLength(1);
  });

  it('fails a job whose credentials cannot be opened (key rotated) at once', async () => {
    const h = await harness();
    const engine = scriptedEngine();
    const job = await h.createJob();
    const otherBox = SecretBox.fromSetting(randomBytes(32).toString('base64'))!;
    expect(await runImport(delivery(job.id), h.deps(engine, { secretBox: otherBox }))).toBe('failed');
    expect((await h.job(job.id)).error).toMatchObject({ code: 'SECRET_UNREADABLE', message: expect.stringContaining('another HOIST_SECRET_KEY') });
    expect(engine.calls).toHaveLength(0);
  });

  it('leaves no trace of the passwords in the job, the queue or the logs', async () => {
    const h = await harness();
    const engine = scriptedEngine({ size: 6, chunk: 1, chunkDelayInMs: 30 });
    const job = await h.createJob();
    const stored = JSON.stringify((await h.storage.jobs.get(job.id))!.value);
    expect(stored).not.toContain(PASSWORD);
    let message: unknown = { jobId: job.id, continuation: 0 };
    const texts: string[] = [];
    for (let i = 0; i < 10; i++) {
      const outcome = await runImport({ message, dequeueCount: 1, invocationId: `i${i}` }, h.deps(engine, { timeBudgetInMs: 60 }));
      if (outcome !== 'paused') break;
      const { receivedMessageItems } = await h.storage.queue.queue.receiveMessages();
      texts.push(...receivedMessageItems.map((m) => `${m.messageText} ${Buffer.from(m.messageText, 'base64').toString('utf8')}`));
      await h.storage.queue.queue.deleteMessage(receivedMessageItems[0].messageId, receivedMessageItems[0].popReceipt);
      message = JSON.parse(Buffer.from(receivedMessageItems[0].messageText, 'base64').toString('utf8'));
    }
    expect(texts.length).toBeGreaterThan(0);
    const everything = [...texts, ...h.logs, JSON.stringify((await h.storage.jobs.get(job.id))!.value)].join('\n');
    for (const secret of [PASSWORD, TARGET_PASSWORD]) expect(everything).not.toContain(secret);
  });
});

describe('describeFailure', () => {
  it.each([
    ['TAG_EXISTS', 'target', /^target tag already exists: r\.io\/a:v1 \(now sha256:1\); set "force": true in the import request to overwrite it$/],
    ['AUTH_FAILED', 'source', /\(the source credentials are the request's "username" and "password"\)$/],
    ['AUTH_FAILED', 'target', /\(the target credentials are the deployment's HOIST_TARGET_USERNAME and HOIST_TARGET_PASSWORD\)$/],
  ] as const)('gives %s advice in the API\'s words, never the CLI\'s', (code, side, advice) => {
    const message = code === 'TAG_EXISTS' ? 'target tag already exists: r.io/a:v1 (now sha256:1)' : `authentication failed on the ${side} r.io/a:v1: UNAUTHORIZED (HTTP 401) on GET r.io/a:v1; check the credentials for this registry`;
    const failure = describeFailure(new CopyError(code, message, side), []);
    expect(failure.code).toBe(code);
    expect(failure.message).toMatch(advice);
    expect(failure.message).not.toMatch(/--force|--src-creds|--dest-creds|docker\/config\.json/);
  });

  it('gives TLS advice in the deployment\'s words, and none to other failures or errors that are not the copy\'s', () => {
    expect(describeFailure(new CopyError('TLS_VERIFY_FAILED', 'TLS failed on the source r.io/a:v1', 'source'), []).message).toBe(`TLS failed on the source r.io/a:v1${SERVICE_TLS_ADVICE}`);
    expect(describeFailure(new CopyError('REGISTRY_ERROR', 'target registry error: HTTP 500', 'target'), []).message).toBe('target registry error: HTTP 500');
    const registryError = new RegistryError({ code: 'UNAUTHORIZED', status: 401, method: 'GET', url: 'http://r.io/v2/', reference: 'r.io/a:v1' });
    expect(describeFailure(registryError, [])).toEqual({ code: 'UNAUTHORIZED', message: registryError.message });
  });

  it('keeps a message of exactly the bound whole, and cuts one character more', () => {
    const whole = 'x'.repeat(MAX_FAILURE_MESSAGE_LENGTH);
    expect(describeFailure(new CopyError('REGISTRY_ERROR', whole, 'target'), []).message).toBe(whole);
    expect(describeFailure(new CopyError('REGISTRY_ERROR', `${whole}y`, 'target'), []).message).toBe(`${whole}… (message cut: ${MAX_FAILURE_MESSAGE_LENGTH + 1} characters in all)`);
  });

  it.each([
    ['a copy error', (secret: string) => new CopyError('AUTH_FAILED', `the registry said: bad password ${secret}`, 'source')],
    ['a registry error', (secret: string) => new RegistryError({ code: 'DENIED', status: 403, method: 'GET', url: 'http://r.io/v2/', reference: `r.io/a:${secret}`, details: [{ code: 'DENIED', message: secret }] })],
    ['an unexpected error', (secret: string) => new Error(`boom ${secret}`)],
  ])('removes every secret from the message of %s', (_name, make) => {
    const secret = `pw-${randomBytes(8).toString('hex')}`;
    const failure = describeFailure(make(secret), [undefined, secret]);
    expect(failure.message).not.toContain(secret);
    expect(failure.message).toContain('[REDACTED]');
  });
});
