import { newJobId } from '../../src/jobs/job-id.js';
import { acquireJobLease } from '../../src/jobs/job-lease.js';
import { JOB_MESSAGE_TTL_SECONDS } from '../../src/jobs/job-queue.js';
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import { NEVER_DELIVERED_GRACE_MS, sweepAbandonedImports } from '../../src/jobs/sweep-abandoned.js';
import { useJobStorage } from './azurite.js';

const env = useJobStorage();
const MAX = 5;
const DIGEST = `sha256:${'c'.repeat(64)}`;

async function createJob(overrides: Partial<JobRecord> = {}): Promise<JobRecord> {
  const record = { ...newJobRecord({ id: newJobId(), source: 'docker.io/library/alpine:3', targets: [{ reference: 'localhost:5000/alpine:3', tagged: true }], force: false, platforms: [], referrers: false }), ...overrides };
  await env.storage.jobs.create(record);
  return record;
}

// Fixed when the file loads, and the sweeps read the real clock: an hour either way keeps
// `future` ahead of them however long Azurite takes to start on a loaded machine (a minute did
// not leave much).
const past = new Date(Date.now() - 3_600_000).toISOString();
const future = new Date(Date.now() + 3_600_000).toISOString();

describe('sweepAbandonedImports', () => {
  it('fails a job whose final delivery died holding the lease, and only such jobs', async () => {
    const dead = await createJob({ status: 'running', leaseOwner: 'gone', leaseExpiresAt: past, deliveryDequeueCount: MAX, sealedCredentials: 'v1.sealed', lastError: { code: 'REGISTRY_ERROR', message: 'boom', at: past } });
    await env.storage.checkpoints.forJob(dead.id).save({ target: 'localhost:5000/alpine', digest: DIGEST, size: 10, location: 'http://localhost:5000/v2/alpine/blobs/uploads/x', offset: 4, chunkSize: 4, updatedAt: past });
    const earlierAttempt = await createJob({ status: 'running', leaseOwner: 'gone', leaseExpiresAt: past, deliveryDequeueCount: MAX - 1 });
    const stillHeld = await createJob({ status: 'running', leaseOwner: 'alive', leaseExpiresAt: future, deliveryDequeueCount: MAX });
    const pausedOnLastDelivery = await createJob({ status: 'running', deliveryDequeueCount: MAX });

    const failed = await sweepAbandonedImports({ jobs: env.storage.jobs, checkpoints: env.storage.checkpoints, maxDequeueCount: MAX });
    expect(failed).toEqual([dead.id]);

    const after = (await env.storage.jobs.get(dead.id))!.value;
    expect(after).toMatchObject({ status: 'failed', error: { code: 'WORKER_LOST', message: expect.stringMatching(/last of 5 attempts .*REGISTRY_ERROR: boom/) } });
    expect(after.sealedCredentials).toBeUndefined();
    expect(after.leaseOwner).toBeUndefined();
    expect(after.completedAt).toBeDefined();
    expect(await env.storage.checkpoints.forJob(dead.id).load('localhost:5000/alpine', DIGEST)).toBeUndefined();
    for (const untouched of [earlierAttempt, stillHeld, pausedOnLastDelivery]) {
      expect((await env.storage.jobs.get(untouched.id))!.value.status).toBe('running');
    }
    // A second sweep finds nothing more to do.
    expect(await sweepAbandonedImports({ jobs: env.storage.jobs, checkpoints: env.storage.checkpoints, maxDequeueCount: MAX })).toEqual([]);
  });

  it('ends an abandoned job whose caller had asked it to stop as canceled, not failed', async () => {
    const canceled = await createJob({ status: 'running', leaseOwner: 'gone', leaseExpiresAt: past, deliveryDequeueCount: MAX, sealedCredentials: 'v1.sealed', cancelRequestedAt: past });
    expect(await sweepAbandonedImports({ jobs: env.storage.jobs, checkpoints: env.storage.checkpoints, maxDequeueCount: MAX })).toEqual([canceled.id]);
    const after = (await env.storage.jobs.get(canceled.id))!.value;
    expect(after).toMatchObject({ status: 'canceled', cancelRequestedAt: past, completedAt: expect.any(String) });
    expect(after).not.toHaveProperty('error');
    expect(after).not.toHaveProperty('sealedCredentials');
    expect(after).not.toHaveProperty('leaseOwner');
  });

  it('sees the delivery count the lease recorded', async () => {
    const job = await createJob();
    // Taken a minute ago for 30 s: expired by now, with no waiting.
    const outcome = await acquireJobLease(env.storage.jobs, job.id, { owner: 'w1', durationInMs: 30_000, continuation: 0, dequeueCount: MAX, now: () => Date.now() - 60_000 });
    expect(outcome.kind).toBe('acquired');
    expect(await sweepAbandonedImports({ jobs: env.storage.jobs, checkpoints: env.storage.checkpoints, maxDequeueCount: MAX })).toEqual([job.id]);
  });

  it('fails a job still queued and never delivered once no message for it can exist, and only such jobs', async () => {
    const expired = new Date(Date.now() - JOB_MESSAGE_TTL_SECONDS * 1000 - NEVER_DELIVERED_GRACE_MS - 60_000).toISOString();
    // The record a POST's late insert left (its 503 named it): queued, never delivered, older than any message.
    const leftover = await createJob({ createdAt: expired, updatedAt: expired, sealedCredentials: 'v1.sealed' });
    const waiting = await createJob();
    const pausedLongAgo = await createJob({ createdAt: expired, updatedAt: expired, attempts: 1, continuations: 1 });
    expect(await sweepAbandonedImports({ jobs: env.storage.jobs, checkpoints: env.storage.checkpoints, maxDequeueCount: MAX })).toEqual([leftover.id]);
    const after = (await env.storage.jobs.get(leftover.id))!.value;
    expect(after).toMatchObject({ status: 'failed', error: { code: 'NEVER_DELIVERED', message: expect.stringContaining('no worker ever received this job') }, completedAt: expect.any(String) });
    expect(after).not.toHaveProperty('sealedCredentials');
    for (const untouched of [waiting, pausedLongAgo]) expect((await env.storage.jobs.get(untouched.id))!.value.status).toBe('queued');
  });

  it('leaves a never-delivered job alone while its message, sent after the record was written, may still be delivered', async () => {
    const job = await createJob();
    // The queue counts the message's time to live from its send (after the record's createdAt)
    // on its own clock: just past createdAt + TTL, the message may still be there.
    const ttlOver = Date.parse(job.createdAt) + JOB_MESSAGE_TTL_SECONDS * 1000;
    const sweepAt = (at: number) => sweepAbandonedImports({ jobs: env.storage.jobs, checkpoints: env.storage.checkpoints, maxDequeueCount: MAX, now: () => at });
    expect(await sweepAt(ttlOver + 1000)).not.toContain(job.id);
    expect((await env.storage.jobs.get(job.id))!.value.status).toBe('queued');
    expect(await sweepAt(ttlOver + NEVER_DELIVERED_GRACE_MS)).toContain(job.id);
    expect((await env.storage.jobs.get(job.id))!.value.error?.code).toBe('NEVER_DELIVERED');
  });
});
