/**
 * ChunkPipe on its own: chunks hold exactly their bytes, every open() reads them from the first
 * byte (so a resend sends the same bytes, even of a chunk still arriving), a buffer is reused only
 * once released, and a source that sends too little or too much fails the chunks it affects.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { Worker } from 'node:worker_threads';
import { ChunkPipe } from '../../src/copy/chunk-pipe.js';
import { CopyError } from '../../src/copy/errors.js';
import { PROJECT_ROOT, requireBuild } from '../cli/support.js';

async function bytesOf(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

it('cuts a stream into chunks that read the same bytes however often they are opened', async () => {
  const blob = randomBytes(10_000);
  // Pieces that straddle chunk boundaries.
  const pipe = new ChunkPipe(Readable.from([blob.subarray(0, 2500), blob.subarray(2500, 7100), blob.subarray(7100)]), 4096, blob.length);
  expect(pipe.count).toBe(3);
  for (let i = 0; i < pipe.count; i++) {
    const chunk = await pipe.chunk(i);
    const expected = blob.subarray(i * 4096, Math.min(blob.length, (i + 1) * 4096));
    expect(chunk.length).toBe(expected.length);
    expect((await bytesOf(chunk.open())).equals(expected)).toBe(true);
    expect((await bytesOf(chunk.open())).equals(expected)).toBe(true);
    pipe.release(i);
  }
});

it('streams a chunk while it fills, and refills a buffer only once its chunk is released', async () => {
  const source = new PassThrough();
  const pipe = new ChunkPipe(source, 4, 12);
  source.write('ab');
  const first = await pipe.chunk(0);
  const reading = text(first.open());
  source.write('cdefghij');
  expect(await reading).toBe('abcd');
  // Chunk 1 fills into the other buffer; chunk 2 must wait for chunk 0's buffer.
  expect(await text((await pipe.chunk(1)).open())).toBe('efgh');
  let third = false;
  void pipe.chunk(2).then(() => (third = true));
  source.end('kl');
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(third).toBe(false);
  expect(await text(first.open())).toBe('abcd');
  pipe.release(0);
  expect(await text((await pipe.chunk(2)).open())).toBe('ijkl');
});

it.each([
  ['too little', ['abcdef'], /sent 6 of the 10 bytes expected/],
  ['too much', ['abcdefghijk'], /more than the 10 bytes expected/],
])('fails the chunks a source that sends %s leaves unfinished', async (_case, pieces, message) => {
  const pipe = new ChunkPipe(Readable.from(pieces.map((p) => Buffer.from(p))), 4, 10);
  const results = await Promise.allSettled([0, 1, 2].map(async (i) => {
    const chunk = await pipe.chunk(i);
    const bytes = await bytesOf(chunk.open());
    pipe.release(i);
    return bytes.toString();
  }));
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(failures.length).toBeGreaterThan(0);
  for (const failure of failures) {
    expect(failure.reason).toBeInstanceOf(CopyError);
    expect((failure.reason as CopyError).code).toBe('INTEGRITY');
    expect((failure.reason as Error).message).toMatch(message);
  }
});

describe('a claimed size that lies', () => {
  // The largest size a manifest can carry, against a 115-byte blob: the pipe's memory must not
  // depend on the claim. It runs in a worker whose heap is capped far below what one deferred per
  // claimed chunk (2^31 of them at 4 MiB) would need, so a pipe that grows by the claim dies of
  // ERR_WORKER_OUT_OF_MEMORY instead of answering.
  it('fails every chunk asked for with INTEGRITY, in a heap of 32 MiB', async () => {
    requireBuild();
    const pipeModule = join(PROJECT_ROOT, 'dist/src/copy/chunk-pipe.js');
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const { Readable } = require('node:stream');
       const { ChunkPipe } = require(${JSON.stringify(pipeModule)});
       (async () => {
         const pipe = new ChunkPipe(Readable.from([Buffer.alloc(115, 1)]), 4 * 1024 * 1024, Number.MAX_SAFE_INTEGER);
         const first = await pipe.chunk(0);
         const outcomes = [];
         for (const index of [1, 2, pipe.count - 1]) {
           outcomes.push(await pipe.chunk(index).then(() => 'resolved', (e) => e.code + ': ' + e.message));
         }
         parentPort.postMessage({ count: pipe.count, firstLength: first.length, outcomes });
       })().catch((e) => parentPort.postMessage({ error: String(e) }));`,
      { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32 } },
    );
    const answer = await new Promise<unknown>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }).finally(() => worker.terminate());
    expect(answer).toEqual({
      count: Math.ceil(Number.MAX_SAFE_INTEGER / (4 * 1024 * 1024)),
      firstLength: 4 * 1024 * 1024,
      outcomes: Array(3).fill(`INTEGRITY: the source sent 115 of the ${Number.MAX_SAFE_INTEGER} bytes expected`),
    });
  });
});
