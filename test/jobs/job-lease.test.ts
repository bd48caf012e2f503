import { LeaseLostError } from '../../src/jobs/errors.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { acquireJobLease, type JobLease, type LeaseOutcome } from '../../src/jobs/job-lease.js';
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import type { JobStore } from '../../src/jobs/job-store.js';
import { useJobStorage } from './azurite.js';

const env = useJobStorage();

async function createJob(overrides: Partial<JobRecord> = {}): Promise<JobRecord> {
  const record = { ...newJobRecord({ id: newJobId(), source: 'docker.io/library/alpine:3', targets: [{ reference: 'localhost:5000/alpine:3', tagged: true }], force: false, platforms: [], referrers: false }), ...overrides };
  await env.storage.jobs.create(record);
  return record;
}

/** The leases' clock: tests move it instead of waiting. */
let clock = Date.now();
const now = () => clock;

function acquire(id: string, owner: string, options: { durationInMs?: number; continuation?: number; store?: JobStore } = {}): Promise<LeaseOutcome> {
  return acquireJobLease(options.store ?? env.storage.jobs, id, { owner, durationInMs: options.durationInMs ?? 30_000, continuation: options.continuation ?? 0, now });
}

/** The real store, with an awaitable event for each write (`replace`) it settles. */
function observed(store: JobStore): { store: JobStore; nextWrite: () => Promise<void> } {
  let waiting: Array<() => void> = [];
  const wrapper = Object.create(store) as JobStore;
  wrapper.replace = (...args: Parameters<JobStore['replace']>) => {
    const written = store.replace(...args);
    const settled = () => {
      const wake = waiting;
      waiting = [];
      for (const resolve of wake) resolve();
    };
    written.then(settled, settled);
    return written;
  };
  return { store: wrapper, nextWrite: () => new Promise((resolve) => waiting.push(resolve)) };
}

describe('job lease', () => {
  it('ends a job canceled between continuations instead of running it, and leaves one held by a live worker to that worker', async () => {
    // Paused with its continuation queued, and canceled before the continuation arrived.
    const paused = await createJob({ status: 'running', continuations: 1, attempts: 1, sealedCredentials: 'v1.sealed', cancelRequestedAt: new Date(clock).toISOString() });
    expect(await acquire(paused.id, 'worker-a', { continuation: 1 })).toEqual({ kind: 'finished', status: 'canceled', canceled: expect.objectContaining({ id: paused.id, status: 'canceled' }) });
    const stored = (await env.storage.jobs.get(paused.id))!.value;
    expect(stored).toMatchObject({ status: 'canceled', attempts: 1, completedAt: expect.any(String) });
    expect(stored).not.toHaveProperty('sealedCredentials');
    // A live holder ends the job itself: another delivery waits.
    const held = await createJob({ status: 'running', leaseOwner: 'worker-b', leaseExpiresAt: new Date(clock + 30_000).toISOString(), cancelRequestedAt: new Date(clock).toISOString() });
    expect(await acquire(held.id, 'worker-c')).toMatchObject({ kind: 'held', owner: 'worker-b' });
    expect((await env.storage.jobs.get(held.id))!.value.status).toBe('running');
  });

  it('goes to exactly one of many concurrent invocations', async () => {
    const record = await createJob();
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => acquire(record.id, `worker-${i}`)));
    const acquired = outcomes.filter((o) => o.kind === 'acquired');
    expect(acquired).toHaveLength(1);
    expect(outcomes.filter((o) => o.kind === 'held')).toHaveLength(9);
    const stored = (await env.storage.jobs.get(record.id))!.value;
    expect(stored.status).toBe('running');
    expect(stored.attempts).toBe(1);
    expect(stored.leaseOwner).toBe(acquired[0].kind === 'acquired' ? acquired[0].lease.owner : '');
    for (const o of outcomes) if (o.kind === 'held') expect(o.retryAfterMs).toBeGreaterThan(0);
  });

  it('can be taken over once expired, and the old holder then loses its next write', async () => {
    const record = await createJob();
    const first = await acquire(record.id, 'first', { durationInMs: 300 });
    expect(first.kind).toBe('acquired');
    clock += 299;
    expect(await acquire(record.id, 'second')).toMatchObject({ kind: 'held', owner: 'first', retryAfterMs: 1, record: { id: record.id, leaseOwner: 'first' } });
    clock += 1;
    const second = await acquire(record.id, 'second');
    expect(second.kind).toBe('acquired');
    if (first.kind !== 'acquired' || second.kind !== 'acquired') return;
    await expect(first.lease.update((j) => (j.progress.bytes.done = 1))).rejects.toBeInstanceOf(LeaseLostError);
    expect(first.lease.lost).toBe(true);
    expect(first.lease.signal.aborted).toBe(true);
    await second.lease.update((j) => (j.progress.bytes.done = 2));
    const stored = (await env.storage.jobs.get(record.id))!.value;
    expect(stored.leaseOwner).toBe('second');
    expect(stored.progress.bytes.done).toBe(2);
    expect(stored.attempts).toBe(2);
  });

  it('serializes the holder\'s own writes and re-applies them after an unrelated change', async () => {
    const record = await createJob();
    const outcome = await acquire(record.id, 'holder');
    if (outcome.kind !== 'acquired') throw new Error('not acquired');
    const { lease } = outcome;
    await Promise.all(Array.from({ length: 5 }, (_, i) => lease.update((j) => (j.progress.blobs.done = i + 1))));
    // Someone else touches the job without taking the lease (an operator tool, say).
    const current = (await env.storage.jobs.get(record.id))!;
    await env.storage.jobs.replace({ ...current.value, referrers: true }, current.etag);
    await lease.update((j) => (j.progress.blobs.total = 9));
    const stored = (await env.storage.jobs.get(record.id))!.value;
    expect(stored.progress.blobs).toMatchObject({ done: 5, total: 9 });
    expect(stored.referrers).toBe(true);
    await lease.release((j) => (j.progress.blobs.skipped = 1));
    const released = (await env.storage.jobs.get(record.id))!.value;
    expect(released.leaseOwner).toBeUndefined();
    expect(released.leaseExpiresAt).toBeUndefined();
  });

  it('is renewed while held, and aborts its signal when renewal is impossible', async () => {
    const record = await createJob();
    const { store, nextWrite } = observed(env.storage.jobs);
    const outcome = await acquire(record.id, 'renewer', { durationInMs: 600, store });
    if (outcome.kind !== 'acquired') throw new Error('not acquired');
    const { lease } = outcome;
    const expiresFirst = clock + 600;
    // The renewal timer fires every third of the duration (at least 250 ms): fire it by hand.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      lease.startRenewal();
      const tick = async () => {
        clock += 250;
        const written = nextWrite();
        vi.advanceTimersByTime(250);
        await written;
      };
      for (let i = 0; i < 3; i++) await tick();
      // Past the first expiry, and still ours: a competitor finds it held.
      expect(clock).toBeGreaterThan(expiresFirst);
      expect((await acquire(record.id, 'competitor')).kind).toBe('held');
      // Steal it behind the holder's back: the next renewal notices and aborts.
      const current = (await env.storage.jobs.get(record.id))!;
      await env.storage.jobs.replace({ ...current.value, leaseOwner: 'thief', leaseExpiresAt: new Date(clock + 60_000).toISOString() }, current.etag);
      const aborted = new Promise((resolve) => lease.signal.addEventListener('abort', resolve));
      clock += 250;
      vi.advanceTimersByTime(250);
      await aborted;
      expect(lease.lost).toBe(true);
      expect((await env.storage.jobs.get(record.id))!.value.leaseOwner).toBe('thief');
    } finally {
      lease.stopRenewal();
      vi.useRealTimers();
    }
  });

  it('stops, aborting its signal, once its lease expired without a renewal', async () => {
    const record = await createJob();
    const outcome = await acquire(record.id, 'late', { durationInMs: 900 });
    if (outcome.kind !== 'acquired') throw new Error('not acquired');
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      outcome.lease.startRenewal();
      // The process was suspended past the expiry: the timer's next tick must not renew.
      clock += 900;
      vi.advanceTimersByTime(300);
      expect(outcome.lease.lost).toBe(true);
      await expect(outcome.lease.update(() => {})).rejects.toBeInstanceOf(LeaseLostError);
    } finally {
      outcome.lease.stopRenewal();
      vi.useRealTimers();
    }
  });

  it('is taken again by its own holder while it lasts, and by no one else', async () => {
    const record = await createJob();
    expect((await acquire(record.id, 'same')).kind).toBe('acquired');
    expect((await acquire(record.id, 'same')).kind).toBe('acquired');
    expect((await acquire(record.id, 'other')).kind).toBe('held');
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ leaseOwner: 'same', attempts: 2 });
  });

  it('ends a canceled job when the lease is its caller\'s own or expired, to the millisecond', async () => {
    const canceledAt = new Date(clock).toISOString();
    const own = await createJob({ status: 'running', leaseOwner: 'same', leaseExpiresAt: new Date(clock + 30_000).toISOString(), cancelRequestedAt: canceledAt });
    expect(await acquire(own.id, 'same')).toMatchObject({ kind: 'finished', status: 'canceled' });
    const expiring = await createJob({ status: 'running', leaseOwner: 'dead', leaseExpiresAt: new Date(clock + 1).toISOString(), cancelRequestedAt: canceledAt });
    expect(await acquire(expiring.id, 'next')).toMatchObject({ kind: 'held', owner: 'dead', retryAfterMs: 1 });
    clock += 1;
    expect(await acquire(expiring.id, 'next')).toMatchObject({ kind: 'finished', status: 'canceled' });
    const stored = (await env.storage.jobs.get(expiring.id))!.value;
    expect(stored.status).toBe('canceled');
    expect(stored.leaseOwner).toBeUndefined();
  });

  it('records when the job first started and the delivery count it was given', async () => {
    const record = await createJob();
    const startedAt = new Date(clock).toISOString();
    const first = await acquireJobLease(env.storage.jobs, record.id, { owner: 'a', durationInMs: 30_000, continuation: 0, now, dequeueCount: 2 });
    if (first.kind !== 'acquired') throw new Error('not acquired');
    expect(first.lease.record).toMatchObject({ startedAt, deliveryDequeueCount: 2 });
    await first.lease.release();
    clock += 5000;
    const second = await acquire(record.id, 'b');
    if (second.kind !== 'acquired') throw new Error('not acquired');
    // Without a count the one recorded stays; the start is the first one.
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ startedAt, deliveryDequeueCount: 2 });
    const fresh = await acquire((await createJob()).id, 'c');
    if (fresh.kind !== 'acquired') throw new Error('not acquired');
    expect(Object.keys(fresh.lease.record)).not.toContain('deliveryDequeueCount');
  });

  it('reports finished, stale and missing jobs without writing', async () => {
    const done = await createJob({ status: 'succeeded' });
    expect(await acquire(done.id, 'w')).toEqual({ kind: 'finished', status: 'succeeded' });
    const continued = await createJob({ continuations: 3, status: 'running' });
    expect(await acquire(continued.id, 'w', { continuation: 2 })).toEqual({ kind: 'stale', continuation: 3 });
    const ok = await acquire(continued.id, 'w', { continuation: 4 });
    expect(ok.kind).toBe('acquired');
    expect((await env.storage.jobs.get(continued.id))!.value.continuations).toBe(4);
    expect(await acquire(newJobId(), 'w')).toEqual({ kind: 'missing' });
  });

  it('counts deliveries as attempts, and the first delivery of each continuation as none', async () => {
    const record = await createJob();
    const take = async (owner: string, continuation: number) => {
      const outcome = await acquire(record.id, owner, { continuation });
      if (outcome.kind !== 'acquired') throw new Error(`not acquired: ${outcome.kind}`);
      await outcome.lease.release();
      return (await env.storage.jobs.get(record.id))!.value;
    };
    expect(await take('first', 0)).toMatchObject({ attempts: 1, continuations: 0 });
    for (let continuation = 1; continuation <= 8; continuation++) expect(await take(`c${continuation}`, continuation)).toMatchObject({ attempts: 1, continuations: continuation });
    // The worker of continuation 8 died: the host delivers the same message again.
    expect(await take('redelivered', 8)).toMatchObject({ attempts: 2, continuations: 8 });
  });
});

/**
 * The real store, with another writer that changes the job (an operator tool, say) just before
 * each of the next `race(n)` writes: each of those writes then meets Azurite's real 412. The
 * competing write adds one to `progress.blobs.total`, which no lease logic reads.
 */
function raced(store: JobStore): { store: JobStore; writes: () => number; race: (count: number) => void } {
  let writes = 0;
  let races = 0;
  const wrapper = Object.create(store) as JobStore;
  wrapper.replace = async (...args: Parameters<JobStore['replace']>) => {
    writes++;
    if (races > 0) {
      races--;
      const current = (await store.get(args[0].id))!;
      const { blobs } = current.value.progress;
      await store.replace({ ...current.value, progress: { ...current.value.progress, blobs: { ...blobs, total: blobs.total + 1 } } }, current.etag);
    }
    return store.replace(...args);
  };
  return { store: wrapper, writes: () => writes, race: (count) => (races = count) };
}

async function take(id: string, owner: string, store: JobStore, durationInMs = 30_000): Promise<JobLease> {
  const outcome = await acquireJobLease(store, id, { owner, durationInMs, continuation: 0, now });
  if (outcome.kind !== 'acquired') throw new Error(`not acquired: ${outcome.kind}`);
  return outcome.lease;
}

describe('job lease races', () => {
  it('tries four times to take a job other writers keep changing, then answers held by a concurrent invocation', async () => {
    const record = await createJob();
    const fourth = raced(env.storage.jobs);
    fourth.race(3);
    expect((await acquireJobLease(fourth.store, record.id, { owner: 'patient', durationInMs: 30_000, continuation: 0, now })).kind).toBe('acquired');
    expect(fourth.writes()).toBe(4);
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ status: 'running', leaseOwner: 'patient', attempts: 1, progress: { blobs: { total: 3 } } });

    const other = await createJob();
    const never = raced(env.storage.jobs);
    never.race(99);
    const outcome = await acquireJobLease(never.store, other.id, { owner: 'unlucky', durationInMs: 30_000, continuation: 0, now });
    // The record is the one read last: before the fourth competing write.
    expect(outcome).toEqual({ kind: 'held', owner: 'a concurrent invocation', retryAfterMs: 1000, record: expect.objectContaining({ id: other.id, progress: expect.objectContaining({ blobs: expect.objectContaining({ total: 3 }) }) }) });
    expect(never.writes()).toBe(4);
    const stored = (await env.storage.jobs.get(other.id))!.value;
    expect(stored).toMatchObject({ status: 'queued', attempts: 0, progress: { blobs: { total: 4 } } });
    expect(stored.leaseOwner).toBeUndefined();
  });

  it('cancels a job whose cancel lost races to other writers, and after four answers held by a concurrent invocation', async () => {
    const canceledAt = new Date(clock).toISOString();
    const record = await createJob({ cancelRequestedAt: canceledAt });
    const jobs = raced(env.storage.jobs);
    jobs.race(3);
    expect(await acquireJobLease(jobs.store, record.id, { owner: 'w', durationInMs: 30_000, continuation: 0, now })).toMatchObject({ kind: 'finished', status: 'canceled' });
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ status: 'canceled', progress: { blobs: { total: 3 } } });

    const other = await createJob({ cancelRequestedAt: canceledAt });
    jobs.race(4);
    expect(await acquireJobLease(jobs.store, other.id, { owner: 'w', durationInMs: 30_000, continuation: 0, now })).toMatchObject({ kind: 'held', owner: 'a concurrent invocation', retryAfterMs: 1000 });
    expect((await env.storage.jobs.get(other.id))!.value.status).toBe('queued');
  });

  it('re-reads and re-applies a holder\'s write up to three times, then fails it with the lease kept', async () => {
    const record = await createJob();
    const jobs = raced(env.storage.jobs);
    const lease = await take(record.id, 'holder', jobs.store);
    // Two competing writes: the third try lands, on top of both.
    jobs.race(2);
    await lease.update((j) => (j.progress.bytes.done = 7));
    expect(jobs.writes()).toBe(1 + 3);
    expect(lease.cancelRequested).toBe(false);
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ leaseOwner: 'holder', progress: { bytes: { done: 7 }, blobs: { total: 2 } } });
    expect(lease.record.progress).toMatchObject({ bytes: { done: 7 }, blobs: { total: 2 } });
    // Three: the write fails as a race lost, not as the lease lost.
    jobs.race(3);
    const failed = await lease.update((j) => (j.progress.bytes.done = 8)).then(() => undefined, (error: unknown) => error);
    expect(failed).toMatchObject({ code: 'CONCURRENT_UPDATE' });
    expect(jobs.writes()).toBe(4 + 3);
    expect(lease.lost).toBe(false);
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ leaseOwner: 'holder', progress: { bytes: { done: 7 }, blobs: { total: 5 } } });
    // The next write works from the job as read last.
    await lease.update((j) => (j.progress.bytes.done = 9));
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ leaseOwner: 'holder', progress: { bytes: { done: 9 }, blobs: { total: 5 } } });
  });

  it('learns of a cancel from a lost write race, and keeps writing as the holder', async () => {
    const record = await createJob();
    const lease = await take(record.id, 'holder', env.storage.jobs);
    const current = (await env.storage.jobs.get(record.id))!;
    await env.storage.jobs.replace({ ...current.value, cancelRequestedAt: new Date(clock).toISOString() }, current.etag);
    expect(lease.cancelRequested).toBe(false);
    await lease.update((j) => (j.progress.bytes.done = 3));
    expect(lease.cancelRequested).toBe(true);
    expect(lease.cancelSignal.aborted).toBe(true);
    expect(lease.lost).toBe(false);
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ leaseOwner: 'holder', cancelRequestedAt: expect.any(String), progress: { bytes: { done: 3 } } });
  });

  it('passes a write failure that is no race on at once, with the lease kept', async () => {
    const record = await createJob();
    const jobs = raced(env.storage.jobs);
    const lease = await take(record.id, 'holder', jobs.store);
    // More than Azure Tables holds in one property: refused before any request.
    await expect(lease.update((j) => (j.source = `docker.io/library/${'a'.repeat(40_000)}:v1`))).rejects.toMatchObject({ code: 'ENTITY_TOO_LARGE' });
    expect(jobs.writes()).toBe(2);
    expect(lease.lost).toBe(false);
    await lease.update((j) => (j.progress.bytes.done = 1));
    expect((await env.storage.jobs.get(record.id))!.value).toMatchObject({ leaseOwner: 'holder', progress: { bytes: { done: 1 } } });
  });

  it('passes a failure to take or cancel a job that is no race on at once', async () => {
    // Azurite cannot fail a write on cue: a scripted fault stands in for a dropped connection.
    const failing = Object.create(env.storage.jobs) as JobStore;
    let writes = 0;
    failing.replace = () => {
      writes++;
      return Promise.reject(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    };
    const record = await createJob();
    await expect(acquire(record.id, 'w', { store: failing })).rejects.toMatchObject({ code: 'ECONNRESET' });
    const canceled = await createJob({ cancelRequestedAt: new Date(clock).toISOString() });
    await expect(acquire(canceled.id, 'w', { store: failing })).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(writes).toBe(2);
  });

  it('is lost when its job is deleted, before or after a lost write race', async () => {
    const gone = await createJob();
    const first = await take(gone.id, 'holder', env.storage.jobs);
    const current = (await env.storage.jobs.get(gone.id))!;
    await env.storage.jobs.delete(gone.id, current.etag);
    await expect(first.update(() => {})).rejects.toMatchObject({ code: 'LEASE_LOST', jobId: gone.id, owner: undefined });
    expect(first.lost).toBe(true);

    // Changed, then deleted between the failed write and its re-read.
    const record = await createJob();
    const jobs = raced(env.storage.jobs);
    const second = await take(record.id, 'holder', jobs.store);
    jobs.store.get = async (id) => {
      const fresh = (await env.storage.jobs.get(id))!;
      await env.storage.jobs.delete(id, fresh.etag);
      return env.storage.jobs.get(id);
    };
    jobs.race(1);
    await expect(second.update(() => {})).rejects.toMatchObject({ code: 'LEASE_LOST', jobId: record.id, owner: undefined });
    expect(second.lost).toBe(true);
    expect(second.signal.reason).toMatchObject({ code: 'LEASE_LOST' });
  });
});

describe('job lease renewal timer', () => {
  // Only the timers are fake; the store is Azurite. A renewal tick enqueues its write at once, so
  // a write of the test's own, queued after it, settles after it: `writes()` then tells whether
  // the tick fired.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('renews every third of the lease, and no more often than every 250 ms', async () => {
    // [lease duration, renewal interval]: a third of the lease, or the 250 ms floor.
    for (const [durationInMs, interval] of [[3000, 1000], [600, 250]]) {
      const jobs = raced(env.storage.jobs);
      const lease = await take((await createJob()).id, `renewer-${durationInMs}`, jobs.store, durationInMs);
      try {
        lease.startRenewal();
        vi.advanceTimersByTime(interval - 1);
        await lease.update(() => {});
        expect(jobs.writes()).toBe(2);
        vi.advanceTimersByTime(1);
        await lease.update(() => {});
        expect(jobs.writes()).toBe(4);
      } finally {
        lease.stopRenewal();
      }
    }
  });

  it('runs one timer however often it is started, none once released, and stops it on release', async () => {
    const lease = await take((await createJob()).id, 'once', env.storage.jobs);
    lease.startRenewal();
    lease.startRenewal();
    expect(vi.getTimerCount()).toBe(1);
    await lease.release();
    expect(vi.getTimerCount()).toBe(0);
    lease.startRenewal();
    expect(vi.getTimerCount()).toBe(0);
    await expect(lease.update(() => {})).rejects.toThrow(/already released/);
  });

  it('hands renewal failures other than a lost lease to onRenewalError, and keeps renewing', async () => {
    const record = await createJob();
    const errors: unknown[] = [];
    const jobs = raced(env.storage.jobs);
    const outcome = await acquireJobLease(jobs.store, record.id, { owner: 'flaky', durationInMs: 3000, continuation: 0, now, onRenewalError: (error) => errors.push(error) });
    if (outcome.kind !== 'acquired') throw new Error('not acquired');
    const { lease } = outcome;
    try {
      lease.startRenewal();
      // Three competing writes: the renewal fails as a race lost, reported.
      jobs.race(3);
      vi.advanceTimersByTime(1000);
      await lease.update(() => {});
      expect(errors).toEqual([expect.objectContaining({ code: 'CONCURRENT_UPDATE' })]);
      expect(lease.lost).toBe(false);
      // Stolen: the next renewal loses the lease, which is not reported as a failure.
      const current = (await env.storage.jobs.get(record.id))!;
      await env.storage.jobs.replace({ ...current.value, leaseOwner: 'thief', leaseExpiresAt: new Date(clock + 60_000).toISOString() }, current.etag);
      const aborted = new Promise((resolve) => lease.signal.addEventListener('abort', resolve));
      vi.advanceTimersByTime(1000);
      await aborted;
      await lease.update(() => {}).catch(() => {});
      expect(errors).toHaveLength(1);
      expect(lease.signal.reason).toMatchObject({ code: 'LEASE_LOST', owner: 'thief' });
    } finally {
      lease.stopRenewal();
    }
  });
});
