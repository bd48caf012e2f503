/**
 * Failing jobs whose final delivery died. When the process running the last allowed delivery of a
 * job's message is killed (or timed out by the host), the host moves the message to
 * `imports-poison` without our code running again, so nothing would ever mark the job failed.
 * Such a job is recognisable: still `running`, its lease taken on the last delivery and never
 * released, and expired. A clean pause or failure releases the lease, so those are left alone.
 *
 * And failing jobs that were never delivered: still `queued` with no attempt once their message's
 * time to live (JOB_MESSAGE_TTL_SECONDS) is over, so no message for them can exist. A POST that
 * answered 503 (storage cut short, its insert applied late) leaves such a record, which its 503
 * named; it never runs, and this ends it instead of showing it `queued` for ever.
 */
import type { TableCheckpoints } from './checkpoint-store.js';
import { ConcurrencyError } from './errors.js';
import { markCanceled, type JobRecord } from './job-record.js';
import { JOB_MESSAGE_TTL_SECONDS } from './job-queue.js';
import { MAX_PAGE_SIZE, type JobStore } from './job-store.js';

export interface SweepDeps {
  jobs: JobStore;
  checkpoints: TableCheckpoints;
  maxDequeueCount: number;
  /** Told of each job the sweep failed, as recorded (for its transition in the logs). */
  onFailed?: (job: JobRecord) => void;
  now?: () => number;
}

/** Whether the job's final delivery died holding the lease. */
function abandoned(job: JobRecord, maxDequeueCount: number, now: number): boolean {
  return (
    (job.status === 'running' &&
      job.leaseOwner !== undefined &&
      job.leaseExpiresAt !== undefined &&
      Date.parse(job.leaseExpiresAt) <= now &&
      (job.deliveryDequeueCount ?? 0) >= maxDequeueCount) ||
    neverDelivered(job, now)
  );
}

/**
 * How long after createdAt + JOB_MESSAGE_TTL_SECONDS a job never delivered is left alone: its
 * message is sent after its record is written (seconds later, a retried call longer), and the
 * queue counts its time to live from then, on the storage service's clock, not this one's.
 */
export const NEVER_DELIVERED_GRACE_MS = 60 * 60 * 1000;

/** Whether the job is still waiting for a first delivery that can no longer come: its message's time to live is over. */
function neverDelivered(job: JobRecord, now: number): boolean {
  return job.status === 'queued' && job.attempts === 0 && job.leaseOwner === undefined && Date.parse(job.createdAt) + JOB_MESSAGE_TTL_SECONDS * 1000 + NEVER_DELIVERED_GRACE_MS <= now;
}

/** Marks every abandoned job failed; returns their ids. */
export async function sweepAbandonedImports(deps: SweepDeps): Promise<string[]> {
  const now = deps.now ?? Date.now;
  const failed: string[] = [];
  let after: string | undefined;
  do {
    const page = await deps.jobs.list({ statuses: ['running', 'queued'], pageSize: MAX_PAGE_SIZE, ...(after !== undefined && { after }) });
    for (const listed of page.jobs) {
      if (abandoned(listed, deps.maxDequeueCount, now()) && (await failAbandoned(deps, listed.id, now))) failed.push(listed.id);
    }
    after = page.continuationToken;
  } while (after !== undefined);
  return failed;
}

/**
 * Re-reads the job and ends it if it is still abandoned: failed, or canceled when its caller had
 * asked it to stop. False when someone else got there first.
 */
async function failAbandoned(deps: SweepDeps, id: string, now: () => number): Promise<boolean> {
  const current = await deps.jobs.get(id);
  if (!current || !abandoned(current.value, deps.maxDequeueCount, now())) return false;
  const job = current.value;
  const at = new Date(now()).toISOString();
  delete job.leaseOwner;
  delete job.leaseExpiresAt;
  // Its caller asked it to stop: it stopped, canceled, whatever stopped it.
  if (job.cancelRequestedAt !== undefined) markCanceled(job, at);
  else if (neverDelivered(job, now())) failNeverDelivered(job, at);
  else failLost(job, deps.maxDequeueCount, at);
  try {
    await deps.jobs.replace(job, current.etag);
  } catch (error) {
    if (error instanceof ConcurrencyError) return false;
    throw error;
  }
  await deps.checkpoints.removeJob(id);
  deps.onFailed?.(job);
  return true;
}

function failLost(job: JobRecord, maxDequeueCount: number, at: string): void {
  job.status = 'failed';
  job.error = {
    code: 'WORKER_LOST',
    message: `the last of ${maxDequeueCount} attempts stopped without a result (its process died or timed out)${job.lastError ? `; the last recorded error was ${job.lastError.code}: ${job.lastError.message}` : ''}; check functionTimeout and HOIST_TIME_BUDGET_SECONDS, then submit the import again`,
  };
  job.completedAt = at;
  job.updatedAt = at;
  delete job.sealedCredentials;
}

function failNeverDelivered(job: JobRecord, at: string): void {
  job.status = 'failed';
  job.error = {
    code: 'NEVER_DELIVERED',
    message: `no worker ever received this job: the request that created it failed while the job storage was unreachable, or its queue message expired unread after ${JOB_MESSAGE_TTL_SECONDS / 86_400} days; submit the import again`,
  };
  job.completedAt = at;
  job.updatedAt = at;
  delete job.sealedCredentials;
}
