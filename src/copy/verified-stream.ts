/**
 * Verifying a blob read from local storage (an OCI layout, memory) the way the registry's
 * BlobStream does: read from its first byte, the bytes are hashed as they pass and the last piece
 * is held back until digest and size check out, so bad bytes never reach the end of a consumer.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { DigestMismatchError, VERIFIABLE_ALGORITHMS } from '../registry/digest.js';

/**
 * `input` from `offset`, verified against `digest` and `size` when `offset` is 0 (bytes before an
 * offset are not read, so cannot be hashed: the reader's writer checks the whole). Errors of
 * `input` pass through `mapError` first, so a store can name a missing file as a missing blob.
 */
export function verifiedStream(input: Readable, blob: { digest: string; size: number; offset: number }, what: string, mapError: (error: Error) => Error = (e) => e): Readable {
  const algorithm = blob.digest.slice(0, blob.digest.indexOf(':'));
  const hash = blob.offset === 0 && VERIFIABLE_ALGORITHMS.includes(algorithm) ? createHash(algorithm) : undefined;
  if (blob.offset === 0 && !hash) throw new Error(`${what}: cannot verify a ${algorithm || 'malformed'} digest`);
  let position = blob.offset;
  let held: Buffer | undefined;
  const mismatch = (digest?: string) => new DigestMismatchError({ digest: blob.digest, size: blob.size }, { digest, size: position }, what);
  const output = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      position += chunk.length;
      if (position > blob.size) return callback(mismatch());
      if (!hash) return callback(null, chunk);
      hash.update(chunk);
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback) {
      if (hash) {
        const digest = `${algorithm}:${hash.digest('hex')}`;
        if (position !== blob.size || digest !== blob.digest) return callback(mismatch(digest));
      } else if (position !== blob.size) {
        return callback(mismatch());
      }
      callback(null, held);
    },
  });
  input.on('error', (error) => output.destroy(mapError(error)));
  output.on('close', () => input.destroy());
  return input.pipe(output);
}
