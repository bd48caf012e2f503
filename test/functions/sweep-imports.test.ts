/**
 * The sweepImports timer function end to end: its handler, as the hosts invoke it, against jobs
 * in Azurite's tables, with the delivery limit read from the app's host.json.
 */
import { randomBytes } from 'node:crypto';
import { InvocationContext, type Timer } from '@azure/functions';
import { appMaxDequeueCount } from '../../src/functions/host-config.js';
import { jobStorage } from '../../src/functions/services.js';
import { sweepImportsHandler } from '../../src/functions/sweep-imports.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { acquireJobLease } from '../../src/jobs/job-lease.js';
import { newJobRecord } from '../../src/jobs/job-record.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';

let azurite: TestAzurite;
beforeAll(async () => {
  azurite = await startAzurite();
  Object.assign(process.env, { AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: 'localhost:5999', HOIST_SECRET_KEY: randomBytes(32).toString('base64') });
});
afterAll(async () => {
  await azurite?.stop();
});

const TIMER: Timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
const DIGEST = `sha256:${'d'.repeat(64)}`;

/** A queued job whose worker took the lease on the `dequeueCount`th delivery, two minutes ago, for one minute. */
async function jobLeasedOnDelivery(dequeueCount: number): Promise<string> {
  const { jobs } = await jobStorage();
  const id = newJobId();
  await jobs.create(newJobRecord({ id, source: 'docker.io/library/alpine:3', targets: [{ reference: 'localhost:5999/alpine:3', tagged: true }], force: false, platforms: [], referrers: false, sealedCredentials: 'v1.sealed' }));
  const outcome = await acquireJobLease(jobs, id, { owner: `worker-${id}`, durationInMs: 60_000, continuation: 0, dequeueCount, now: () => Date.now() - 120_000 });
  expect(outcome.kind).toBe('acquired');
  return id;
}

describe('sweepImports', () => {
  it('fails the jobs whose final delivery died, drops their checkpoints and says so; leaves the rest', async () => {
    const max = appMaxDequeueCount();
    expect(max).toBe(5);
    const { jobs, checkpoints } = await jobStorage();
    const dead = await jobLeasedOnDelivery(max);
    const retried = await jobLeasedOnDelivery(max - 1);
    await checkpoints.forJob(dead).save({ target: 'localhost:5999/alpine', digest: DIGEST, size: 10, location: 'http://localhost:5999/v2/alpine/blobs/uploads/x', offset: 4, chunkSize: 4, updatedAt: new Date().toISOString() });

    const logs: string[] = [];
    const context = new InvocationContext({ functionName: 'sweepImports', logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`) });
    await sweepImportsHandler(TIMER, context);

    const after = (await jobs.get(dead))!.value;
    expect(after).toMatchObject({ status: 'failed', error: { code: 'WORKER_LOST' } });
    expect(after.error!.message).toMatch(/the last of 5 attempts stopped without a result/);
    expect(after.sealedCredentials).toBeUndefined();
    expect(after.leaseOwner).toBeUndefined();
    expect(await checkpoints.forJob(dead).load('localhost:5999/alpine', DIGEST)).toBeUndefined();
    // The queue still holds a delivery for this one: the host retries it, the sweep must not.
    expect((await jobs.get(retried))!.value.status).toBe('running');
    // One failed transition, for the dead job only.
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(new RegExp(`^error: sweepImports: job ${dead} failed: WORKER_LOST, its last attempt died \\[failed; 0 bytes; \\d+ ms since queued\\]$`));

    // The next tick finds nothing to do and says nothing.
    logs.length = 0;
    await sweepImportsHandler(TIMER, context);
    expect(logs).toEqual([]);
  });

  it('logs a job whose caller had asked it to stop as canceled, not as a failure', async () => {
    const { jobs } = await jobStorage();
    const stopped = await jobLeasedOnDelivery(appMaxDequeueCount());
    const leased = (await jobs.get(stopped))!;
    await jobs.replace({ ...leased.value, cancelRequestedAt: new Date().toISOString() }, leased.etag);

    const logs: string[] = [];
    const context = new InvocationContext({ functionName: 'sweepImports', logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`) });
    await sweepImportsHandler(TIMER, context);

    expect((await jobs.get(stopped))!.value).toMatchObject({ status: 'canceled' });
    expect((await jobs.get(stopped))!.value.error).toBeUndefined();
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(new RegExp(`^warning: sweepImports: job ${stopped} canceled: its caller had asked it to stop, and its last attempt died \\[canceled; 0 bytes; \\d+ ms since queued\\]$`));
  });
});
