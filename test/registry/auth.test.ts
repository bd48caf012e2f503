/**
 * The authenticator on its own, against a scripted token service on loopback: what it asks the
 * realm (method, query, form, Basic), what it makes of the answer, how long it keeps a token and
 * a provider's answer, and what a registry's 401 makes it do next. The copy tests drive it
 * through real token-auth registries; these pin down each rule on its own, where a registry
 * could not show which rule broke (docs/mutation-testing.md, run 30).
 */
import { getEventListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AddressRefusedError, createAddressPolicy } from '../../src/registry/address-policy.js';
import { Authenticator, readLimited, requestSmall, USER_AGENT } from '../../src/registry/auth.js';
import type { CredentialProvider, GetCredentialsOptions, RegistryCredential } from '../../src/registry/credentials.js';
import { LimitsByHost, type LimitsClock } from '../../src/registry/host-limits.js';
import { Connections } from '../../src/registry/http.js';
import type { RetryPolicy } from '../../src/registry/retry.js';
import { TlsSettings } from '../../src/registry/tls.js';
import { makeServerCertificate } from '../helpers/certificates.js';
import { registryError } from '../helpers/registry-error.js';
import { basicHeader } from '../helpers/registry.js';
import { ScriptedServer, type ScriptedAnswer } from '../helpers/scripted-server.js';

const REGISTRY = 'registry.test';
const NO_RETRY: RetryPolicy = { maxAttempts: 1, baseDelayInMs: 1, maxDelayInMs: 1 };
const QUICK_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayInMs: 1, maxDelayInMs: 5 };

/** A provider that answers `next()` and records every call's scopes and options. */
function recordingProvider(next: (options: GetCredentialsOptions) => RegistryCredential | undefined) {
  const calls: { scopes: readonly string[]; options: GetCredentialsOptions }[] = [];
  const provider: CredentialProvider = {
    id: 'test',
    getCredentials: (registry, scopes, options = {}) => {
      expect(registry).toBe(REGISTRY);
      calls.push({ scopes, options });
      return Promise.resolve(next(options));
    },
  };
  return { provider, calls };
}

const alice: RegistryCredential = { kind: 'basic', username: 'alice', password: 's3cret' };

/** A token answer: JSON unless the test says otherwise. */
const json = (body: string, status = 200, headers: Record<string, string> = {}): ScriptedAnswer => ({ status, headers: { 'content-type': 'application/json', ...headers }, body });

let service: ScriptedServer;
beforeEach(async () => {
  service = await new ScriptedServer().start();
  service.answer = () => json(JSON.stringify({ token: 'tok-1' }));
});
afterEach(async () => {
  vi.useRealTimers();
  await service.stop();
});

function authenticator(provider: CredentialProvider, retry = NO_RETRY, limits?: LimitsByHost): Authenticator {
  return new Authenticator(REGISTRY, REGISTRY, provider, retry, new Connections(), limits);
}

/** An authenticator that has met the Bearer challenge `params` (realm defaults to the service's `/token`). */
async function challenged(provider: CredentialProvider, params = `realm="${service.url}/token",service="${REGISTRY}"`, retry = NO_RETRY): Promise<Authenticator> {
  const auth = authenticator(provider, retry);
  expect(await auth.rejected(`Bearer ${params}`, [], undefined)).toBe('retry');
  return auth;
}

describe('asking the token realm', () => {
  it('GETs with the service, each scope (sorted, once each) and the provider’s Basic credentials', async () => {
    const { provider } = recordingProvider(() => alice);
    const auth = await challenged(provider);
    expect(await auth.authorization(['repository:b:pull', 'repository:a:pull', 'repository:b:pull'])).toBe('Bearer tok-1');
    const [req] = service.requests;
    expect(req.method).toBe('GET');
    expect(req.path).toBe('/token');
    expect(req.query.get('service')).toBe(REGISTRY);
    expect(req.query.getAll('scope')).toEqual(['repository:a:pull', 'repository:b:pull']);
    expect(req.headers.authorization).toBe(basicHeader({ username: 'alice', password: 's3cret' }));
    expect(req.headers['user-agent']).toBe(USER_AGENT);
    expect(USER_AGENT).toMatch(/^hoist\/\d/);
  });

  it('sends neither a service nor a scope nor Basic that it does not have', async () => {
    const { provider } = recordingProvider(() => undefined);
    const auth = await challenged(provider, `realm="${service.url}/token"`);
    expect(await auth.authorization([])).toBe('Bearer tok-1');
    const [req] = service.requests;
    expect([...req.query.keys()]).toEqual([]);
    expect(req.headers.authorization).toBeUndefined();
  });

  it('exchanges an identity token by the OAuth2 refresh-token grant, as docker does', async () => {
    const { provider } = recordingProvider(() => ({ kind: 'identityToken', token: 'refresh-me' }));
    const auth = await challenged(provider);
    await auth.authorization(['repository:a:pull', 'repository:b:push']);
    const [req] = service.requests;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(req.body.toString()))).toEqual({
      grant_type: 'refresh_token',
      client_id: 'hoist',
      refresh_token: 'refresh-me',
      service: REGISTRY,
      scope: 'repository:a:pull repository:b:push',
    });
  });

  it('leaves service and scope out of the grant when there are none', async () => {
    const { provider } = recordingProvider(() => ({ kind: 'identityToken', token: 'refresh-me' }));
    const auth = await challenged(provider, `realm="${service.url}/token"`);
    await auth.authorization([]);
    expect([...new URLSearchParams(service.requests[0].body.toString()).keys()]).toEqual(['grant_type', 'client_id', 'refresh_token']);
  });

  it('sends an access token as it is, never to the realm', async () => {
    const { provider } = recordingProvider(() => ({ kind: 'accessToken', token: 'at-1' }));
    const auth = await challenged(provider);
    expect(await auth.authorization(['repository:a:pull'])).toBe('Bearer at-1');
    expect(service.requests).toHaveLength(0);
  });

  it('names a challenge without a realm, or with one that is not a URL', async () => {
    const { provider } = recordingProvider(() => undefined);
    const noRealm = await registryError((await challenged(provider, `service="${REGISTRY}"`)).authorization([]));
    expect(noRealm).toMatchObject({ code: 'UNAUTHORIZED', status: 401, method: 'GET', details: [{ code: 'UNAUTHORIZED', message: 'Bearer challenge without a realm' }] });
    const notUrl = await registryError((await challenged(provider, 'realm="not a url"')).authorization([]));
    expect(notUrl).toMatchObject({ code: 'UNAUTHORIZED', status: 401, method: 'GET', details: [{ code: 'UNAUTHORIZED', message: 'Bearer challenge with a realm that is not a URL' }] });
    expect(service.requests).toHaveLength(0);
  });
});

describe('the token answer', () => {
  it.each([
    [{ token: 'from-token', access_token: 'from-access' }, 'from-token'],
    [{ access_token: 'from-access' }, 'from-access'],
    [{ token: '', access_token: 'from-access' }, 'from-access'],
    [{ token: 42, access_token: 'from-access' }, 'from-access'],
  ])('takes `token`, else `access_token`: %j', async (body, expected) => {
    service.answer = () => ({ body: JSON.stringify(body) });
    const auth = await challenged(recordingProvider(() => undefined).provider);
    expect(await auth.authorization([])).toBe(`Bearer ${expected}`);
  });

  it.each([{}, { token: '' }, { access_token: 7 }])('refuses an answer without a token: %j', async (body) => {
    service.answer = () => ({ body: JSON.stringify(body) });
    const error = await registryError((await challenged(recordingProvider(() => undefined).provider)).authorization([]));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 200, details: [{ code: 'TOKEN', message: 'token response without a token' }] });
  });

  it.each([
    ['<html>sign in</html>', 'text/html', 'a text/html body'],
    ['[{"token":"t"}]', 'application/json', 'an application/json body'],
    ['"just-a-string"', 'application/json', 'an application/json body'],
    ['null', 'application/json', 'an application/json body'],
  ])('refuses %s, naming the realm and the type but never quoting it', async (body, contentType, described) => {
    service.answer = () => ({ headers: { 'content-type': contentType }, body });
    const error = await registryError((await challenged(recordingProvider(() => undefined).provider)).authorization([]));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 200, url: `${service.url}/token` });
    expect(error.details).toEqual([{ code: 'TOKEN', message: `the token realm ${service.url}/token answered ${described}, not a JSON token response` }]);
    expect(error.message).not.toContain('sign in');
    expect(error.message).not.toContain('just-a-string');
  });

  it('reads at most 1 MiB of it', async () => {
    service.answer = () => ({ body: JSON.stringify({ token: 't', padding: 'x'.repeat(1 << 20) }) });
    const error = await registryError((await challenged(recordingProvider(() => undefined).provider)).authorization([]));
    expect(error.message).toContain('not a JSON token response');
  });

  it.each([
    [401, 'UNAUTHORIZED'],
    [403, 'UNAUTHORIZED'],
    [400, 'UNAUTHORIZED'],
    [404, 'UNEXPECTED_RESPONSE'],
  ])('makes a %i refusal %s, naming the scopes asked for', async (status, code) => {
    service.answer = () => ({ status, body: 'no' });
    const auth = await challenged(recordingProvider(() => undefined).provider);
    const error = await registryError(auth.authorization(['repository:a:pull', 'repository:b:pull']));
    expect(error).toMatchObject({ code, status, method: 'GET', url: `${service.url}/token`, reference: `token service for ${REGISTRY}` });
    expect(error.details).toEqual([{ code: 'TOKEN', message: 'the token service refused repository:a:pull repository:b:pull' }]);
    const none = await registryError(auth.authorization([]));
    expect(none.details[0].message).toBe('the token service refused the request');
  });
});

describe('how long a token is kept', () => {
  /** Requests made for one scope at `at` ms after the first token was issued. */
  async function requestsAfter(expiresIn: unknown, ...at: number[]): Promise<number[]> {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.now();
    service.answer = (_, n) => ({ body: JSON.stringify({ token: `tok-${n}`, ...(expiresIn !== undefined && { expires_in: expiresIn }) }) });
    const auth = await challenged(recordingProvider(() => undefined).provider);
    await auth.authorization(['repository:a:pull']);
    const counts: number[] = [];
    for (const ms of at) {
      vi.setSystemTime(start + ms);
      expect(await auth.authorization(['repository:a:pull'])).toBe(`Bearer tok-${service.requests.length}`);
      counts.push(service.requests.length);
    }
    return counts;
  }

  it('until 10 s before `expires_in` runs out, then a new one', async () => {
    expect(await requestsAfter(30, 19_999, 20_000, 39_999, 40_000)).toEqual([1, 2, 2, 3]);
  });

  it.each([undefined, 0, -5, '300'])('60 s when `expires_in` is %j', async (expiresIn) => {
    expect(await requestsAfter(expiresIn, 49_999, 50_000)).toEqual([1, 2]);
  });

  it('per scope set, whatever the order the scopes are named in', async () => {
    const auth = await challenged(recordingProvider(() => undefined).provider);
    await auth.authorization(['repository:b:pull', 'repository:a:pull']);
    await auth.authorization(['repository:a:pull', 'repository:b:pull', 'repository:a:pull']);
    expect(service.requests).toHaveLength(1);
    await auth.authorization(['repository:a:pull']);
    expect(service.requests).toHaveLength(2);
  });
});

describe('a 401 from the registry', () => {
  it('is no reason to retry without a challenge Hoist can answer, and teaches nothing', async () => {
    const { provider, calls } = recordingProvider(() => alice);
    const auth = authenticator(provider);
    expect(await auth.rejected(undefined, [], undefined)).toBe(false);
    expect(await auth.rejected('Negotiate abc', [], undefined)).toBe(false);
    expect(await auth.authorization([])).toBeUndefined();
    expect(calls).toHaveLength(0);
  });

  it('with Basic: retried with the provider’s answer; refused again only if the provider answers something new', async () => {
    let current: RegistryCredential | undefined = alice;
    const { provider, calls } = recordingProvider(() => current);
    const auth = authenticator(provider);
    const challenge = 'Basic realm="registry"';
    expect(await auth.rejected(challenge, [], undefined)).toBe('retry');
    // Concurrent first requests all meet the 401 without credentials: the provider is asked once.
    expect(await auth.rejected(challenge, [], undefined)).toBe('retry');
    expect(calls).toHaveLength(1);
    expect(calls[0].options).not.toHaveProperty('challenge');
    expect(calls[0].options).not.toHaveProperty('rejected');
    const sent = await auth.authorization([]);
    expect(sent).toBe(basicHeader({ username: 'alice', password: 's3cret' }));

    // The same credentials refused: asked again (told what was refused), and nothing new to try.
    expect(await auth.rejected(challenge, [], sent)).toBe(false);
    expect(calls).toHaveLength(2);
    expect(calls[1].options.rejected).toEqual(alice);

    // Rotated meanwhile (same user, new password): worth a try even after a re-authentication.
    current = { kind: 'basic', username: 'alice', password: 'rotated' };
    expect(await auth.rejected(challenge, [], sent)).toBe('renewed');
    expect(await auth.authorization([])).toBe(basicHeader({ username: 'alice', password: 'rotated' }));

    // Anonymous now: nothing to send.
    current = undefined;
    expect(await auth.rejected(challenge, [], basicHeader({ username: 'alice', password: 'rotated' }))).toBe(false);
  });

  it('with Basic: two requests refused together, with the same credentials, both end', async () => {
    const auth = authenticator(recordingProvider(() => alice).provider);
    await auth.rejected('Basic', [], undefined);
    const sent = await auth.authorization([]);
    expect(await Promise.all([auth.rejected('Basic', [], sent), auth.rejected('Basic', [], sent)])).toEqual([false, false]);
  });

  it('with Basic: a different user is a renewal too', async () => {
    let current: RegistryCredential = alice;
    const auth = authenticator(recordingProvider(() => current).provider);
    expect(await auth.rejected('Basic', [], undefined)).toBe('retry');
    const sent = await auth.authorization([]);
    current = { kind: 'basic', username: 'bob', password: 's3cret' };
    expect(await auth.rejected('Basic', [], sent)).toBe('renewed');
  });

  it('with an access token: retried only with another token', async () => {
    let current: RegistryCredential = { kind: 'accessToken', token: 'at-1' };
    const { provider } = recordingProvider(() => current);
    const auth = await challenged(provider);
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, [], 'Bearer at-1')).toBe(false);
    current = { kind: 'identityToken', token: 'at-1' };
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, [], 'Bearer at-1')).toBe('renewed');
    current = { kind: 'accessToken', token: 'at-2' };
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, [], 'Bearer at-1')).toBe('renewed');
    expect(await auth.authorization([])).toBe('Bearer at-2');
    expect(service.requests).toHaveLength(0);
  });

  it('with Bearer: tells the provider the realm and service, and drops the token that was refused', async () => {
    service.answer = (_, n) => ({ body: JSON.stringify({ token: `tok-${n}` }) });
    const { provider, calls } = recordingProvider(() => alice);
    const realm = `${service.url}/token`;
    const auth = authenticator(provider);
    expect(await auth.rejected(`Bearer realm="${realm}",service="${REGISTRY}"`, ['repository:a:pull'], undefined)).toBe('retry');
    expect(calls[0].options.challenge).toStrictEqual({ realm, service: REGISTRY });
    expect(calls[0].options.connection).toMatchObject({ retry: NO_RETRY, registryHost: REGISTRY });
    expect(calls[0].options.connection).not.toHaveProperty('limits');
    // With the hosts' limits, a provider's own token requests (ACR's exchange) count against them too.
    const limits = new LimitsByHost();
    const limited = recordingProvider(() => alice);
    await authenticator(limited.provider, NO_RETRY, limits).rejected(`Bearer realm="${realm}"`, [], undefined);
    expect(limited.calls[0].options.connection?.limits).toBe(limits);
    const scopes = ['repository:a:pull'];
    expect(await auth.authorization(scopes)).toBe('Bearer tok-1');

    // A token other requests already replaced: the newer one stays.
    expect(await auth.rejected(`Bearer realm="${realm}",service="${REGISTRY}"`, scopes, 'Bearer stale')).toBe('retry');
    expect(await auth.authorization(scopes)).toBe('Bearer tok-1');
    // The token in use: dropped, and the next request gets a new one.
    expect(await auth.rejected(`Bearer realm="${realm}",error="invalid_token"`, scopes, 'Bearer tok-1')).toBe('retry');
    expect(calls.at(-1)!.options.challenge).toStrictEqual({ realm });
    expect(await auth.authorization(scopes)).toBe('Bearer tok-2');
  });

  it('with Bearer: drops the refused token whatever the order its scopes are named in', async () => {
    service.answer = (_, n) => ({ body: JSON.stringify({ token: `tok-${n}` }) });
    const auth = await challenged(recordingProvider(() => undefined).provider);
    expect(await auth.authorization(['repository:b:pull', 'repository:a:pull'])).toBe('Bearer tok-1');
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, ['repository:b:pull', 'repository:a:pull'], 'Bearer tok-1')).toBe('retry');
    expect(await auth.authorization(['repository:a:pull', 'repository:b:pull'])).toBe('Bearer tok-2');
  });

  it('with Bearer: credentials gone since (anonymous now) is a renewal', async () => {
    let current: RegistryCredential | undefined = alice;
    const auth = await challenged(recordingProvider(() => current).provider);
    const sent = await auth.authorization([]);
    current = undefined;
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, [], sent)).toBe('renewed');
  });

  it('never tells the provider a refusal when the refused request carried nothing', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { provider, calls } = recordingProvider(() => ({ ...alice, expiresAt: Date.now() }));
    const auth = authenticator(provider);
    await auth.rejected('Basic', [], undefined);
    await auth.authorization([]);
    await auth.rejected('Basic', [], undefined);
    expect(calls).toHaveLength(3);
    expect(calls.map((c) => 'rejected' in c.options)).toEqual([false, false, false]);
  });

  it('with Bearer and no credentials sent yet: drops any token cached for those scopes', async () => {
    service.answer = (_, n) => ({ body: JSON.stringify({ token: `tok-${n}` }) });
    const auth = await challenged(recordingProvider(() => undefined).provider);
    expect(await auth.authorization(['repository:a:pull'])).toBe('Bearer tok-1');
    expect(await auth.rejected(`Bearer realm="${service.url}/token",scope="repository:a:pull"`, ['repository:a:pull'], undefined)).toBe('retry');
    expect(await auth.authorization(['repository:a:pull'])).toBe('Bearer tok-2');
  });

  it('with Bearer: a provider that answers other credentials than were refused makes it a renewal', async () => {
    let current: RegistryCredential = alice;
    const auth = await challenged(recordingProvider(() => current).provider);
    const sent = await auth.authorization([]);
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, [], sent)).toBe('retry');
    current = { kind: 'identityToken', token: 'fresh' };
    expect(await auth.rejected(`Bearer realm="${service.url}/token"`, [], sent)).toBe('renewed');
  });
});

describe('the provider’s answer', () => {
  it('is kept until 10 s before its `expiresAt`', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.now();
    const { provider, calls } = recordingProvider(() => ({ ...alice, expiresAt: start + 20_000 }));
    const auth = authenticator(provider);
    await auth.rejected('Basic', [], undefined);
    vi.setSystemTime(start + 9_999);
    await auth.authorization([]);
    expect(calls).toHaveLength(1);
    vi.setSystemTime(start + 10_000);
    await auth.authorization([]);
    expect(calls).toHaveLength(2);
  });

  it('is asked once more when the token service refuses what it gave, and the fresher answer is used', async () => {
    service.answer = (req) => (new URLSearchParams(req.body.toString()).get('refresh_token') === 'old' ? { status: 401, body: '' } : { body: JSON.stringify({ token: 'from-new' }) });
    const { provider, calls } = recordingProvider((options) => ({ kind: 'identityToken', token: options.rejected ? 'new' : 'old' }));
    const auth = await challenged(provider);
    expect(await auth.authorization(['repository:a:pull'])).toBe('Bearer from-new');
    expect(calls.map((c) => c.options.rejected)).toEqual([undefined, { kind: 'identityToken', token: 'old' }]);
    // The fresher answer is kept for other scopes too.
    expect(await auth.authorization(['repository:b:pull'])).toBe('Bearer from-new');
    expect(calls).toHaveLength(2);
    expect(service.requests).toHaveLength(3);
  });

  it('is not asked again after a refusal that fresher credentials cannot help', async () => {
    service.answer = () => ({ status: 401, body: '' });
    const same = recordingProvider(() => ({ kind: 'identityToken', token: 'old' }));
    expect(await registryError((await challenged(same.provider)).authorization([]))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(same.calls).toHaveLength(2);
    expect(service.requests).toHaveLength(1);

    const anonymous = recordingProvider(() => undefined);
    await registryError((await challenged(anonymous.provider)).authorization([]));
    expect(anonymous.calls).toHaveLength(1);

    service.answer = () => ({ status: 404, body: '' });
    const notFound = recordingProvider(() => alice);
    expect(await registryError((await challenged(notFound.provider)).authorization([]))).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 404 });
    expect(notFound.calls).toHaveLength(1);
  });
});

describe('callers sharing one token request', () => {
  it('share one request; it is aborted only when the last of them gives up', async () => {
    service.answer = () => 'hold';
    const auth = await challenged(recordingProvider(() => undefined).provider);
    const first = new AbortController();
    const second = new AbortController();
    const a = auth.authorization(['repository:a:pull'], first.signal);
    const b = auth.authorization(['repository:a:pull'], second.signal);
    await vi.waitFor(() => expect(service.held).toHaveLength(1));
    let closed = false;
    void service.held[0].then(() => (closed = true));
    first.abort(new Error('first gave up'));
    await expect(a).rejects.toThrow('first gave up');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    second.abort(new Error('second gave up'));
    await expect(b).rejects.toThrow('second gave up');
    await service.held[0];
    expect(service.requests).toHaveLength(1);
  });

  it('leaves no listener on a caller’s signal once answered', async () => {
    const auth = await challenged(recordingProvider(() => undefined).provider);
    const signal = new AbortController().signal;
    await auth.authorization(['repository:a:pull'], signal);
    await auth.authorization(['repository:a:pull'], signal);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('a caller already aborted never starts one', async () => {
    const auth = await challenged(recordingProvider(() => undefined).provider);
    await expect(auth.authorization([], AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    expect(service.requests).toHaveLength(0);
  });
});

describe('requestSmall', () => {
  const url = () => new URL(`${service.url}/token`);

  it('retries a dropped connection, a 5xx and a 429 under the retry policy, with or without host limits', async () => {
    service.answer = (_, n) => (n === 1 ? 'drop' : n === 2 ? { status: 503, body: '' } : n === 3 ? { status: 429, body: '' } : { body: 'ok' });
    const answer = await requestSmall({ url: url(), method: 'GET', reference: 'token service', retry: { ...QUICK_RETRY, maxAttempts: 4 }, connections: new Connections() });
    expect(answer).toMatchObject({ statusCode: 200, text: 'ok' });
    expect(service.requests).toHaveLength(4);
  });

  it('gives up on the last attempt with NETWORK_ERROR naming the URL without its query', async () => {
    service.answer = () => 'drop';
    const error = await registryError(requestSmall({ url: new URL(`${service.url}/token?secret=x`), method: 'POST', reference: 'token service', retry: QUICK_RETRY, connections: new Connections() }));
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', status: 0, method: 'POST', url: `${service.url}/token`, reference: 'token service' });
    expect(service.requests).toHaveLength(3);
  });

  it('answers the last attempt’s status as it is', async () => {
    service.answer = () => ({ status: 503, body: 'busy' });
    const answer = await requestSmall({ url: url(), method: 'GET', reference: 'token service', retry: QUICK_RETRY, connections: new Connections() });
    expect(answer).toMatchObject({ statusCode: 503, text: 'busy' });
    expect(service.requests).toHaveLength(3);
  });

  it('pauses every request to a host that answers 429, for as long as its Retry-After says', async () => {
    const paused: number[] = [];
    let now = 0;
    const clock: LimitsClock = { now: () => now, sleep: (ms) => {
        paused.push(ms);
        now += ms;
        return Promise.resolve();
      },
    };
    service.answer = (_, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '2' }, body: '' } : { body: 'ok' });
    // Retry-After is bounded by the policy's longest delay; the pause goes by the limits' clock, not the test's.
    const retry = { ...QUICK_RETRY, maxDelayInMs: 60_000 };
    const answer = await requestSmall({ url: new URL(`${service.url}/token`), method: 'GET', reference: 'token service', retry, connections: new Connections(), limits: new LimitsByHost(4, clock) });
    expect(answer).toMatchObject({ statusCode: 200, text: 'ok' });
    expect(paused).toEqual([2000]);
  });

  it('waits out a 5xx on its own, without pausing the host', async () => {
    const paused: number[] = [];
    const clock: LimitsClock = { now: () => 0, sleep: (ms) => Promise.resolve(void paused.push(ms)) };
    service.answer = (_, n) => (n === 1 ? { status: 503, body: '' } : { body: 'ok' });
    const answer = await requestSmall({ url: new URL(`${service.url}/token`), method: 'GET', reference: 'token service', retry: QUICK_RETRY, connections: new Connections(), limits: new LimitsByHost(4, clock) });
    expect(answer).toMatchObject({ statusCode: 200, text: 'ok' });
    expect(paused).toEqual([]);
  });

  it('gives the host’s request slot back after each request', async () => {
    const limits = new LimitsByHost(1);
    for (let i = 0; i < 3; i++) {
      const answer = await requestSmall({ url: url(), method: 'GET', reference: 'token service', retry: NO_RETRY, connections: new Connections(), limits });
      expect(answer.statusCode).toBe(200);
    }
  });
});

describe('requestSmall, refused before any answer', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'hoist-auth-tls-'));
  });
  afterAll(() => rm(directory, { recursive: true, force: true }));

  it('throws an address the policy refuses as it is, without retrying', async () => {
    const policy = createAddressPolicy({ trustedHosts: [] });
    const refused = await requestSmall({ url: new URL(`${service.url}/token`), method: 'GET', reference: 'token service', retry: QUICK_RETRY, connections: new Connections({ policy }) }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AddressRefusedError);
    expect(service.requests).toHaveLength(0);
  });

  it('names a certificate that does not verify, unless the registry it serves is skip-verify', async () => {
    const certificate = await makeServerCertificate(directory, 'token', { subjectAltName: 'IP:127.0.0.1' });
    const tokens = await new ScriptedServer().start(certificate);
    tokens.answer = () => json('{"token":"t"}');
    try {
      const url = new URL(`${tokens.url}/token?service=x`);
      const connections = new Connections({ tls: new TlsSettings({ skipVerify: [REGISTRY], warn: () => undefined }) });
      const refused = await registryError(requestSmall({ url, method: 'GET', reference: 'token service', retry: QUICK_RETRY, connections }));
      expect(refused).toMatchObject({ code: 'TLS_VERIFY_FAILED', status: 0, method: 'GET', url: `${tokens.url}/token`, reference: 'token service' });
      const answer = await requestSmall({ url, method: 'GET', reference: 'token service', retry: NO_RETRY, connections, registryHost: REGISTRY });
      expect(answer).toMatchObject({ statusCode: 200, text: '{"token":"t"}' });
      expect(tokens.requests).toHaveLength(1);
    } finally {
      await tokens.stop();
    }
  });
});

describe('readLimited', () => {
  async function* chunks(...parts: string[]): AsyncIterable<Buffer> {
    for (const part of parts) yield Buffer.from(part);
  }

  it('keeps the first `limit` bytes and reads the rest to its end', async () => {
    expect(await readLimited(chunks('aaa', 'bbb', 'ccc'), 4)).toBe('aaab');
    expect(await readLimited(chunks('aa', 'bb', 'cc'), 4)).toBe('aabb');
    expect(await readLimited(chunks('aaa', 'bbb'), 100)).toBe('aaabbb');
  });
});
