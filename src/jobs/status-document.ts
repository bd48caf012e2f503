/**
 * The status document of `GET /api/imports/{id}`: what a caller may see of a job. Built field by
 * field from the record, so nothing stored (credentials, lease owner) leaks by accident.
 */
import type { ExternalBlob } from '../copy/types.js';
import type { JobManifest, JobProgress, JobRecord, JobStatus, ManifestCounts } from './job-record.js';
import { RATE_WINDOW_MS } from './transfer-rate.js';

/**
 * How long a recorded rate stays "current": a worker records progress about once a second while
 * bytes move, so a rate older than its window means nothing moves now (a wait for another job's
 * upload, a retry back-off, a dead worker).
 */
const RATE_FRESH_MS = RATE_WINDOW_MS;
/** An ETA further away than this says only "very slow": none is given. */
const MAX_ETA_MS = 30 * 24 * 3600 * 1000;

/** The progress a caller sees: the counters, and while bytes move the rate and an ETA. */
export interface StatusProgress {
  blobs: JobProgress['blobs'];
  bytes: JobProgress['bytes'];
  /** Only while running: bytes per second over the worker's recent progress (the last 30 s). */
  bytesPerSecond?: number;
  /** Only while running at a measured rate above zero: when the bytes left would be done at that rate. */
  estimatedCompletionAt?: string;
}

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
  /**
   * Whole percent of the import's bytes in the target (Azure's long-running operation field):
   * 100 only once it succeeded, so a caller never reads 100 for a job still writing its tags.
   */
  percentComplete: number;
  progress: StatusProgress;
}

/** Fields shown as stored: counters, timestamps and the failure; never the lease or credentials. */
type SharedFields = Pick<JobRecord, 'attempts' | 'continuations' | 'createdAt' | 'updatedAt' | 'startedAt' | 'completedAt' | 'error' | 'lastError' | 'cancelRequestedAt'>;

export type ImportStatus = ImportStatusFields & SharedFields;

/** The caller's view of a job, as of `now` (ms since epoch). */
export function toStatusDocument(record: JobRecord, now: number = Date.now()): ImportStatus {
  const lost = lostWorker(record, now);
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
    percentComplete: percentComplete(record),
    progress: {
      blobs: { ...record.progress.blobs },
      bytes: { ...record.progress.bytes },
      ...(!lost && liveRate(record, now)),
    },
    attempts: record.attempts,
    continuations: record.continuations,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    ...(record.startedAt !== undefined && { startedAt: record.startedAt }),
    ...(record.completedAt !== undefined && { completedAt: record.completedAt }),
    ...(record.error !== undefined && { error: { code: record.error.code, message: record.error.message } }),
    ...(record.lastError !== undefined && { lastError: { code: record.lastError.code, message: record.lastError.message, at: record.lastError.at } }),
    ...(record.cancelRequestedAt !== undefined && { cancelRequestedAt: record.cancelRequestedAt }),
    ...(lost && { workerLost: lost }),
  };
}

function percentComplete(record: JobRecord): number {
  if (record.status === 'succeeded') return 100;
  const { done, total } = record.progress.bytes;
  if (total <= 0) return 0;
  return Math.min(Math.floor((done / total) * 100), 99);
}

/**
 * The rate and ETA of a running job, when its worker measured one recently; nothing otherwise.
 * The ETA counts from when the rate was measured, so it does not drift while nothing is recorded.
 */
function liveRate(record: JobRecord, now: number): Pick<StatusProgress, 'bytesPerSecond' | 'estimatedCompletionAt'> {
  const rate = record.progress.rate;
  if (record.status !== 'running' || !rate) return {};
  const measuredAt = Date.parse(rate.measuredAt);
  if (!(now - measuredAt <= RATE_FRESH_MS)) return {};
  const left = Math.max(record.progress.bytes.total - record.progress.bytes.done, 0);
  const etaMs = rate.bytesPerSecond > 0 ? (left * 1000) / rate.bytesPerSecond : Infinity;
  return {
    bytesPerSecond: rate.bytesPerSecond,
    ...(etaMs <= MAX_ETA_MS && { estimatedCompletionAt: new Date(measuredAt + Math.ceil(etaMs)).toISOString() }),
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
