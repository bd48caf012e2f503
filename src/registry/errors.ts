/**
 * The registry error family: every failed registry call reaches the caller as a RegistryError
 * carrying the spec's error code, the HTTP status, the reference and a sentence on what to do.
 * Callers match on `code`, never on message text.
 */
import type { TlsVerifyError } from './tls.js';

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
  | 'TLS_VERIFY_FAILED'
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
  // Where credentials come from is for the surface showing the error to say (CLI flags, API fields).
  UNAUTHORIZED: 'check the credentials for this registry',
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
  // Which CA bundle or skip-verify setting applies is for the surface to say.
  TLS_VERIFY_FAILED: 'trust the CA that signed the certificate, or (for a test registry only) turn verification off for this host; a retry gets the same certificate',
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

/** Error entries kept from one body: a registry answers with one or two; the rest is noise. */
const MAX_ERROR_ENTRIES = 5;
/** Characters kept of an entry's message: enough for a sentence, too few to carry a page. */
const MAX_ERROR_MESSAGE_CHARS = 200;
/** A spec error code: upper-case letters, digits and '_' (the spec's codes, and vendors'). */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
/** A media type as `type/subtype`, nothing after it. */
const MEDIA_TYPE = /^[\w.+-]{1,64}\/[\w.+-]{1,64}$/;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/**
 * What Hoist keeps of another host's error body, which reaches status documents, logs and
 * terminals. From an OCI error JSON (`{"errors": [{"code", "message", "detail"}]}`), each entry's
 * `code` (when it looks like one) and its `message` with control characters replaced and cut to
 * 200 characters; never `detail`. Any other body (plain text, HTML, Azurite's XML) is not quoted
 * at all: it is summarised by its status and content type.
 *
 * @returns undefined for an empty body.
 */
export function errorDetailsFromBody(status: number, contentType: string | undefined, text: string): RegistryErrorDetail[] | undefined {
  if (text.trim() === '') return undefined;
  const entries = ociErrorEntries(text);
  if (entries) {
    return entries.slice(0, MAX_ERROR_ENTRIES).map((entry) => {
      const code = typeof entry.code === 'string' && ERROR_CODE.test(entry.code) ? entry.code : codeForStatus(status);
      const message = typeof entry.message === 'string' ? cleanMessage(entry.message) : '';
      return message ? { code, message } : { code };
    });
  }
  return [{ code: codeForStatus(status), message: `HTTP ${status} with ${describeBody(contentType)} (not shown)` }];
}

function ociErrorEntries(text: string): Array<{ code?: unknown; message?: unknown }> | undefined {
  try {
    const parsed = JSON.parse(text) as { errors?: unknown } | null;
    if (typeof parsed !== 'object' || parsed === null || !Array.isArray(parsed.errors)) return undefined;
    const entries = parsed.errors.filter((e): e is { code?: unknown; message?: unknown } => typeof e === 'object' && e !== null);
    return entries.length > 0 ? entries : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A setting's value fit to quote in an error: a `user:password@` part (given by mistake in a host
 * list, or in a URL) becomes `***@`, since configuration errors reach logs and start-up output.
 */
export function withoutUserinfo(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#@]*@/i, '$1***@');
}

/**
 * Text from another host or a manifest, fit to show in a message, a log or a terminal: control
 * characters (ANSI escapes among them) and line breaks become spaces, then it is cut to 200
 * characters.
 */
export function cleanMessage(message: string): string {
  const flat = message.replace(CONTROL_CHARACTERS, ' ').replace(/ {2,}/g, ' ').trim();
  return flat.length > MAX_ERROR_MESSAGE_CHARS ? `${flat.slice(0, MAX_ERROR_MESSAGE_CHARS)}…` : flat;
}

/** A body from another host named by its content type alone: `a text/html body`. */
export function describeBody(contentType: string | undefined): string {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mediaType === '') return 'a body of no declared type';
  if (!MEDIA_TYPE.test(mediaType)) return 'a body of a malformed content type';
  return `${/^[aeiou]/.test(mediaType) ? 'an' : 'a'} ${mediaType} body`;
}

/** Where a JSON answer came from, for the error when it is not JSON. */
export interface JsonAnswer {
  status: number;
  method: string;
  /** The answering URL, already redacted. */
  url: string;
  reference: string;
  contentType: string | undefined;
}

/**
 * Parses a registry's JSON answer. One that is not JSON is an UNEXPECTED_RESPONSE naming its
 * content type: JSON.parse's own message would quote the body.
 */
export function parseRegistryJson(text: string, answer: JsonAnswer): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RegistryError({
      code: 'UNEXPECTED_RESPONSE',
      status: answer.status,
      method: answer.method,
      url: answer.url,
      reference: answer.reference,
      details: [{ code: 'UNEXPECTED_RESPONSE', message: `expected JSON, got ${describeBody(answer.contentType)} that does not parse` }],
    });
  }
}

/**
 * The RegistryError for a request refused because its host's certificate did not verify
 * (TLS_VERIFY_FAILED, status 0, not transient), naming the host and the reason.
 */
export function tlsVerifyRegistryError(error: TlsVerifyError, where: { method: string; url: string; reference: string }): RegistryError {
  return new RegistryError({ code: 'TLS_VERIFY_FAILED', status: 0, ...where, cause: error, details: [{ code: error.verifyCode, message: error.message }] });
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
