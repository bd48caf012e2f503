/**
 * The memory a copy's chunked uploads may hold, shared by all of its transfer lanes.
 *
 * A chunk stays in memory until the registry has answered its request (it may have to be resent
 * byte for byte), and each upload fills its next chunk while the current one is out. Given a
 * buffer of its own for both, every lane would hold two chunks whatever the others do: 32 MiB
 * for 4 lanes of 4 MiB chunks, the largest part of a chunked copy's peak RSS. Lanes rarely all
 * read ahead at once (a lane reads ahead only while its request waits for an answer), so the
 * lanes borrow from one byte budget instead, and the budget bounds a copy's chunk memory.
 *
 * Buffers of the pool's usual size are kept and lent again: a buffer lent for long ends up in
 * V8's old generation, where a dead one would wait for a full collection before its memory came
 * back. Other sizes (a blob's shorter last chunk, a small blob) are made for the one loan.
 */

/** A borrower waiting for room in the budget, served in turn. */
interface Waiter {
  bytes: number;
  lend: () => void;
}

/** A byte budget of chunk buffers, lent to a copy's uploads and given back once their chunks are answered. */
export class ChunkBufferPool {
  /** Bytes lent and not yet given back. */
  private lent = 0;
  /** Buffers of `bufferSize` given back, to lend again; their bytes plus `lent` stay within the budget. */
  private readonly free: Buffer[] = [];
  private readonly waiters: Waiter[] = [];

  /**
   * @param budget the bytes lent at most at once (a single loan larger than the whole budget is
   *   lent when nothing else is, so that an upload whose registry asks for bigger chunks still moves)
   * @param bufferSize the usual loan, the copy's chunk size: buffers of this size are kept for reuse
   */
  constructor(
    readonly budget: number,
    readonly bufferSize: number,
  ) {}

  /** A buffer of exactly `bytes`, once the budget has room for it; rejects if `signal` aborts first. */
  lend(bytes: number, signal?: AbortSignal): Promise<Buffer> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0 && this.fits(bytes)) return Promise.resolve(this.take(bytes));
    return new Promise<Buffer>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        lend: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.take(bytes));
        },
      };
      const onAbort = (): void => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(signal?.reason);
        // The one served first may have been waiting behind this one.
        this.serve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Returns a lent buffer; whoever lent it must no longer read or write it. */
  giveBack(buffer: Buffer): void {
    this.lent -= buffer.length;
    if (buffer.length === this.bufferSize) this.free.push(buffer);
    this.serve();
  }

  /** Lends to waiters in turn while the budget has room (in turn: a big loan is not starved by small ones). */
  private serve(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) this.waiters.shift()!.lend();
  }

  private fits(bytes: number): boolean {
    return this.lent === 0 || this.lent + bytes <= this.budget;
  }

  private take(bytes: number): Buffer {
    this.lent += bytes;
    if (bytes === this.bufferSize && this.free.length > 0) return this.free.pop()!;
    // Kept buffers are memory too: drop those the new one needs room for.
    while (this.free.length > 0 && this.lent + this.free.length * this.bufferSize > this.budget) this.free.pop();
    return Buffer.allocUnsafe(bytes);
  }
}
