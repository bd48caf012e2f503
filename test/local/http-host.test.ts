import { HttpResponse, type HttpRequest, type InvocationContext } from '@azure/functions';
import { request as httpRequest } from 'node:http';
import { ReadableStream } from 'node:stream/web';
import { importsFunction } from '../../src/functions/imports.js';
import type { HttpDefinition } from '../../src/local/http-host.js';
import { expectErrorShape, startTestHost, type TestHost } from './support.js';

const API_KEY = 'local-test-key-8d1f';

/** Reads at most `limit` bytes of the body, as a handler enforcing a size cap would. */
async function readCapped(request: HttpRequest, limit: number): Promise<string | undefined> {
  const reader = request.body!.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks).toString('utf8');
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
}

const contexts: InvocationContext[] = [];

const definitions: HttpDefinition[] = [
  {
    name: 'hello',
    trigger: { type: 'http', methods: ['GET'], route: 'hello/{name?}', authLevel: 'anonymous' },
    handler: async (request, context) => {
      contexts.push(context);
      return { jsonBody: { name: request.params.name ?? null, q: request.query.get('q'), url: request.url } };
    },
  },
  {
    name: 'itemById',
    trigger: { type: 'http', methods: ['GET'], route: 'items/{id:int}', authLevel: 'function' },
    handler: async (request) => ({ body: `item ${request.params.id}` }),
  },
  {
    name: 'latestItem',
    trigger: { type: 'http', methods: ['GET'], route: 'items/latest', authLevel: 'function' },
    handler: async () => ({ body: 'latest' }),
  },
  {
    name: 'echo',
    trigger: { type: 'http', methods: ['POST', 'PUT'], route: 'echo', authLevel: 'function' },
    handler: async (request) => ({
      status: 201,
      headers: { 'x-echo': request.headers.get('x-custom') ?? '', 'content-type': 'text/plain' },
      cookies: [{ name: 'session', value: 'abc', httpOnly: true, path: '/' }],
      body: `${request.method} ${await request.text()}`,
    }),
  },
  {
    name: 'capped',
    trigger: { type: 'http', methods: ['POST'], route: 'capped', authLevel: 'anonymous' },
    handler: async (request) => {
      const text = await readCapped(request, 1024);
      return text === undefined ? { status: 413, jsonBody: { error: 'too large' } } : { body: `${text.length}` };
    },
  },
  {
    name: 'streamed',
    trigger: { type: 'http', methods: ['GET'], route: 'streamed', authLevel: 'anonymous' },
    handler: async () =>
      new HttpResponse({
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(Buffer.from('part1,'));
            controller.enqueue(Buffer.from('part2'));
            controller.close();
          },
        }),
      }),
  },
  {
    name: 'nothing',
    trigger: { type: 'http', methods: ['DELETE'], route: 'nothing', authLevel: 'anonymous' },
    handler: async () => undefined as unknown as HttpResponse,
  },
  {
    name: 'boom',
    trigger: { type: 'http', methods: ['GET'], route: 'boom', authLevel: 'anonymous' },
    handler: async () => {
      throw new Error(`failure mentioning the key ${API_KEY}`);
    },
  },
  {
    name: 'adminOnly',
    trigger: { type: 'http', methods: ['GET'], route: 'admin/thing', authLevel: 'admin' },
    handler: async () => ({ body: 'admin' }),
  },
  importsFunction as HttpDefinition,
];

/**
 * POSTs a chunked body (no Content-Length) of up to `totalBytes`, writing as fast as the server
 * takes bytes, and stops writing as soon as the response arrives. Returns the response and how
 * many body bytes the connection accepted: all of them only if the server read them all.
 */
function postChunked(url: string, headers: Record<string, string>, totalBytes: number): Promise<{ status: number; body: string; sentBytes: number }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sentBytes = 0;
    let answered = false;
    const req = httpRequest(url, { method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' } }, (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8'), sentBytes });
      });
    });
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const writeMore = () => {
      while (!answered && sentBytes < totalBytes) {
        sentBytes += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', writeMore);
      }
      if (!answered) req.end();
    };
    req.flushHeaders();
    writeMore();
  });
}

describe('local host HTTP functions', () => {
  let host: TestHost;
  beforeAll(async () => {
    host = await startTestHost({ definitions, settings: { HOIST_API_KEY: API_KEY } });
  });
  afterAll(async () => {
    await host?.stop();
  });
  const url = (path: string) => `${host.url}${path}`;

  it('serves routes under /api with optional parameters and the query', async () => {
    const named = await fetch(url('/api/hello/world?q=1'));
    expect(named.status).toBe(200);
    expect(named.headers.get('content-type')).toMatch(/application\/json/);
    expect(await named.json()).toEqual({ name: 'world', q: '1', url: url('/api/hello/world?q=1') });
    expect(await (await fetch(url('/api/hello'))).json()).toMatchObject({ name: null });
  });

  it('gives each invocation its own context with id and function name', async () => {
    contexts.length = 0;
    await fetch(url('/api/hello/a'));
    await fetch(url('/api/hello/b'));
    expect(contexts.map((c) => c.functionName)).toEqual(['hello', 'hello']);
    expect(contexts[0]!.invocationId).not.toBe(contexts[1]!.invocationId);
    expect(contexts[0]!.invocationId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('prefers a literal route over a parameter and applies constraints', async () => {
    const headers = { 'x-functions-key': API_KEY };
    expect(await (await fetch(url('/api/items/latest'), { headers })).text()).toBe('latest');
    expect(await (await fetch(url('/api/items/42'), { headers })).text()).toBe('item 42');
    await expectErrorShape(await fetch(url('/api/items/abc'), { headers }), 404, 'NOT_FOUND');
  });

  it.each([
    ['an unknown route', '/api/nowhere', 'GET'],
    ['a path outside the route prefix', '/hello/world', 'GET'],
    ['a method the function does not accept', '/api/hello/world', 'POST'],
  ])('answers 404 for %s, in the error shape', async (_, path, method) => {
    const error = await expectErrorShape(await fetch(url(path), { method }), 404, 'NOT_FOUND');
    expect(error.message).toContain(`${method} ${path}`);
    if (path === '/api/hello/world') expect(error.message).toContain('this path takes GET');
  });

  it.each([
    ['no key', '/api/echo', {}, 401],
    ['a wrong key in the header', '/api/echo', { 'x-functions-key': 'wrong' }, 401],
    ['a wrong key in ?code=', '/api/echo?code=wrong', {}, 401],
    ['the key in the header', '/api/echo', { 'x-functions-key': API_KEY }, 201],
    ['the key in ?code=', `/api/echo?code=${API_KEY}`, {}, 201],
  ])('with %s a function-level route answers %i', async (_, path, headers, status) => {
    const response = await fetch(url(path), { method: 'POST', headers, body: 'hi' });
    if (status === 401) await expectErrorShape(response, 401, 'UNAUTHORIZED');
    else expect(response.status).toBe(status);
  });

  it('requires the key for admin routes and not for anonymous ones', async () => {
    await expectErrorShape(await fetch(url('/api/admin/thing')), 401, 'UNAUTHORIZED');
    expect((await fetch(url(`/api/admin/thing?code=${API_KEY}`))).status).toBe(200);
    expect((await fetch(url('/api/hello'))).status).toBe(200);
  });

  it('passes method, headers and body in, and status, headers and cookies out', async () => {
    const response = await fetch(url('/api/echo'), { method: 'PUT', headers: { 'x-functions-key': API_KEY, 'x-custom': 'value' }, body: 'payload' });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-echo')).toBe('value');
    expect(response.headers.getSetCookie()).toEqual(['session=abc; Path=/; HttpOnly']);
    expect(await response.text()).toBe('PUT payload');
  });

  it('streams request bodies, so a handler can refuse an oversized one after reading its cap', async () => {
    expect(await (await fetch(url('/api/capped'), { method: 'POST', body: 'x'.repeat(1000) })).text()).toBe('1000');
    const big = await fetch(url('/api/capped'), { method: 'POST', body: 'x'.repeat(5 * 1024 * 1024) });
    expect(big.status).toBe(413);
  });

  it('stops reading a huge chunked POST to /api/imports at 64 KiB and answers 413 with the error JSON', async () => {
    const total = 128 * 1024 * 1024;
    const answer = await postChunked(url('/api/imports'), { 'content-type': 'application/json', 'x-functions-key': API_KEY }, total);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    // The server stopped reading: what the connection took is what fits in the socket buffers
    // (a few MiB on loopback), not the body.
    expect(answer.sentBytes).toBeLessThan(total / 4);
  });

  it('streams response bodies', async () => {
    expect(await (await fetch(url('/api/streamed'))).text()).toBe('part1,part2');
  });

  it('answers 204 when a handler returns nothing', async () => {
    expect((await fetch(url('/api/nothing'), { method: 'DELETE' })).status).toBe(204);
  });

  it('answers 500 for a handler error, and logs it without the key', async () => {
    const error = await expectErrorShape(await fetch(url('/api/boom')), 500, 'INTERNAL_ERROR');
    expect(error.message).not.toContain('failure mentioning');
    const failure = host.logs.find((line) => line.includes("Executed 'Functions.boom' (Failed"));
    expect(failure).toMatch(/failure mentioning the key \*\*\*/);
    expect(host.logs.join('\n')).not.toContain(API_KEY);
  });
});

describe('local host start-up', () => {
  it('refuses two functions with the same name', async () => {
    const duplicate = definitions[0]!;
    await expect(startTestHost({ definitions: [duplicate, { ...duplicate }], settings: {} })).rejects.toThrow(/unique/);
  });

  it('refuses a taken port', async () => {
    const first = await startTestHost({ definitions: [], settings: {} });
    try {
      await expect(startTestHost({ definitions: [], settings: {}, port: first.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.stop();
    }
  });

  it('enforces no key when HOIST_API_KEY is unset, as func start does', async () => {
    const host = await startTestHost({ definitions, settings: {} });
    try {
      expect((await fetch(`${host.url}/api/echo`, { method: 'POST', body: 'x' })).status).toBe(201);
    } finally {
      await host.stop();
    }
  });
});
