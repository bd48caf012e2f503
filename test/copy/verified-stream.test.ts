/**
 * The integrity check of blobs read from local storage (OCI layouts, memory): from the first byte
 * the bytes are hashed as they pass and the last piece is held back until digest and size check
 * out; from an offset only the size can be checked. Driven with real streams, no registry.
 */
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { verifiedStream } from '../../src/copy/verified-stream.js';
import { DigestMismatchError, sha256 } from '../../src/registry/digest.js';

const bytes = Buffer.from('0123456789abcdefghij');
const blob = { digest: sha256(bytes), size: bytes.length, offset: 0 };

/** What the stream hands on before it ends or fails, and how it ended. */
async function drain(stream: Readable): Promise<{ got: Buffer; error?: Error }> {
  const parts: Buffer[] = [];
  stream.on('data', (part: Buffer) => parts.push(part));
  const error = await new Promise<Error | undefined>((resolve) => {
    stream.on('end', () => resolve(undefined));
    stream.on('error', resolve);
    stream.on('close', () => resolve(stream.readableEnded ? undefined : new Error('closed without ending or failing')));
  });
  return { got: Buffer.concat(parts), ...(error && { error }) };
}

/** The bytes as a source of three reads. */
const pieces = (data: Buffer) => Readable.from([data.subarray(0, 7), data.subarray(7, 14), data.subarray(14)]);

describe('verifiedStream', () => {
  it('hands on a blob that matches its digest and size, whole', async () => {
    expect(await drain(verifiedStream(pieces(bytes), blob, 'blob x'))).toEqual({ got: bytes });
  });

  it('holds back the last piece of bytes that do not match the digest, and names both digests', async () => {
    const other = Buffer.from(bytes);
    other[3] ^= 1;

    const { got, error } = await drain(verifiedStream(pieces(other), blob, 'blob x'));

    expect(got).toEqual(other.subarray(0, 14));
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(error).toMatchObject({ expected: { digest: blob.digest, size: blob.size }, actual: { digest: sha256(other), size: blob.size } });
    expect(error!.message).toBe(`blob x: expected digest ${blob.digest}, got ${sha256(other)}`);
  });

  it('fails on too few bytes, and as soon as there are too many', async () => {
    const short = await drain(verifiedStream(pieces(bytes.subarray(0, 19)), blob, 'blob x'));
    expect(short.error).toMatchObject({ actual: { size: 19 }, message: 'blob x: expected 20 bytes, got 19' });

    const long = await drain(verifiedStream(Readable.from([bytes, Buffer.from('!'), Buffer.from('more')]), blob, 'blob x'));
    expect(long.error).toBeInstanceOf(DigestMismatchError);
    expect(long.error!.message).toBe('blob x: expected 20 bytes, got 21');
    expect(long.got.length).toBeLessThanOrEqual(bytes.length);
  });

  it('from an offset, passes the bytes on as they come and checks only their count', async () => {
    const rest = bytes.subarray(5);
    // Other bytes of the right length: unhashable from an offset, so not this stream's to judge.
    const other = Buffer.alloc(rest.length, 'x');

    expect(await drain(verifiedStream(Readable.from([other]), { ...blob, offset: 5 }, 'blob x'))).toEqual({ got: other });
    const short = await drain(verifiedStream(Readable.from([rest.subarray(1)]), { ...blob, offset: 5 }, 'blob x'));
    expect(short.error).toMatchObject({ message: 'blob x: expected 20 bytes, got 19' });
    const long = await drain(verifiedStream(Readable.from([rest, Buffer.from('!')]), { ...blob, offset: 5 }, 'blob x'));
    expect(long.error).toMatchObject({ message: 'blob x: expected 20 bytes, got 21' });
  });

  it('refuses to read from the start what it cannot verify, and reads such a blob from an offset', async () => {
    expect(() => verifiedStream(pieces(bytes), { ...blob, digest: `md5:${'0'.repeat(32)}` }, 'blob x')).toThrow('blob x: cannot verify a md5 digest');
    expect(() => verifiedStream(pieces(bytes), { ...blob, digest: `:${'0'.repeat(64)}` }, 'blob x')).toThrow('blob x: cannot verify a malformed digest');
    expect(await drain(verifiedStream(Readable.from([bytes.subarray(5)]), { ...blob, digest: `md5:${'0'.repeat(32)}`, offset: 5 }, 'blob x'))).toEqual({ got: bytes.subarray(5) });
  });

  it("passes the input's error through mapError", async () => {
    const input = new PassThrough();
    const stream = verifiedStream(input, blob, 'blob x', (error) => new Error(`mapped: ${error.message}`));
    const drained = drain(stream);
    input.destroy(new Error('ENOENT'));

    expect((await drained).error?.message).toBe('mapped: ENOENT');
  });

  it("passes the input's own error on when given no mapError", async () => {
    const input = new PassThrough();
    const drained = drain(verifiedStream(input, blob, 'blob x'));
    const failure = new Error('EIO');
    input.destroy(failure);

    expect((await drained).error).toBe(failure);
  });

  it('closes its input when it is closed', async () => {
    const input = new PassThrough();
    const stream = verifiedStream(input, blob, 'blob x');
    stream.destroy();
    await once(input, 'close');

    expect(input.destroyed).toBe(true);
  });
});
