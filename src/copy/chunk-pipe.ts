/**
 * A blob's source stream cut into upload chunks whose requests start before the chunks are full.
 *
 * Each chunk fills a reused buffer as the source delivers, and every request for it reads that
 * buffer from the chunk's first byte, waiting for bytes still to come. So a PATCH leaves as soon
 * as its first bytes are in instead of after the whole chunk, and a resend (after a 401, or once
 * the registry has said none of it landed) sends exactly the same bytes. At most two chunks are
 * held: the next one fills while the current one's request is out. Their buffers are borrowed
 * from a ChunkBufferPool (the copy's, shared by its lanes) and given back once the caller has
 * released the chunk (its request answered).
 */
import { Readable } from 'node:stream';
import { ChunkBufferPool } from './chunk-buffers.js';
import { deferred, type Deferred } from './deferred.js';
import { CopyError } from './errors.js';

/** One chunk's bytes as they arrive. `open()` reads them from the first byte. */
export class Chunk {
  private filled = 0;
  private failure?: Error;
  private readonly waiting = new Set<() => void>();

  constructor(
    /** Borrowed from the pipe's pool; given back when the chunk is released. */
    readonly buffer: Buffer,
    readonly length: number,
  ) {}

  /** Copies as much of `piece` (from `from`) as fits; returns how much that was. */
  append(piece: Buffer, from: number): number {
    const copied = piece.copy(this.buffer, this.filled, from, from + Math.min(piece.length - from, this.length - this.filled));
    this.filled += copied;
    this.wake();
    return copied;
  }

  get full(): boolean {
    return this.filled === this.length;
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  /** A stream of the chunk from its first byte; it ends once all `length` bytes have come. */
  open(): Readable {
    let position = 0;
    // Pushes what has come since; with nothing new, waits for `append` (a read that pushes
    // nothing is not asked again, so the wait must push by itself).
    const pump = (): void => {
      if (stream.destroyed) return;
      if (this.failure) {
        stream.destroy(this.failure);
      } else if (position < this.filled) {
        // A view, not a copy: the buffer is lent again only after the caller releases this chunk.
        const view = this.buffer.subarray(position, this.filled);
        position = this.filled;
        stream.push(view);
        if (position === this.length) stream.push(null);
      } else if (position === this.length) {
        stream.push(null);
      } else {
        this.waiting.add(pump);
      }
    };
    const stream = new Readable({ read: pump });
    return stream;
  }

  private wake(): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const resume of waiting) resume();
  }
}

/**
 * Cuts `total` bytes of a source stream into chunks of `size`, each in a buffer borrowed from
 * `buffers`. Its memory is two chunks' buffers and a few objects whatever `total` claims: a
 * descriptor's size is only a claim until the bytes have come.
 */
export class ChunkPipe {
  /**
   * The chunks being filled or still held, at most two. Keyed by index, never an array sized by
   * the count: the count comes from a claimed size, which may be a lie.
   */
  private readonly live = new Map<number, Chunk>();
  /** Chunks the caller asked for before the source reached them; one at a time in practice. */
  private readonly waiting = new Map<number, Deferred<Chunk>>();
  /** Chunks started so far. */
  private started = 0;
  private released = -1;
  private onRelease?: () => void;
  private stopped?: Error;
  /** Why filling ended early; chunks not started by then fail with it when asked for. */
  private failure?: Error;
  /** Ends a wait for a buffer when the pipe is stopped. */
  private readonly stopping = new AbortController();

  /**
   * `total` bytes from `source`, in chunks of `size` (the last may be shorter), in buffers from
   * `buffers`: by default a pool of this pipe's own, of two chunks.
   */
  constructor(
    private readonly source: Readable,
    private readonly size: number,
    private readonly total: number,
    private readonly buffers = new ChunkBufferPool(2 * Math.min(size, total), Math.min(size, total)),
  ) {
    void this.fill();
  }

  get count(): number {
    return Math.ceil(this.total / this.size);
  }

  /** Chunk `index`, as soon as its bytes are coming; rejects if the source fails before. */
  chunk(index: number): Promise<Chunk> {
    const chunk = this.live.get(index);
    if (chunk) return Promise.resolve(chunk);
    if (this.failure && index >= this.started) return Promise.reject(this.failure);
    let slot = this.waiting.get(index);
    if (!slot) this.waiting.set(index, (slot = deferred<Chunk>()));
    return slot.promise;
  }

  /** The caller is done with chunk `index` and those before (its request answered): their buffers go back. */
  release(index: number): void {
    this.released = Math.max(this.released, index);
    for (const [held, chunk] of this.live) {
      if (held > index) continue;
      this.live.delete(held);
      this.buffers.giveBack(chunk.buffer);
    }
    this.onRelease?.();
  }

  /**
   * Stops reading; chunks not yet full fail with `reason`. The caller must hold no chunk any more
   * (no request reading one): every buffer goes back to the pool.
   */
  stop(reason: Error): void {
    this.stopped ??= reason;
    this.source.destroy();
    this.failUnfinished(reason);
    this.stopping.abort(reason);
    for (const chunk of this.live.values()) this.buffers.giveBack(chunk.buffer);
    this.live.clear();
    this.onRelease?.();
  }

  /** A full chunk keeps its bytes (a request may be sending them); the others fail. */
  private failUnfinished(reason: Error): void {
    for (const chunk of this.live.values()) if (!chunk.full) chunk.fail(reason);
  }

  private async fill(): Promise<void> {
    let index = 0;
    let received = 0;
    try {
      let current = await this.start(0);
      for await (const piece of this.source as AsyncIterable<Buffer>) {
        received += piece.length;
        if (received > this.total) throw new CopyError('INTEGRITY', `the source sent more than the ${this.total} bytes expected`, 'source');
        let offset = 0;
        while (offset < piece.length) {
          // Once stopped, the buffers are back in the pool and may be another upload's.
          if (this.stopped) throw this.stopped;
          if (current.full) current = await this.start(++index);
          offset += current.append(piece, offset);
        }
      }
      if (received < this.total) throw new CopyError('INTEGRITY', `the source sent ${received} of the ${this.total} bytes expected`, 'source');
    } catch (error) {
      const failure = this.stopped ?? (error as Error);
      this.failure = failure;
      this.failUnfinished(failure);
      // Chunks the caller waits for that never started fail too; later asks fail in chunk().
      for (const slot of this.waiting.values()) slot.reject(failure);
      this.waiting.clear();
    }
  }

  /**
   * Starts filling chunk `index` once the chunk two before was released and the pool lends a
   * buffer for it.
   */
  private async start(index: number): Promise<Chunk> {
    while (index >= 2 && this.released < index - 2) {
      if (this.stopped) throw this.stopped;
      await new Promise<void>((resolve) => (this.onRelease = resolve));
    }
    if (this.stopped) throw this.stopped;
    const length = Math.min(this.size, this.total - index * this.size);
    const buffer = await this.buffers.lend(length, this.stopping.signal);
    if (this.stopped) {
      // Stopped between the loan and now: stop() gave back only the chunks it knew of.
      this.buffers.giveBack(buffer);
      throw this.stopped;
    }
    const chunk = new Chunk(buffer, length);
    this.live.set(index, chunk);
    this.started = index + 1;
    this.waiting.get(index)?.resolve(chunk);
    this.waiting.delete(index);
    return chunk;
  }
}
