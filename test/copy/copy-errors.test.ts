/**
 * The copy error family: which code and side a registry failure becomes, and which failures a
 * worker retries (`permanent`). Retrying a permanent failure wastes a job's attempts; giving up
 * on a transient one fails an import that a later try would finish.
 */
import { CopyError, copyErrorFrom, type Side } from '../../src/copy/errors.js';
import { RegistryError } from '../../src/registry/errors.js';
import { UrlBlobError } from '../../src/registry/url-blob.js';

const registryError = (code: string, status: number) => new RegistryError({ code, status, method: 'GET', url: 'https://r.test/v2/app/manifests/v1', reference: 'r.test/app:v1' });

function mapped(code: string, status: number, side: Side): CopyError {
  const error = copyErrorFrom(registryError(code, status), side);
  expect(error).toBeInstanceOf(CopyError);
  return error as CopyError;
}

describe('copyErrorFrom', () => {
  it.each([
    ['TLS_VERIFY_FAILED', 0, 'target', 'TLS_VERIFY_FAILED', 'TLS failed on the target r.test/app:v1: '],
    ['UNAUTHORIZED', 401, 'source', 'AUTH_FAILED', 'authentication failed on the source r.test/app:v1: '],
    ['UNAUTHORIZED', 400, 'source', 'AUTH_FAILED', 'authentication failed on the source r.test/app:v1: '],
    ['UNKNOWN', 401, 'target', 'AUTH_FAILED', 'authentication failed on the target r.test/app:v1: '],
    ['DENIED', 403, 'target', 'AUTH_FAILED', 'access denied on the target r.test/app:v1: '],
    ['DENIED', 400, 'source', 'AUTH_FAILED', 'access denied on the source r.test/app:v1: '],
    ['UNKNOWN', 403, 'source', 'AUTH_FAILED', 'access denied on the source r.test/app:v1: '],
    ['MANIFEST_UNKNOWN', 404, 'source', 'SOURCE_NOT_FOUND', 'the source r.test/app:v1 was not found: '],
    ['NAME_UNKNOWN', 400, 'source', 'SOURCE_NOT_FOUND', 'the source r.test/app:v1 was not found: '],
    ['MANIFEST_UNKNOWN', 400, 'source', 'SOURCE_NOT_FOUND', 'the source r.test/app:v1 was not found: '],
    ['UNKNOWN', 404, 'source', 'SOURCE_NOT_FOUND', 'the source r.test/app:v1 was not found: '],
    ['MANIFEST_UNKNOWN', 404, 'target', 'REGISTRY_ERROR', 'target registry error: '],
    ['DIGEST_INVALID', 400, 'target', 'INTEGRITY', 'integrity check failed on the target r.test/app:v1: '],
    ['SIZE_INVALID', 400, 'source', 'INTEGRITY', 'integrity check failed on the source r.test/app:v1: '],
    ['UNKNOWN', 500, 'source', 'REGISTRY_ERROR', 'source registry error: '],
  ] as const)('maps %s (HTTP %i) on the %s to %s', (code, status, side, expected, prefix) => {
    const error = mapped(code, status, side);

    expect(error).toMatchObject({ code: expected, side });
    expect(error.cause).toBeInstanceOf(RegistryError);
    expect(error.message).toBe(`${prefix}${(error.cause as Error).message}`);
  });

  it('passes anything but a RegistryError through unchanged', () => {
    const other = new Error('boom');
    expect(copyErrorFrom(other, 'source')).toBe(other);
  });
});

describe('CopyError.permanent', () => {
  it('is true for every code but REGISTRY_ERROR and NONDISTRIBUTABLE', () => {
    for (const code of ['TAG_EXISTS', 'SOURCE_NOT_FOUND', 'AUTH_FAILED', 'INTEGRITY', 'INVALID_TARGET', 'PLATFORM_NOT_FOUND', 'TLS_VERIFY_FAILED'] as const) {
      expect(new CopyError(code, 'x', 'source', { cause: registryError('UNKNOWN', 503) }).permanent, code).toBe(true);
    }
  });

  it('follows the registry failure for REGISTRY_ERROR: throttling, server trouble and dropped connections are retried', () => {
    for (const [status, code, permanent] of [
      [503, 'UNKNOWN', false],
      [429, 'TOOMANYREQUESTS', false],
      [408, 'UNKNOWN', false],
      [0, 'NETWORK_ERROR', false],
      [400, 'UNSUPPORTED', true],
      [404, 'BLOB_UNKNOWN', true],
    ] as const) {
      expect(mapped(code, status, 'target').permanent, `${status} ${code}`).toBe(permanent);
    }
    expect(new CopyError('REGISTRY_ERROR', 'no cause').permanent).toBe(true);
    expect(new CopyError('REGISTRY_ERROR', 'not a registry failure', 'target', { cause: new Error('x') }).permanent).toBe(true);
  });

  it('follows the layer URLs for NONDISTRIBUTABLE: a host in trouble is retried, a missing layer is not', () => {
    expect(new CopyError('NONDISTRIBUTABLE', 'x', 'source', { cause: new UrlBlobError('sha256:1', ['503 from cdn.test'], true) }).permanent).toBe(false);
    expect(new CopyError('NONDISTRIBUTABLE', 'x', 'source', { cause: new UrlBlobError('sha256:1', ['404 from cdn.test'], false) }).permanent).toBe(true);
    expect(new CopyError('NONDISTRIBUTABLE', 'the target refused a foreign layer', 'target').permanent).toBe(true);
  });
});
