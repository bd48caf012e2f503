/**
 * The job lease: which invocation works on a job, and until when. Taken and renewed with ETag
 * writes on the job entity itself, so every write of the holder also proves it still holds the
 * lease. A holder that loses a write to another owner, or cannot renew before expiry, stops: its
 * `signal` aborts the copy at the next chunk boundary.
 */
import { ConcurrencyError, JobNotFoundError, LeaseLostError } from './errors.js';
import { isTerminal, markCanceled, type JobRecord, type JobStatus } from './job-record.js';
import type { JobStore, Versioned } from './job-store.js';

export interface AcquireLeaseOptions {
  /** Unique per invocation. */
  owner: string;
  durationInMs: number;
  /** The continuation counter of the message asking; an older one than the job's is stale. */
  continuation: number;
  /** The host's delivery count of that message, kept so a sweep can tell a final attempt died. */
  dequeueCount?: number;
  now?: () => number;
  /** Called with write failures the renewal timer swallows (it keeps trying until expiry). */
  onRenewalError?: (error: unknown) => void;
}

export type LeaseOutcome =
  | { kind: 'acquired'; lease: JobLease }
  /** Another live invocation holds the job; try again after `retryAfterMs`. */
  | { kind: 'held'; owner: string; retryAfterMs: number; record: JobRecord | undefined }
  /** The job already ended; `canceled` names the record when this call ended it (a cancel nobody held). */
  | { kind: 'finished'; status: JobStatus; canceled?: JobRecord }
  /** A newer continuation message exists for this job; this one is a leftover duplicate. */
  | { kind: 'stale'; continuation: number }
  | { kind: 'missing' };

/** Attempts at the read-then-write race before giving up as if the lease were held. */
const ACQUIRE_ATTEMPTS = 4;

/**
 * Takes the lease on a job if it is free or expired: marks it running, counts the attempt (a
 * delivery of the current continuation: the first, or a retry after a failure or a dead worker)
 * and records the continuation. Never waits.
 */
export async function acquireJobLease(store: JobStore, jobId: string, options: AcquireLeaseOptions): Promise<LeaseOutcome> {
  const now = options.now ?? Date.now;
  let lastRead: JobRecord | undefined;
  for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
    const current = await store.get(jobId);
    if (!current) return { kind: 'missing' };
    const job = current.value;
    lastRead = job;
    if (isTerminal(job.status)) return { kind: 'finished', status: job.status };
    if (options.continuation < job.continuations) return { kind: 'stale', continuation: job.continuations };
    const expiresAt = job.leaseExpiresAt ? Date.parse(job.leaseExpiresAt) : 0;
    const leaseFree = !job.leaseOwner || job.leaseOwner === options.owner || expiresAt <= now();
    if (job.cancelRequestedAt !== undefined && leaseFree) {
      // Canceled while nobody held it (between continuations, or its worker died): it never
      // starts again. Its holder, were there one, would end it itself.
      const canceled = structuredClone(job);
      delete canceled.leaseOwner;
      delete canceled.leaseExpiresAt;
      markCanceled(canceled, new Date(now()).toISOString());
      try {
        await store.replace(canceled, current.etag);
        return { kind: 'finished', status: 'canceled', canceled };
      } catch (error) {
        if (!(error instanceof ConcurrencyError)) throw error;
        continue;
      }
    }
    if (job.leaseOwner && job.leaseOwner !== options.owner && expiresAt > now()) {
      return { kind: 'held', owner: job.leaseOwner, retryAfterMs: expiresAt - now(), record: job };
    }
    const at = new Date(now());
    const next: JobRecord = {
      ...job,
      status: 'running',
      leaseOwner: options.owner,
      leaseExpiresAt: new Date(at.getTime() + options.durationInMs).toISOString(),
      // The first delivery of a new continuation is a planned pause, not another try.
      attempts: options.continuation > job.continuations ? job.attempts : job.attempts + 1,
      continuations: Math.max(job.continuations, options.continuation),
      ...(options.dequeueCount !== undefined && { deliveryDequeueCount: options.dequeueCount }),
      startedAt: job.startedAt ?? at.toISOString(),
      updatedAt: at.toISOString(),
    };
    try {
      const etag = await store.replace(next, current.etag);
      return { kind: 'acquired', lease: new JobLease(store, { value: next, etag }, options) };
    } catch (error) {
      if (!(error instanceof ConcurrencyError)) throw error;
    }
  }
  // Every attempt lost its write (to cancel the job or to take it) to another writer.
  return { kind: 'held', owner: 'a concurrent invocation', retryAfterMs: 1000, record: lastRead };
}

/** A held lease: the holder's only way to write the job. */
export class JobLease {
  private current: Versioned<JobRecord>;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly controller = new AbortController();
  private readonly cancelController = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  private readonly now: () => number;

  constructor(
    private readonly store: JobStore,
    acquired: Versioned<JobRecord>,
    private readonly options: AcquireLeaseOptions,
  ) {
    this.current = acquired;
    this.now = options.now ?? Date.now;
  }

  get owner(): string {
    return this.options.owner;
  }

  /** A copy of the job as last written. */
  get record(): JobRecord {
    return structuredClone(this.current.value);
  }

  /** Aborts when the lease is lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get lost(): boolean {
    return this.controller.signal.aborted;
  }

  /**
   * Aborts when this holder learns the job was canceled (`DELETE /api/imports/{id}`). The cancel
   * changes the job's ETag, so the holder's next write (a progress write, at most one per second
   * while bytes move, or a renewal) fails its condition, re-reads, and sees it.
   */
  get cancelSignal(): AbortSignal {
    return this.cancelController.signal;
  }

  get cancelRequested(): boolean {
    return this.cancelController.signal.aborted;
  }

  /**
   * Applies `mutate` to the job and writes it with the ETag held, extending the lease. Writes are
   * serialized. When the ETag is stale, re-reads: still ours, the change is re-applied; another
   * owner's, the lease is lost (LeaseLostError).
   */
  update(mutate: (job: JobRecord) => void): Promise<void> {
    return this.enqueue(() => this.write(mutate, false));
  }

  /** The last write: applies `mutate`, clears the lease and stops renewing. */
  release(mutate: (job: JobRecord) => void = () => {}): Promise<void> {
    this.stopRenewal();
    return this.enqueue(() => this.write(mutate, true));
  }

  /** Renews the lease every third of its duration until released; expiry without renewal aborts. */
  startRenewal(): void {
    if (this.timer || this.released) return;
    const interval = Math.max(Math.floor(this.options.durationInMs / 3), 250);
    this.timer = setInterval(() => {
      if (this.lost || this.released) return;
      const expiresAt = Date.parse(this.current.value.leaseExpiresAt ?? '');
      if (Number.isFinite(expiresAt) && this.now() >= expiresAt) {
        // We could not renew in time: another invocation may already own the job. Stop. (Abort
        // only: a throw here would escape the timer as an uncaught exception.)
        this.abort();
        return;
      }
      this.update(() => {}).catch((error: unknown) => {
        if (!(error instanceof LeaseLostError)) this.options.onRenewalError?.(error);
      });
    }, interval);
    this.timer.unref();
  }

  stopRenewal(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => {});
    return run;
  }

  private abort(foundOwner?: string): void {
    this.stopRenewal();
    if (!this.controller.signal.aborted) this.controller.abort(new LeaseLostError(this.current.value.id, foundOwner));
  }

  private lose(foundOwner?: string): never {
    this.abort(foundOwner);
    throw new LeaseLostError(this.current.value.id, foundOwner);
  }

  private async write(mutate: (job: JobRecord) => void, release: boolean): Promise<void> {
    if (this.lost) this.lose();
    if (this.released) throw new Error(`the lease on job ${this.current.value.id} was already released`);
    let base = this.current;
    for (let attempt = 0; attempt < 3; attempt++) {
      const next = structuredClone(base.value);
      mutate(next);
      const at = this.now();
      next.updatedAt = new Date(at).toISOString();
      if (release) {
        delete next.leaseOwner;
        delete next.leaseExpiresAt;
      } else {
        next.leaseOwner = this.options.owner;
        next.leaseExpiresAt = new Date(at + this.options.durationInMs).toISOString();
      }
      try {
        const etag = await this.store.replace(next, base.etag);
        this.current = { value: next, etag };
        if (release) this.released = true;
        return;
      } catch (error) {
        if (error instanceof JobNotFoundError) this.lose();
        if (!(error instanceof ConcurrencyError)) throw error;
        const fresh = await this.store.get(base.value.id);
        if (!fresh || fresh.value.leaseOwner !== this.options.owner) this.lose(fresh?.value.leaseOwner);
        if (fresh.value.cancelRequestedAt !== undefined && !this.cancelRequested) this.cancelController.abort(new Error(`job ${fresh.value.id} was canceled`));
        base = fresh;
      }
    }
    throw new ConcurrencyError(`job ${base.value.id} (three writes in a row lost their race)`);
  }
}
