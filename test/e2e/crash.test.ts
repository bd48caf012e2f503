/**
 * Crash and stop. Crash: the host process is SIGKILLed in the middle of a 64 MiB+ blob (1 MiB chunks, the target
 * behind a proxy holding each PATCH 40 ms so the layer takes seconds), a new `npm start` process
 * (`node …/src/local/main.js`) starts on the same storage, and the job completes correctly once
 * the dead worker's job lease (HOIST_JOB_LEASE_SECONDS=5) has expired. The kill comes while the
 * proxy holds a PATCH, so the registry's state is known: the held chunk is either lost with the
 * process (the upload resumes from the checkpoint, sending only the chunks left) or delivered
 * anyway (the registry is one chunk ahead of the checkpoint, and distribution then refuses the
 * checkpointed session, so the blob restarts once, cleanly).
 *
 * The app is compiled into a private directory under dist/ (as test/local/main.test.ts does), so
 * a stale or concurrent build of dist/ cannot affect this test.
 *
 * Stop: the host gets SIGINT (Ctrl+C) instead; its worker pauses at the next chunk boundary and
 * queues its continuation within the host's drain, and the next host resumes at once.
 *
 * Both hosts are `main.js` itself, with HOIST_LOCAL_MESSAGE_LEASE_SECONDS short, so the killed
 * host's queue message reappears in seconds rather than the Functions host's 10 minutes.
 */
import { randomUUID } from 'node:crypto';
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { BIG_LAYER_SIZE, pushBigLayer, type PushedManifest } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget } from '../copy/support.js';
import { startTestAzurite, waitFor, type TestAzurite } from '../local/support.js';
import { buildApp, type AppProcesses, type HostProcess } from './app-process.js';
import { parseContentRange, startDelayProxy, uploadSessionOf, type DelayProxy, type HeldRequest } from './delay-proxy.js';
import { appQueues, expectOrderedTimestamps, MiB, peekAll, type ImportsApi } from './support.js';

const TARGET_PASSWORD = `crash-target-${randomUUID()}`;
const MESSAGE_LEASE_SECONDS = 4;
const JOB_LEASE_SECONDS = 5;

let app: AppProcesses;
let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let proxy: DelayProxy;
let images: PushedManifest[];
let storage: JobStorage;

beforeAll(async () => {
  [azurite, source, target, app] = await Promise.all([startTestAzurite(), startRegistry(), startRegistry({ auth: 'basic', users: { pusher: TARGET_PASSWORD } }), buildApp('e2e-crash')]);
  proxy = await startDelayProxy(target.url, { delayInMs: 40, methods: ['PATCH'] });
  // Two different big layers, so the second run cannot find the first one's blob anywhere.
  images = [await pushBigLayer(source, 'big/one', 'v1'), await pushBigLayer(source, 'big/two', 'v1'), await pushBigLayer(source, 'big/three', 'v1')];
  storage = await openJobStorage(azurite.connectionString);
});

afterAll(async () => {
  await app?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop(), proxy?.stop()]);
});

function startHost(): Promise<HostProcess> {
  return app.startHost({
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: proxy.host,
    HOIST_TARGET_USERNAME: 'pusher',
    HOIST_TARGET_PASSWORD: TARGET_PASSWORD,
    HOIST_CHUNK_SIZE_BYTES: String(MiB),
    HOIST_JOB_LEASE_SECONDS: String(JOB_LEASE_SECONDS),
    AzureFunctionsJobHost__extensions__queues__maxPollingInterval: '00:00:00.250',
    HOIST_LOCAL_MESSAGE_LEASE_SECONDS: String(MESSAGE_LEASE_SECONDS),
  });
}

/** The time of the first log line matching `pattern` (lines start with an ISO timestamp). */
function loggedAt(output: string, pattern: RegExp): number | undefined {
  const line = output.split('\n').find((l) => pattern.test(l));
  return line === undefined ? undefined : Date.parse(line.slice(0, line.indexOf(' ')));
}


/** What one crash-and-restart run saw. */
interface CrashRun {
  id: string;
  /** The checkpointed offset of the big layer when the first host died. */
  checkpointOffset: number;
  /** The upload session the checkpoint names. */
  checkpointSession: string;
  /** PATCHes of the big layer sent by the second host. */
  patchesAfter: Array<{ session: string; range: [number, number]; status: number }>;
  /** The second host's closing PUTs of the big layer, which carry its last chunk. */
  closingPutsAfter: Array<{ session: string; bodyBytes: number; status: number }>;
  /** PATCHes the registry accepted (202), by upload session. */
  acceptedBySession: Map<string, number>;
  leaseExpiresAt: number;
  killedAt: number;
  resumedAt: number;
}

/**
 * Holds the big layer's PATCHes one at a time, letting each go on, until the held one starts at
 * `offset` or later and the job's status shows the bytes before it: the copy then stands still
 * at a known chunk. (Polling the status of a moving copy and holding the next PATCH raced the
 * copy: a poll answered late on a loaded machine could come after the last PATCH.) Call it
 * before the upload starts, so that no PATCH goes by unseen.
 */
async function holdPatchFrom(api: ImportsApi, id: () => string, offset: number): Promise<HeldRequest> {
  let held = await proxy.holdNext();
  for (;;) {
    const start = parseContentRange(held.request.contentRange)![0];
    if (start >= offset) break;
    const next = proxy.holdNext();
    held.release();
    held = await next;
  }
  const start = parseContentRange(held.request.contentRange)![0];
  await waitFor(async () => {
    // (The worker may be at it before the test has read the POST's answer.)
    if (!id()) return false;
    const doc = await api.get(id());
    return doc.status === 'running' && doc.progress.bytes.done >= start;
  }, 30_000, 'the status to show the bytes before the held chunk');
  return held;
}

/**
 * Starts a host with a short message lease, imports `image` to `repo`, holds a PATCH of the big
 * layer 2 MiB or more into it (holdPatchFrom) and SIGKILLs the host while that PATCH waits: the
 * registry then has exactly the checkpointed bytes. The held PATCH is then dropped (the kill
 * happened before the chunk left the machine) or delivered (it had been sent; the registry takes
 * it though nobody reads the answer). Then `npm start` runs until the job succeeds.
 */
async function crashAndRestart(image: PushedManifest, repo: string, heldPatch: 'dropped' | 'delivered'): Promise<CrashRun> {
  const first = await startHost();
  let id = '';
  const holding = holdPatchFrom(first.api, () => id, 2 * MiB);
  const accepted = await first.api.post({ source: `${source.host}/${image.repository}:${image.tag}`, images: [`${repo}:v1`] });
  expect(accepted.status).toBe(202);
  id = accepted.body.id;
  const big = image.blobs.find((b) => b.size === BIG_LAYER_SIZE)!;
  const held = await holding;
  first.child.kill('SIGKILL');
  expect(await first.exited).toBeNull();
  const killedAt = Date.now();
  const requestsBeforeRestart = proxy.requests.length;

  // What the dead worker left: its lease on the job, and a checkpoint at the held chunk's start.
  const left = (await storage.jobs.get(id))!.value;
  expect(left.status).toBe('running');
  expect(left.leaseOwner).toBeDefined();
  const leaseExpiresAt = Date.parse(left.leaseExpiresAt!);
  const rows: Array<Record<string, unknown>> = [];
  for await (const row of storage.checkpoints.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${id}'` } })) rows.push(row);
  const checkpoint = rows.find((r) => r.digest === big.digest);
  expect(checkpoint, 'a checkpoint for the big layer').toBeDefined();
  const checkpointOffset = Number(checkpoint!.offset);
  const checkpointSession = uploadSessionOf(checkpoint!.location as string)!;
  expect(checkpointOffset).toBeGreaterThan(0);
  expect(parseContentRange(held.request.contentRange)?.[0]).toBe(checkpointOffset);
  expect(uploadSessionOf(held.request.path)).toBe(checkpointSession);
  if (heldPatch === 'dropped') held.drop();
  else {
    held.release();
    await waitFor(() => held.request.status !== 0, 10_000, 'the held PATCH to be answered');
    expect(held.request.status).toBe(202);
  }

  const second = await startHost();
  const done = await second.api.waitForStatus(id, 'succeeded', { timeoutInMs: 60_000, logs: second.output });
  expect(done).toMatchObject({
    source: { reference: `${source.host}/${image.repository}:${image.tag}`, digest: image.digest },
    targets: [{ reference: `${proxy.host}/${repo}:v1`, tagged: true, digest: image.digest, written: true }],
    manifests: [{ digest: image.digest, mediaType: image.mediaType, written: true }],
    attempts: 2,
    continuations: 0,
  });
  expect(done.progress.bytes.done).toBe(done.progress.bytes.total);
  expectOrderedTimestamps(done);
  const resumedAt = loggedAt(second.output(), new RegExp(`job ${id}: attempt 2,`));
  expect(resumedAt, `second host's log:\n${second.output()}`).toBeDefined();

  // The independent check, then a clean stop of `npm start`.
  await expectIdenticalInTarget(target, repo, 'v1', [image]);
  second.child.kill('SIGTERM');
  expect(await second.exited).toBe(0);
  expect(first.output() + second.output()).not.toContain(TARGET_PASSWORD);

  const patchesAfter = proxy.requests
    .slice(requestsBeforeRestart)
    .filter((r) => r.method === 'PATCH' && r.path.startsWith(`/v2/${repo}/blobs/uploads/`))
    .map((r) => ({ session: uploadSessionOf(r.path)!, range: parseContentRange(r.contentRange)!, status: r.status }));
  const closingPutsAfter = proxy.requests
    .slice(requestsBeforeRestart)
    .filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/${repo}/blobs/uploads/`) && r.path.includes(encodeURIComponent(big.digest)))
    .map((r) => ({ session: uploadSessionOf(r.path)!, bodyBytes: r.bodyBytes, status: r.status }));
  const acceptedBySession = new Map<string, number>();
  for (const e of target.accessLog()) {
    const session = e.method === 'PATCH' && e.status === 202 && e.uri.startsWith(`/v2/${repo}/blobs/uploads/`) ? uploadSessionOf(e.uri) : undefined;
    if (session) acceptedBySession.set(session, (acceptedBySession.get(session) ?? 0) + 1);
  }
  return { id, checkpointOffset, checkpointSession, patchesAfter, closingPutsAfter, acceptedBySession, leaseExpiresAt, killedAt, resumedAt: resumedAt! };
}

const TOTAL_CHUNKS = Math.ceil(BIG_LAYER_SIZE / MiB);

describe('a host SIGKILLed in the middle of a 64 MiB blob', () => {
  it('between chunks: npm start finishes the job after the lease expired, resuming the upload from its checkpoint', { tags: ['slow'] }, async () => {
    const run = await crashAndRestart(images[0]!, 'crashed/between', 'dropped');
    expect(run.resumedAt).toBeGreaterThanOrEqual(run.leaseExpiresAt);
    // The same session, picked up at the checkpoint, each remaining chunk sent once: by PATCH,
    // and the last with the closing PUT.
    const chunksLeft = Math.ceil((BIG_LAYER_SIZE - run.checkpointOffset) / MiB);
    expect(run.patchesAfter.every((p) => p.session === run.checkpointSession)).toBe(true);
    expect(run.patchesAfter.map((p) => p.range[0])).toEqual(Array.from({ length: chunksLeft - 1 }, (_, i) => run.checkpointOffset + i * MiB));
    expect(run.patchesAfter.length).toBeLessThan(TOTAL_CHUNKS);
    expect(run.acceptedBySession.get(run.checkpointSession)).toBe(TOTAL_CHUNKS - 1);
    expect(run.closingPutsAfter).toEqual([{ session: run.checkpointSession, bodyBytes: BIG_LAYER_SIZE - (TOTAL_CHUNKS - 1) * MiB, status: 201 }]);
  });

  it('with a PATCH in flight: npm start finishes the job correctly after the lease expired, restarting that blob once', { tags: ['slow'] }, async () => {
    const run = await crashAndRestart(images[1]!, 'crashed/inflight', 'delivered');
    expect(run.resumedAt).toBeGreaterThanOrEqual(run.leaseExpiresAt);
    // The registry took a chunk the checkpoint does not record. distribution 2.8 ties each upload
    // URL's _state to an offset and refuses the session when asked with an older one ("upload
    // resumed at wrong offest"; its attempt to cancel it then fails on the writer it already
    // closed, so the session lingers until the purge), and it cannot say its offset without the
    // newest _state, so the checkpointed session cannot be picked up: the
    // engine starts the blob once more, cleanly, in one new session, each chunk once (the last
    // with the closing PUT).
    expect(target.logLines.some((l) => l.includes('upload resumed at wrong offest') && l.includes(run.checkpointSession))).toBe(true);
    const sessions = new Set(run.patchesAfter.map((p) => p.session));
    expect(sessions.size).toBe(1);
    expect(sessions.has(run.checkpointSession)).toBe(false);
    expect(run.patchesAfter.map((p) => p.range[0])).toEqual(Array.from({ length: TOTAL_CHUNKS - 1 }, (_, i) => i * MiB));
    expect(run.acceptedBySession.get([...sessions][0]!)).toBe(TOTAL_CHUNKS - 1);
    expect(run.closingPutsAfter).toEqual([{ session: [...sessions][0]!, bodyBytes: BIG_LAYER_SIZE - (TOTAL_CHUNKS - 1) * MiB, status: 201 }]);
  });
});

describe('a host stopped with Ctrl+C in the middle of a 64 MiB blob', () => {
  it('pauses its worker at the chunk boundary within the drain and queues the continuation; the next host resumes there', async () => {
    const image = images[2]!;
    const repo = 'stopped/sigint';
    const big = image.blobs.find((b) => b.size === BIG_LAYER_SIZE)!;
    const first = await startHost();
    let id = '';
    const holding = holdPatchFrom(first.api, () => id, 2 * MiB);
    const accepted = await first.api.post({ source: `${source.host}/${image.repository}:${image.tag}`, images: [`${repo}:v1`] });
    id = accepted.body.id;
    const held = await holding;
    first.child.kill('SIGINT');
    await waitFor(() => first.output().includes('SIGINT: stopping'), 10_000, 'the host to start stopping');
    held.release();
    expect(await first.exited).toBe(0);
    const requestsBeforeRestart = proxy.requests.length;

    // The worker let the held chunk land, saved its checkpoint after it, released the job and
    // queued continuation 1 before the host exited.
    expect(first.output()).toContain(`job ${id}: the host is shutting down, continuation 1 queued`);
    const left = (await storage.jobs.get(id))!.value;
    expect(left).toMatchObject({ status: 'running', attempts: 1 });
    expect(left.leaseOwner).toBeUndefined();
    expect((await peekAll(appQueues(azurite.connectionString).imports)).map((m) => JSON.parse(m.decoded) as unknown)).toEqual([{ jobId: id, continuation: 1 }]);
    const heldStart = parseContentRange(held.request.contentRange)![0];
    const rows: Array<Record<string, unknown>> = [];
    for await (const row of storage.checkpoints.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${id}'` } })) rows.push(row);
    const checkpoint = rows.find((r) => r.digest === big.digest)!;
    expect(Number(checkpoint.offset)).toBe(heldStart + MiB);

    const second = await startHost();
    const done = await second.api.waitForStatus(id, 'succeeded', { timeoutInMs: 60_000, logs: second.output });
    expect(done).toMatchObject({ attempts: 1, continuations: 1 });
    await expectIdenticalInTarget(target, repo, 'v1', [image]);
    // Resumed in the same session, from the checkpoint: each remaining chunk once.
    const patchesAfter = proxy.requests.slice(requestsBeforeRestart).filter((r) => r.method === 'PATCH' && r.path.startsWith(`/v2/${repo}/blobs/uploads/`));
    expect(patchesAfter.map((r) => uploadSessionOf(r.path))).toEqual(patchesAfter.map(() => uploadSessionOf(checkpoint.location as string)));
    expect(patchesAfter.map((r) => parseContentRange(r.contentRange)![0])).toEqual(Array.from({ length: TOTAL_CHUNKS - 1 - (heldStart / MiB + 1) }, (_, i) => heldStart + MiB + i * MiB));
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
