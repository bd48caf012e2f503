/**
 * Reference and digest parsing under random input: never a crash, always either a Reference or
 * an InvalidReferenceError, and a valid reference reads back to itself.
 */
import fc from 'fast-check';
import { InvalidReferenceError, parseDigest, parseReference, type Reference } from '../../src/registry/reference.js';

/** Characters references are made of, plus the ones that break them, so inputs hit every branch. */
const referenceChar = fc.constantFrom(...'abcz09AZ._-:/@+ \t%é'.split(''), 'sha256:', 'sha512:', 'localhost', '[::1]', '__');
const referenceLike = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: referenceChar, maxLength: 60 }));

const alnum = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split('')), minLength: 1, maxLength: 8 });
const separator = fc.constantFrom('.', '_', '__', '-', '--');
const component = fc.tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 2 })).map(([head, tail]) => head + tail.map(([s, a]) => s + a).join(''));
const host = fc.oneof(
  fc.tuple(alnum, alnum).map(([a, b]) => `${a}.${b}`),
  fc.constant('localhost'),
  fc.integer({ min: 0, max: 255 }).map((n) => `127.0.0.${n}`),
);
const registry = fc.tuple(host, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([h, port]) => (port === undefined ? h : `${h}:${port}`));
const tag = fc.tuple(fc.constantFrom(...'aZ0_'.split('')), fc.string({ unit: fc.constantFrom(...'aZ9_.-'.split('')), maxLength: 20 })).map(([first, rest]) => first + rest);
const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), minLength: length, maxLength: length });
const digest = fc.oneof(hex(64).map((h) => `sha256:${h}`), hex(128).map((h) => `sha512:${h}`));

function parseOrError(input: string, requireRegistry = false): Reference | InvalidReferenceError {
  try {
    return parseReference(input, { requireRegistry });
  } catch (error) {
    if (error instanceof InvalidReferenceError) return error;
    throw error;
  }
}

describe('parseReference (properties)', () => {
  it('returns a Reference or throws InvalidReferenceError naming the input, for any string', () => {
    fc.assert(
      fc.property(referenceLike, fc.boolean(), (input, requireRegistry) => {
        const result = parseOrError(input, requireRegistry);
        if (result instanceof InvalidReferenceError) {
          expect(result.code).toBe('INVALID_REFERENCE');
          expect(result.message.startsWith(`invalid reference "${input}": `)).toBe(true);
          expect(result.message.length).toBeGreaterThan(`invalid reference "${input}": `.length);
        } else {
          expect(result.tag !== undefined || result.digest !== undefined).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('reads a valid reference back to the same parts, through toString', () => {
    fc.assert(
      fc.property(registry, fc.array(component, { minLength: 1, maxLength: 4 }), fc.option(tag, { nil: undefined }), fc.option(digest, { nil: undefined }), (reg, path, t, d) => {
        const repository = path.join('/');
        fc.pre(reg.length + 1 + repository.length <= 255);
        const input = `${reg}/${repository}${t ? `:${t}` : ''}${d ? `@${d}` : ''}`;
        const ref = parseReference(input, { requireRegistry: true });
        expect(ref.registry.name).toBe(reg);
        expect(ref.repository).toBe(repository);
        expect(ref.digest).toBe(d);
        expect(ref.tag).toBe(t ?? (d ? undefined : 'latest'));
        expect(ref.identifier).toBe(d ?? t ?? 'latest');
        const again = parseReference(ref.toString());
        expect([again.registry.name, again.repository, again.tag, again.digest]).toEqual([ref.registry.name, ref.repository, ref.tag, ref.digest]);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses every repository longer than the limit, whatever its components', () => {
    fc.assert(
      fc.property(registry, fc.array(component, { minLength: 30, maxLength: 60 }), (reg, path) => {
        const repository = path.join('/');
        fc.pre(reg.length + 1 + repository.length > 255);
        const result = parseOrError(`${reg}/${repository}:t`);
        expect(result).toBeInstanceOf(InvalidReferenceError);
        expect((result as InvalidReferenceError).message).toMatch(/longer than 255 characters/);
      }),
      { numRuns: 200 },
    );
  });
});

describe('parseDigest (properties)', () => {
  it('accepts exactly sha256:<64 hex> and sha512:<128 hex>, and says why otherwise', () => {
    const digestLike = fc.oneof(
      digest,
      // A valid digest with something before or after it: the whole string must match.
      fc.tuple(fc.string({ maxLength: 3 }), digest, fc.string({ maxLength: 3 })).map(([before, d, after]) => before + d + after),
      // Lengths either side of the exact ones.
      fc.tuple(fc.constantFrom('sha256', 'sha512'), fc.constantFrom(63, 64, 65, 127, 128, 129)).chain(([a, n]) => hex(n).map((h) => `${a}:${h}`)),
      fc.string({ maxLength: 140 }),
      fc.tuple(fc.constantFrom('sha256', 'sha512', 'md5', 'SHA256', 'blake3', ''), fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF=_-g'.split('')), maxLength: 130 })).map(([a, h]) => `${a}:${h}`),
    );
    fc.assert(
      fc.property(digestLike, (input) => {
        const valid = /^sha256:[a-f0-9]{64}$/.test(input) || /^sha512:[a-f0-9]{128}$/.test(input);
        let error: unknown;
        try {
          expect(parseDigest(input)).toBe(input);
        } catch (e) {
          error = e;
        }
        if (valid) expect(error).toBeUndefined();
        else {
          expect(error).toBeInstanceOf(InvalidReferenceError);
          expect((error as InvalidReferenceError).message).toMatch(/digest/);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
