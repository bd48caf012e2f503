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
 * back. A loan of more than a quarter of that size (a blob's shorter last chunk, a blob of a few
 * MiB) is a view of a kept buffer and counts as a whole one; smaller loans (small blobs) are
 * made for the one loan and count as what they are.
 */

/** A borrower waiting for room in the budget, served in turn. */
interface Waiter {
  bytes: number;
  lend: () => void;
}

/** A byte budget of chunk buffers, lent to a copy's uploads and given back once their chunks are answered. */
export class ChunkBufferPool {
  /** Bytes lent and not yet given back, as loans are counted (see `charge`). */
  private lent = 0;
  /** Buffers of `bufferSize` given back, to lend again; their bytes plus `lent` stay within the budget. */
  private readonly free: Buffer[] = [];
  /** What each buffer out on loan counts for, and the kept buffer it is a view of, if any. */
  private readonly loans = new Map<Buffer, { charge: number; kept?: Buffer }>();
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
    const charge = this.charge(bytes);
    if (this.waiters.length === 0 && this.fits(charge)) return Promise.resolve(this.take(bytes));
    return new Promise<Buffer>((resolve, reject) => {
      const waiter: Waiter = {
        bytes: charge,
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

  /** Returns a lent buffer; whoever borrowed it must no longer read or write it. */
  giveBack(buffer: Buffer): void {
    const loan = this.loans.get(buffer);
    if (!loan) throw new Error('ChunkBufferPool: a buffer given back that was not lent, or given back twice');
    this.loans.delete(buffer);
    this.lent -= loan.charge;
    if (loan.kept) this.free.push(loan.kept);
    this.serve();
  }

  /** Lends to waiters in turn while the budget has room (in turn: a big loan is not starved by small ones). */
  private serve(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) this.waiters.shift()!.lend();
  }

  /** What a loan of `bytes` counts for: a whole kept buffer when it is lent one. */
  private charge(bytes: number): number {
    return this.keeps(bytes) ? this.bufferSize : bytes;
  }

  private keeps(bytes: number): boolean {
    return bytes > this.bufferSize / 4 && bytes <= this.bufferSize;
  }

  private fits(charge: number): boolean {
    return this.lent === 0 || this.lent + charge <= this.budget;
  }

  private take(bytes: number): Buffer {
    const charge = this.charge(bytes);
    this.lent += charge;
    let kept: Buffer | undefined;
    if (this.keeps(bytes)) kept = this.free.pop();
    if (!kept) {
      // Kept buffers are memory too: drop those the new one needs room for.
      while (this.free.length > 0 && this.lent + this.free.length * this.bufferSize > this.budget) this.free.pop();
      if (this.keeps(bytes)) kept = Buffer.allocUnsafe(this.bufferSize);
    }
    const buffer = kept ? kept.subarray(0, bytes) : Buffer.allocUnsafe(bytes);
    this.loans.set(buffer, { charge, ...(kept && { kept }) });
    return buffer;
  }
}
