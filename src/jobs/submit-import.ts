/**
 * Submitting an import (`POST /api/imports`): validate, honour the Idempotency-Key, ask the source
 * whether the tag or digest exists (one HEAD, with the job's credentials), make the no-force tag
 * check before anything is queued, record the job with its sealed credentials, and queue it.
 * Nothing here knows about HTTP.
 */
import { createHash } from 'node:crypto';
import type { findExistingTags as FindExistingTags, resolveDigest as ResolveDigest } from '../copy/index.js';
import type { Credentials } from '../registry/credentials.js';
import type { RegistryHosts } from '../registry/hosts.js';
import { parseReference, type Reference } from '../registry/reference.js';
import type { IdentityCredentials } from '../azure/acr-credentials.js';
import { looksLikeResourceId } from '../azure/arm.js';
import { AzureError, explainAcrRefusal } from '../azure/errors.js';
import { ConcurrencyError, ConfigurationError, IdempotencyError, JobMayExistError, RequestError, TagExistsError, TargetCheckError } from './errors.js';
import type { IdempotencyStore } from './idempotency-store.js';
import { parseImportRequest, type ImportRequest } from './import-request.js';
import { resolveImport, storeTarget } from './import-references.js';
import { newJobId } from './job-id.js';
import { checkSource } from './outbound-policy.js';
import type { JobQueue } from './job-queue.js';
import { newJobRecord, type JobRecord } from './job-record.js';
import type { JobStore, Versioned } from './job-store.js';
import type { SecretBox } from './secret-box.js';
import { jobCredentials, redact, sealCredentials } from './source-credentials.js';

/**
 * How long submit waits for the source's answer. The caller is waiting; a source slower than this
 * is left to the worker, which retries.
 */
export const SOURCE_CHECK_TIMEOUT_MS = 5_000;

/**
 * How long submit waits for Resource Manager to name a registry given by resource ID (its Entra
 * token included). The caller is waiting, and without a bound a silent ARM, identity endpoint or
 * proxy would hold the POST until the host's timeout.
 */
export const RESOLVE_REGISTRY_TIMEOUT_MS = 20_000;

/** Longest Idempotency-Key accepted. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/**
 * A claim whose job never appeared is abandoned after this long (the claimant died between the
 * claim and the job insert, two table writes apart) and may be taken over.
 */
const ABANDONED_CLAIM_MS = 60_000;

export interface SubmitImportDeps {
  jobs: JobStore;
  idempotency: IdempotencyStore;
  queue: JobQueue;
  /** The deployment's target registries (HOIST_TARGET_REGISTRY), the default first. */
  targetRegistries: readonly string[];
  /** HOIST_TARGET_USERNAME/PASSWORD, given to whichever of `targetRegistries` a job writes to. */
  targetCredentials?: Credentials;
  /**
   * How registries are reached (the service's settings); the job's credentials are added per
   * request. Its outbound address policy also checks the source at submit.
   */
  hosts: RegistryHosts;
  /** Undefined when HOIST_SECRET_KEY is not set: requests with credentials are then refused. */
  secretBox?: SecretBox;
  findExistingTags: typeof FindExistingTags;
  /**
   * The one HEAD of the source at submit: a manifest the registry says it lacks is refused
   * (SOURCE_NOT_FOUND), and the digest a tag names tells a no-op from a conflict.
   */
  resolveDigest: typeof ResolveDigest;
  /** How the source is reached for that HEAD (default `hosts`): one attempt, not the worker's retries. */
  sourceCheckHosts?: RegistryHosts;
  /** The app's Azure identity, for an ACR target or source the credentials leave without. */
  identity?: IdentityCredentials;
  /**
   * Resolves a registry resource ID to its login server (through ARM, azure/arm.ts); a request
   * naming one is refused without it.
   */
  resolveRegistry?: (resourceId: string, signal: AbortSignal) => Promise<string>;
  /** Bound on `resolveRegistry`. Default {@link RESOLVE_REGISTRY_TIMEOUT_MS}. */
  resolveRegistryTimeoutInMs?: number;
  /** HOIST_ALLOWED_SOURCES: host patterns a source must match; any source when unset. */
  allowedSources?: readonly string[];
  now?: () => Date;
}

export interface SubmitImportOptions {
  /** The `Idempotency-Key` header, if any. */
  idempotencyKey?: string;
  /**
   * The caller has just seen the source manifest it names by digest (a resync's HEAD, a push
   * event): submit asks the source registry nothing more, which would spend the upstream's rate
   * limit twice.
   */
  sourceSeen?: boolean;
}

export interface SubmitImportResult {
  job: JobRecord;
  /** True when the Idempotency-Key named an earlier job, which is returned instead of a new one. */
  replayed: boolean;
}

/**
 * Validates and queues an import. Throws RequestError (400), TagExistsError (409),
 * IdempotencyError (422 reused, 409 in progress), TargetCheckError (502), AzureError (ACR_ROLE_MISSING
 * when the app's identity may not read the target) or ConfigurationError.
 */
export async function submitImport(body: unknown, options: SubmitImportOptions, deps: SubmitImportDeps): Promise<SubmitImportResult> {
  const key = options.idempotencyKey;
  if (key !== undefined) checkIdempotencyKey(key);
  const request = parseImportRequest(body);
  const targetRegistry = chooseTarget(request, deps.targetRegistries);
  // A registry given by resource ID is resolved below, after sealing: that is a network call.
  let resolved = request.registry !== undefined && looksLikeResourceId(request.registry) ? undefined : resolveImport(request, targetRegistry);
  // A password alone is a token (parseImportRequest checked it), sealed with an empty username.
  const credentials = request.password !== undefined ? { username: request.username ?? '', password: request.password } : undefined;
  const now = deps.now ?? (() => new Date());
  const id = newJobId(now());
  // Seal first: a deployment without HOIST_SECRET_KEY refuses credentials before any network call.
  const sealedCredentials = credentials ? sealCredentials(deps.secretBox, id, credentials) : undefined;
  resolved ??= resolveImport(await withLoginServer(request, deps), targetRegistry);
  const fingerprint = requestFingerprint(request, deps.secretBox);

  if (key !== undefined) {
    const earlier = await replayOf(key, fingerprint, deps);
    if (earlier) return { job: earlier, replayed: true };
  }

  await checkSource(resolved.source.registry, deps);
  const sourceCheckHosts = (deps.sourceCheckHosts ?? deps.hosts).withCredentials(
    jobCredentials({ id: `job:${id}:source-check`, sourceRegistry: resolved.source.registry.name, targetRegistry, ...(credentials && { source: credentials }), ...(deps.identity && { identity: deps.identity }) }),
  );
  // Asked while the target is checked (it never rejects); refused only on the registry's own
  // word that it lacks the manifest.
  const seen = options.sourceSeen ? resolved.source.digest : undefined;
  const sourceCheck = seen !== undefined ? Promise.resolve({ kind: 'found' as const, digest: seen }) : checkSourceManifest(resolved.source, sourceCheckHosts, deps);
  const sourceAnswer = async () => {
    const answer = await sourceCheck;
    if (answer.kind === 'missing') {
      throw new RequestError('SOURCE_NOT_FOUND', `the source ${resolved.source.toString()} does not exist: its registry has no manifest ${resolved.source.digest ? 'with that digest' : 'under that tag'} in ${resolved.source.repository}; check the name, tag or digest (and "username"/"password" when it is private)`, 'source');
    }
    return answer;
  };

  if (!request.force) {
    const tagged = resolved.targets.filter((t) => t.tag !== undefined);
    let existing: Array<{ reference: string; digest: string }> = [];
    if (tagged.length > 0) {
      const targetCheckCredentials = jobCredentials({ id: `job:${id}:target-check`, sourceRegistry: resolved.source.registry.name, targetRegistry, ...(deps.targetCredentials && { target: deps.targetCredentials }), ...(deps.identity && { identity: deps.identity }) });
      try {
        existing = await deps.findExistingTags(tagged, deps.hosts.withCredentials(targetCheckCredentials), resolved.source.digest);
      } catch (error) {
        // The app's identity refused even a HEAD: no job could succeed, so say which role it needs now.
        const explained = explainAcrRefusal(error, { source: resolved.source.registry.name, target: targetRegistry }, (registry) => targetCheckCredentials.answeredFor(registry));
        if (explained instanceof AzureError) throw explained;
        const wrapped = new TargetCheckError(targetRegistry, { cause: error });
        wrapped.message = redact(wrapped.message, [deps.targetCredentials?.password]);
        throw wrapped;
      }
    }
    const answer = await sourceAnswer();
    // A tag already at the digest the source tag names is a no-op, not a conflict (the engine
    // skips it); a source that could not be asked leaves that to the worker. A platform subset
    // writes another digest, so there every existing tag conflicts.
    if (resolved.source.digest === undefined && request.platforms.length === 0) {
      existing = answer.kind === 'found' ? existing.filter((e) => e.digest !== answer.digest) : [];
    }
    if (existing.length > 0) throw new TagExistsError(existing);
  } else {
    await sourceAnswer();
  }

  if (key !== undefined) {
    const claim = { jobId: id, fingerprint, createdAt: now().toISOString() };
    if (!(await deps.idempotency.claim(key, claim))) {
      const earlier = await replayOf(key, fingerprint, deps, claim);
      if (earlier) return { job: earlier, replayed: true };
    }
  }

  const record = newJobRecord({
    id,
    source: resolved.source.toString(),
    targets: resolved.targets.map(storeTarget),
    force: request.force,
    platforms: request.platforms,
    referrers: request.referrers,
    ...(request.allowNondistributableArtifacts && { allowNondistributableArtifacts: true }),
    ...(sealedCredentials !== undefined && { sealedCredentials }),
    now: now(),
  });
  let created: Versioned<JobRecord>;
  try {
    created = await deps.jobs.create(record);
  } catch (error) {
    // A cut try may still be applied (tables.ts): the record may exist, without a message, so it
    // never runs, but a caller retrying with the key must not be handed it. It is named in the answer.
    if (!reachedStorage(error)) throw error;
    if (key !== undefined) await deps.idempotency.release(key, id).catch(() => {});
    throw new JobMayExistError(id, { cause: error });
  }
  try {
    await deps.queue.enqueue({ jobId: id, continuation: 0 });
  } catch (error) {
    // The message may still land (a cut call can be applied later), and a job with its message
    // runs: undo the record, so that a message finds no job to run, and a retry (same key or
    // not) starts afresh. When the undo fails too, the job may run: the answer names it.
    const undone = await deps.jobs.delete(id, created.etag).then(
      () => true,
      () => false,
    );
    if (key !== undefined) await deps.idempotency.release(key, id).catch(() => {});
    throw undone || !reachedStorage(error) ? error : new JobMayExistError(id, { cause: error });
  }
  return { job: record, replayed: false };
}

/** Whether a failed call may have been applied: the storage SDKs' RestError (a refusal before sending, such as an entity too large, was not). */
function reachedStorage(error: unknown): boolean {
  return error instanceof Error && error.name === 'RestError';
}

/**
 * The request's `targetRegistry` as the deployment spells it when the deployment lists it (host
 * names are matched whatever their case, as DNS and `az acr import --name` match them), else the
 * first listed; 400 for any other.
 */
export function chooseTarget(request: Pick<ImportRequest, 'targetRegistry'>, targetRegistries: readonly string[]): string {
  if (request.targetRegistry === undefined) return targetRegistries[0];
  const wanted = request.targetRegistry.toLowerCase();
  const listed = targetRegistries.find((registry) => registry.toLowerCase() === wanted);
  if (listed !== undefined) return listed;
  throw new RequestError(
    'TARGET_NOT_ALLOWED',
    `"targetRegistry" "${request.targetRegistry}" is not a registry this service writes to: give one of ${targetRegistries.join(', ')} (HOIST_TARGET_REGISTRY), or leave it out for ${targetRegistries[0]}`,
    'targetRegistry',
  );
}

/**
 * The request with a registry resource ID replaced by its login server, looked up once, here:
 * the job stores the login server, so the worker never sees a resource ID.
 */
async function withLoginServer(request: ImportRequest, deps: SubmitImportDeps): Promise<ImportRequest> {
  if (request.registry === undefined || !looksLikeResourceId(request.registry)) return request;
  if (!deps.resolveRegistry) {
    throw new RequestError('INVALID_FIELD', '"registry" is an Azure resource ID, which this deployment cannot resolve: give the registry login server, such as myregistry.azurecr.io', 'registry');
  }
  let registry: string;
  try {
    registry = await deps.resolveRegistry(request.registry, AbortSignal.timeout(deps.resolveRegistryTimeoutInMs ?? RESOLVE_REGISTRY_TIMEOUT_MS));
  } catch (error) {
    if (error instanceof AzureError || error instanceof ConfigurationError) throw error;
    // ARM unreachable (or refused by the address policy): the caller may retry later.
    throw new AzureError('ARM_ERROR', `Resource Manager could not be asked for ${request.registry}: ${(error as Error).message}`, false, undefined, { cause: error });
  }
  try {
    parseReference(`${registry}/${request.source}`);
  } catch (error) {
    throw new RequestError('INVALID_REFERENCE', `"source" is not valid in ${registry}: ${(error as Error).message}`, 'source');
  }
  return { ...request, registry };
}

/**
 * What the source registry says of the source manifest, from one HEAD bounded by
 * SOURCE_CHECK_TIMEOUT_MS: `found` with its digest, `missing` (404), or `unknown` when it could
 * not be asked (unreachable, slow, refusing the credentials), which the worker then finds out.
 */
async function checkSourceManifest(source: Reference, hosts: RegistryHosts, deps: SubmitImportDeps): Promise<{ kind: 'found'; digest: string } | { kind: 'missing' } | { kind: 'unknown' }> {
  try {
    const digest = await deps.resolveDigest(source, hosts, AbortSignal.timeout(SOURCE_CHECK_TIMEOUT_MS));
    return digest === undefined ? { kind: 'missing' } : { kind: 'found', digest };
  } catch {
    return { kind: 'unknown' };
  }
}

/**
 * The job an earlier request with this key created, when the bodies match. Throws when they do
 * not, or when that request is still in flight. Returns undefined when the key is free, when its
 * claim is abandoned (and no `takeOver` is given yet), or when an abandoned claim was taken over
 * for `takeOver` (the new job's claim).
 */
async function replayOf(
  key: string,
  fingerprint: string,
  deps: SubmitImportDeps,
  takeOver?: { jobId: string; fingerprint: string; createdAt: string },
): Promise<JobRecord | undefined> {
  const claim = await deps.idempotency.get(key);
  if (!claim) {
    if (!takeOver) return undefined;
    // The claim vanished between our insert and this read (its job could not be queued): try once more.
    if (await deps.idempotency.claim(key, takeOver)) return undefined;
    throw new IdempotencyError('IDEMPOTENCY_KEY_IN_PROGRESS', 'another request with this Idempotency-Key is being processed; retry shortly', '');
  }
  if (claim.value.fingerprint !== fingerprint) {
    throw new IdempotencyError(
      'IDEMPOTENCY_KEY_REUSED',
      `this Idempotency-Key was already used for a different request (job ${claim.value.jobId}); use a new key for a new import, or resend the original body`,
      claim.value.jobId,
    );
  }
  const job = await deps.jobs.get(claim.value.jobId);
  if (job) return job.value;
  const age = (deps.now ?? (() => new Date()))().getTime() - Date.parse(claim.value.createdAt);
  if (age > ABANDONED_CLAIM_MS) {
    // Before its own claim, a request only learns the key is free to take: it takes it over
    // once checked, in the call that carries its claim.
    if (!takeOver) return undefined;
    try {
      await deps.idempotency.takeOver(key, claim.etag, takeOver);
      return undefined;
    } catch (error) {
      if (!(error instanceof ConcurrencyError)) throw error;
    }
  }
  throw new IdempotencyError('IDEMPOTENCY_KEY_IN_PROGRESS', `a request with this Idempotency-Key is still being processed (job ${claim.value.jobId}); retry shortly`, claim.value.jobId);
}

/** Keys are 1–255 printable ASCII characters, as in the IETF Idempotency-Key draft's examples. */
function checkIdempotencyKey(key: string): void {
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !/^[\x20-\x7e]+$/.test(key)) {
    throw new RequestError(
      'INVALID_IDEMPOTENCY_KEY',
      `the Idempotency-Key header must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, such as a UUID`,
      'Idempotency-Key',
    );
  }
}

/**
 * Identifies "the same body": the checked request with defaults applied, keys sorted. Keyed with
 * HOIST_SECRET_KEY when set, so the stored fingerprint reveals nothing about a password.
 */
export function requestFingerprint(request: ImportRequest, box: SecretBox | undefined): string {
  const canonical = JSON.stringify(request, Object.keys(request).sort());
  return box ? box.fingerprint(canonical) : createHash('sha256').update(canonical).digest('hex');
}
