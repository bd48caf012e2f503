import { DigestMismatchError, sha256 } from '../../src/registry/digest.js';

describe('digest', () => {
  it('computes sha256 digests in the OCI form', () => {
    expect(sha256(Buffer.alloc(0))).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256(Buffer.from('abc'))).toBe('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('says whether the size or the digest did not match, with a stable code', () => {
    const expected = { digest: sha256(Buffer.from('abc')), size: 3 };
    const short = new DigestMismatchError(expected, { size: 2 }, 'blob r/x');
    expect(short).toMatchObject({ name: 'DigestMismatchError', code: 'DIGEST_INVALID', message: 'blob r/x: expected 3 bytes, got 2' });
    const other = new DigestMismatchError(expected, { digest: sha256(Buffer.from('abd')), size: 3 }, 'blob r/x');
    expect(other.message).toBe(`blob r/x: expected digest ${expected.digest}, got ${sha256(Buffer.from('abd'))}`);
  });
});
