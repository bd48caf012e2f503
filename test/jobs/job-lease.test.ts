import { LeaseLostError } from '../../src/jobs/errors.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { acquireJobLease, type LeaseOutcome } from '../../src/jobs/job-lease.js';
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
