/**
 * Import request validation under random bodies: never a crash, always either a request or a
 * typed error (RequestError with a known code and a message; an HttpError for what is not JSON),
 * and a field-level problem names its field.
 */
import { HttpRequest } from '@azure/functions';
import fc from 'fast-check';
import { readJsonBody } from '../../src/functions/json-body.js';
import { HttpError } from '../../src/functions/http-errors.js';
import { RequestError } from '../../src/jobs/errors.js';
import { MAX_TARGETS, parseImportRequest, type ImportRequest } from '../../src/jobs/import-request.js';

const CODES = ['INVALID_JSON', 'UNKNOWN_FIELD', 'MISSING_FIELD', 'INVALID_FIELD', 'INVALID_REFERENCE', 'INVALID_PLATFORM', 'TOO_MANY_TARGETS', 'INCOMPLETE_CREDENTIALS'];
const FIELDS = ['source', 'registry', 'images', 'untaggedRepositories', 'username', 'password', 'force', 'platforms', 'referrers'];

const referenceish = fc.oneof(
  fc.constantFrom('docker.io/library/hello-world:latest', 'hello:v1', 'mirror/hello', 'localhost:5000/a/b:t', 'src.azurecr.io', `r@sha256:${'a'.repeat(64)}`, 'UPPER/x', '', ' ', 'a'.repeat(600)),
  fc.string({ maxLength: 40 }),
);
const platformish = fc.oneof(fc.constantFrom('linux/amd64', 'linux/arm/v7', 'linux', 'linux/amd64/v1/x', '/', ''), fc.string({ maxLength: 20 }));
const anyJson = fc.jsonValue({ maxDepth: 2 });
/** Mostly `good`, sometimes `bad`: most bodies get past the schema, so the later checks run too. */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) => fc.oneof({ arbitrary: good, weight: 5 }, { arbitrary: bad, weight: 1 });
/** Bodies near the schema: every field present or not, each mostly of the right type. */
const nearlyValid = fc
  .tuple(
    fc.record(
      {
        source: mostly(fc.constantFrom('docker.io/library/hello-world:latest', 'ghcr.io/o/r@sha256:' + 'b'.repeat(64), 'hello-world', 'repo:tag'), fc.oneof(referenceish, anyJson)),
        registry: mostly(fc.constantFrom('src.azurecr.io', 'localhost:5000'), fc.oneof(referenceish, anyJson)),
        images: mostly(fc.array(mostly(fc.constantFrom('hello:v1', 'hello:v2', 'a/b:c'), referenceish), { maxLength: 4 }), fc.oneof(fc.array(fc.constant('r:t'), { minLength: MAX_TARGETS + 1, maxLength: MAX_TARGETS + 3 }), anyJson)),
        untaggedRepositories: mostly(fc.array(mostly(fc.constantFrom('mirror/hello', 'x'), referenceish), { maxLength: 3 }), anyJson),
        username: mostly(fc.string({ minLength: 1, maxLength: 8 }), anyJson),
        password: mostly(fc.string({ minLength: 1, maxLength: 8 }), anyJson),
        force: mostly(fc.boolean(), anyJson),
        platforms: mostly(fc.array(mostly(fc.constantFrom('linux/amd64', 'linux/arm/v7', 'windows/amd64'), platformish), { maxLength: 3 }), anyJson),
        referrers: mostly(fc.boolean(), anyJson),
      },
      { requiredKeys: [] },
    ),
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 7 }, { arbitrary: anyJson, weight: 1 }),
  )
  // Sometimes a field the API does not know (az acr import has no "tag").
  .map(([body, unknown]) => (unknown === undefined ? body : { ...body, tag: unknown }));

function parseOrError(body: unknown): ImportRequest | RequestError {
  try {
    return parseImportRequest(body);
  } catch (error) {
    if (error instanceof RequestError) return error;
    throw error;
  }
}

function expectWellFormed(error: RequestError): void {
  expect(CODES).toContain(error.code);
  expect(error.message.length).toBeGreaterThan(10);
  if (error.code !== 'INVALID_JSON') expect(typeof error.field).toBe('string');
  for (const detail of error.details) expect(CODES).toContain(detail.code);
  // The first problem is the one reported.
  if (error.details.length > 0) expect(error.details[0]).toMatchObject({ code: error.code, message: error.message });
}

describe('parseImportRequest (properties)', () => {
  it('returns a request or a RequestError naming the field, for any JSON value', () => {
    fc.assert(
      fc.property(fc.oneof({ arbitrary: anyJson, weight: 1 }, { arbitrary: nearlyValid, weight: 4 }), (body) => {
        const result = parseOrError(body);
        if (result instanceof RequestError) {
          expectWellFormed(result);
          if (result.field !== undefined && !['UNKNOWN_FIELD'].includes(result.code)) expect(FIELDS).toContain(result.field.replace(/\[\d+\]$/, ''));
          return;
        }
        // Accepted: the canonical form has its defaults, and every list is free of duplicates.
        expect(typeof result.source).toBe('string');
        expect(typeof result.force).toBe('boolean');
        expect(typeof result.referrers).toBe('boolean');
        for (const list of [result.images, result.untaggedRepositories, result.platforms]) expect(new Set(list).size).toBe(list.length);
        expect(result.images.length + result.untaggedRepositories.length).toBeLessThanOrEqual(MAX_TARGETS);
        expect(result.username === undefined).toBe(result.password === undefined);
      }),
      { numRuns: 3000 },
    );
  });

  it('turns any body text into a request or a typed error, never a crash', async () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      nearlyValid.map((b) => JSON.stringify(b)),
      nearlyValid.chain((b) => {
        const json = JSON.stringify(b);
        return fc.nat({ max: json.length }).map((cut) => json.slice(0, cut));
      }),
    );
    await fc.assert(
      fc.asyncProperty(text, async (body) => {
        const request = new HttpRequest({ method: 'POST', url: 'http://localhost/api/imports', headers: { 'content-type': 'application/json' }, body: { string: body } });
        let result: unknown;
        try {
          result = parseImportRequest(await readJsonBody(request));
        } catch (error) {
          result = error;
        }
        if (result instanceof RequestError) expectWellFormed(result);
        else if (result instanceof HttpError) expect(result.status).toBe(413);
        else expect(typeof (result as ImportRequest).source).toBe('string');
      }),
      { numRuns: 1000 },
    );
  });
});
