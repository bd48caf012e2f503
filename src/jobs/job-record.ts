/**
 * The job as stored: everything the worker needs to run and resume an import, plus its lease and
 * its sealed source credentials. Never returned to callers as is: status-document.ts picks what
 * they may see.
 */
import type { ExternalBlob } from '../copy/types.js';
import type { StoredTarget } from './import-references.js';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Succeeded, failed and canceled jobs never change again. */
export function isTerminal(status: JobStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'canceled';
}

export interface JobProgress {
  /** `done` counts every finished blob; `skipped` (already present) and `mounted` are part of it. */
  blobs: { total: number; done: number; skipped: number; mounted: number };
  /** `done` includes bytes already at the target and confirmed bytes of blobs in flight. */
  bytes: { total: number; done: number };
  /**
   * The transfer rate the worker measured over its recent progress (progress-tracker.ts), and
   * when; absent until it has a measurement worth showing.
   */
  rate?: { bytesPerSecond: number; measuredAt: string };
}

export interface JobManifest {
  digest: string;
  mediaType: string;
  /** `os/arch[/variant][:os.version]` for a platform child of an index. */
  platform?: string;
  /** For an attestation manifest (provenance, SBOM) of the index: the digest of the image it describes. */
  attestationFor?: string;
  /** False when the target already had it, so this job did not write it. */
  written?: boolean;
}

/**
 * How many manifests a job record lists: a 4,500-child index must not outgrow the job entity
 * (1 MiB in Azure Tables); a hundred entries of about 200 characters fill one property.
 */
export const MAX_LISTED_MANIFESTS = 100;

export interface ManifestCounts {
  total: number;
  /** Those this job wrote (the others the target already had). */
  written: number;
}

export interface JobTarget extends StoredTarget {
  /** The digest written there, once written. */
  digest?: string;
  /** For a tagged target: whether the tag was written (false when it already pointed there). */
  written?: boolean;
}

/** A failure as callers see it: a stable code, and a message saying what failed and what to do. */
export interface JobFailure {
  code: string;
  message: string;
}

export interface JobRecord {
  id: string;
  status: JobStatus;
  /** The fully qualified source reference, as resolved at submission. */
  source: string;
  sourceDigest?: string;
  sourceMediaType?: string;
  /** What the targets point at: the source digest, or a new index for a platform subset. */
  targetDigest?: string;
  targets: JobTarget[];
  force: boolean;
  /** Platform subset; empty means every platform. */
  platforms: string[];
  referrers: boolean;
  /** Non-distributable layers are copied too (absent: left referenced by URL). */
  allowNondistributableArtifacts?: boolean;
  /** The first MAX_LISTED_MANIFESTS of the import's manifests; manifestCounts counts them all. */
  manifests: JobManifest[];
  /** Every manifest of a finished import, and those it wrote (absent before it succeeds). */
  manifestCounts?: ManifestCounts;
  /** Non-distributable layers the import leaves referenced by URL, not copied (bounded: progress-tracker.ts). */
  externalBlobs?: ExternalBlob[];
  progress: JobProgress;
  /**
   * Deliveries that took the lease, but for the first of each continuation: 1, plus one per retry
   * after a failure, a dead worker or a lease taken over. A job that paused 8 times and never
   * failed shows 1.
   */
  attempts: number;
  /** Planned pauses: each time a worker used its time budget (or was asked to stop) and re-queued the job. */
  continuations: number;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  completedAt?: string;
  /** Why the job failed (only when `status` is `failed`). */
  error?: JobFailure;
  /** The latest transient failure, retried by the host (kept for the record once it succeeds). */
  lastError?: JobFailure & { at: string };
  /** The queue delivery count of the message whose invocation last took the lease. */
  deliveryDequeueCount?: number;
  /** The invocation working on the job; valid until `leaseExpiresAt`. */
  leaseOwner?: string;
  leaseExpiresAt?: string;
  /** Source credentials sealed with HOIST_SECRET_KEY (secret-box.ts); removed when the job ends. */
  sealedCredentials?: string;
  /**
   * When `DELETE /api/imports/{id}` asked for the job to stop (cancel-import.ts). A worker holding
   * the lease stops at its next chunk boundary and marks the job `canceled`; a job nobody runs is
   * canceled at once.
   */
  cancelRequestedAt?: string;
}

/**
 * Ends a job as canceled at `at`: its credentials go, as for any job that ended. The caller
 * writes it (with the ETag it read, or through the lease).
 */
export function markCanceled(job: JobRecord, at: string): void {
  job.status = 'canceled';
  job.cancelRequestedAt ??= at;
  job.completedAt = at;
  job.updatedAt = at;
  delete job.sealedCredentials;
}

export function emptyProgress(): JobProgress {
  return { blobs: { total: 0, done: 0, skipped: 0, mounted: 0 }, bytes: { total: 0, done: 0 } };
}

export interface NewJob {
  id: string;
  source: string;
  targets: StoredTarget[];
  force: boolean;
  platforms: string[];
  referrers: boolean;
  allowNondistributableArtifacts?: boolean;
  sealedCredentials?: string;
  now?: Date;
}

/** A queued job, not yet picked up. */
export function newJobRecord(job: NewJob): JobRecord {
  const now = (job.now ?? new Date()).toISOString();
  return {
    id: job.id,
    status: 'queued',
    source: job.source,
    targets: job.targets.map((t) => ({ reference: t.reference, tagged: t.tagged })),
    force: job.force,
    platforms: job.platforms,
    referrers: job.referrers,
    ...(job.allowNondistributableArtifacts === true && { allowNondistributableArtifacts: true }),
    manifests: [],
    progress: emptyProgress(),
    attempts: 0,
    continuations: 0,
    createdAt: now,
    updatedAt: now,
    ...(job.sealedCredentials !== undefined && { sealedCredentials: job.sealedCredentials }),
  };
}
