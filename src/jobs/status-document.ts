/**
 * The status document of `GET /api/imports/{id}`: what a caller may see of a job. Built field by
 * field from the record, so nothing stored (credentials, lease owner) leaks by accident.
 */
import type { ExternalBlob } from '../copy/types.js';
import type { JobManifest, JobRecord, JobStatus, ManifestCounts } from './job-record.js';

/** What the status document adds to the stored counters: the job's identity and its outcome. */
interface ImportStatusFields {
  id: string;
  status: JobStatus;
  /** The source as resolved at submission, with its digest once the worker resolved it. */
  source: { reference: string; digest?: string; mediaType?: string };
  targets: Array<{ reference: string; tagged: boolean; digest?: string; written?: boolean }>;
  options: { force: boolean; platforms: string[]; referrers: boolean; allowNondistributableArtifacts: boolean };
  /**
   * The import's manifests in the target, each digest once, the first MAX_LISTED_MANIFESTS of
   * them; `written: false` for those it already had.
   */
  manifests: JobManifest[];
  /**
   * Only on a `running` job whose worker stopped without releasing it (its process died or was
   * killed): when its lease expired. The host delivers the job again, which resumes from its
   * checkpoints, or the sweep fails it once its last attempt is used.
   */
  workerLost?: { leaseExpiredAt: string; message: string };
  /** All of the import's manifests, listed or not, and those it wrote. */
  manifestCounts: ManifestCounts;
  /** Non-distributable layers left referenced by URL, not copied; absent when there are none. */
  externalBlobs?: ExternalBlob[];
}

/** Fields shown as stored: counters, timestamps and the failure; never the lease or credentials. */
type SharedFields = Pick<JobRecord, 'progress' | 'attempts' | 'continuations' | 'createdAt' | 'updatedAt' | 'startedAt' | 'completedAt' | 'error' | 'lastError'>;

export type ImportStatus = ImportStatusFields & SharedFields;

/** The caller's view of a job, as of now. */
export function toStatusDocument(record: JobRecord): ImportStatus {
  const lost = lostWorker(record, Date.now());
  return {
    id: record.id,
    status: record.status,
    source: {
      reference: record.source,
      ...(record.sourceDigest !== undefined && { digest: record.sourceDigest }),
      ...(record.sourceMediaType !== undefined && { mediaType: record.sourceMediaType }),
    },
    targets: record.targets.map((t) => ({
      reference: t.reference,
      tagged: t.tagged,
      ...(t.digest !== undefined && { digest: t.digest }),
      ...(t.written !== undefined && { written: t.written }),
    })),
    options: { force: record.force, platforms: [...record.platforms], referrers: record.referrers, allowNondistributableArtifacts: record.allowNondistributableArtifacts === true },
    manifests: record.manifests.map((m) => ({
      digest: m.digest,
      mediaType: m.mediaType,
      ...(m.platform !== undefined && { platform: m.platform }),
      ...(m.attestationFor !== undefined && { attestationFor: m.attestationFor }),
      ...(m.written !== undefined && { written: m.written }),
    })),
    manifestCounts: record.manifestCounts
      ? { total: record.manifestCounts.total, written: record.manifestCounts.written }
      : { total: record.manifests.length, written: record.manifests.filter((m) => m.written).length },
    ...(record.externalBlobs?.length && { externalBlobs: record.externalBlobs.map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType, urls: [...b.urls] })) }),
    progress: {
      blobs: { ...record.progress.blobs },
      bytes: { ...record.progress.bytes },
    },
    attempts: record.attempts,
    continuations: record.continuations,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    ...(record.startedAt !== undefined && { startedAt: record.startedAt }),
    ...(record.completedAt !== undefined && { completedAt: record.completedAt }),
    ...(record.error !== undefined && { error: { code: record.error.code, message: record.error.message } }),
    ...(record.lastError !== undefined && { lastError: { code: record.lastError.code, message: record.lastError.message, at: record.lastError.at } }),
    ...(lost && { workerLost: lost }),
  };
}

/**
 * A running job's lease past its expiry: a live worker renews it every third of its duration and
 * releases it when it stops, so only a worker that died leaves one behind.
 */
function lostWorker(record: JobRecord, now: number): ImportStatus['workerLost'] {
  if (record.status !== 'running' || record.leaseOwner === undefined || record.leaseExpiresAt === undefined) return undefined;
  const expiresAt = Date.parse(record.leaseExpiresAt);
  if (!(expiresAt <= now)) return undefined;
  return {
    leaseExpiredAt: record.leaseExpiresAt,
    message: `the worker running this job stopped without finishing (its lease expired at ${record.leaseExpiresAt}); the job resumes from its checkpoints when the queue delivers it again`,
  };
}
