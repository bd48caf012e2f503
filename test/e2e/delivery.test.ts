/**
 * Queue delivery through the local host, with the app's real definitions on Azurite:
 * (a) one job's message delivered twice at the same moment, to two hosts on one storage: one copy,
 *     no corruption;
 * (b) a job that always fails transiently: failed with its last error after maxDequeueCount
 *     attempts, and its message in `imports-poison`;
 * (c) no trace of a password (source, wrong source, target, or their Basic encodings) in the
 *     hosts' logs, the queues or the status documents, and only sealed at rest.
 * The tests share hosts and storage and run in order.
 */
import { randomBytes } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { JOB_PARTITION } from '../../src/jobs/job-store.js';
import { openTable } from '../../src/jobs/tables.js';
import { pushImage, type PushedManifest } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget } from '../copy/support.js';
import { startTestAzurite, waitFor, type TestAzurite, type TestHost } from '../local/support.js';
import { startDelayProxy, uploadSessionOf, type DelayProxy } from './delay-proxy.js';
import { appQueues, definitions, FAST_QUEUE_SETTINGS, ImportsApi, jobMessageText, messageCount, MiB, peekAll, startAppHost, type ImportStatus } from './support.js';

const SOURCE_PASSWORD = `source-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(12).toString('hex')}`;
const TARGET_PASSWORD = `target-${randomBytes(12).toString('hex')}`;
const SECRET_KEY = randomBytes(32).toString('base64');
const MAX_DEQUEUE_COUNT = 3;

/** Every manifest request answered 503 with Retry-After: 0, as an overloaded registry would. */
const alwaysUnavailable: ProxyRule = (request) =>
  /\/manifests\//.test(request.pathname)
    ? {
        type: 'respond',
        status: 503,
        headers: { 'Content-Type': 'application/json; charset=utf-8', 'Retry-After': '0', 'Docker-Distribution-Api-Version': 'registry/2.0' },
        body: JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable' }] }),
        label: 'unavailable',
      }
    : undefined;

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let targetPath: DelayProxy;
let unavailableSource: TestProxy;
let image: PushedManifest;
let settings: Record<string, string>;
let jobsTable: TableClient;
let frontEnd: TestHost;
const workers: TestHost[] = [];
/** Queue message texts seen before any worker ran, for the secret search. */
const seenMessages: string[] = [];
const jobIds: string[] = [];
let api: ImportsApi;

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([
    startTestAzurite(),
    startRegistry({ auth: 'basic', users: { reader: SOURCE_PASSWORD } }),
    startRegistry({ auth: 'basic', users: { pusher: TARGET_PASSWORD } }),
  ]);
  // A proxy that can hold a PATCH: test (a) keeps the copy going until the duplicate has arrived.
  [targetPath, unavailableSource] = await Promise.all([startDelayProxy(target.url, { delayInMs: 0 }), startProxy(source.url, [alwaysUnavailable])]);
  image = await pushImage(source, 'app/dup', 'v1', { layers: [300, 12 * MiB + 5] });
  settings = {
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: targetPath.host,
    HOIST_TARGET_USERNAME: 'pusher',
    HOIST_TARGET_PASSWORD: TARGET_PASSWORD,
    HOIST_SECRET_KEY: SECRET_KEY,
    HOIST_CHUNK_SIZE_BYTES: String(MiB),
    HOIST_JOB_LEASE_SECONDS: '3',
    ...FAST_QUEUE_SETTINGS,
    // One message at a time per host, so two hosts take the two copies of a message between them.
    AzureFunctionsJobHost__extensions__queues__batchSize: '1',
    AzureFunctionsJobHost__extensions__queues__newBatchThreshold: '0',
    // The host poisons after this many deliveries, and the worker (which reads the same setting)
    // marks the job failed on the last one.
    AzureFunctionsJobHost__extensions__queues__maxDequeueCount: String(MAX_DEQUEUE_COUNT),
  };
  // A host serving only the HTTP function: jobs can be submitted with no worker polling yet.
  frontEnd = await startAppHost(settings, { definitions: definitions.filter((d) => d.trigger.type === 'http') });
  api = ImportsApi.of(frontEnd);
  jobsTable = await openTable({ connectionString: azurite.connectionString }, 'hoistjobs');
});

afterAll(async () => {
  await Promise.all([frontEnd, ...workers].map((h) => h?.stop()));
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop(), targetPath?.stop(), unavailableSource?.stop()]);
  for (const name of Object.keys(settings ?? {})) delete process.env[name];
});

/** Two worker hosts (the full app) on the same storage, started once. */
async function ensureWorkers(): Promise<void> {
  if (workers.length > 0) return;
  workers.push(await startAppHost(settings), await startAppHost(settings));
}

const allLogs = () => [frontEnd, ...workers].flatMap((h) => h.logs);
const logText = () => allLogs().join('\n');

async function submit(body: Record<string, unknown>): Promise<ImportStatus> {
  const response = await api.post(body);
  expect(response.status, JSON.stringify(response.body)).toBe(202);
  jobIds.push(response.body.id);
  return response.body;
}

describe('queue delivery through the local host', () => {
  it('(a) runs one copy when a job message arrives twice at once at two hosts', { tags: ['slow'] }, async () => {
    const { imports } = appQueues(azurite.connectionString);
    const job = await submit({ source: `${source.host}/app/dup:v1`, images: ['dup/app:v1'], username: 'reader', password: SOURCE_PASSWORD });

    // The message the API queued: the job id and continuation only.
    const queued = await peekAll(imports);
    expect(queued.map((m) => m.decoded)).toEqual([JSON.stringify({ jobId: job.id, continuation: 0 })]);
    expect(queued[0]!.text).toBe(jobMessageText(job.id, 0));
    seenMessages.push(...queued.map((m) => m.text));
    // At rest, the credentials are sealed: present, but not readable.
    const stored = await jobsTable.getEntity<Record<string, unknown>>(JOB_PARTITION, job.id);
    expect(typeof stored.sealedCredentials).toBe('string');
    expect(JSON.stringify(stored)).not.toContain(SOURCE_PASSWORD);

    // The at-least-once duplicate, then two hosts that each take one of the two. The copy's first
    // PATCH is held until the other host has found the job leased, so the duplicate arrives while
    // the copy runs however long the second host takes to start (a fixed PATCH delay raced it).
    await imports.sendMessage(jobMessageText(job.id, 0));
    const firstPatch = targetPath.holdNext();
    await ensureWorkers();
    const held = await firstPatch;
    // (A second attempt starting ends the wait too: a lease that let both in fails below at once.)
    await waitFor(() => logText().includes(`job ${job.id}: leased by `) || allLogs().filter((l) => l.includes(`job ${job.id}: attempt `)).length > 1, 60_000, 'the duplicate to find the job leased');
    held.release();
    const done = await api.waitForStatus(job.id, 'succeeded', { logs: logText });

    // One invocation copied; the other found the job leased and backed off.
    expect(done.attempts).toBe(1);
    expect(done.continuations).toBe(0);
    expect(allLogs().filter((l) => l.includes(`job ${job.id}: attempt `))).toHaveLength(1);
    expect(logText()).toMatch(new RegExp(`job ${job.id}: leased by .*, re-queued to try again in \\d+ s`));
    const workerOf = (pattern: string) => workers.findIndex((w) => w.logs.some((l) => l.includes(pattern)));
    expect(workerOf(`job ${job.id}: attempt `)).not.toBe(-1);
    expect(workerOf(`job ${job.id}: leased by`)).not.toBe(workerOf(`job ${job.id}: attempt `));

    // The registry saw one upload per blob: one session, each chunk once, one PUT ?digest= each.
    const log = target.accessLog().filter((e) => e.uri.startsWith('/v2/dup/app/'));
    for (const blob of image.blobs) {
      expect(log.filter((e) => e.method === 'PUT' && e.uri.includes(`digest=${encodeURIComponent(blob.digest)}`)), blob.digest).toHaveLength(1);
    }
    expect(log.filter((e) => e.method === 'POST' && e.uri.startsWith('/v2/dup/app/blobs/uploads/'))).toHaveLength(image.blobs.length);
    // Each blob's last chunk goes with its PUT: PATCHes carry the rest, in one session per blob.
    const patches = log.filter((e) => e.method === 'PATCH');
    expect(patches.every((e) => e.status === 202)).toBe(true);
    expect(patches).toHaveLength(image.blobs.reduce((n, b) => n + Math.ceil(b.size / MiB) - 1, 0));
    expect(new Set(patches.map((e) => uploadSessionOf(e.uri))).size).toBe(image.blobs.filter((b) => b.size > MiB).length);
    // The manifest is written once, under its tag.
    expect(log.filter((e) => e.method === 'PUT' && e.uri.includes('/manifests/')).map((e) => e.uri)).toEqual(['/v2/dup/app/manifests/v1']);
    await expectIdenticalInTarget(target, 'dup/app', 'v1', [image]);

    // The backed-off copy comes back after the lease, finds the job done, and is consumed.
    await waitFor(() => logText().includes(`job ${job.id}: already succeeded`), 20_000, 'the re-queued duplicate to be dropped');
    await waitFor(async () => (await messageCount(imports)) === 0, 10_000, 'the imports queue to drain');
    expect((await api.get(job.id)).attempts).toBe(1);
  });

  it('(b) fails a job that always fails transiently, with its last error, and moves its message to imports-poison', async () => {
    await ensureWorkers();
    const { poison } = appQueues(azurite.connectionString);
    const job = await submit({ source: `${unavailableSource.host}/app/dup:v1`, images: ['poisoned/app:v1'], username: 'reader', password: SOURCE_PASSWORD });
    const failed = await api.waitForStatus(job.id, 'failed', { logs: logText });

    expect(failed.attempts).toBe(MAX_DEQUEUE_COUNT);
    expect(failed.error).toBeDefined();
    expect(failed.error!.message).toMatch(new RegExp(`gave up after ${MAX_DEQUEUE_COUNT} attempts`));
    expect(failed.error!.message).toContain(unavailableSource.host);
    expect(failed.lastError).toMatchObject({ code: failed.error!.code });
    expect(failed.targets).toEqual([{ reference: `${targetPath.host}/poisoned/app:v1`, tagged: true }]);
    expect(failed.completedAt).toBeDefined();
    expect(unavailableSource.requests.filter((r) => r.action === 'unavailable').length).toBeGreaterThanOrEqual(MAX_DEQUEUE_COUNT);

    // The original message text, moved unchanged, as the Functions host does.
    const moved = await waitFor(async () => (await peekAll(poison)).find((m) => m.text === jobMessageText(job.id, 0)), 20_000, 'the message in imports-poison');
    expect(JSON.parse(moved.decoded)).toEqual({ jobId: job.id, continuation: 0 });
    expect(logText()).toMatch(new RegExp(`has reached MaxDequeueCount of ${MAX_DEQUEUE_COUNT}.*Moving message to queue 'imports-poison'`));
    expect(allLogs().filter((l) => l.includes(`job ${job.id}: attempt failed, the host will retry`))).toHaveLength(MAX_DEQUEUE_COUNT - 1);
    // Nothing was written to the target (the API only checked that the tag was free).
    expect(target.accessLog().filter((e) => e.uri.startsWith('/v2/poisoned/') && e.method !== 'HEAD' && e.method !== 'GET')).toEqual([]);
  });

  it('(c) leaves no password in logs, queue messages or status documents', async () => {
    await ensureWorkers();
    // One more: a wrong source password, refused by the source (a permanent failure).
    const denied = await submit({ source: `${source.host}/app/dup:v1`, images: ['denied/app:v1'], username: 'reader', password: WRONG_PASSWORD });
    const failed = await api.waitForStatus(denied.id, 'failed', { logs: logText });
    expect(failed.error?.code).toBe('AUTH_FAILED');
    expect(failed.attempts).toBe(1);

    const { imports, poison } = appQueues(azurite.connectionString);
    const messages = [...seenMessages, ...(await peekAll(imports)).map((m) => m.text), ...(await peekAll(poison)).map((m) => m.text)];
    expect(messages.length).toBeGreaterThanOrEqual(2);
    const list = await api.list('?pageSize=100');
    expect(list.body.value.map((d) => d.id).sort()).toEqual([...jobIds].sort());
    const documents = [JSON.stringify(list.body), ...(await Promise.all(jobIds.map(async (id) => JSON.stringify(await api.get(id)))))];
    const entities: string[] = [];
    for await (const e of jobsTable.listEntities<Record<string, unknown>>()) {
      entities.push(JSON.stringify(e));
      // Sealed credentials are removed once a job ends.
      if (e.status === 'succeeded' || e.status === 'failed') expect(e.sealedCredentials).toBeUndefined();
    }

    const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
    const needles: Record<string, string> = {
      'source password': SOURCE_PASSWORD,
      'source password, base64': b64(SOURCE_PASSWORD),
      'source Basic credentials': b64(`reader:${SOURCE_PASSWORD}`),
      'wrong password': WRONG_PASSWORD,
      'wrong password, base64': b64(WRONG_PASSWORD),
      'wrong Basic credentials': b64(`reader:${WRONG_PASSWORD}`),
      'target password': TARGET_PASSWORD,
      'target Basic credentials': b64(`pusher:${TARGET_PASSWORD}`),
      'HOIST_SECRET_KEY': SECRET_KEY,
    };
    const haystacks: Record<string, string> = {
      logs: logText(),
      'queue messages': [...messages, ...messages.map((m) => Buffer.from(m, 'base64').toString('utf8'))].join('\n'),
      'status documents': documents.join('\n'),
      'jobs table': entities.join('\n'),
    };
    // The searches can find something: each job is in the logs and documents, each message decodes.
    expect(haystacks.logs).toContain(denied.id);
    expect(haystacks['status documents']).toContain('AUTH_FAILED');
    for (const [where, text] of Object.entries(haystacks)) {
      for (const [what, secret] of Object.entries(needles)) expect(text.includes(secret), `${what} in ${where}`).toBe(false);
    }
  });
});
