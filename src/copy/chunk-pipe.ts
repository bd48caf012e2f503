/**
 * A blob's source stream cut into upload chunks that are never held in memory: each chunk's
 * request body is read from the source as the request sends it, through the streams' own small
 * buffers. A chunk that must be sent again (after a 401, or once the registry has said none of it
 * landed) is read from the source again, from the chunk's first byte: the source is reopened at
 * that offset with a ranged read, as an upload resumed by another process reads it. So the memory
 * of an upload is a stream's buffer whatever its chunk size, and whatever size the blob claims.
 *
 * Read in one pass from the blob's first byte, the source verifies the blob itself and holds its
 * last piece back until the digest checks out, so a wrong blob never gets its last chunk sent.
 * Bytes re-read from an offset cannot be hashed here (the bytes before it are gone): the
 * registry's digest check at the closing PUT guards such a blob, as it guards a resumed one.
 */
import { Readable } from 'node:stream';
import { CopyError } from './errors.js';

/** The blob's bytes from `offset` to its end: a fresh read of the source. */
export type OpenSource = (offset: number) => Readable;

/** The bytes of a blob from one offset on, handed out as chunks that stream from the source. */
export class ChunkPipe {
  private source?: Readable;
  /** Blob offset of the next byte to hand out: the first of `pending` when it is set. */
  private position: number;
  /** Bytes read from the source past the end of the chunk they came for: at most one read's worth. */
  private pending?: Buffer;
  private sourceEnded = false;
  private sourceError?: Error;
  /** The one reader waiting for the source to have more, or to end. */
  private waiting?: () => void;
  /** The chunk stream being read: opening another (a resend) ends it. */
  private reading?: Readable;

  /**
   * @param open reads the blob from an offset to its end
   * @param start where the pipe starts in the blob
   * @param first the source already opened at `start` (its GET may be on its way)
   * @param total the size the blob claims; only a claim until its bytes have come
   */
  constructor(
    private readonly open: OpenSource,
    start: number,
    first: Readable,
    private readonly total: number,
  ) {
    this.position = start;
    this.attach(first);
  }

  /** The bytes from `offset` (a chunk's first byte), `length` of them, to send as one request's body. */
  chunk(offset: number, length: number): { length: number; open(): Readable } {
    return { length, open: () => this.read(offset, length) };
  }

  /** Stops reading: the source is closed and a chunk still streaming fails with `reason`. */
  stop(reason: Error): void {
    this.reading?.destroy(reason);
    this.detach();
  }

  private attach(source: Readable): void {
    this.source = source;
    this.sourceEnded = false;
    this.sourceError = undefined;
    // A source given up for a reopened one may still report; only the current one counts.
    source.on('readable', () => {
      if (this.source === source) this.wake();
    });
    source.on('end', () => {
      if (this.source !== source) return;
      this.sourceEnded = true;
      this.wake();
    });
    source.on('error', (error) => {
      if (this.source !== source) return;
      this.sourceError = error;
      this.wake();
    });
  }

  private detach(): void {
    this.source?.destroy();
    this.source = undefined;
    this.pending = undefined;
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }

  /** A stream of `length` bytes from `offset`; the source is reopened there unless it is already there. */
  private read(offset: number, length: number): Readable {
    this.reading?.destroy();
    if (!this.source || this.position !== offset) {
      this.detach();
      this.attach(this.open(offset));
      this.position = offset;
    }
    const source = this.source!;
    let remaining = length;
    const last = offset + length === this.total;
    // Pushes what the source has, up to the chunk's end; with nothing there, waits for it to have
    // more (a read that pushes nothing is not asked again, so the wait must push by itself).
    const pump = (): void => {
      if (stream.destroyed || this.source !== source) return;
      while (remaining > 0) {
        const piece = this.pending ?? (source.read() as Buffer | null);
        this.pending = undefined;
        if (piece === null) {
          if (this.sourceError) stream.destroy(this.sourceError);
          else if (this.sourceEnded) stream.destroy(new CopyError('INTEGRITY', `the source sent ${this.position} of the ${this.total} bytes expected`, 'source'));
          else this.waiting = pump;
          return;
        }
        const part = piece.length > remaining ? piece.subarray(0, remaining) : piece;
        if (part !== piece) this.pending = piece.subarray(remaining);
        remaining -= part.length;
        this.position += part.length;
        if (!stream.push(part) && remaining > 0) return;
      }
      if (last) return endLast();
      stream.push(null);
    };
    // The blob's last chunk ends only with the source: a source that sends more than the blob
    // claims fails it.
    const endLast = (): void => {
      if (stream.destroyed || this.source !== source) return;
      const more = this.pending ?? (source.read() as Buffer | null);
      if (more !== null || this.sourceError) {
        stream.destroy(this.sourceError ?? new CopyError('INTEGRITY', `the source sent more than the ${this.total} bytes expected`, 'source'));
      } else if (this.sourceEnded) {
        stream.push(null);
      } else {
        this.waiting = endLast;
      }
    };
    const stream = new Readable({ read: pump });
    this.reading = stream;
    return stream;
  }
}
