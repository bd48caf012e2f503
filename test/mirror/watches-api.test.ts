/**
 * The watches API through its handler, as the hosts call it, against Azurite's tables: create,
 * replace, show, list and delete; 400s that name the field (unknown fields, bad regexes, regexes
 * that backtrack catastrophically, bad semver ranges); credentials sealed at rest.
 */
import { randomBytes } from 'node:crypto';
import { watchStore } from '../../src/functions/services.js';
import { watchesHandler } from '../../src/functions/watches.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { callChecked as call } from '../functions/support.js';

let azurite: TestAzurite;
beforeAll(async () => {
  azurite = await startAzurite();
  Object.assign(process.env, {
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: 'localhost:5999',
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
    HOIST_WATCHES_TABLE: `watches${randomBytes(4).toString('hex')}`,
  });
  delete process.env.HOIST_API_KEY;
  delete process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES;
});
afterAll(async () => {
  await azurite?.stop();
});

const put = (name: string, json: unknown) => call(watchesHandler, { method: 'PUT', path: `/api/watches/${name}`, params: { name }, json });
const get = (name?: string) => call(watchesHandler, { method: 'GET', path: `/api/watches${name ? `/${name}` : ''}`, ...(name && { params: { name } }) });

describe('watches API', () => {
  it('creates, replaces, shows, lists and deletes a watch', async () => {
    const body = { source: 'docker.io/library/nginx', target: 'mirror/nginx', tags: { include: ['^1\\.27(\\..*)?$'], exclude: ['.*-rc.*'], latest: 3 } };
    const created = await put('nginx', body);
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe('/api/watches/nginx');
    expect(created.body).toMatchObject({ name: 'nginx', source: 'docker.io/library/nginx', target: 'mirror/nginx', enabled: true, referrers: false, platforms: [], tags: { include: ['^1\\.27(\\..*)?$'], exclude: ['.*-rc.*'], latest: 3 } });

    const replaced = await put('nginx', { ...body, enabled: false, tags: { semver: '>=1.2.0 <2' } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ enabled: false, tags: { include: [], exclude: [], semver: '>=1.2.0 <2' } });
    expect(replaced.body.createdAt).toBe(created.body.createdAt);

    const single = await put('alpine-3', { source: 'docker.io/library/alpine:3.20' });
    expect(single.status).toBe(201);
    // The target defaults to the source path; a single-tag watch shows its tag.
    expect(single.body).toMatchObject({ source: 'docker.io/library/alpine:3.20', target: 'library/alpine', tags: { single: '3.20' } });

    const one = await get('nginx');
    expect(one.status).toBe(200);
    expect(one.headers.etag).toBeTruthy();
    expect(one.body).toMatchObject({ name: 'nginx', enabled: false, trackedTags: {} });
    expect(one.body.lastRun).toBeUndefined();

    const list = await get();
    expect(list.status).toBe(200);
    expect(list.body.value.map((w: { name: string }) => w.name).sort()).toEqual(['alpine-3', 'nginx']);

    expect((await call(watchesHandler, { method: 'DELETE', path: '/api/watches/nginx', params: { name: 'nginx' } })).status).toBe(204);
    const gone = await get('nginx');
    expect(gone.status).toBe(404);
    expect(gone.body.error).toMatchObject({ code: 'WATCH_NOT_FOUND', field: 'name' });
    expect((await call(watchesHandler, { method: 'DELETE', path: '/api/watches/nginx', params: { name: 'nginx' } })).status).toBe(404);
  });

  it('writes only the version If-Match names, creates only with If-None-Match: *, and answers 412 PRECONDITION_FAILED otherwise', async () => {
    const body = { source: 'docker.io/library/redis', target: 'mirror/redis' };
    const write = (method: 'PUT' | 'DELETE', headers: Record<string, string>, json?: unknown) => call(watchesHandler, { method, path: '/api/watches/redis', params: { name: 'redis' }, headers, ...(json !== undefined && { json }) });

    const created = await write('PUT', { 'if-none-match': '*' }, body);
    expect(created.status).toBe(201);
    const first = created.headers.etag!;
    expect((await get('redis')).headers.etag).toBe(first);
    const createOnly = await write('PUT', { 'if-none-match': '*' }, { ...body, enabled: false });
    expect(createOnly.status).toBe(412);
    expect(createOnly.body.error).toMatchObject({ code: 'PRECONDITION_FAILED', field: 'If-None-Match' });

    const replaced = await write('PUT', { 'if-match': first }, { ...body, target: 'mirror/redis-2' });
    expect(replaced.status).toBe(200);
    const second = replaced.headers.etag!;
    expect(second).not.toBe(first);
    // A writer still holding the first version loses, and writes nothing.
    const stale = await write('PUT', { 'if-match': first }, { ...body, target: 'mirror/stale' });
    expect(stale.status).toBe(412);
    expect(stale.body.error).toMatchObject({ code: 'PRECONDITION_FAILED', field: 'If-Match' });
    expect(stale.body.error.message).toMatch(/has changed since ETag/);
    expect((await get('redis')).body).toMatchObject({ target: 'mirror/redis-2' });
    expect((await write('DELETE', { 'if-match': first })).status).toBe(412);
    expect((await get('redis')).headers.etag).toBe(second);

    expect((await write('DELETE', { 'if-match': second })).status).toBe(204);
    // If-Match matches no watch that is gone: the PUT does not re-create it.
    const gone = await write('PUT', { 'if-match': second }, body);
    expect(gone.status).toBe(412);
    expect(gone.body.error.message).toMatch(/there is no watch named "redis"/);
    expect((await get('redis')).status).toBe(404);
    expect((await write('DELETE', { 'if-match': '*' })).status).toBe(412);

    const badNoneMatch = await write('PUT', { 'if-none-match': first }, body);
    expect(badNoneMatch.status).toBe(400);
    expect(badNoneMatch.body.error).toMatchObject({ code: 'INVALID_HEADER', field: 'If-None-Match' });
    // `*` matches any version that exists.
    expect((await write('PUT', {}, body)).status).toBe(201);
    expect((await write('PUT', { 'if-match': '*' }, { ...body, enabled: false })).status).toBe(200);
    expect((await write('DELETE', { 'if-match': '*' })).status).toBe(204);
  });

  it.each([
    [{ source: 'docker.io/library/nginx', color: 'red' }, 'UNKNOWN_FIELD', 'color', /unknown field "color"/],
    [{ source: 'docker.io/library/nginx', tags: { includes: ['a'] } }, 'UNKNOWN_FIELD', 'tags.includes', /unknown field "tags.includes"/],
    [{ target: 'x' }, 'MISSING_FIELD', 'source', /"source" is required/],
    [{ source: 'nginx' }, 'INVALID_REFERENCE', 'source', /not fully qualified/],
    [{ source: 'docker.io/library/nginx@sha256:' + 'a'.repeat(64) }, 'INVALID_REFERENCE', 'source', /digest/],
    [{ source: 'docker.io/library/nginx', tags: { include: ['1.(27'] } }, 'INVALID_FIELD', 'tags.include[0]', /not a valid regular expression/],
    [{ source: 'docker.io/library/nginx', tags: { exclude: ['ok', '(a+)+'] } }, 'INVALID_FIELD', 'tags.exclude[1]', /backtrack catastrophically \(exponential/],
    [{ source: 'docker.io/library/nginx', tags: { include: ['.*a.*b.*c.*d'] } }, 'INVALID_FIELD', 'tags.include[0]', /polynomial/],
    [{ source: 'docker.io/library/nginx', tags: { semver: '>=banana' } }, 'INVALID_FIELD', 'tags.semver', /not a semver range/],
    [{ source: 'docker.io/library/nginx', tags: { latest: 0 } }, 'INVALID_FIELD', 'tags.latest', /expected/],
    [{ source: 'docker.io/library/nginx:1.27', tags: { latest: 2 } }, 'INVALID_FIELD', 'tags', /single tag "1.27"/],
    [{ source: 'docker.io/library/nginx', target: 'localhost:5999/nginx' }, 'INVALID_REFERENCE', 'target', /registry host|tag or digest/],
    [{ source: 'docker.io/library/nginx', password: 'p' }, 'INCOMPLETE_CREDENTIALS', 'password', /without "username"/],
    [{ source: 'docker.io/library/nginx', platforms: ['linux'] }, 'INVALID_PLATFORM', 'platforms[0]', /platforms\[0\]/],
    [{ source: 'localhost:5999/library/nginx' }, 'INVALID_FIELD', 'target', /copy onto its own source/],
    [['docker.io/library/nginx'], 'INVALID_JSON', undefined, /must be a JSON object/],
  ])('refuses %j with %s naming %s', async (body, code, field, message) => {
    const response = await put('bad', body);
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code, ...(field !== undefined && { field }) });
    expect(response.body.error.message).toMatch(message);
    expect((await get('bad')).status).toBe(404);
  });

  it('refuses a source outside HOIST_ALLOWED_SOURCES, or at an address the outbound policy refuses, as imports do', async () => {
    process.env.HOIST_ALLOWED_SOURCES = 'docker.io,127.0.0.1';
    try {
      const outside = await put('quay', { source: 'quay.io/team/app' });
      expect(outside.status).toBe(400);
      expect(outside.body.error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', field: 'source' });
    } finally {
      delete process.env.HOIST_ALLOWED_SOURCES;
    }
    // Loopback is not the target registry and is not in HOIST_ALLOWED_PRIVATE_REGISTRIES here.
    const loopback = await put('loopback', { source: '127.0.0.1:5000/team/app' });
    expect(loopback.status).toBe(400);
    expect(loopback.body.error).toMatchObject({ code: 'ADDRESS_REFUSED', field: 'source' });
    expect((await get('quay')).status).toBe(404);
    expect((await get('loopback')).status).toBe(404);
  });

  it('refuses a bad watch name, naming it', async () => {
    const response = await put('Bad_Name', { source: 'docker.io/library/nginx' });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: 'INVALID_FIELD', field: 'name' });
  });

  it('refuses what it does not take in the one error shape: no key, another method, not JSON, too large, a bad name', async () => {
    // callChecked holds each answer to the OpenAPI document: status, headers and body.
    process.env.HOIST_API_KEY = 'watch-key-123';
    try {
      const noKey = await put('keyed', { source: 'docker.io/library/nginx' });
      expect(noKey.status).toBe(401);
      expect(noKey.body.error.code).toBe('UNAUTHORIZED');
    } finally {
      delete process.env.HOIST_API_KEY;
    }
    for (const method of ['PUT', 'DELETE']) {
      const refused = await call(watchesHandler, { method, path: '/api/watches', json: { source: 'docker.io/library/nginx' } });
      expect(refused.status).toBe(405);
      expect(refused.headers.allow).toBe('GET');
      expect(refused.body.error.code).toBe('METHOD_NOT_ALLOWED');
    }
    const text = await call(watchesHandler, { method: 'PUT', path: '/api/watches/plain', params: { name: 'plain' }, body: 'source=docker.io/library/nginx', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(text.body.error).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', field: 'Content-Type' });
    const large = await put('large', { source: 'docker.io/library/nginx', tags: { include: ['x'.repeat(70 * 1024)] } });
    expect(large.status).toBe(413);
    expect(large.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    for (const method of ['GET', 'DELETE']) {
      const badName = await call(watchesHandler, { method, path: '/api/watches/Bad_Name', params: { name: 'Bad_Name' } });
      expect(badName.status).toBe(400);
      expect(badName.body.error).toMatchObject({ code: 'INVALID_FIELD', field: 'name' });
    }
    for (const name of ['keyed', 'plain', 'large']) expect((await get(name)).status).toBe(404);
  });

  it('seals credentials at rest and never shows the password', async () => {
    const password = 'hunter2-very-secret';
    const response = await put('private', { source: 'registry.example.com/team/app', username: 'robot', password });
    expect(response.status).toBe(201);
    expect(JSON.stringify(response.body)).not.toContain(password);
    expect(response.body.username).toBe('robot');
    const shown = await get('private');
    expect(JSON.stringify(shown.body)).not.toContain(password);
    const store = await watchStore();
    const entity = await store.table.getEntity('watch', 'private');
    expect(JSON.stringify(entity)).not.toContain(password);
    expect((await store.get('private'))!.value.sealedCredentials).toMatch(/^v1\./);
  });

  it('refuses credentials without HOIST_SECRET_KEY, storing nothing', async () => {
    const key = process.env.HOIST_SECRET_KEY;
    delete process.env.HOIST_SECRET_KEY;
    try {
      const response = await put('nokey', { source: 'registry.example.com/team/app', username: 'robot', password: 'pw-123456' });
      expect(response.status).toBe(500);
      expect(response.body.error.code).toBe('CONFIGURATION_ERROR');
    } finally {
      process.env.HOIST_SECRET_KEY = key;
    }
    expect((await get('nokey')).status).toBe(404);
  });
});
