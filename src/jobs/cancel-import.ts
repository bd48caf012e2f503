/**
 * Canceling an import (`DELETE /api/imports/{id}`). A job nobody runs (queued, between
 * continuations, or whose worker died) is canceled at once and never starts again. A running job
 * is marked: its worker learns it at its next write of the job (job-lease.ts), stops at the next
 * chunk boundary before any tag it has not written, and records `canceled` itself. A job that
 * already succeeded or failed is refused. Nothing here knows about HTTP.
 */
import type { TableCheckpoints } from './checkpoint-store.js';
import { ConcurrencyError, JobFinishedError, JobNotFoundError } from './errors.js';
import { markCanceled, type JobRecord } from './job-record.js';
import type { JobStore } from './job-store.js';

export interface CancelImportDeps {
  jobs: JobStore;
  /** The job's upload checkpoints are removed when it is canceled here. */
  checkpoints: TableCheckpoints;
  now?: () => number;
}

export interface CancelImportResult {
  job: JobRecord;
  /**
   * `canceled`: the job is canceled now (or was already). `requested`: its worker will stop it at
   * the next chunk boundary; poll the job until its status is `canceled` (or `succeeded`, when the
   * copy had already written its tags).
   */
  outcome: 'canceled' | 'requested';
  /** The job was canceled before this call: nothing changed, and its transition was told already. */
  already?: true;
}

/** Conditional writes tried before giving up to a job that keeps changing (its worker writes it about once a second). */
const CANCEL_ATTEMPTS = 5;

/**
 * Cancels a job. Throws JobNotFoundError (404), JobFinishedError (409) when it already succeeded
 * or failed, ConcurrencyError when it changed under every attempt.
 */
export async function cancelImport(id: string, deps: CancelImportDeps): Promise<CancelImportResult> {
  const now = deps.now ?? Date.now;
  for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt++) {
    const current = await deps.jobs.get(id);
    if (!current) throw new JobNotFoundError(id);
    const job = structuredClone(current.value);
    if (job.status === 'canceled') return { job, outcome: 'canceled', already: true };
    if (job.status === 'succeeded' || job.status === 'failed') throw new JobFinishedError(job.id, job.status, job.completedAt);
    const at = new Date(now()).toISOString();
    const held = job.leaseOwner !== undefined && Date.parse(job.leaseExpiresAt ?? '') > now();
    job.cancelRequestedAt ??= at;
    job.updatedAt = at;
    if (!held) {
      delete job.leaseOwner;
      delete job.leaseExpiresAt;
      markCanceled(job, at);
    }
    try {
      await deps.jobs.replace(job, current.etag);
    } catch (error) {
      if (error instanceof ConcurrencyError) continue;
      throw error;
    }
    if (held) return { job, outcome: 'requested' };
    // A paused job may have uploads checkpointed: nobody resumes them now.
    await deps.checkpoints.removeJob(id).catch(() => undefined);
    return { job, outcome: 'canceled' };
  }
  throw new ConcurrencyError(`job ${id} (it changed under ${CANCEL_ATTEMPTS} cancel attempts in a row)`);
}
