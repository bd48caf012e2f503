import { parseChallenge } from '../../src/registry/auth.js';
import { nextLink, parseRangeEnd } from '../../src/registry/client.js';
import { backoffDelay, DEFAULT_RETRY, parseRetryAfter } from '../../src/registry/retry.js';

describe('parseChallenge', () => {
  it('reads a Bearer challenge with quoted parameters', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull",error="invalid_token"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      error: 'invalid_token',
    });
  });
  it('reads Basic', () => {
    expect(parseChallenge('Basic realm="basic-realm"')?.scheme).toBe('basic');
  });
  it('ignores unknown schemes', () => {
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
  });
  it('reads a bare scheme, whatever its case and the spaces around it', () => {
    expect(parseChallenge('Basic')).toEqual({ scheme: 'basic' });
    expect(parseChallenge('  BEARER  ')).toEqual({ scheme: 'bearer' });
  });

  it('reads unquoted values whole, quoted ones unescaped, and parameter names in any case', () => {
    expect(parseChallenge('Bearer realm=https://auth.test/token, Service=registry.test')).toEqual({ scheme: 'bearer', realm: 'https://auth.test/token', service: 'registry.test' });
    expect(parseChallenge('Bearer realm="https://auth.test/token",service="a \\"quoted\\" \\\\name",error="invalid_token"')).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.test/token',
      service: 'a "quoted" \\name',
      error: 'invalid_token',
    });
  });

  it('answers undefined for no header, no scheme, or a scheme it cannot answer', () => {
    for (const header of [undefined, '', '   ', '"Bearer" realm="x"', 'Negotiate abc']) expect(parseChallenge(header)).toBeUndefined();
  });
});

describe('parseRangeEnd', () => {
  it.each([
    ['0-1023', 0, 1024],
    ['bytes=0-1023', 0, 1024],
    ['0-0', 0, 0],
    ['0-0', 1, 1],
    [undefined, 5, 0],
    [' 0-99 ', 0, 100],
    ['10-99', 0, 100],
    ['0-99 bytes', 0, 0],
    ['x0-99', 0, 0],
  ])('%s (known %d) -> %d', (range, known, expected) => {
    expect(parseRangeEnd(range, known)).toBe(expected);
  });
});

describe('nextLink', () => {
  const base = new URL('http://registry.test/v2/app/tags/list');

  it.each([
    ['</v2/app/tags/list?last=b>; rel="next"', 'http://registry.test/v2/app/tags/list?last=b'],
    ['<?last=c>;rel=next', 'http://registry.test/v2/app/tags/list?last=c'],
    ['<https://other.test/page2>  ;  rel="next"', 'https://other.test/page2'],
  ])('reads %s', (link, expected) => {
    expect(nextLink(link, base)?.href).toBe(expected);
  });

  it.each([undefined, '', '</v2/app/tags/list?last=a>; rel="prev"', '<>; rel="next"'])('finds no next page in %j', (link) => {
    expect(nextLink(link, base)).toBeUndefined();
  });
});

describe('retry timing', () => {
  it('reads Retry-After in seconds and as a date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    // A date counts from the given clock (the real one by default, which a window would race).
    const now = Date.parse('2026-11-30T12:00:00.000Z');
    expect(parseRetryAfter('Mon, 30 Nov 2026 12:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 11:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
  it('prefers Retry-After and bounds the jittered back-off', () => {
    expect(backoffDelay(DEFAULT_RETRY, 1, 1500)).toBe(1500);
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(DEFAULT_RETRY.maxDelayInMs, DEFAULT_RETRY.baseDelayInMs * 2 ** (attempt - 1));
      const delay = backoffDelay(DEFAULT_RETRY, attempt);
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
  });
});
