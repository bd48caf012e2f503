/**
 * The copy error family: a failure of the copy as a whole, saying which side failed and why.
 * Wraps a RegistryError when one is the cause. Callers match on `code`.
 */
import { RegistryError } from '../registry/errors.js';
import { UrlBlobError } from '../registry/url-blob.js';

export type CopyErrorCode =
  /** A target tag exists, points elsewhere, and `force` was not given. */
  | 'TAG_EXISTS'
  /** The source tag, digest or repository does not exist. */
  | 'SOURCE_NOT_FOUND'
  /** Credentials were refused (401) or lack permission (403). */
  | 'AUTH_FAILED'
  /** Bytes did not match their descriptor's digest or size. */
  | 'INTEGRITY'
  /** A target reference that cannot receive this copy (it names another digest). */
  | 'INVALID_TARGET'
  /** A requested platform is not in the source index. */
  | 'PLATFORM_NOT_FOUND'
  /** The source is something Hoist will not copy (schema1, unknown manifest type). */
  | 'UNSUPPORTED_MANIFEST'
  /** A blob's descriptor claims more bytes than the copy's `maxBlobBytes` allows. */
  | 'BLOB_TOO_LARGE'
  /** The source has more manifests than the copy's `maxManifests` allows. */
  | 'TOO_MANY_MANIFESTS'
  /**
   * A non-distributable (foreign) layer could not be had from its URLs, or the target refused a
   * manifest that references one by URL.
   */
  | 'NONDISTRIBUTABLE'
  /** The side's registry (or its token service) has a TLS certificate that did not verify. */
  | 'TLS_VERIFY_FAILED'
  /** Any other registry failure; `cause` has the RegistryError. */
  | 'REGISTRY_ERROR';

export type Side = 'source' | 'target';

export class CopyError extends Error {
  override readonly name = 'CopyError';
  constructor(
    readonly code: CopyErrorCode,
    message: string,
    readonly side?: Side,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Retrying cannot help: fail the job at once. */
  get permanent(): boolean {
    // A layer URL's host may be down for a while: worth another try, unlike a URL that is gone.
    if (this.code === 'NONDISTRIBUTABLE' && this.cause instanceof UrlBlobError) return !this.cause.transient;
    if (this.code !== 'REGISTRY_ERROR') return true;
    return !(this.cause instanceof RegistryError && this.cause.transient);
  }
}

/** Turns a RegistryError met on one side of the copy into a CopyError with the right code. */
export function copyErrorFrom(error: unknown, side: Side): unknown {
  if (!(error instanceof RegistryError)) return error;
  const where = `${side} ${error.reference}`;
  if (error.code === 'TLS_VERIFY_FAILED') return new CopyError('TLS_VERIFY_FAILED', `TLS failed on the ${where}: ${error.message}`, side, { cause: error });
  if (error.status === 401 || error.code === 'UNAUTHORIZED') {
    return new CopyError('AUTH_FAILED', `authentication failed on the ${where}: ${error.message}`, side, { cause: error });
  }
  if (error.status === 403 || error.code === 'DENIED') {
    return new CopyError('AUTH_FAILED', `access denied on the ${where}: ${error.message}`, side, { cause: error });
  }
  if (side === 'source' && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN' || error.status === 404)) {
    return new CopyError('SOURCE_NOT_FOUND', `the source ${error.reference} was not found: ${error.message}`, side, { cause: error });
  }
  if (error.code === 'DIGEST_INVALID' || error.code === 'SIZE_INVALID') {
    return new CopyError('INTEGRITY', `integrity check failed on the ${where}: ${error.message}`, side, { cause: error });
  }
  return new CopyError('REGISTRY_ERROR', `${side} registry error: ${error.message}`, side, { cause: error });
}
