/**
 * The OpenAPI document (src/functions/openapi.json): valid OpenAPI 3.1 by a maintained validator
 * (@readme/openapi-parser), describing every route and method of every HTTP function, and served
 * as kept at `GET /api/openapi.json`, without a key.
 */
import { validate, compileErrors } from '@readme/openapi-parser';
import { definitions } from '../../src/functions/definitions.js';
import { OPENAPI_DOCUMENT, openApiHandler } from '../../src/functions/openapi.js';
import { call } from './support.js';

/** `imports/{id?}` → the paths it serves: `/imports` and `/imports/{id}`. */
function expand(route: string): string[] {
  const segments = route.split('/');
  const paths: string[] = [];
  for (let i = 0; i <= segments.length; i++) {
    const head = segments.slice(0, i);
    const rest = segments.slice(i);
    if (rest.every((s) => /^\{.*\?\}$/.test(s))) paths.push(`/${head.map((s) => s.replace(/^\{(\w+)(?::[^}?]*)?\??\}$/, '{$1}')).join('/')}`);
  }
  return paths;
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1', async () => {
    expect(OPENAPI_DOCUMENT.openapi).toBe('3.1.0');
    // validate() dereferences in place: give it a copy.
    const result = await validate(structuredClone(OPENAPI_DOCUMENT) as never);
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
    expect(result.warnings).toEqual([]);
  });

  const http = definitions.flatMap((d) => (d.trigger.type === 'http' ? [{ name: d.name, route: d.trigger.route, methods: d.trigger.methods }] : []));
  it.each(http)('describes every path and method of the $name function', ({ route, methods }) => {
    const paths = OPENAPI_DOCUMENT.paths as Record<string, Record<string, unknown>>;
    for (const path of expand(route)) {
      expect(Object.keys(paths), `openapi.json lacks ${path}`).toContain(path);
      for (const method of methods) expect(paths[path]![method.toLowerCase()], `openapi.json lacks ${method} ${path}`).toBeDefined();
    }
  });

  it('is served as kept, without a key', async () => {
    process.env.HOIST_API_KEY = 'a-key-the-caller-lacks';
    try {
      const res = await call(openApiHandler, { method: 'GET', path: '/api/openapi.json' });
      expect(res.status).toBe(200);
    } finally {
      delete process.env.HOIST_API_KEY;
    }
    const response = await openApiHandler(undefined as never);
    expect(response.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8' });
    expect(JSON.parse(response.body as string)).toEqual(OPENAPI_DOCUMENT);
    expect(definitions.find((d) => d.name === 'openapi')?.trigger).toMatchObject({ type: 'http', route: 'openapi.json', authLevel: 'anonymous', methods: ['GET'] });
  });
});
