/**
 * How the HTTP functions answer failures: `{"error": {"code", "message", "field"}}` with the status
 * each known error means, including 503 with Retry-After while the job storage is unreachable.
 * Unknown errors are not answered here: the handler rethrows them and the host answers 500 and
 * logs them.
 */
import type { HttpResponseInit } from '@azure/functions';
import { AzureError } from '../azure/errors.js';
import {
  ConcurrencyError,
  ConfigurationError,
  IdempotencyError,
  JobFinishedError,
  JobMayExistError,
  JobNotFoundError,
  RequestError,
  SecretError,
  TagExistsError,
  TargetCheckError,
} from '../jobs/errors.js';

/** A failure decided by the HTTP layer itself: 401, 404, 405, 413, 415. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: {
    code: string;
    message: string;
    field?: string;
    details?: Array<{ code: string; message: string; field?: string }>;
    /** A job the failed request may have left queued (JobMayExistError). */
    jobId?: string;
  };
}

/**
 * The one error body of every error answer (the handlers', the local host's own, the Event Grid
 * webhook's), so a caller parses failures one way whatever answered.
 */
export function errorBody(code: string, message: string, field?: string, extra: Partial<ErrorBody['error']> = {}): ErrorBody {
  return { error: { code, message, ...(field !== undefined && { field }), ...extra } };
}

/** The content type of every JSON answer. */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** A JSON error response. */
export function errorResponse(status: number, code: string, message: string, field?: string, extra: Partial<ErrorBody['error']> = {}, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, jsonBody: errorBody(code, message, field, extra), headers: { 'content-type': JSON_CONTENT_TYPE, ...headers } };
}

/** The response for a known error, or undefined for one the host should see. */
export function responseForError(error: unknown): HttpResponseInit | undefined {
  if (error instanceof HttpError) return errorResponse(error.status, error.code, error.message, error.field, {}, error.headers);
  if (error instanceof RequestError) {
    return errorResponse(400, error.code, error.message, error.field, error.details.length > 0 ? { details: error.details } : {});
  }
  if (error instanceof TagExistsError) {
    return errorResponse(409, error.code, error.message, 'images', { details: error.existing.map((t) => ({ code: 'TAG_EXISTS', message: `${t.reference} points at ${t.digest}`, field: 'images' })) });
  }
  if (error instanceof IdempotencyError) {
    return errorResponse(error.code === 'IDEMPOTENCY_KEY_REUSED' ? 422 : 409, error.code, error.message, 'Idempotency-Key', {}, error.code === 'IDEMPOTENCY_KEY_IN_PROGRESS' ? { 'retry-after': '1' } : {});
  }
  if (error instanceof JobNotFoundError) return errorResponse(404, error.code, error.message, 'id');
  if (error instanceof JobFinishedError) return errorResponse(409, error.code, error.message, 'id');
  // Only a job changing under every attempt gets here (its worker writes it about once a second).
  if (error instanceof ConcurrencyError) return errorResponse(409, error.code, `${error.message}: retry the request`, undefined, {}, { 'retry-after': '1' });
  if (error instanceof TargetCheckError) return errorResponse(502, error.code, error.message);
  if (error instanceof ConfigurationError) return errorResponse(500, error.code, error.message);
  if (error instanceof AzureError) {
    // The registry accepted the identity and refused it a role: retrying cannot help until someone
    // assigns the role, which the message names.
    if (error.code === 'ACR_ROLE_MISSING') return errorResponse(403, error.code, error.message, error.side === 'source' ? 'source' : 'targetRegistry');
    // A resource ID that ARM does not resolve is the request's; anything else is the deployment's or Azure's.
    const requestFault = error.code === 'REGISTRY_RESOURCE_NOT_FOUND' || error.code === 'REGISTRY_RESOURCE_FORBIDDEN';
    return errorResponse(requestFault ? 400 : error.code === 'AZURE_IDENTITY_UNAVAILABLE' ? 500 : 502, error.code, error.message, requestFault ? 'registry' : undefined);
  }
  if (error instanceof SecretError) return errorResponse(500, error.code, error.message);
  if (error instanceof JobMayExistError) {
    if (!isStorageUnavailable(error.cause)) return responseForError(error.cause);
    return errorResponse(
      503,
      'STORAGE_UNAVAILABLE',
      `the job storage cannot be reached right now, and the import may have been queued before it failed, as job ${error.jobId}: GET /api/imports/${error.jobId} says whether it exists (404 when not); if it does, DELETE cancels it, as it may still run; then retry after ${STORAGE_RETRY_AFTER_SECONDS} seconds under a new Idempotency-Key, as the one sent may still name that job`,
      undefined,
      { jobId: error.jobId },
      { 'retry-after': String(STORAGE_RETRY_AFTER_SECONDS) },
    );
  }
  if (isStorageUnavailable(error)) {
    // The SDK's own message names endpoints and sockets: the caller needs only to know to retry.
    return errorResponse(503, 'STORAGE_UNAVAILABLE', `the job storage cannot be reached right now: retry after ${STORAGE_RETRY_AFTER_SECONDS} seconds`, undefined, {}, {
      'retry-after': String(STORAGE_RETRY_AFTER_SECONDS),
    });
  }
  return undefined;
}

/** How long a caller should wait after a storage outage: longer than the SDK's own retries took. */
export const STORAGE_RETRY_AFTER_SECONDS = 10;

/**
 * Whether an error is the storage SDKs' (`RestError` of @azure/core-rest-pipeline, which
 * @azure/data-tables and @azure/storage-queue throw) for a request that got no answer (connection
 * refused, reset, timed out) or a server-side failure. Other RestErrors (404, 409, 412) are the
 * job layer's to interpret and never reach here as such.
 */
function isStorageUnavailable(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== 'RestError') return false;
  const status = (error as { statusCode?: number }).statusCode;
  return status === undefined || status >= 500;
}
