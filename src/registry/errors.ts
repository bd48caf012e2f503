/**
 * The registry error family: every failed registry call reaches the caller as a RegistryError
 * carrying the spec's error code, the HTTP status, the reference and a sentence on what to do.
 * Callers match on `code`, never on message text.
 */

/** Error codes from the OCI distribution spec, plus Hoist's own for failures with no registry body. */
export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'NETWORK_ERROR'
  | 'SERVER_ERROR'
  | 'UNEXPECTED_RESPONSE';

/** One entry of the spec's `{"errors": [...]}` body. */
export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

export interface RegistryErrorInit {
  code: RegistryErrorCode | string;
  status: number;
  method: string;
  /** The request URL with any query parameters removed (upload `_state` is a bearer of its own). */
  url: string;
  reference: string;
  details?: RegistryErrorDetail[];
  cause?: unknown;
}

const ADVICE: Record<string, string> = {
  UNAUTHORIZED: 'check the credentials (--src-creds/--dest-creds, HOIST_* variables or ~/.docker/config.json)',
  DENIED: 'the credentials are valid but lack permission: grant pull on the source and push on the target',
  MANIFEST_UNKNOWN: 'check the tag or digest exists in the source repository',
  NAME_UNKNOWN: 'check the repository name and that it exists',
  BLOB_UNKNOWN: 'the registry does not hold that blob; the image may be incomplete upstream',
  TOOMANYREQUESTS: 'the registry is rate limiting: wait and retry, or authenticate for a higher limit',
  DIGEST_INVALID: 'the bytes did not match their digest; the source may be corrupt or the upload was damaged',
  MANIFEST_INVALID: 'the registry refused the manifest; it may not support this media type',
  MANIFEST_BLOB_UNKNOWN: 'a blob the manifest references is missing on the target',
  BLOB_UPLOAD_INVALID: 'the upload session is no longer valid; restart the blob',
  BLOB_UPLOAD_UNKNOWN: 'the upload session is gone; restart the blob',
  NETWORK_ERROR: 'check the registry host is reachable and retry',
  SERVER_ERROR: 'the registry failed; retry later',
  UNSUPPORTED: 'the registry does not support this operation',
};

/** A failed registry request. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: string;
  readonly status: number;
  readonly method: string;
  readonly url: string;
  readonly reference: string;
  readonly details: RegistryErrorDetail[];
  /** What the caller can do about it. */
  readonly advice: string;

  constructor(init: RegistryErrorInit) {
    const advice = ADVICE[init.code] ?? 'see the registry response for details';
    const first = init.details?.[0]?.message;
    const status = init.status ? ` (HTTP ${init.status})` : '';
    super(`${init.code}${status} on ${init.method} ${init.reference}${first ? `: ${first}` : ''}; ${advice}`, { cause: init.cause });
    this.code = init.code;
    this.status = init.status;
    this.method = init.method;
    this.url = init.url;
    this.reference = init.reference;
    this.details = init.details ?? [];
    this.advice = advice;
  }

  /** Worth retrying: throttling, server trouble and dropped connections. */
  get transient(): boolean {
    return this.status === 408 || this.status === 429 || this.status >= 500 || this.code === 'NETWORK_ERROR';
  }
}

/** Maps an HTTP status with no spec error body to the closest spec code. */
export function codeForStatus(status: number): RegistryErrorCode {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 404) return 'NAME_UNKNOWN';
  if (status === 416) return 'RANGE_INVALID';
  if (status === 429) return 'TOOMANYREQUESTS';
  if (status >= 500) return 'SERVER_ERROR';
  return 'UNEXPECTED_RESPONSE';
}
