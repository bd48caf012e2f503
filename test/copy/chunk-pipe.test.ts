/**
 * ChunkPipe on its own: chunks stream exactly their bytes from one read of the source, a chunk
 * opened again is read again from the source at its first byte, and a source that sends too
 * little or too much fails the chunk it affects.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { ChunkPipe } from '../../src/copy/chunk-pipe.js';
import { CopyError } from '../../src/copy/errors.js';
import { PROJECT_ROOT, requireBuild } from '../cli/support.js';

async function bytesOf(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** A source over `blob` that counts how often it is opened, from where. */
function sourceOf(blob: Buffer, pieceSize: number) {
  const opened: number[] = [];
  const open = (offset: number): Readable => {
    opened.push(offset);
    const pieces: Buffer[] = [];
    for (let at = offset; at < blob.length; at += pieceSize) pieces.push(blob.subarray(at, Math.min(blob.length, at + pieceSize)));
    return Readable.from(pieces);
  };
  return { opened, open };
}

it('streams chunks one after another from one read of the source', async () => {
  const blob = randomBytes(10_000);
  // Pieces that straddle chunk boundaries.
  const source = sourceOf(blob, 2500);
  const pipe = new ChunkPipe(source.open, 0, source.open(0), blob.length);
  for (let offset = 0; offset < blob.length; offset += 4096) {
    const length = Math.min(4096, blob.length - offset);
    const chunk = pipe.chunk(offset, length);
    expect(chunk.length).toBe(length);
    expect((await bytesOf(chunk.open())).equals(blob.subarray(offset, offset + length))).toBe(true);
  }
  expect(source.opened).toEqual([0]);
});

it('reads a chunk sent again from the source again, from the chunk\'s first byte', async () => {
  const blob = randomBytes(10_000);
  const source = sourceOf(blob, 1000);
  const pipe = new ChunkPipe(source.open, 2000, source.open(2000), blob.length);
  const first = pipe.chunk(2000, 4096);
  expect((await bytesOf(first.open())).equals(blob.subarray(2000, 6096))).toBe(true);
  // The registry said none of it landed: the same bytes again, by a ranged read.
  expect((await bytesOf(first.open())).equals(blob.subarray(2000, 6096))).toBe(true);
  // A resend that breaks off mid-chunk (a 401 answered after part of the body went).
  const second = pipe.chunk(6096, 3904);
  const partial = second.open();
  await new Promise((resolve) => partial.once('data', resolve));
  expect((await bytesOf(second.open())).equals(blob.subarray(6096))).toBe(true);
  expect(partial.destroyed).toBe(true);
  expect(source.opened).toEqual([2000, 2000, 6096]);
});

it('reads the source only as fast as the chunk is sent, never a chunk ahead', async () => {
  // A source that makes its bytes as they are asked for, 16 KiB at a time, and counts them.
  let made = 0;
  const total = 64 * 1024 * 1024;
  const open = (): Readable =>
    new Readable({
      read() {
        made += 16 * 1024;
        this.push(Buffer.alloc(16 * 1024, 1));
      },
    });
  const pipe = new ChunkPipe(open, 0, open(), total);
  const body = pipe.chunk(0, 8 * 1024 * 1024).open();
  // The request has taken one piece and stalls (a slow registry).
  await new Promise((resolve) => body.once('readable', resolve));
  body.read(16 * 1024);
  for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
  // What the streams' own buffers hold, not the 8 MiB chunk (nor the next one).
  expect(made).toBeLessThanOrEqual(256 * 1024);
  // Stopping fails the chunk still streaming with the reason given, as the request sees it.
  const failed = new Promise((resolve) => body.once('error', resolve));
  pipe.stop(new Error('done'));
  expect(body.destroyed).toBe(true);
  expect(await failed).toMatchObject({ message: 'done' });
});

it.each([
  ['too little', ['abcdef'], /sent 6 of the 10 bytes expected/],
  ['too much', ['abcdefghijk'], /more than the 10 bytes expected/],
])('fails the chunk of a source that sends %s with INTEGRITY', async (_case, pieces, message) => {
  const open = (): Readable => Readable.from(pieces.map((p) => Buffer.from(p)));
  const pipe = new ChunkPipe(open, 0, open(), 10);
  const sent: string[] = [];
  let failure: unknown;
  for (const offset of [0, 4, 8]) {
    try {
      sent.push((await bytesOf(pipe.chunk(offset, Math.min(4, 10 - offset)).open())).toString());
    } catch (error) {
      failure = error;
      break;
    }
  }
  // The chunks before the lie are whole; the one it falls in fails.
  expect(sent).toEqual(['abcd', 'efgh'].slice(0, Math.floor(pieces[0]!.length / 4)));
  expect(failure).toBeInstanceOf(CopyError);
  expect(failure).toMatchObject({ code: 'INTEGRITY', side: 'source' });
  expect((failure as Error).message).toMatch(message);
});

it('stops before any chunk was handed out (an upload paused at its first boundary), and stops twice, closing the source', async () => {
  const source = new PassThrough();
  const pipe = new ChunkPipe(() => source, 0, source, 8);
  pipe.stop(new Error('paused'));
  pipe.stop(new Error('paused again'));
  expect(source.destroyed).toBe(true);
});

/** Lets the event loop turn, so a source written later really is later. */
const later = () => new Promise((resolve) => setImmediate(resolve));

it('waits for a source whose bytes come later, as a network read does, and ends a chunk only at its length', async () => {
  const blob = randomBytes(6000);
  const source = new PassThrough();
  const pipe = new ChunkPipe(() => source, 0, source, blob.length);
  const reading = bytesOf(pipe.chunk(0, 4000).open());
  for (let at = 0; at < 4000; at += 1500) {
    await later();
    source.write(blob.subarray(at, Math.min(4000, at + 1500)));
  }
  expect((await reading).equals(blob.subarray(0, 4000))).toBe(true);
  const last = bytesOf(pipe.chunk(4000, 2000).open());
  await later();
  source.end(blob.subarray(4000));
  expect((await last).equals(blob.subarray(4000))).toBe(true);
});

it('fails the last chunk when the source sends more after the blob\'s last byte, not only in the same read', async () => {
  const source = new PassThrough();
  const pipe = new ChunkPipe(() => source, 0, source, 8);
  const reading = bytesOf(pipe.chunk(0, 8).open());
  source.write('abcdefgh');
  await later();
  source.end('i');
  await expect(reading).rejects.toMatchObject({ code: 'INTEGRITY', side: 'source' });
});

it('fails a chunk with the source\'s own error', async () => {
  const source = new PassThrough();
  const pipe = new ChunkPipe(() => source, 0, source, 8);
  const reading = bytesOf(pipe.chunk(0, 4).open());
  source.write('ab');
  source.destroy(new Error('digest mismatch'));
  await expect(reading).rejects.toThrow('digest mismatch');
});

describe('a claimed size that lies', () => {
  // The largest size a manifest can carry, against a 115-byte blob, in chunks as big as a registry
  // may ask for: the pipe's memory must depend on neither. It runs in a worker whose heap is capped
  // far below one chunk, so a pipe that holds a chunk, or grows by the claim, dies of
  // ERR_WORKER_OUT_OF_MEMORY instead of answering.
  it('fails the chunk with INTEGRITY, in a heap of 32 MiB', async () => {
    requireBuild();
    const pipeModule = join(PROJECT_ROOT, 'dist/src/copy/chunk-pipe.js');
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const { Readable } = require('node:stream');
       const { ChunkPipe } = require(${JSON.stringify(pipeModule)});
       (async () => {
         const open = () => Readable.from([Buffer.alloc(115, 1)]);
         const pipe = new ChunkPipe(open, 0, open(), Number.MAX_SAFE_INTEGER);
         const chunk = pipe.chunk(0, 1024 * 1024 * 1024);
         let received = 0;
         const outcome = await (async () => { for await (const piece of chunk.open()) received += piece.length; })().then(() => 'ended', (e) => e.code + ': ' + e.message);
         parentPort.postMessage({ length: chunk.length, received, outcome });
       })().catch((e) => parentPort.postMessage({ error: String(e) }));`,
      { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32 } },
    );
    const answer = await new Promise<unknown>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }).finally(() => worker.terminate());
    expect(answer).toEqual({
      length: 1024 * 1024 * 1024,
      received: 115,
      outcome: `INTEGRITY: the source sent 115 of the ${Number.MAX_SAFE_INTEGER} bytes expected`,
    });
  });
});
