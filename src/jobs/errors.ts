/**
 * The job layer's error family. Each carries a stable `code` that the HTTP layer maps to a status
 * and callers match on; messages say what was wrong and what is accepted.
 */

/** Codes of errors that reject an import request before a job exists (all answered with 400). */
export type RequestErrorCode =
  /** The body is not valid JSON, or not a JSON object. */
  | 'INVALID_JSON'
  /** A field the API does not know. */
  | 'UNKNOWN_FIELD'
  /** A required field is absent. */
  | 'MISSING_FIELD'
  /** A field has the wrong JSON type, or a value outside what is accepted. */
  | 'INVALID_FIELD'
  /** An image reference, repository or registry that breaks the reference grammar. */
  | 'INVALID_REFERENCE'
  /** A platform that is not `os/arch[/variant]`. */
  | 'INVALID_PLATFORM'
  /** More targets than one import may write. */
  | 'TOO_MANY_TARGETS'
  /** A password given without a username (or the reverse). */
  | 'INCOMPLETE_CREDENTIALS'
  /** A malformed `Idempotency-Key` header. */
  | 'INVALID_IDEMPOTENCY_KEY'
  /** A malformed query parameter (`status`, `pageSize`, `continuationToken`). */
  | 'INVALID_QUERY'
  /** A source registry outside HOIST_ALLOWED_SOURCES. */
  | 'SOURCE_NOT_ALLOWED'
  /** A source registry at an address the outbound address policy refuses. */
  | 'ADDRESS_REFUSED'
  /** A source tag or digest its registry says does not exist (checked with one HEAD at submit). */
  | 'SOURCE_NOT_FOUND'
  /** A `targetRegistry` that is not one of HOIST_TARGET_REGISTRY's. */
  | 'TARGET_NOT_ALLOWED';

/** An import request (body, header or query) that is not acceptable; `field` names the culprit. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    readonly code: RequestErrorCode,
    message: string,
    /** The JSON path of the offending field (`images[2]`), header or query parameter name. */
    readonly field?: string,
    /** Every problem found, when there was more than one. */
    readonly details: Array<{ code: RequestErrorCode; message: string; field?: string }> = [],
  ) {
    super(message);
  }
}

/** A target tag exists and the request did not say `force` (az acr import's NoForce). */
export class TagExistsError extends Error {
  override readonly name = 'TagExistsError';
  readonly code = 'TAG_EXISTS';
  constructor(readonly existing: Array<{ reference: string; digest: string }>) {
    const list = existing.map((t) => `${t.reference} (${t.digest})`).join(', ');
    super(`target tag${existing.length > 1 ? 's' : ''} already exist${existing.length > 1 ? '' : 's'}: ${list}; set "force": true to overwrite, or choose other "images"`);
  }
}

export type IdempotencyErrorCode =
  /** The key was used before with a different request body. */
  | 'IDEMPOTENCY_KEY_REUSED'
  /** The first request with this key is still being processed. */
  | 'IDEMPOTENCY_KEY_IN_PROGRESS';

/** An `Idempotency-Key` that cannot be honoured for this request. */
export class IdempotencyError extends Error {
  override readonly name = 'IdempotencyError';
  constructor(
    readonly code: IdempotencyErrorCode,
    message: string,
    /** The job the key belongs to. */
    readonly jobId: string,
  ) {
    super(message);
  }
}

/** No job has this id. */
export class JobNotFoundError extends Error {
  override readonly name = 'JobNotFoundError';
  readonly code = 'NOT_FOUND';
  constructor(readonly jobId: string) {
    super(`no import job has the id "${jobId}"`);
  }
}

/** A job that already succeeded or failed cannot be canceled (HTTP 409). */
export class JobFinishedError extends Error {
  override readonly name = 'JobFinishedError';
  readonly code = 'JOB_FINISHED';
  constructor(
    readonly jobId: string,
    readonly status: string,
    completedAt: string | undefined,
  ) {
    super(`import job ${jobId} already ${status}${completedAt ? ` at ${completedAt}` : ''}: only a queued or running job can be canceled`);
  }
}

/** A conditional write lost: someone changed the entity since it was read (HTTP 412 or 409). */
export class ConcurrencyError extends Error {
  override readonly name = 'ConcurrencyError';
  readonly code = 'CONCURRENT_UPDATE';
  constructor(what: string, options?: { cause?: unknown }) {
    super(`${what} was changed by someone else since it was read`, options);
  }
}

/** This worker no longer holds the job's lease: another invocation owns the job now. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  readonly code = 'LEASE_LOST';
  constructor(readonly jobId: string, readonly owner?: string) {
    super(`the lease on job ${jobId} was lost${owner ? ` to ${owner}` : ''}`);
  }
}

/** A missing or malformed app setting; `setting` names it and the message says what it must hold. */
export class ConfigurationError extends Error {
  override readonly name = 'ConfigurationError';
  readonly code = 'CONFIGURATION_ERROR';
  constructor(readonly setting: string, message: string) {
    super(message);
  }
}

/** Stored credentials could not be decrypted (wrong or rotated HOIST_SECRET_KEY, or tampering). */
export class SecretError extends Error {
  override readonly name = 'SecretError';
  readonly code = 'SECRET_UNREADABLE';
}

/** The no-force pre-check could not ask the target registry whether the tags exist. */
export class TargetCheckError extends Error {
  override readonly name = 'TargetCheckError';
  readonly code = 'TARGET_CHECK_FAILED';
  constructor(registry: string, options: { cause: unknown }) {
    const detail = options.cause instanceof Error ? options.cause.message : String(options.cause);
    const tls = (options.cause as { code?: unknown } | undefined)?.code === 'TLS_VERIFY_FAILED';
    super(`could not check the target registry ${registry} for existing tags: ${detail}${tls ? SERVICE_TLS_ADVICE : ''}`, options);
  }
}

/**
 * What the import service's operator can do about a certificate that did not verify
 * (TLS_VERIFY_FAILED), in the deployment's settings: the registry error's own advice names no surface.
 */
export const SERVICE_TLS_ADVICE =
  ' (the deployment trusts the CAs of HOIST_CA_FILE and NODE_EXTRA_CA_CERTS besides the public ones; HOIST_TLS_SKIP_VERIFY turns verification off for a test registry and its token service)';

/** An entity Azure Tables would refuse (too large, too many properties): a bug to fix, never retried. */
export class EntityTooLargeError extends Error {
  override readonly name = 'EntityTooLargeError';
  readonly code = 'ENTITY_TOO_LARGE';
  constructor(what: string, detail: string) {
    super(`${what} is too large for Azure Tables: ${detail}`);
  }
}

/**
 * A submit whose storage failed once its job's record had been sent, and that could not make
 * sure the job is gone: the record may exist (a table try cut after 1 s can still be applied),
 * and so may its queue message, so the job may run. The answer names it (`jobId`), so its caller
 * can look it up or cancel it rather than meet it unannounced; `cause` is the storage failure.
 */
export class JobMayExistError extends Error {
  override readonly name = 'JobMayExistError';
  readonly code = 'JOB_MAY_EXIST';
  constructor(
    readonly jobId: string,
    options: { cause: unknown },
  ) {
    super(`job ${jobId} may have been recorded before the storage failed`, options);
  }
}
