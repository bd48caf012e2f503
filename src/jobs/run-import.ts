/**
 * Running one delivery of an `imports` queue message: take the job's lease, copy within the time
 * budget with checkpoints and live progress, then succeed, fail, or re-queue a continuation.
 * Transient failures throw, so the host retries the message; on the last attempt the job is marked
 * failed first and the host moves the message to `imports-poison`. Nothing here knows about the
 * Functions host beyond the dequeue count.
 */
import type { IdentityCredentials } from '../azure/acr-credentials.js';
import { AzureError, explainAcrRefusal } from '../azure/errors.js';
import { AddressRefusedError } from '../registry/address-policy.js';
import { randomUUID } from 'node:crypto';
import type { copy as Copy } from '../copy/index.js';
import { CopyError } from '../copy/errors.js';
import { parsePlatform } from '../copy/platform.js';
import type { CopyCoordination, CopyResult } from '../copy/types.js';
import type { Credentials } from '../registry/credentials.js';
import type { RegistryHosts } from '../registry/hosts.js';
import { defaultStores } from '../copy/stores.js';
import { RegistryError } from '../registry/errors.js';
import { parseReference } from '../registry/reference.js';
import type { TableCheckpoints } from './checkpoint-store.js';
import { ConfigurationError, EntityTooLargeError, LeaseLostError, RequestError, SecretError, SERVICE_TLS_ADVICE } from './errors.js';
import { loadTarget } from './import-references.js';
import { acquireJobLease, type JobLease } from './job-lease.js';
import { parseJobMessage, type JobQueue } from './job-queue.js';
import { markCanceled, MAX_LISTED_MANIFESTS, type JobFailure, type JobManifest, type JobRecord } from './job-record.js';
import type { JobStore } from './job-store.js';
import { jobEvent, type JobEvent } from './job-events.js';
import { ProgressTracker } from './progress-tracker.js';
import { DEFAULT_MAX_MANIFESTS } from './settings.js';
import type { SecretBox } from './secret-box.js';
import { jobCredentials, openCredentials, redact } from './source-credentials.js';

/** At most one progress write per job per second: enough for a live view, cheap for storage. */
export const PROGRESS_INTERVAL_MS = 1000;

export interface WorkerLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /**
   * A job transition: its line and its structured event. Without it, the line goes to the
   * method of its level.
   */
  event?(level: 'info' | 'warn' | 'error', message: string, event: JobEvent): void;
}

function logEvent(log: WorkerLog, level: 'info' | 'warn' | 'error', message: string, event: JobEvent): void {
  if (log.event) log.event(level, message, event);
  else log[level](message);
}

export interface RunImportDeps {
  jobs: JobStore;
  checkpoints: TableCheckpoints;
  queue: JobQueue;
  copy: typeof Copy;
  /** Serialises racing writers of a tag or a blob across workers (write-locks.ts), per job. */
  coordination?: { forJob(jobId: string): CopyCoordination };
  /** Undefined when HOIST_SECRET_KEY is not set. */
  secretBox?: SecretBox;
  /** The deployment's target credentials, and the registries they are for (HOIST_TARGET_REGISTRY). */
  targetCredentials?: Credentials;
  /** Target credentials go only to these registries; a job queued under another target gets none. */
  targetRegistries?: readonly string[];
  /** The app's Azure identity, for an ACR target or source the credentials leave without. */
  identity?: IdentityCredentials;
  /** How registries are reached (the service's settings, shared by jobs); each job adds its credentials. */
  hosts: RegistryHosts;
  timeBudgetInMs: number;
  /**
   * The host shutting the worker down: like the end of the time budget, the copy pauses at the
   * next chunk boundary and a continuation is queued.
   */
  stopSignal?: AbortSignal;
  leaseDurationInMs: number;
  maxDequeueCount: number;
  chunkSizeInBytes?: number;
  concurrency?: number;
  /** HOIST_MAX_BLOB_BYTES, when set. */
  maxBlobBytes?: number;
  /** HOIST_MAX_MANIFESTS; default DEFAULT_MAX_MANIFESTS (50, as az acr import). */
  maxManifests?: number;
  log: WorkerLog;
  progressIntervalInMs?: number;
  now?: () => number;
}

export interface ImportDelivery {
  /** The queue entry as the trigger delivered it. */
  message: unknown;
  /** The host's dequeue count for this message (1 on first delivery). */
  dequeueCount: number;
  invocationId: string;
  /** When the invocation began (ms since epoch); the time budget counts from here. */
  startedAt?: number;
}

export type ImportOutcome =
  /** Not a job message: dropped. */
  | 'invalid-message'
  /** The job is gone: dropped. */
  | 'missing'
  /** The job had already ended: nothing to do. */
  | 'finished'
  /** A newer continuation exists: this leftover duplicate is dropped. */
  | 'stale'
  /** Another invocation holds the lease: re-queued with a delay. */
  | 'requeued'
  /** The time budget ran out, or the host is shutting down: a continuation was queued. */
  | 'paused'
  | 'succeeded'
  /** Failed for good (a permanent error, or the last attempt). */
  | 'failed'
  /** The lease passed to another invocation mid-copy: this one stopped without writing. */
  | 'lease-lost'
  /** Canceled (`DELETE /api/imports/{id}`) while it ran: stopped at a chunk boundary, no tag written. */
  | 'canceled';

/**
 * Handles one delivery. Resolves with what happened; throws (after recording the error on the
 * job) when the host should retry, including on the last attempt so the message reaches poison.
 */
export async function runImport(delivery: ImportDelivery, deps: RunImportDeps): Promise<ImportOutcome> {
  const now = deps.now ?? Date.now;
  const startedAt = delivery.startedAt ?? now();
  const { log } = deps;
  const message = parseJobMessage(delivery.message);
  if (!message) {
    log.error('dropping a queue message that is not a job message ({"jobId","continuation"})');
    return 'invalid-message';
  }
  const owner = `${delivery.invocationId}/${randomUUID()}`;
  const outcome = await acquireJobLease(deps.jobs, message.jobId, {
    owner,
    durationInMs: deps.leaseDurationInMs,
    continuation: message.continuation,
    dequeueCount: delivery.dequeueCount,
    now,
    onRenewalError: (error) => log.warn(`job ${message.jobId}: lease renewal failed, will retry: ${errorText(error)}`),
  });
  switch (outcome.kind) {
    case 'missing':
      log.warn(`job ${message.jobId}: no such job, dropping its message`);
      return 'missing';
    case 'finished':
      // A cancel that found nobody holding the job ends it here: its end goes out as telemetry.
      if (outcome.canceled) logEvent(log, 'info', `job ${message.jobId}: canceled while no worker held it`, jobEvent(outcome.canceled, 'canceled', 'canceled', now(), { continuation: message.continuation, dequeueCount: delivery.dequeueCount }));
      else log.info(`job ${message.jobId}: already ${outcome.status}`);
      return 'finished';
    case 'stale':
      log.info(`job ${message.jobId}: message for continuation ${message.continuation} superseded by ${outcome.continuation}, dropping it`);
      return 'stale';
    case 'held': {
      const delayInSeconds = Math.ceil(outcome.retryAfterMs / 1000) + 1;
      await deps.queue.enqueue(message, { delayInSeconds });
      const text = `job ${message.jobId}: leased by ${outcome.owner}, re-queued to try again in ${delayInSeconds} s`;
      if (outcome.record) logEvent(log, 'info', text, jobEvent(outcome.record, 'requeued', outcome.record.status, now(), { continuation: message.continuation, dequeueCount: delivery.dequeueCount }));
      else log.info(text);
      return 'requeued';
    }
    case 'acquired':
      break;
  }

  const lease = outcome.lease;
  const job = lease.record;
  const secrets: Array<string | undefined> = [deps.targetCredentials?.password];
  const tracker = new ProgressTracker(job.progress, now);
  const progress = new ProgressWriter(lease, tracker, deps.progressIntervalInMs ?? PROGRESS_INTERVAL_MS, log);
  lease.startRenewal();
  const where = { continuation: message.continuation, dequeueCount: delivery.dequeueCount };
  logEvent(log, 'info', `job ${job.id}: attempt ${job.attempts}, continuation ${message.continuation}, delivery ${delivery.dequeueCount}`, jobEvent(job, 'started', 'running', now(), where));
  /** Names the role an Azure identity lacks when a side refused it. */
  let explain = (error: unknown): unknown => error;
  try {
    const sourceCredentials = job.sealedCredentials ? openCredentials(deps.secretBox, job.id, job.sealedCredentials) : undefined;
    secrets.push(sourceCredentials?.password);
    const source = parseReference(job.source);
    const targets = job.targets.map(loadTarget);
    const targetRegistry = targets[0].registry.name;
    const targetCredentials = deps.targetCredentials && (deps.targetRegistries === undefined || deps.targetRegistries.includes(targetRegistry)) ? deps.targetCredentials : undefined;
    const credentials = jobCredentials({
      id: `job:${job.id}`,
      sourceRegistry: source.registry.name,
      targetRegistry,
      ...(sourceCredentials && { source: sourceCredentials }),
      ...(targetCredentials && { target: targetCredentials }),
      ...(deps.identity && { identity: deps.identity }),
    });
    explain = (error) => explainAcrRefusal(error, { source: source.registry.name, target: targetRegistry }, (registry) => credentials.answeredFor(registry));
    const hosts = deps.hosts.withCredentials(credentials);
    const result = await deps.copy(
      {
        source,
        targets,
        force: job.force,
        referrers: job.referrers,
        ...(job.platforms.length > 0 && { platforms: job.platforms.map(parsePlatform) }),
        ...(job.allowNondistributableArtifacts && { allowNondistributableArtifacts: true }),
      },
      {
        hosts,
        stores: defaultStores(hosts),
        uploadMode: 'chunked',
        checkpoints: deps.checkpoints.forJob(job.id),
        abortSignal: AbortSignal.any([lease.signal, lease.cancelSignal, ...(deps.stopSignal ? [deps.stopSignal] : [])]),
        timeBudgetInMs: Math.max(deps.timeBudgetInMs - (now() - startedAt), 1),
        onProgress: (event) => {
          tracker.apply(event);
          progress.poke();
        },
        ...(deps.chunkSizeInBytes !== undefined && { chunkSizeInBytes: deps.chunkSizeInBytes }),
        ...(deps.concurrency !== undefined && { concurrency: deps.concurrency }),
        ...(deps.maxBlobBytes !== undefined && { maxBlobBytes: deps.maxBlobBytes }),
        maxManifests: deps.maxManifests ?? DEFAULT_MAX_MANIFESTS,
        ...(deps.coordination && { coordination: releasedOnCancel(deps.coordination.forJob(job.id), lease) }),
      },
    );
    await progress.stop();
    if (lease.lost) {
      log.warn(`job ${job.id}: lease lost mid-copy; stopped without writing`);
      return 'lease-lost';
    }
    if (result.status === 'paused' && lease.cancelRequested) return await endCanceled(lease, tracker, deps, now, where);
    if (result.status === 'paused') {
      // A spent budget pauses the engine only once the call has moved a chunk, and ends a wait for
      // another job's blob lock only after the engine's MIN_LOCK_WAIT_IN_MS; only an abort (lease
      // lost, shutdown) pauses it sooner. So a continuation moves something or waits its turn.
      await lease.release((j) => {
        j.progress = tracker.snapshot();
        recordResolved(j, tracker);
      });
      await deps.queue.enqueue({ jobId: job.id, continuation: message.continuation + 1 });
      const why = deps.stopSignal?.aborted ? 'the host is shutting down' : 'time budget used';
      logEvent(log, 'info', `job ${job.id}: ${why}, continuation ${message.continuation + 1} queued`, jobEvent(job, 'paused', 'running', now(), { ...where, bytes: tracker.snapshot().bytes.done }));
      return 'paused';
    }
    await lease.release((j) => recordSuccess(j, result, tracker, new Date(now()).toISOString()));
    await removeCheckpoints(deps, job.id);
    const succeeded = jobEvent(job, 'succeeded', 'succeeded', now(), { ...where, bytes: tracker.snapshot().bytes.done });
    logEvent(log, 'info', `job ${job.id}: succeeded (${result.manifests.length} manifests, ${result.bytes.moved} bytes moved)`, succeeded);
    return 'succeeded';
  } catch (caught) {
    const error = explain(caught);
    await progress.stop();
    if (error instanceof LeaseLostError || lease.lost) {
      log.warn(`job ${job.id}: lease lost mid-copy; stopped without writing`);
      return 'lease-lost';
    }
    // Whatever stopped the copy, the caller asked for it to stop: canceled, not failed.
    if (lease.cancelRequested) return await endCanceled(lease, tracker, deps, now, where);
    const failure = describeFailure(error, secrets);
    const lastAttempt = delivery.dequeueCount >= deps.maxDequeueCount;
    if (isPermanent(error) || lastAttempt) {
      const final = lastAttempt && !isPermanent(error) ? { ...failure, message: `${failure.message} (gave up after ${delivery.dequeueCount} attempts)` } : failure;
      await lease.release((j) => recordFailure(j, final, tracker, new Date(now()).toISOString())).catch((recordError: unknown) => {
        // The host only sees the recording error: the one that failed the job must not be lost.
        log.error(`job ${job.id}: failed: ${final.code}: ${final.message}; recording the failure failed too: ${errorText(recordError, secrets)}`);
        throw recordError;
      });
      await removeCheckpoints(deps, job.id);
      logEvent(log, 'error', `job ${job.id}: failed: ${final.code}: ${final.message}`, jobEvent(job, 'failed', 'failed', now(), { ...where, bytes: tracker.snapshot().bytes.done, errorCode: final.code }));
      if (isPermanent(error)) return 'failed';
      // The host moves the message to imports-poison once this last attempt throws.
      throw new Error(`job ${job.id} failed on its last attempt: ${final.code}: ${final.message}`);
    }
    await lease
      .release((j) => {
        j.progress = tracker.snapshot();
        recordResolved(j, tracker);
        j.lastError = { ...failure, at: new Date(now()).toISOString() };
      })
      .catch((releaseError: unknown) => log.warn(`job ${job.id}: could not record the error: ${errorText(releaseError, secrets)}`));
    logEvent(log, 'warn', `job ${job.id}: attempt failed, the host will retry: ${failure.code}: ${failure.message}`, jobEvent(job, 'retrying', 'running', now(), { ...where, bytes: tracker.snapshot().bytes.done, errorCode: failure.code }));
    throw new Error(`job ${job.id}: ${failure.code}: ${failure.message}`);
  } finally {
    lease.stopRenewal();
  }
}

/** Errors no retry can fix: the job fails at once. */
function isPermanent(error: unknown): boolean {
  if (error instanceof CopyError) return error.permanent;
  // A record too large for Azure Tables stays too large: retrying would only repeat the copy.
  if (error instanceof AzureError) return error.permanent;
  return error instanceof SecretError || error instanceof ConfigurationError || error instanceof RequestError || error instanceof EntityTooLargeError || error instanceof AddressRefusedError;
}

/**
 * The longest failure message a job records. Messages quote text from registries and manifests
 * (URLs, annotations); unbounded, one would push the job record past Azure Tables' limits, and
 * the job could not be recorded as failed at all.
 */
export const MAX_FAILURE_MESSAGE_LENGTH = 2_000;

/** A job failure from an error: its stable code and a bounded message with every secret removed. */
export function describeFailure(error: unknown, secrets: Array<string | undefined>): JobFailure {
  if (error instanceof CopyError || error instanceof AzureError || error instanceof RegistryError || error instanceof SecretError || error instanceof ConfigurationError || error instanceof RequestError || error instanceof AddressRefusedError) {
    return { code: error.code, message: bounded(redact(error.message + apiAdvice(error), secrets)) };
  }
  return { code: 'INTERNAL_ERROR', message: bounded(redact(`unexpected error: ${errorText(error)}`, secrets)) };
}

function bounded(message: string): string {
  if (message.length <= MAX_FAILURE_MESSAGE_LENGTH) return message;
  return `${message.slice(0, MAX_FAILURE_MESSAGE_LENGTH)}… (message cut: ${message.length} characters in all)`;
}

/** What the API's caller can do about a copy error, in the API's words; the engine's messages name no surface. */
function apiAdvice(error: Error): string {
  if (!(error instanceof CopyError)) return '';
  if (error.code === 'TAG_EXISTS') return '; set "force": true in the import request to overwrite it';
  if (error.code === 'TLS_VERIFY_FAILED') return SERVICE_TLS_ADVICE;
  if (error.code === 'AUTH_FAILED' && error.side === 'source') return ' (the source credentials are the request\'s "username" and "password")';
  if (error.code === 'AUTH_FAILED' && error.side === 'target') return ' (the target credentials are the deployment\'s HOIST_TARGET_USERNAME and HOIST_TARGET_PASSWORD)';
  return '';
}

function errorText(error: unknown, secrets: Array<string | undefined> = []): string {
  return redact(error instanceof Error ? error.message : String(error), secrets);
}

/** What the job learnt while copying: the resolved source, and the layers left referenced by URL. */
function recordResolved(job: JobRecord, tracker: ProgressTracker): void {
  if (tracker.external.length > 0) job.externalBlobs = [...tracker.external];
  if (!tracker.resolved) return;
  job.sourceDigest = tracker.resolved.digest;
  job.sourceMediaType = tracker.resolved.mediaType;
}

function recordSuccess(job: JobRecord, result: CopyResult, tracker: ProgressTracker, at: string): void {
  recordResolved(job, tracker);
  job.status = 'succeeded';
  job.sourceDigest = result.sourceDigest;
  job.sourceMediaType = result.plan.mediaType;
  job.targetDigest = result.targetDigest;
  // Every manifest of the import, each once: those this job wrote, and those the target already had.
  const written = new Set(result.manifests.map((m) => m.digest));
  const manifests = new Map<string, JobManifest>();
  for (const m of [...result.plan.manifests, ...result.manifests]) {
    if (manifests.has(m.digest)) continue;
    const attestationFor = 'attestationFor' in m ? m.attestationFor : undefined;
    manifests.set(m.digest, { digest: m.digest, mediaType: m.mediaType, ...(m.platform !== undefined && { platform: m.platform }), ...(attestationFor !== undefined && { attestationFor }), written: written.has(m.digest) });
  }
  // Listed up to a bound, counted in full: a huge index must not outgrow the job entity.
  const all = [...manifests.values()];
  job.manifests = all.slice(0, MAX_LISTED_MANIFESTS);
  job.manifestCounts = { total: all.length, written: all.filter((m) => m.written).length };
  job.targets = job.targets.map((t) => {
    const written = result.targets.find((r) => r.reference === t.reference || r.reference === `${t.reference}@${r.digest}`);
    return { ...t, digest: written?.digest ?? result.targetDigest, ...(written && t.tagged && { written: written.written }) };
  });
  job.progress = tracker.complete(result);
  job.completedAt = at;
  delete job.error;
  delete job.sealedCredentials;
}

function recordFailure(job: JobRecord, failure: JobFailure, tracker: ProgressTracker, at: string): void {
  job.status = 'failed';
  job.error = failure;
  job.progress = tracker.snapshot();
  recordResolved(job, tracker);
  job.completedAt = at;
  delete job.sealedCredentials;
}

/**
 * The job's coordination, but a blob upload paused by a cancel lets go of its lock: with no
 * continuation to keep it for, another job's upload of that blob would wait for it to expire.
 */
function releasedOnCancel(coordination: CopyCoordination, lease: JobLease): CopyCoordination {
  return {
    lockTag: (tag, shouldStop) => coordination.lockTag(tag, shouldStop),
    lockBlob: async (target, digest, shouldStop) => {
      const lock = await coordination.lockBlob(target, digest, shouldStop);
      return lock && { ...lock, keepForResume: () => (lease.cancelRequested ? lock.release() : lock.keepForResume()) };
    },
  };
}

/**
 * Ends a job canceled while it ran: the copy stopped at a chunk boundary before any tag it had
 * not written, so the job records its progress and `canceled`, and queues no continuation.
 */
async function endCanceled(lease: JobLease, tracker: ProgressTracker, deps: RunImportDeps, now: () => number, where: { continuation: number; dequeueCount: number }): Promise<ImportOutcome> {
  const job = lease.record;
  const jobId = job.id;
  await lease.release((j) => {
    j.progress = tracker.snapshot();
    delete j.progress.rate;
    recordResolved(j, tracker);
    markCanceled(j, new Date(now()).toISOString());
  });
  await removeCheckpoints(deps, jobId);
  // Its `started` went out as telemetry: so does its end, or the job looks as if it never ended.
  logEvent(deps.log, 'info', `job ${jobId}: canceled; stopped at a chunk boundary`, jobEvent(job, 'canceled', 'canceled', now(), { ...where, bytes: tracker.snapshot().bytes.done }));
  return 'canceled';
}

async function removeCheckpoints(deps: RunImportDeps, jobId: string): Promise<void> {
  try {
    await deps.checkpoints.removeJob(jobId);
  } catch (error) {
    deps.log.warn(`job ${jobId}: could not remove its checkpoints: ${errorText(error)}`);
  }
}

/**
 * Writes progress to the job at most once per interval while the copy runs: the first change at
 * once, later ones when the interval has passed. A lost lease aborts the copy (through the lease's
 * signal); other write failures are logged and retried with the next change.
 */
class ProgressWriter {
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly lease: JobLease,
    private readonly tracker: ProgressTracker,
    private readonly intervalInMs: number,
    private readonly log: WorkerLog,
  ) {}

  poke(): void {
    if (this.stopped || this.timer) return;
    const wait = Math.max(this.last + this.intervalInMs - Date.now(), 0);
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.stopped || !this.tracker.takeChanged()) return;
    this.last = Date.now();
    this.pending = this.lease
      .update((job) => {
        job.progress = this.tracker.snapshot();
        recordResolved(job, this.tracker);
      })
      .catch((error: unknown) => {
        if (!(error instanceof LeaseLostError)) this.log.warn(`job progress write failed: ${errorText(error)}`);
      });
  }

  /** Stops writing and waits for a write in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.pending;
  }
}
