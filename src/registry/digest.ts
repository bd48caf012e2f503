/** Content digests: computing them, and checking streamed bytes against a descriptor. */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

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

/**
 * Passes bytes through while hashing them, and holds back the last piece until the whole digest
 * and size check out. A stream whose bytes are wrong therefore errors before its final byte is
 * sent, and an upload it feeds is never completed.
 */
export class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private size = 0;
  private held?: Buffer;

  constructor(
    private readonly expected: { digest: string; size: number },
    private readonly what: string,
  ) {
    super();
    if (!expected.digest.startsWith('sha256:')) throw new Error(`${what}: only sha256 digests can be verified, got ${expected.digest}`);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.expected.size) {
      callback(new DigestMismatchError(this.expected, { size: this.size }, this.what));
      return;
    }
    this.hash.update(chunk);
    if (this.held) this.push(this.held);
    this.held = chunk;
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const digest = `sha256:${this.hash.digest('hex')}`;
    if (this.size !== this.expected.size || digest !== this.expected.digest) {
      callback(new DigestMismatchError(this.expected, { digest, size: this.size }, this.what));
      return;
    }
    if (this.held) this.push(this.held);
    callback();
  }
}
