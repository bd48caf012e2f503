/**
 * What BlobStream checks, with its GETs scripted: a blob read from the start is verified (digest
 * and size, the last piece held back until both hold); a resumed read must get a 206 starting
 * where it asked; a dropped body is asked for again from where it stopped, a bounded number of
 * times, and only for errors worth it. blob-stream.test.ts runs it against a real registry.
 */
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { BlobStream } from '../../src/registry/blob-stream.js';
import { sha256, DigestMismatchError } from '../../src/registry/digest.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { ResponseBody } from '../../src/registry/http.js';
import type { TransportResponse } from '../../src/registry/transport.js';

const BLOB = Buffer.from('0123456789abcdefghij');
const DIGEST = sha256(BLOB);
const URL_ = new URL(`http://registry.test/v2/app/blobs/${DIGEST}`);

/** A body that gives `parts` and then ends, or fails with `end`. */
function body(parts: Buffer[], end: 'end' | Error = 'end'): ResponseBody {
  let next = 0;
  const stream = new Readable({
    read() {
      if (next < parts.length) this.push(parts[next++]);
      else if (end === 'end') this.push(null);
      else this.destroy(end);
    },
  });
  return Object.assign(stream, { dump: () => Promise.resolve(void stream.resume()) });
}

const reset = () => Object.assign(new Error('socket reset'), { code: 'ECONNRESET' });

/** A BlobStream whose GETs are answered by `answers`, in turn; records the headers each was sent. */
function blobStream(answers: TransportResponse[], options: { digest?: string; size?: number; offset?: number; maxResumes?: number; signal?: AbortSignal } = {}) {
  const sent: Record<string, string>[] = [];
  const stream = new BlobStream({
    get: (headers) => {
      sent.push(headers);
      const answer = answers.shift();
      return answer ? Promise.resolve(answer) : Promise.reject(new Error('no more answers scripted'));
    },
    digest: options.digest ?? DIGEST,
    size: options.size ?? BLOB.length,
    offset: options.offset ?? 0,
    reference: `registry.test/app@${DIGEST}`,
    maxResumes: options.maxResumes ?? 3,
    ...(options.signal && { signal: options.signal }),
  });
  return { stream, sent };
}

const ok = (parts: Buffer[], end?: 'end' | Error): TransportResponse => ({ status: 200, headers: {}, body: body(parts, end), url: URL_ });
const partial = (start: number, parts: Buffer[], end?: 'end' | Error): TransportResponse => ({ status: 206, headers: { 'content-range': `bytes ${start}-${BLOB.length - 1}/${BLOB.length}` }, body: body(parts, end), url: URL_ });

/** Everything the stream hands on (in flowing mode, so nothing buffered is lost to an error), and how it ended. */
function drain(stream: Readable): Promise<{ bytes: Buffer; error?: Error }> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ bytes: Buffer.concat(chunks) }));
    stream.on('error', (error) => resolve({ bytes: Buffer.concat(chunks), error }));
  });
}

describe('read from the start', () => {
  it('hands on the blob when its digest and size hold, from one GET without a Range', async () => {
    const { stream, sent } = blobStream([ok([BLOB.subarray(0, 7), BLOB.subarray(7, 15), BLOB.subarray(15)])]);
    expect(await drain(stream)).toEqual({ bytes: BLOB });
    expect(sent).toEqual([{}]);
  });

  it('holds the last piece back when the bytes hash to another digest', async () => {
    const wrong = Buffer.from(BLOB);
    wrong[19] = 0x21;
    const { stream } = blobStream([ok([wrong.subarray(0, 10), wrong.subarray(10)])]);
    const { bytes, error } = await drain(stream);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(error!.message).toBe(`blob registry.test/app@${DIGEST}: expected digest ${DIGEST}, got ${sha256(wrong)}`);
    expect(bytes.equals(wrong.subarray(0, 10))).toBe(true);
  });

  it('fails at the first byte past the size, before hashing on', async () => {
    const { stream } = blobStream([ok([BLOB.subarray(0, 10), Buffer.concat([BLOB.subarray(10), Buffer.from('!')]), Buffer.from('more')])]);
    const { bytes, error } = await drain(stream);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(error!.message).toBe(`blob registry.test/app@${DIGEST}: expected 20 bytes, got 21`);
    expect(bytes.length).toBe(0);
  });

  it('fails a body that ends short', async () => {
    const { stream } = blobStream([ok([BLOB.subarray(0, 12)])]);
    const { bytes, error } = await drain(stream);
    expect(error!.message).toBe(`blob registry.test/app@${DIGEST}: expected 20 bytes, got 12`);
    expect(bytes.length).toBe(0);
  });

  it('reads an empty blob', async () => {
    const { stream, sent } = blobStream([ok([])], { digest: sha256(Buffer.alloc(0)), size: 0 });
    expect(await drain(stream)).toEqual({ bytes: Buffer.alloc(0) });
    expect(sent).toHaveLength(1);
  });

  it.each([
    ['md5:abc', 'cannot verify a md5 digest'],
    [':abc', 'cannot verify a malformed digest'],
  ])('refuses a digest it cannot verify (%s)', (digest, message) => {
    expect(() => blobStream([], { digest })).toThrow(`blob registry.test/app@${DIGEST}: ${message}`);
  });
});

describe('read from an offset', () => {
  it('asks for the rest with Range, and leaves the digest to the registry at PUT', async () => {
    const { stream, sent } = blobStream([partial(5, [Buffer.from('not these bytes')])], { offset: 5 });
    expect((await drain(stream)).bytes.toString()).toBe('not these bytes');
    expect(sent).toEqual([{ range: 'bytes=5-' }]);
  });

  it('even with a digest it could not verify', async () => {
    const { stream } = blobStream([partial(5, [BLOB.subarray(5)])], { offset: 5, digest: 'md5:abc' });
    expect((await drain(stream)).bytes.equals(BLOB.subarray(5))).toBe(true);
  });

  it('fails at the first byte past the size, handing on none of that piece', async () => {
    const { stream } = blobStream([partial(5, [BLOB.subarray(5, 10), Buffer.concat([BLOB.subarray(10), Buffer.from('!')]), Buffer.from('more')])], { offset: 5 });
    const { bytes, error } = await drain(stream);
    expect(error!.message).toBe(`blob registry.test/app@${DIGEST}: expected 20 bytes, got 21`);
    expect(bytes.equals(BLOB.subarray(5, 10))).toBe(true);
  });

  it('asks nothing when the offset is already the size', async () => {
    const { stream, sent } = blobStream([], { offset: BLOB.length });
    expect(await drain(stream)).toEqual({ bytes: Buffer.alloc(0) });
    expect(sent).toEqual([]);
  });

  it.each<[string, TransportResponse, string]>([
    ['a 200', ok([BLOB]), 'asked for bytes from 5, got status 200 without Content-Range'],
    ['a 206 from elsewhere', { ...partial(0, [BLOB]), headers: { 'content-range': 'bytes 0-19/20' } }, 'asked for bytes from 5, got bytes 0-19/20'],
    ['a 206 with a malformed range', { ...partial(5, [BLOB]), headers: { 'content-range': 'x bytes 5-19/20' } }, 'asked for bytes from 5, got x bytes 5-19/20'],
    ['a 206 without Content-Range', { ...partial(5, [BLOB]), headers: {} }, 'asked for bytes from 5, got status 206 without Content-Range'],
    ['a 200 that says it starts there', { ...ok([BLOB.subarray(5)]), headers: { 'content-range': 'bytes 5-19/20' } }, 'asked for bytes from 5, got bytes 5-19/20'],
  ])('refuses %s', async (_, answer, message) => {
    const { stream } = blobStream([answer], { offset: 5 });
    const { error } = await drain(stream);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: answer.status, method: 'GET', url: URL_.href });
    expect((error as RegistryError).details).toEqual([{ code: 'RANGE', message }]);
  });
});

describe('a reader slower than the source', () => {
  it('pauses the body rather than buffer the blob', async () => {
    const piece = Buffer.alloc(64 * 1024, 1);
    const blob = Buffer.concat(Array.from({ length: 16 }, () => piece));
    const source = body(Array.from({ length: 16 }, () => piece));
    const { stream } = blobStream([{ status: 200, headers: {}, body: source, url: URL_ }], { digest: sha256(blob), size: blob.length });
    stream.read(0);
    // Nobody reads: the body must stop well before the whole megabyte is buffered here.
    await Promise.race([once(source, 'pause'), once(source, 'end')]);
    expect(source.readableEnded).toBe(false);
    expect(stream.readableLength).toBeLessThanOrEqual(2 * piece.length);
    expect((await drain(stream)).bytes.equals(blob)).toBe(true);
  });
});

describe('a body that drops', () => {
  it('is asked for again from where it stopped, and the whole is still verified', async () => {
    const { stream, sent } = blobStream([ok([BLOB.subarray(0, 8)], reset()), partial(8, [BLOB.subarray(8, 14)], reset()), partial(14, [BLOB.subarray(14)])]);
    expect(await drain(stream)).toEqual({ bytes: BLOB });
    expect(sent).toEqual([{}, { range: 'bytes=8-' }, { range: 'bytes=14-' }]);
  });

  it('fails once it has taken maxResumes requests in all', async () => {
    const { stream, sent } = blobStream([ok([BLOB.subarray(0, 8)], reset()), partial(8, [BLOB.subarray(8, 10)], reset()), partial(10, [BLOB.subarray(10)])], { maxResumes: 2 });
    const { error } = await drain(stream);
    expect(error!.message).toBe('socket reset');
    expect(sent).toHaveLength(2);
  });

  it('fails at once for an error no new request can help, or once the copy was aborted', async () => {
    const broken = blobStream([ok([BLOB.subarray(0, 8)], new Error('decoder broke')), partial(8, [BLOB.subarray(8)])]);
    expect((await drain(broken.stream)).error!.message).toBe('decoder broke');
    expect(broken.sent).toHaveLength(1);

    const controller = new AbortController();
    controller.abort();
    const aborted = blobStream([ok([BLOB.subarray(0, 8)], reset()), partial(8, [BLOB.subarray(8)])], { signal: controller.signal });
    expect((await drain(aborted.stream)).error!.message).toBe('socket reset');
    expect(aborted.sent).toHaveLength(1);
  });
});
