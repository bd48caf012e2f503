/**
 * The ACR pieces on their own: recognising an ACR by its challenge, telling tokens apart, parsing
 * resource IDs, and the identity provider's refresh tokens (kept, renewed before `exp` by an
 * injected clock, renewed at once when refused) against the ACR fixture's real token service.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { AcrIdentityCredentials } from '../../src/azure/acr-credentials.js';
import { classifyPasswordToken, isAcrChallenge, mayReceiveEntraToken } from '../../src/azure/acr-tokens.js';
import { looksLikeResourceId, parseRegistryResourceId } from '../../src/azure/arm.js';
import { Connections } from '../../src/registry/http.js';
import { DEFAULT_RETRY } from '../../src/registry/retry.js';
import { startAcrFixture, type AcrFixture } from '../helpers/acr-fixture.js';
import { ACR_AUDIENCE, createEntraTenant } from '../helpers/entra-tenant.js';
import { startManagedIdentityEndpoint, type ManagedIdentityEndpoint } from '../helpers/managed-identity.js';

const tenant = createEntraTenant();
const APP = 'app-oid';
let acr: AcrFixture;
let endpoint: ManagedIdentityEndpoint;
const saved = { IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT, IDENTITY_HEADER: process.env.IDENTITY_HEADER };

beforeAll(async () => {
  [acr, endpoint] = await Promise.all([
    startAcrFixture({ tenant, roles: [{ principal: APP, role: 'AcrPull' }], refreshTokenTtlSeconds: 600 }),
    startManagedIdentityEndpoint({ tenant, systemAssigned: APP }),
  ]);
  Object.assign(process.env, endpoint.environment);
});
afterAll(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await Promise.all([acr?.stop(), endpoint?.stop()]);
});

function jwt(claims: Record<string, unknown>): string {
  return `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;
}

describe('isAcrChallenge', () => {
  it.each<[string, string, string | undefined, boolean]>([
    ['the registry\'s own /oauth2/token', 'myacr.azurecr.io', 'https://myacr.azurecr.io/oauth2/token', true],
    ['a custom domain of an ACR', 'registry.contoso.com', 'https://registry.contoso.com/oauth2/token', true],
    ['http on a registry reached over http (loopback)', '127.0.0.1:5000', 'http://127.0.0.1:5000/oauth2/token', true],
    ['http beyond loopback (the token would cross the network in clear)', 'lab.example:5000', 'http://lab.example:5000/oauth2/token', false],
    ['an azurecr.io name whose realm is elsewhere (a proxy or mirror)', 'myacr.azurecr.io', 'https://auth.example.com/oauth2/token', false],
    ['Docker Hub', 'docker.io', 'https://auth.docker.io/token', false],
    ['another path on the registry', 'myacr.azurecr.io', 'https://myacr.azurecr.io/token', false],
    ['no realm', 'myacr.azurecr.io', undefined, false],
    ['a realm that is not a URL', 'myacr.azurecr.io', 'not a url', false],
  ])('%s: %s', (_, registry, realm, expected) => {
    expect(isAcrChallenge(registry, realm === undefined ? undefined : { realm })).toBe(expected);
  });
});

describe('mayReceiveEntraToken', () => {
  it.each<[string, string[], boolean]>([
    ['myacr.azurecr.io', [], true],
    ['myacr.azurecr.cn', [], true],
    ['myacr.azurecr.us', [], true],
    ['azurecr.io.evil.example', [], false],
    ['myacrazurecr.io', [], false],
    ['registry.contoso.com', [], false],
    ['registry.contoso.com', ['registry.contoso.com'], true],
    ['registry.contoso.com:443', ['*.contoso.com'], true],
    ['127.0.0.1:5000', ['127.0.0.1:5000'], true],
    ['127.0.0.1:5001', ['127.0.0.1:5000'], false],
  ])('%s with %j trusted: %s', (registry, trusted, expected) => {
    expect(mayReceiveEntraToken(registry, trusted)).toBe(expected);
  });
});

describe('classifyPasswordToken', () => {
  it.each<[string, string, string | undefined]>([
    ['an Entra token', jwt({ iss: 'https://sts.windows.net/t/', tid: 't', exp: 2e9 }), 'entra'],
    ['an Entra v2 token', jwt({ iss: 'https://login.microsoftonline.com/t/v2.0', tid: 't' }), 'entra'],
    ['an ACR refresh token', jwt({ iss: 'Azure Container Registry', grant_type: 'refresh_token' }), 'acrRefresh'],
    ['an ACR access token', jwt({ iss: 'Azure Container Registry', access: [] }), 'acrAccess'],
    ['a JWT of another issuer', jwt({ iss: 'https://accounts.google.com', tid: 't' }), undefined],
    ['a plain password', 'hunter2', undefined],
    ['three dots of garbage', 'a.b.c', undefined],
  ])('%s', (_, password, kind) => {
    expect(classifyPasswordToken(password)?.kind).toBe(kind);
  });
});

describe('registry resource IDs', () => {
  it('parses one, case-insensitively as ARM does, and refuses other resource types', () => {
    expect(parseRegistryResourceId('/subscriptions/0000-1/resourceGroups/rg.a_(1)/providers/Microsoft.ContainerRegistry/registries/myacr')).toEqual({ subscription: '0000-1', resourceGroup: 'rg.a_(1)', name: 'myacr' });
    expect(parseRegistryResourceId('/SUBSCRIPTIONS/0000-1/resourcegroups/rg/providers/microsoft.containerregistry/registries/myacr')?.name).toBe('myacr');
    expect(parseRegistryResourceId('/subscriptions/0000-1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x')).toBeUndefined();
    expect(parseRegistryResourceId('/subscriptions/0000-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/my-acr/../x')).toBeUndefined();
    expect(looksLikeResourceId('/subscriptions/whatever')).toBe(true);
    expect(looksLikeResourceId('myacr.azurecr.io')).toBe(false);
  });
});

describe('AcrIdentityCredentials', () => {
  const options = () => ({ challenge: { realm: acr.realm, service: acr.host }, connection: { retry: DEFAULT_RETRY, connections: new Connections() } });

  it('answers nothing to an ACR challenge from a registry it may not trust, without asking the identity', async () => {
    const before = endpoint.requests.length;
    const provider = new AcrIdentityCredentials(new ManagedIdentityCredential(), { id: 't', describe: 'x', unavailableAdvice: 'y', trustedRegistries: ['other.example'] });
    expect(await provider.getCredentials(acr.host, [], options())).toBeUndefined();
    expect(endpoint.requests.length).toBe(before);
  });

  it('answers nothing for a registry whose challenge is not ACR\'s, without asking the identity', async () => {
    const before = endpoint.requests.length;
    const provider = new AcrIdentityCredentials(new ManagedIdentityCredential(), { id: 't', describe: 'x', unavailableAdvice: 'y' });
    expect(await provider.getCredentials('docker.io', [], { challenge: { realm: 'https://auth.docker.io/token' }, connection: { retry: DEFAULT_RETRY, connections: new Connections() } })).toBeUndefined();
    expect(endpoint.requests.length).toBe(before);
    expect(provider.answeredFor('docker.io')).toBeUndefined();
  });

  it('keeps the refresh token, renews it 5 minutes before exp, and at once when it was refused', async () => {
    let now = Date.now();
    const provider = new AcrIdentityCredentials(new ManagedIdentityCredential(), { id: 't', describe: 'the test identity', unavailableAdvice: 'y', now: () => now });
    const exchanges = () => acr.requests.filter((r) => r.endpoint === 'exchange' && r.status === 200).length;
    const start = exchanges();
    const first = await provider.getCredentials(acr.host, [], options());
    // The fixture stamps `exp` from the real clock, which moved on while the exchange ran.
    const exchangedBy = Date.now();
    expect(first).toMatchObject({ kind: 'identityToken' });
    expect(exchanges()).toBe(start + 1);
    expect(endpoint.requests.at(-1)).toMatchObject({ resource: ACR_AUDIENCE, status: 200 });
    // It tells the authenticator to ask again at the renewal time: 600 s tokens, renewed 300 s early.
    const expiresAt = (first as { expiresAt: number }).expiresAt;
    expect(expiresAt - now).toBeGreaterThan(280_000);
    expect(expiresAt).toBeLessThanOrEqual(exchangedBy + 300_000);

    now += 200_000;
    expect(await provider.getCredentials(acr.host, [], options())).toEqual(first);
    expect(exchanges()).toBe(start + 1);

    now = expiresAt;
    const renewed = await provider.getCredentials(acr.host, [], options());
    expect(renewed).not.toEqual(first);
    expect(exchanges()).toBe(start + 2);

    const again = await provider.getCredentials(acr.host, [], { ...options(), rejected: renewed });
    expect(again).not.toEqual(renewed);
    expect(exchanges()).toBe(start + 3);
    expect(provider.answeredFor(acr.host)).toBe('the test identity');
  });

  it('shares one exchange between callers: one giving up (a job whose lease was lost) does not fail the others', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // A scripted identity, so the exchange can be held in flight while the first caller gives up.
    const identity = {
      getToken: async () => {
        await held;
        return { token: tenant.issue({ principal: APP, audience: ACR_AUDIENCE }).token, expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    const provider = new AcrIdentityCredentials(identity, { id: 't', describe: 'x', unavailableAdvice: 'y' });
    const controller = new AbortController();
    const first = provider.getCredentials(acr.host, [], { ...options(), abortSignal: controller.signal });
    const second = provider.getCredentials(acr.host, [], options());
    controller.abort(new Error('lease lost'));
    await expect(first).rejects.toThrow('lease lost');
    release();
    await expect(second).resolves.toMatchObject({ kind: 'identityToken' });
  });

  it('says no identity is available, naming the advice, when the identity gives no token', async () => {
    const provider = new AcrIdentityCredentials(new ManagedIdentityCredential({ clientId: 'unknown-client' }), { id: 't', describe: 'the test identity', unavailableAdvice: 'give the app an identity' });
    await expect(provider.getCredentials(acr.host, [], options())).rejects.toMatchObject({ code: 'AZURE_IDENTITY_UNAVAILABLE', message: expect.stringContaining('give the app an identity') });
  });

  it('says the exchange was refused when the registry refuses the identity\'s token', async () => {
    const provider = new AcrIdentityCredentials({ getToken: () => Promise.resolve({ token: tenant.issue({ principal: APP, audience: ACR_AUDIENCE, tenantId: 'another-tenant' }).token, expiresOnTimestamp: Date.now() + 3_600_000 }) }, { id: 't', describe: 'x', unavailableAdvice: 'y' });
    await expect(provider.getCredentials(acr.host, [], options())).rejects.toMatchObject({ code: 'ACR_EXCHANGE_REFUSED', message: expect.stringContaining("the registry's tenant") });
  });
});
