/**
 * The queue worker's path (runImport) with the real engine, against real registries and Azurite,
 * for manifests whose descriptors lie about a blob's size. Such a job fails at once with a
 * permanent error (nothing re-queued, nothing thrown for the host to retry), and the same process
 * goes on to run the next job. A claim of 2^53-1 bytes once grew the worker until V8 aborted, and
 * the message's next delivery killed the next host too.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { copy } from '../../src/copy/engine.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { newJobRecord } from '../../src/jobs/job-record.js';
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { runImport, type RunImportDeps } from '../../src/jobs/run-import.js';
import { Settings } from '../../src/jobs/settings.js';
import { ConfigurationError } from '../../src/jobs/errors.js';
import { pushImage, pushImageWithLyingSize, pushOciIndexThreePlatforms } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { manifestStatus } from '../cli/support.js';
import { startAzurite, type TestAzurite } from './azurite.js';

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let storage: JobStorage;
const logs: string[] = [];

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startAzurite(), startRegistry(), startRegistry()]);
  storage = await openJobStorage(azurite.connectionString, { queueName: 'imports-sizes' });
  await storage.queue.queue.createIfNotExists();
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
});

/** The worker's dependencies as import-worker.ts builds them, with settings read from `env`. */
function deps(env: Record<string, string>): RunImportDeps {
  const settings = new Settings(env);
  const { maxBlobBytes, maxManifests } = settings;
  return {
    jobs: storage.jobs,
    checkpoints: storage.checkpoints,
    queue: storage.queue,
    hosts: new RegistryHosts(),
    copy,
    timeBudgetInMs: 60_000,
    leaseDurationInMs: 30_000,
    maxDequeueCount: 5,
    chunkSizeInBytes: 4 * 1024 * 1024,
    ...(maxBlobBytes !== undefined && { maxBlobBytes }),
    maxManifests,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) },
  };
}

async function runJob(sourceRepo: string, targetRepo: string, env: Record<string, string>) {
  const id = newJobId();
  await storage.jobs.create(
    newJobRecord({ id, source: `${source.host}/${sourceRepo}:v1`, targets: [{ reference: `${target.host}/${targetRepo}:v1`, tagged: true }], force: false, platforms: [], referrers: false }),
  );
  // Throwing would hand the message back to the host for another delivery.
  const outcome = await runImport({ message: { jobId: id, continuation: 0 }, dequeueCount: 1, invocationId: `inv-${id}` }, deps(env));
  const job = (await storage.jobs.get(id))!.value;
  return { outcome, job };
}

const LAYERS = [5000, 1200];

it.each([
  ['2^53-1 on the config', 'config' as const, Number.MAX_SAFE_INTEGER],
  ['1000 bytes too many on a layer', 0, LAYERS[0] + 1000],
  ['100 bytes too few on a layer', 0, LAYERS[0] - 100],
])('a descriptor claiming %s: the job fails with INTEGRITY for good, and the next job succeeds', async (_case, blob, size) => {
  const n = newJobId().slice(-8);
  const { honest } = await pushImageWithLyingSize(source, `lie/src-${n}`, 'v1', { blob, size }, { layers: LAYERS });

  const failed = await runJob(`lie/src-${n}`, `lie/dst-${n}`, { HOIST_MAX_BLOB_BYTES: String(Number.MAX_SAFE_INTEGER) });

  expect(failed.outcome).toBe('failed');
  expect(failed.job.status).toBe('failed');
  expect(failed.job.error?.code).toBe('INTEGRITY');
  expect(failed.job.error?.message).toContain(honest.digest);
  expect(await manifestStatus(target, `lie/dst-${n}`, 'v1')).toBe(404);
  // Nothing for another delivery: no continuation queued.
  expect((await storage.queue.queue.getProperties()).approximateMessagesCount ?? 0).toBe(0);

  // The same process serves the next job.
  const image = await pushImage(source, `ok/src-${n}`, 'v1', { layers: LAYERS });
  const next = await runJob(`ok/src-${n}`, `ok/dst-${n}`, {});
  expect(next.outcome).toBe('succeeded');
  expect(next.job.targetDigest).toBe(image.digest);
});

it('a descriptor over HOIST_MAX_BLOB_BYTES fails the job for good at planning, naming the setting', async () => {
  const n = newJobId().slice(-8);
  const image = await pushImage(source, `max/src-${n}`, 'v1', { layers: LAYERS });
  const { outcome, job } = await runJob(`max/src-${n}`, `max/dst-${n}`, { HOIST_MAX_BLOB_BYTES: '4096' });
  expect(outcome).toBe('failed');
  expect(job.error?.code).toBe('BLOB_TOO_LARGE');
  expect(job.error?.message).toContain(image.blobs[1]?.digest);
  expect(job.error?.message).toContain('HOIST_MAX_BLOB_BYTES');
  expect(job.progress.bytes.done).toBe(0);
  expect(await manifestStatus(target, `max/dst-${n}`, 'v1')).toBe(404);
});

it('an import of more manifests than HOIST_MAX_MANIFESTS fails for good at planning, naming the setting; at the limit it succeeds', async () => {
  const n = newJobId().slice(-8);
  // An index and its three images: four manifests.
  const index = await pushOciIndexThreePlatforms(source, `many/src-${n}`, 'v1');
  const refused = await runJob(`many/src-${n}`, `many/dst-${n}`, { HOIST_MAX_MANIFESTS: '3' });
  expect(refused.outcome).toBe('failed');
  expect(refused.job.error?.code).toBe('TOO_MANY_MANIFESTS');
  expect(refused.job.error?.message).toContain('4 manifests');
  expect(refused.job.error?.message).toContain('HOIST_MAX_MANIFESTS');
  expect(refused.job.progress.bytes.done).toBe(0);
  expect(await manifestStatus(target, `many/dst-${n}`, 'v1')).toBe(404);

  const allowed = await runJob(`many/src-${n}`, `many/dst-${n}`, { HOIST_MAX_MANIFESTS: '4' });
  expect(allowed.outcome).toBe('succeeded');
  expect(allowed.job.targetDigest).toBe(index.digest);
});

it.each(['12x', '0', '1.5', String(2 ** 53)])('refuses the setting HOIST_MAX_BLOB_BYTES=%s, naming it', (value) => {
  let error: unknown;
  try {
    void new Settings({ HOIST_MAX_BLOB_BYTES: value }).maxBlobBytes;
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigurationError);
  expect((error as ConfigurationError).message).toContain(`HOIST_MAX_BLOB_BYTES "${value}" must be a whole number of at least 1`);
});
