/**
 * The registry error family, unit by unit: what a RegistryError says and whether it is worth a
 * retry, and what Hoist keeps of another host's error body (issue 7 §5): an OCI error JSON's
 * codes and cleaned, cut messages, and of any other body only its status and content type.
 * `error-bodies.test.ts` checks the same end to end, through a copy and the status document.
 */
import { cleanMessage, codeForStatus, describeBody, errorDetailsFromBody, parseRegistryJson, RegistryError, type RegistryErrorInit } from '../../src/registry/errors.js';

const init = (overrides: Partial<RegistryErrorInit> = {}): RegistryErrorInit => ({
  code: 'MANIFEST_UNKNOWN',
  status: 404,
  method: 'GET',
  url: 'https://registry.example/v2/team/app/manifests/v1',
  reference: 'registry.example/team/app:v1',
  ...overrides,
});

const FALLBACK_ADVICE = 'see the registry response for details';

describe('RegistryError', () => {
  it('says code, status, method, reference, the first detail and the advice, and keeps the cause', () => {
    const cause = new Error('underlying');
    const error = new RegistryError(init({ details: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }, { code: 'X', message: 'second' }], cause }));
    expect(error.name).toBe('RegistryError');
    expect(error.message).toBe('MANIFEST_UNKNOWN (HTTP 404) on GET registry.example/team/app:v1: manifest unknown; check the tag or digest exists in the source repository');
    expect(error.cause).toBe(cause);
    expect(error).toMatchObject({ code: 'MANIFEST_UNKNOWN', status: 404, method: 'GET', url: init().url, reference: init().reference });
  });

  it('without details, or with an empty list, or a first detail without message, says no detail', () => {
    for (const details of [undefined, [], [{ code: 'MANIFEST_UNKNOWN' }]]) {
      const error = new RegistryError(init({ details }));
      expect(error.message).toBe('MANIFEST_UNKNOWN (HTTP 404) on GET registry.example/team/app:v1; check the tag or digest exists in the source repository');
      expect(error.details).toEqual(details ?? []);
    }
  });

  it('without a status (no answer at all), leaves the status out', () => {
    expect(new RegistryError(init({ code: 'NETWORK_ERROR', status: 0 })).message).toBe('NETWORK_ERROR on GET registry.example/team/app:v1; check the registry host is reachable and retry');
  });

  it.each(['UNAUTHORIZED', 'DENIED', 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN', 'TOOMANYREQUESTS', 'DIGEST_INVALID', 'MANIFEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'NETWORK_ERROR', 'SERVER_ERROR', 'UNSUPPORTED'])(
    'advises on %s in words of its own, and ends its message with them',
    (code) => {
      const error = new RegistryError(init({ code }));
      expect(error.advice.length).toBeGreaterThan(10);
      expect(error.advice).not.toBe(FALLBACK_ADVICE);
      expect(error.message.endsWith(`; ${error.advice}`)).toBe(true);
    },
  );

  it('advises to read the response for a code it has no advice for', () => {
    expect(new RegistryError(init({ code: 'VENDOR_QUOTA' })).advice).toBe(FALLBACK_ADVICE);
    expect(new RegistryError(init({ code: 'RANGE_INVALID', status: 416 })).advice).toBe(FALLBACK_ADVICE);
  });

  it.each([
    [408, 'UNEXPECTED_RESPONSE', true],
    [429, 'TOOMANYREQUESTS', true],
    [500, 'SERVER_ERROR', true],
    [503, 'SERVER_ERROR', true],
    [0, 'NETWORK_ERROR', true],
    [499, 'UNEXPECTED_RESPONSE', false],
    [404, 'MANIFEST_UNKNOWN', false],
    [401, 'UNAUTHORIZED', false],
    [0, 'UNEXPECTED_RESPONSE', false],
  ])('HTTP %i with %s is transient: %s', (status, code, transient) => {
    expect(new RegistryError(init({ status, code })).transient).toBe(transient);
  });
});

describe('codeForStatus', () => {
  it.each([
    [401, 'UNAUTHORIZED'],
    [403, 'DENIED'],
    [404, 'NAME_UNKNOWN'],
    [416, 'RANGE_INVALID'],
    [429, 'TOOMANYREQUESTS'],
    [500, 'SERVER_ERROR'],
    [599, 'SERVER_ERROR'],
    [499, 'UNEXPECTED_RESPONSE'],
    [400, 'UNEXPECTED_RESPONSE'],
    [200, 'UNEXPECTED_RESPONSE'],
  ])('maps %i to %s', (status, code) => {
    expect(codeForStatus(status)).toBe(code);
  });
});

describe('errorDetailsFromBody', () => {
  const json = (value: unknown) => JSON.stringify(value);

  it.each(['', ' \n\t '])('has nothing to say of an empty body (%j)', (text) => {
    expect(errorDetailsFromBody(500, 'text/plain', text)).toBeUndefined();
  });

  it("keeps each entry's code and message, and never its detail", () => {
    const body = json({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied', detail: { secret: 'x' } }, { code: 'UNAUTHORIZED' }] });
    expect(errorDetailsFromBody(403, 'application/json', body)).toStrictEqual([{ code: 'DENIED', message: 'requested access to the resource is denied' }, { code: 'UNAUTHORIZED' }]);
  });

  it('keeps the first five entries', () => {
    const body = json({ errors: Array.from({ length: 7 }, (_, i) => ({ code: `CODE_${i}` })) });
    expect(errorDetailsFromBody(400, 'application/json', body)?.map((d) => d.code)).toEqual(['CODE_0', 'CODE_1', 'CODE_2', 'CODE_3', 'CODE_4']);
  });

  it.each([
    ['lower case', 'denied'],
    ['text before the code', 'see http://evil.example DENIED'],
    ['text after the code', 'DENIED see http://evil.example'],
    ['65 characters', `D${'E'.repeat(64)}`],
    ['a number', 403],
    // An array whose text is a valid code: only strings are codes.
    ['an array', ['DENIED']],
    ['missing', undefined],
  ])('puts the code of the status in place of a code that is not one (%s)', (_label, code) => {
    expect(errorDetailsFromBody(429, 'application/json', json({ errors: [{ code, message: 'slow down' }] }))).toStrictEqual([{ code: 'TOOMANYREQUESTS', message: 'slow down' }]);
  });

  it('keeps a 64-character code', () => {
    const code = `D${'E'.repeat(63)}`;
    expect(errorDetailsFromBody(403, 'application/json', json({ errors: [{ code }] }))).toStrictEqual([{ code }]);
  });

  it.each([
    ['a number', 42],
    ['an object', { text: 'x' }],
    ['empty', ''],
    ['only control characters', '\u0000\u001b\n'],
  ])('leaves out a message that is not text (%s)', (_label, message) => {
    expect(errorDetailsFromBody(403, 'application/json', json({ errors: [{ code: 'DENIED', message }] }))).toStrictEqual([{ code: 'DENIED' }]);
  });

  it('skips entries that are not objects', () => {
    const body = json({ errors: [null, 'DENIED', 7, { code: 'DENIED', message: 'no' }] });
    expect(errorDetailsFromBody(403, 'application/json', body)).toStrictEqual([{ code: 'DENIED', message: 'no' }]);
  });

  it.each([
    ['plain text', 'text/plain; charset=utf-8', 'denied: token abc123', 'a text/plain body'],
    ['XML', 'application/xml', '<Error><Code>AuthorizationFailure</Code></Error>', 'an application/xml body'],
    ['JSON without errors', 'application/json', json({ message: 'denied' }), 'an application/json body'],
    ['JSON whose errors is not a list', 'application/json', json({ errors: 'denied' }), 'an application/json body'],
    ['JSON whose errors has no object', 'application/json', json({ errors: ['denied'] }), 'an application/json body'],
    ['an empty errors list', 'application/json', json({ errors: [] }), 'an application/json body'],
    ['JSON null', 'application/json', 'null', 'an application/json body'],
    ['a JSON string', 'application/json', json('denied'), 'an application/json body'],
    ['no content type', undefined, 'denied', 'a body of no declared type'],
  ])('summarises %s by status and content type, quoting none of it', (_label, contentType, body, described) => {
    expect(errorDetailsFromBody(403, contentType, body)).toStrictEqual([{ code: 'DENIED', message: `HTTP 403 with ${described} (not shown)` }]);
  });
});

describe('cleanMessage', () => {
  it('turns control characters, ANSI escapes and line breaks into single spaces', () => {
    expect(cleanMessage('first\r\nsecond\u001b[31m red\u0007  end\u2028next\u0085x')).toBe('first second [31m red end next x');
    expect(cleanMessage('  a   b  ')).toBe('a b');
  });

  it('keeps 200 characters, and marks a cut', () => {
    expect(cleanMessage('x'.repeat(200))).toBe('x'.repeat(200));
    expect(cleanMessage('x'.repeat(201))).toBe(`${'x'.repeat(200)}…`);
  });
});

describe('describeBody', () => {
  it.each([
    ['text/html; charset=utf-8', 'a text/html body'],
    ['Application/XML', 'an application/xml body'],
    [' text/plain ', 'a text/plain body'],
    ['application/vnd.oci.image.index.v1+json', 'an application/vnd.oci.image.index.v1+json body'],
    [undefined, 'a body of no declared type'],
    ['', 'a body of no declared type'],
    ['; charset=utf-8', 'a body of no declared type'],
    // Another host's header is not quoted unless it is a plain media type.
    ['text/html, see http://evil.example', 'a body of a malformed content type'],
    ['see http://evil.example text/html', 'a body of a malformed content type'],
    ['text/html see', 'a body of a malformed content type'],
    ['text', 'a body of a malformed content type'],
    [`text/${'x'.repeat(65)}`, 'a body of a malformed content type'],
  ])('names %j as %j', (contentType, described) => {
    expect(describeBody(contentType)).toBe(described);
  });
});

describe('parseRegistryJson', () => {
  const answer = { status: 200, method: 'GET', url: 'https://registry.example/v2/team/app/tags/list', reference: 'registry.example/team/app', contentType: 'text/html' };

  it('parses JSON', () => {
    expect(parseRegistryJson('{"tags":["v1"]}', answer)).toEqual({ tags: ['v1'] });
  });

  it('is an UNEXPECTED_RESPONSE naming the content type, not quoting the body, when it does not parse', () => {
    const error = (() => {
      try {
        parseRegistryJson('<html>secret-page</html>', answer);
      } catch (e) {
        return e;
      }
      throw new Error('parsed');
    })();
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 200, method: 'GET', url: answer.url, reference: answer.reference });
    expect((error as RegistryError).details).toStrictEqual([{ code: 'UNEXPECTED_RESPONSE', message: 'expected JSON, got a text/html body that does not parse' }]);
    expect((error as RegistryError).message).not.toContain('secret-page');
  });
});
