/** Content digests: computing them, and the error for bytes that do not match theirs. */
import { createHash } from 'node:crypto';

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The digest algorithms the OCI image spec registers, which copied blobs are verified with. */
export const VERIFIABLE_ALGORITHMS = ['sha256', 'sha512'];

/** Thrown when bytes do not match their descriptor. */
export class DigestMismatchError extends Error {
  override readonly name = 'DigestMismatchError';
  readonly code = 'DIGEST_INVALID';
  constructor(
    readonly expected: { digest: string; size: number },
    readonly actual: { digest?: string; size: number },
    what: string,
  ) {
    super(
      actual.size !== expected.size
        ? `${what}: expected ${expected.size} bytes, got ${actual.size}`
        : `${what}: expected digest ${expected.digest}, got ${actual.digest}`,
    );
  }
}
