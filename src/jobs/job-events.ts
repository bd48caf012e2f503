/**
 * A job's transitions as structured events: what Application Insights receives as
 * customDimensions (through functions/telemetry.ts) and a person reads in the log line beside
 * them. Only references, counts and codes: never a credential, never an error message (which
 * quotes registries).
 */

/** What happened to the job. */
export type JobTransition =
  /** Recorded and queued by `POST /api/imports`. */
  | 'queued'
  /** A worker took its lease and began (or resumed) copying. */
  | 'started'
  /** The time budget ran out or the host is shutting down: a continuation was queued. */
  | 'paused'
  /** Another invocation holds the lease: the message was re-queued with a delay. */
  | 'requeued'
  /** A transient failure: the host delivers the message again. */
  | 'retrying'
  | 'succeeded'
  /** Failed for good. */
  | 'failed'
  /** Stopped for good by `DELETE /api/imports/{id}`. */
  | 'canceled';

/** One transition, flat, so each field becomes one customDimension. */
export interface JobEvent {
  transition: JobTransition;
  jobId: string;
  /** The source reference as submitted. */
  source: string;
  /** The target references, comma-separated. */
  target: string;
  /** Bytes moved so far (for `succeeded`, by the whole job). */
  bytes: number;
  /** Milliseconds since the job was created. */
  durationMs: number;
  /** The job's status after the transition (`queued`, `running`, `succeeded`, `failed`, `canceled`). */
  outcome: string;
  /** The stable error code, for `retrying` and `failed`. */
  errorCode?: string;
  /** The queue message's continuation number, for worker transitions. */
  continuation?: number;
  /** The host's delivery count of that message. */
  dequeueCount?: number;
}

/** The event of a job record's transition at `now`. */
export function jobEvent(
  job: { id: string; source: string; targets: ReadonlyArray<{ reference: string }>; createdAt: string; progress: { bytes: { done: number } } },
  transition: JobTransition,
  outcome: string,
  now: number,
  extra: Partial<Pick<JobEvent, 'bytes' | 'errorCode' | 'continuation' | 'dequeueCount'>> = {},
): JobEvent {
  return {
    transition,
    jobId: job.id,
    source: job.source,
    target: job.targets.map((t) => t.reference).join(','),
    bytes: job.progress.bytes.done,
    durationMs: Math.max(now - Date.parse(job.createdAt), 0),
    outcome,
    ...extra,
  };
}
