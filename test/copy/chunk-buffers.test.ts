/**
 * ChunkBufferPool: a copy's chunk memory is bounded by its budget, not by lanes × chunks. Loans
 * are served in turn, given-back buffers are lent again, a cancelled wait leaves the line, and a
 * loan larger than the whole budget still goes out when nothing else is lent.
 */
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { ChunkBufferPool } from '../../src/copy/chunk-buffers.js';
import { ChunkPipe } from '../../src/copy/chunk-pipe.js';

/**
 * Whether `promise` has settled: a settled one's reaction is queued before that of the
 * already-resolved marker, as race() subscribes to it first. Loans and refusals happen
 * synchronously in the pool, so nothing pending is merely late.
 */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending');
  const first = await Promise.race([promise, Promise.resolve(pending)]).catch(() => undefined);
  return first !== pending;
}

/** A chunk size large enough for Buffer.allocUnsafe to give each buffer memory of its own. */
const K = 8192;

describe('ChunkBufferPool', () => {
  it('lends up to its budget, then in turn as buffers come back, lending the same memory again', async () => {
    const pool = new ChunkBufferPool(10 * K, 4 * K);
    const a = await pool.lend(4 * K);
    const b = await pool.lend(4 * K);
    const c = pool.lend(4 * K);
    // 1 byte would fit, but it waits behind the loan asked for first.
    const d = pool.lend(1);
    expect(await settled(c)).toBe(false);
    expect(await settled(d)).toBe(false);
    pool.giveBack(a);
    expect((await c).buffer).toBe(a.buffer);
    expect((await d).length).toBe(1);
    expect(b.length).toBe(4 * K);
  });

  it('lends more than a quarter of its buffer size as a view of a kept buffer, counted as a whole one', async () => {
    const pool = new ChunkBufferPool(8 * K, 4 * K);
    const whole = await pool.lend(4 * K);
    pool.giveBack(whole);
    const tail = await pool.lend(K + 1);
    expect(tail.length).toBe(K + 1);
    expect(tail.buffer).toBe(whole.buffer);
    await pool.lend(4 * K);
    // The 1 KiB + 1 byte counted as 4: nothing more fits, not even a small loan.
    const small = pool.lend(K);
    expect(await settled(small)).toBe(false);
    pool.giveBack(tail);
    expect((await small).length).toBe(K);
  });

  it('refuses a buffer it did not lend, or one given back twice', async () => {
    const pool = new ChunkBufferPool(8, 4);
    const lent = await pool.lend(4);
    pool.giveBack(lent);
    expect(() => pool.giveBack(lent)).toThrow(/not lent, or given back twice/);
    expect(() => pool.giveBack(Buffer.alloc(4))).toThrow(/not lent/);
  });

  it('drops a cancelled wait from the line, and serves the one behind it', async () => {
    const pool = new ChunkBufferPool(8, 4);
    const a = await pool.lend(4);
    // Loans of a quarter of the buffer size or less count as what they are.
    for (let i = 0; i < 3; i++) await pool.lend(1);
    const stop = new AbortController();
    const cancelled = pool.lend(4, stop.signal);
    const behind = pool.lend(1);
    expect(await settled(behind)).toBe(false);
    stop.abort(new Error('stopped'));
    await expect(cancelled).rejects.toThrow('stopped');
    expect((await behind).length).toBe(1);
    // The cancelled loan took nothing: 4 more bytes come once `a` is back.
    const next = pool.lend(4);
    expect(await settled(next)).toBe(false);
    pool.giveBack(a);
    expect((await next).length).toBe(4);
  });

  it('lends a buffer larger than the whole budget once nothing else is lent, and nothing beside it', async () => {
    const pool = new ChunkBufferPool(8, 4);
    const a = await pool.lend(4);
    const big = pool.lend(12);
    expect(await settled(big)).toBe(false);
    pool.giveBack(a);
    const lent = await big;
    expect(lent.length).toBe(12);
    const small = pool.lend(1);
    expect(await settled(small)).toBe(false);
    pool.giveBack(lent);
    expect((await small).length).toBe(1);
  });
});

describe('ChunkPipes sharing a pool', () => {
  it('hold no more chunks than the pool has room for: a third chunk waits for a buffer either gives back', async () => {
    const pool = new ChunkBufferPool(12, 4);
    const first = new ChunkPipe(Readable.from([Buffer.from('abcdefgh')]), 4, 8, pool);
    const second = new ChunkPipe(Readable.from([Buffer.from('ijklmnop')]), 4, 8, pool);
    expect(await text((await first.chunk(0)).open())).toBe('abcd');
    expect(await text((await first.chunk(1)).open())).toBe('efgh');
    expect(await text((await second.chunk(0)).open())).toBe('ijkl');
    const waiting = second.chunk(1);
    expect(await settled(waiting)).toBe(false);
    first.release(0);
    expect(await text((await waiting).open())).toBe('mnop');
    // The buffer went from one pipe to the other only once its chunk was released.
    expect(await text((await first.chunk(1)).open())).toBe('efgh');
  });

  it('give every buffer back when stopped, a wait for one included', async () => {
    const pool = new ChunkBufferPool(4, 4);
    const holder = new ChunkPipe(new PassThrough(), 4, 12, pool);
    const holding = await holder.chunk(0);
    const waiter = new ChunkPipe(new PassThrough(), 4, 12, pool);
    const waited = waiter.chunk(0);
    expect(await settled(waited)).toBe(false);
    waiter.stop(new Error('paused'));
    await expect(waited).rejects.toThrow('paused');
    holder.stop(new Error('done'));
    expect(holding.length).toBe(4);
    // Both stopped pipes gave back what they had: a whole budget is free again.
    expect((await pool.lend(4)).length).toBe(4);
  });
});
