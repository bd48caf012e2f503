/**
 * The e2e suite's OpenAPI check refuses what the document does not describe: a field, a status, a
 * path, a method, a missing required header, a body where none is described.
 */
import { checkAgainstOpenApi, type CheckedAnswer } from './openapi-check.js';

const BASE = 'http://127.0.0.1:7071';
const error = { error: { code: 'NOT_FOUND', message: 'no import job has the id "x"', field: 'id' } };

function answer(method: string, path: string, status: number, body: unknown, headers: Record<string, string> = {}): CheckedAnswer {
  const text = body === undefined ? '' : JSON.stringify(body);
  return { method, url: `${BASE}${path}`, status, headers: new Headers({ ...(body !== undefined && { 'content-type': 'application/json; charset=utf-8' }), ...headers }), body: body ?? '', text };
}

describe('checkAgainstOpenApi', () => {
  it('accepts described answers', () => {
    expect(() => checkAgainstOpenApi(answer('GET', '/api/imports/abc', 404, error))).not.toThrow();
    expect(() => checkAgainstOpenApi(answer('GET', '/api/imports?pageSize=2', 200, { value: [] }))).not.toThrow();
    expect(() => checkAgainstOpenApi(answer('GET', '/api/nowhere', 404, { error: { code: 'NOT_FOUND', message: 'nothing is served at GET /api/nowhere' } }))).not.toThrow();
    // A path-level server: /admin sits outside /api.
    expect(() => checkAgainstOpenApi(answer('POST', '/admin/functions/resync', 202, undefined))).not.toThrow();
    expect(() => checkAgainstOpenApi(answer('POST', '/api/admin/functions/resync', 202, undefined))).toThrow(/describes no such path/);
  });

  it.each([
    ['a field the schema does not name', answer('GET', '/api/imports?pageSize=2', 200, { value: [], total: 3 }), /must NOT have additional properties "total"/],
    ['an error field the shape does not name', answer('GET', '/api/imports/abc', 404, { error: { ...error.error, hint: 'x' } }), /additional properties "hint"/],
    ['a status the operation does not list', answer('GET', '/api/imports/abc', 418, error), /status 418 is not among the responses/],
    ['a path the document lacks', answer('GET', '/api/nowhere', 200, { value: [] }), /describes no such path/],
    ['a method the path lacks', answer('HEAD', '/api/imports/abc', 404, undefined), /has no HEAD for \/imports\/\{id\}/],
    ['a missing required header', answer('PUT', '/api/imports', 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'PUT is not supported here' } }), /required header Allow is missing/],
    ['another content type', answer('GET', '/api/imports/abc', 404, 'oops', { 'content-type': 'text/plain' }), /content type "text\/plain"/],
    ['a body where none is described', answer('POST', '/runtime/webhooks/eventgrid?functionName=x', 202, { ok: true }), /describes no body/],
  ])('refuses %s', (_, given, message) => {
    expect(() => checkAgainstOpenApi(given)).toThrow(message);
  });
});
