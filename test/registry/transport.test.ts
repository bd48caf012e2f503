/**
 * The request layer against scripted servers on loopback: which failures it sends again and how
 * often (and which it must not, because the registry may have half applied them), when a 401 is
 * worth authenticating again, where credentials go across redirects, and what error a refusal
 * becomes. Each rule on its own, where a real registry would not fail on demand.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { RegistryCredential } from '../../src/registry/credentials.js';
import { RegistryError } from '../../src/registry/errors.js';
import { LimitsByHost, type LimitsClock } from '../../src/registry/host-limits.js';
import { Connections } from '../../src/registry/http.js';
import { TlsSettings } from '../../src/registry/tls.js';
import { flatten, Transport, type TransportRequest } from '../../src/registry/transport.js';
import { makeServerCertificate } from '../helpers/certificates.js';
import { registryError } from '../helpers/registry-error.js';
import { basicHeader } from '../helpers/registry.js';
import { ScriptedServer, type ScriptedAnswer, type SeenRequest } from '../helpers/scripted-server.js';

const RETRY = { maxAttempts: 3, baseDelayInMs: 1, maxDelayInMs: 5 };
const alice = { username: 'alice', password: 's3cret' };

let registry: ScriptedServer;
beforeEach(async () => {
  registry = await new ScriptedServer().start();
});
afterEach(() => registry.stop());

/** A transport to the scripted registry, with the provider's answers `credentials()` (anonymous by default). */
function transport(options: { credentials?: () => RegistryCredential | undefined; limits?: LimitsByHost; connections?: Connections; host?: string } = {}): Transport {
  const provider = { id: 'test', getCredentials: () => Promise.resolve(options.credentials?.()) };
  return new Transport(options.host ?? registry.host, 'registry.test', provider, RETRY, options.connections ?? new Connections(), options.limits);
}

function request(overrides: Partial<TransportRequest> = {}): TransportRequest {
  return { method: 'GET', url: new URL(`${registry.url}/v2/app/manifests/v1`), scopes: ['repository:app:pull'], reference: 'registry.test/app:v1', expect: [200], ...overrides };
}

describe('sending again', () => {
  it('retries a 5xx and a dropped connection, up to the policy’s attempts', async () => {
    registry.answer = (_, n) => (n === 1 ? { status: 503 } : n === 2 ? 'drop' : { status: 200, body: 'ok' });
    expect((await transport().send(request())).status).toBe(200);
    expect(registry.requests).toHaveLength(3);
  });

  it('gives up after the last attempt with the last answer’s error', async () => {
    registry.answer = () => ({ status: 503 });
    expect(await registryError(transport().send(request()))).toMatchObject({ code: 'SERVER_ERROR', status: 503, url: `${registry.url}/v2/app/manifests/v1` });
    expect(registry.requests).toHaveLength(3);

    registry.answer = () => 'drop';
    const dropped = await registryError(transport().send(request({ url: new URL(`${registry.url}/v2/app/blobs/uploads/s?_state=secret`) })));
    expect(dropped).toMatchObject({ code: 'NETWORK_ERROR', status: 0, url: `${registry.url}/v2/app/blobs/uploads/s` });
    expect(dropped.details[0].code).toBe('NETWORK_ERROR');
    expect(registry.requests).toHaveLength(6);
  });

  it('never resends a one-shot body, nor a chunk the registry may have half appended', async () => {
    for (const overrides of [{ replayable: false }, { resendOnFailure: false }]) {
      registry.requests.length = 0;
      registry.answer = () => ({ status: 503 });
      await registryError(transport().send(request({ method: 'PATCH', ...overrides })));
      registry.answer = () => 'drop';
      expect(await registryError(transport().send(request({ method: 'PATCH', ...overrides })))).toMatchObject({ code: 'NETWORK_ERROR' });
      expect(registry.requests).toHaveLength(2);
    }
  });

  it('answers a 429 even for such a chunk (the registry refused it unread), pausing the whole host for Retry-After', async () => {
    const paused: number[] = [];
    let now = 0;
    const clock: LimitsClock = {
      now: () => now,
      sleep: (ms) => {
        paused.push(ms);
        now += ms;
        return Promise.resolve();
      },
    };
    registry.answer = (_, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '0' } } : n === 2 ? { status: 503 } : { status: 202 });
    const limits = new LimitsByHost(4, clock);
    expect(await registryError(transport({ limits }).send(request({ method: 'PATCH', resendOnFailure: false, expect: [202] })))).toMatchObject({ status: 503 });
    expect(registry.requests).toHaveLength(2);
    // A 5xx waits out its back-off on its own; only the 429 paused the host.
    expect(paused).toEqual([]);

    registry.requests.length = 0;
    registry.answer = (_, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '3' } } : { status: 202 });
    const slow = new Transport(registry.host, 'registry.test', { id: 'test', getCredentials: () => Promise.resolve(undefined) }, { ...RETRY, maxDelayInMs: 60_000 }, new Connections(), limits);
    expect((await slow.send(request({ method: 'PATCH', resendOnFailure: false, expect: [202] }))).status).toBe(202);
    expect(paused).toEqual([3000]);
  });

  it('waits out a 5xx on its own, without pausing the host', async () => {
    const paused: number[] = [];
    const clock: LimitsClock = { now: () => 0, sleep: (ms) => Promise.resolve(void paused.push(ms)) };
    registry.answer = (_, n) => (n === 1 ? { status: 503 } : { status: 200 });
    expect((await transport({ limits: new LimitsByHost(4, clock) }).send(request())).status).toBe(200);
    expect(paused).toEqual([]);
  });

  it('resends a request that lost a race, for the codes it names, like a 5xx', async () => {
    const digestInvalid = { status: 400, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'race' }] }) };
    registry.answer = (_, n) => (n === 1 ? digestInvalid : { status: 201 });
    const put = request({ method: 'PUT', body: () => Buffer.from('{}'), expect: [201] });
    expect((await transport().send({ ...put, retryOnCodes: ['DIGEST_INVALID'] })).status).toBe(201);
    expect(registry.requests).toHaveLength(2);

    registry.requests.length = 0;
    registry.answer = () => digestInvalid;
    expect(await registryError(transport().send(put))).toMatchObject({ code: 'DIGEST_INVALID', status: 400 });
    expect(await registryError(transport().send({ ...put, retryOnCodes: ['DIGEST_INVALID'], replayable: false }))).toMatchObject({ code: 'DIGEST_INVALID' });
    expect(await registryError(transport().send({ ...put, retryOnCodes: ['DIGEST_INVALID'] }))).toMatchObject({ code: 'DIGEST_INVALID' });
    expect(registry.requests).toHaveLength(2 + RETRY.maxAttempts);
  });

  it('lets an error of the request’s own body through as it is', async () => {
    registry.answer = () => ({ status: 201 });
    const failing = new Readable({
      read() {
        this.destroy(Object.assign(new Error('source bytes hash to another digest'), { code: 'DIGEST_INVALID' }));
      },
    });
    const sent = transport().send(request({ method: 'PUT', body: () => failing, replayable: false, expect: [201] }));
    await expect(sent).rejects.toThrow('source bytes hash to another digest');
    await expect(sent).rejects.not.toBeInstanceOf(RegistryError);
  });
});

describe('authenticating again', () => {
  const challenge = { status: 401, headers: { 'www-authenticate': 'Basic realm="registry"' } };

  it('learns the challenge from the first 401, without spending an attempt on it', async () => {
    registry.answer = (req) => (req.headers.authorization === basicHeader(alice) ? { status: 200 } : challenge);
    const once = new Transport(registry.host, 'registry.test', { id: 'test', getCredentials: () => Promise.resolve({ kind: 'basic', ...alice }) }, { ...RETRY, maxAttempts: 1 });
    expect((await once.send(request())).status).toBe(200);
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([undefined, basicHeader(alice)]);
  });

  it('refuses credentials refused twice', async () => {
    registry.answer = () => challenge;
    expect(await registryError(transport({ credentials: () => ({ kind: 'basic', ...alice }) }).send(request()))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(registry.requests).toHaveLength(2);
  });

  it('follows a provider that rotates, three times at most', async () => {
    registry.answer = () => challenge;
    let n = 0;
    expect(await registryError(transport({ credentials: () => ({ kind: 'basic', username: 'alice', password: `pw-${++n}` }) }).send(request()))).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(registry.requests).toHaveLength(4);
  });

  it('spends no attempt of the retry policy on it', async () => {
    registry.answer = (req, n) => (!req.headers.authorization ? challenge : n === 2 ? { status: 503 } : { status: 200 });
    const twice = new Transport(registry.host, 'registry.test', { id: 'test', getCredentials: () => Promise.resolve({ kind: 'basic', ...alice }) }, { ...RETRY, maxAttempts: 2 });
    expect((await twice.send(request())).status).toBe(200);
    expect(registry.requests.map((r) => r.headers.authorization !== undefined)).toEqual([false, true, true]);
  });

  it('retries a refused token only once: a token service that grants what the registry refuses ends it', async () => {
    const tokens = await new ScriptedServer().start();
    try {
      tokens.answer = (_, n) => ({ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: `tok-${n}` }) });
      registry.answer = () => ({ status: 401, headers: { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="registry.test"` } });
      expect(await registryError(transport().send(request()))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      expect(registry.requests.map((r) => r.headers.authorization)).toEqual([undefined, 'Bearer tok-1']);
    } finally {
      await tokens.stop();
    }
  });

  it('never for a one-shot body', async () => {
    registry.answer = () => challenge;
    await registryError(transport({ credentials: () => ({ kind: 'basic', ...alice }) }).send(request({ method: 'PUT', replayable: false, expect: [201] })));
    expect(registry.requests).toHaveLength(1);
  });
});

describe('redirects', () => {
  let storage: ScriptedServer;
  beforeEach(async () => {
    storage = await new ScriptedServer().start();
    storage.answer = () => ({ status: 200, body: 'blob' });
  });
  afterEach(() => storage.stop());

  const authenticated = () => transport({ credentials: () => ({ kind: 'basic', ...alice }) });
  /** The registry asks for credentials, then redirects a blob GET to `to`. */
  const redirectingTo = (to: () => string) => (req: SeenRequest): ScriptedAnswer => (req.headers.authorization ? { status: 307, headers: { location: to() } } : { status: 401, headers: { 'www-authenticate': 'Basic realm="r"' } });

  it('are followed for GET, with credentials for the registry’s own origin only, and answered from where they led', async () => {
    registry.answer = redirectingTo(() => `${storage.url}/blob?sig=secret`);
    const response = await authenticated().send(request());
    expect(response.url.href).toBe(`${storage.url}/blob?sig=secret`);
    expect(storage.requests[0].headers.authorization).toBeUndefined();

    // Back at the registry's origin after leaving it: still no credentials (the chain left it).
    storage.answer = () => ({ status: 302, headers: { location: `${registry.url}/v2/app/blobs/final` } });
    registry.requests.length = 0;
    registry.answer = (req) => (req.path.endsWith('/final') ? { status: 200 } : redirectingTo(() => `${storage.url}/hop`)(req));
    await authenticated().send(request());
    expect(registry.requests.map((r) => [r.path, r.headers.authorization])).toEqual([
      ['/v2/app/manifests/v1', undefined],
      ['/v2/app/manifests/v1', basicHeader(alice)],
      ['/v2/app/blobs/final', undefined],
    ]);
  });

  it('keep credentials within the registry’s origin', async () => {
    registry.answer = (req) => (req.path === '/v2/app/manifests/v1' ? redirectingTo(() => '/v2/app/other')(req) : { status: 200 });
    await authenticated().send(request());
    expect(registry.requests.at(-1)).toMatchObject({ path: '/v2/app/other', headers: { authorization: basicHeader(alice) } });
  });

  it('are followed for HEAD; a 3xx without Location, or a 200 with one, is an answer', async () => {
    registry.answer = (req) => (req.path.endsWith('/moved') ? { status: 200 } : { status: 307, headers: { location: '/v2/app/moved' } });
    expect((await transport().send(request({ method: 'HEAD' }))).url.pathname).toBe('/v2/app/moved');

    registry.requests.length = 0;
    registry.answer = () => ({ status: 302 });
    expect(await registryError(transport().send(request()))).toMatchObject({ status: 302 });
    registry.answer = () => ({ status: 200, headers: { location: '/v2/app/elsewhere' } });
    expect((await transport().send(request())).url.pathname).toBe('/v2/app/manifests/v1');
    expect(registry.requests).toHaveLength(2);
  });

  it('are not followed for other methods, nor past five hops', async () => {
    registry.answer = () => ({ status: 307, headers: { location: '/v2/app/elsewhere' } });
    expect(await registryError(transport().send(request({ method: 'PUT', expect: [201] })))).toMatchObject({ status: 307 });
    expect(registry.requests).toHaveLength(1);

    registry.requests.length = 0;
    registry.answer = (_, n) => ({ status: 302, headers: { location: `/v2/app/hop-${n}` } });
    expect(await registryError(transport().send(request()))).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 302 });
    expect(registry.requests).toHaveLength(6);
  });

  it('from https never lead down to http, and stay on https', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'hoist-transport-'));
    const secure = await new ScriptedServer().start(await makeServerCertificate(directory, 'registry', { subjectAltName: 'IP:127.0.0.1' }));
    try {
      secure.answer = (req) => (req.path.endsWith('/up') ? { status: 302, headers: { location: `${secure.url}/v2/app/blobs/there` } } : req.path.endsWith('/there') ? { status: 200 } : { status: 302, headers: { location: `${storage.url}/blob` } });
      const connections = new Connections({ tls: new TlsSettings({ skipVerify: [secure.host], warn: () => undefined }) });
      const error = await registryError(transport({ connections, host: secure.host }).send(request({ url: new URL(`${secure.url}/v2/app/blobs/x`) })));
      expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 302, details: [{ code: 'REDIRECT', message: 'refused a redirect from https down to http' }] });
      expect(storage.requests).toHaveLength(0);
      expect((await transport({ connections, host: secure.host }).send(request({ url: new URL(`${secure.url}/v2/app/blobs/up`) }))).url.href).toBe(`${secure.url}/v2/app/blobs/there`);

      // Without skip-verify, the self-signed certificate is named as such, never retried as a dropped connection.
      const strict = await registryError(transport({ host: secure.host }).send(request({ url: new URL(`${secure.url}/v2/app/blobs/x?secret=1`) })));
      expect(strict).toMatchObject({ code: 'TLS_VERIFY_FAILED', status: 0, url: `${secure.url}/v2/app/blobs/x` });
    } finally {
      await secure.stop();
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('errors', () => {
  it('take the code of an OCI error body, else the status’s, and read no body of a HEAD', async () => {
    registry.answer = () => ({ status: 403, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'no push' }] }) });
    expect(await registryError(transport().send(request({ method: 'PUT', expect: [201] })))).toMatchObject({ code: 'DENIED', details: [{ code: 'DENIED', message: 'no push' }] });
    registry.answer = () => ({ status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' });
    expect(await registryError(transport().send(request({ method: 'HEAD' })))).toMatchObject({ code: 'NAME_UNKNOWN', status: 404, method: 'HEAD', details: [] });
  });
});

describe('flatten', () => {
  it('lower-cases names and joins a repeated header', () => {
    expect(flatten({ 'WWW-Authenticate': ['Bearer realm="a"', 'Basic realm="b"'], Location: '/x', empty: undefined })).toEqual({ 'www-authenticate': 'Bearer realm="a", Basic realm="b"', location: '/x', empty: undefined });
  });
});
