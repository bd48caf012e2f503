/**
 * The Azure fixtures against the real @azure/identity: the managed-identity endpoint serves
 * ManagedIdentityCredential (App Service source), the ACR fixture exchanges what it hands out and
 * grants per its role table, the ARM fixture resolves resource ids. Driven by plain fetch, so a
 * fixture bug cannot hide behind Hoist's own client.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { ACR_NULL_GUID, startAcrFixture, type AcrFixture } from './helpers/acr-fixture.js';
import { registryResourceId, startArmFixture, type ArmFixture } from './helpers/arm-fixture.js';
import { ACR_AUDIENCE, ARM_AUDIENCE, createEntraTenant } from './helpers/entra-tenant.js';
import { pushImage } from './helpers/fixtures.js';
import { startManagedIdentityEndpoint, type ManagedIdentityEndpoint } from './helpers/managed-identity.js';

const tenant = createEntraTenant();
const SYSTEM = 'system-identity-oid';
const READER_CLIENT = 'reader-client-id';
const READER = 'reader-oid';
let endpoint: ManagedIdentityEndpoint;
let acr: AcrFixture;
let arm: ArmFixture;
const saved = { IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT, IDENTITY_HEADER: process.env.IDENTITY_HEADER };

beforeAll(async () => {
  endpoint = await startManagedIdentityEndpoint({ tenant, systemAssigned: SYSTEM, userAssigned: { [READER_CLIENT]: READER } });
  Object.assign(process.env, endpoint.environment);
  acr = await startAcrFixture({ tenant, roles: [{ principal: SYSTEM, role: 'AcrPush' }, { principal: READER, role: 'AcrPull', repository: 'team/app' }] });
  arm = await startArmFixture({ tenant, registries: [{ resourceId: registryResourceId('sub-1', 'rg-1', 'myacr'), loginServer: acr.host, readers: [SYSTEM] }] });
  await pushImage({ url: acr.registry.url, credentials: acr.adminCredentials }, 'team/app', '1');
});

afterAll(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await Promise.all([endpoint?.stop(), acr?.stop(), arm?.stop()]);
});

async function exchange(entraToken: string, tenantId?: string): Promise<Response> {
  const form = new URLSearchParams({ grant_type: 'access_token', service: acr.host, access_token: entraToken });
  if (tenantId) form.set('tenant', tenantId);
  return fetch(`${acr.url}/oauth2/exchange`, { method: 'POST', body: form });
}

async function accessToken(refreshToken: string, scope: string): Promise<string> {
  const response = await fetch(`${acr.url}/oauth2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', service: acr.host, scope, refresh_token: refreshToken }) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

describe('managed-identity endpoint', () => {
  it('serves the real ManagedIdentityCredential, system- and user-assigned', async () => {
    const system = await new ManagedIdentityCredential().getToken(`${ACR_AUDIENCE}/.default`);
    expect(tenant.verify(system!.token, [ACR_AUDIENCE])).toMatchObject({ ok: true, claims: { oid: SYSTEM, tid: tenant.tenantId } });
    const user = await new ManagedIdentityCredential({ clientId: READER_CLIENT }).getToken(`${ARM_AUDIENCE}/.default`);
    expect(tenant.verify(user!.token, [ARM_AUDIENCE])).toMatchObject({ ok: true, claims: { oid: READER } });
    expect(endpoint.requests.slice(-2)).toEqual([
      { resource: ACR_AUDIENCE, apiVersion: '2019-08-01', clientId: null, headerOk: true, status: 200 },
      { resource: ARM_AUDIENCE, apiVersion: '2019-08-01', clientId: READER_CLIENT, headerOk: true, status: 200 },
    ]);
  });

  it('refuses a request without the secret header, and an unknown client id', async () => {
    const url = new URL(endpoint.endpoint);
    url.searchParams.set('resource', ACR_AUDIENCE);
    url.searchParams.set('api-version', '2019-08-01');
    expect((await fetch(url)).status).toBe(401);
    await expect(new ManagedIdentityCredential({ clientId: 'nobody' }).getToken(`${ACR_AUDIENCE}/.default`)).rejects.toThrow(/No User Assigned/);
  });
});

describe('ACR fixture', () => {
  it('answers an anonymous request with ACR challenge naming its own token service', async () => {
    const response = await fetch(`${acr.url}/v2/team/app/manifests/1`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`Bearer realm="${acr.url}/oauth2/token",service="${acr.host}",scope="repository:team/app:pull"`);
  });

  it('exchanges an Entra token and grants what the roles allow, which the registry honours', async () => {
    const entra = tenant.issue({ principal: READER, audience: ACR_AUDIENCE });
    const exchanged = await exchange(entra.token, tenant.tenantId);
    expect(exchanged.status).toBe(200);
    const { refresh_token: refreshToken } = (await exchanged.json()) as { refresh_token: string };
    const token = await accessToken(refreshToken, 'repository:team/app:pull,push repository:other:pull');
    expect(acr.requests.at(-1)).toMatchObject({ endpoint: 'token', principal: READER, granted: ['repository:team/app:pull'] });
    const pull = await fetch(`${acr.url}/v2/team/app/manifests/1`, { headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(pull.status).toBe(200);
    const push = await fetch(`${acr.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(push.status).toBe(401);
    expect(push.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    // The null GUID with the refresh token as password, by GET, as docker does.
    const basic = await fetch(`${acr.url}/oauth2/token?service=${acr.host}&scope=repository:team/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`${ACR_NULL_GUID}:${refreshToken}`).toString('base64')}` } });
    expect(basic.status).toBe(200);
  });

  it.each([
    ['another audience', () => tenant.issue({ principal: SYSTEM, audience: 'https://storage.azure.com' }).token, undefined],
    ['an expired token', () => tenant.issue({ principal: SYSTEM, audience: ACR_AUDIENCE, ttlSeconds: -1 }).token, undefined],
    ['another tenant', () => tenant.issue({ principal: SYSTEM, audience: ACR_AUDIENCE, tenantId: 'other-tenant' }).token, undefined],
    ['a tenant field that does not match', () => tenant.issue({ principal: SYSTEM, audience: ACR_AUDIENCE }).token, 'other-tenant'],
    ['a token signed by another authority', () => createEntraTenant(tenant.tenantId).issue({ principal: SYSTEM, audience: ACR_AUDIENCE }).token, undefined],
  ])('refuses %s at the exchange', async (_, make, tenantId) => {
    const response = await exchange(make(), tenantId);
    expect(response.status).toBe(401);
  });

  it('refuses refresh and access tokens once expired', async () => {
    const { refresh_token: refreshToken } = (await (await exchange(tenant.issue({ principal: SYSTEM, audience: ACR_AUDIENCE }).token)).json()) as { refresh_token: string };
    const token = await accessToken(refreshToken, 'repository:team/app:pull');
    acr.expireTokens();
    const pull = await fetch(`${acr.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    expect(pull.status).toBe(401);
    expect(pull.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const again = await fetch(`${acr.url}/oauth2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', service: acr.host, scope: 'repository:team/app:pull', refresh_token: refreshToken }) });
    expect(again.status).toBe(401);
  });
});

describe('ARM fixture', () => {
  const id = registryResourceId('sub-1', 'rg-1', 'myacr');
  const get = (path: string, token: string) => fetch(`${arm.url}${path}?api-version=2023-07-01`, { headers: { authorization: `Bearer ${token}` } });

  it('answers the login server to a reader, with an ARM token from the real credential', async () => {
    const token = await new ManagedIdentityCredential().getToken(`${ARM_AUDIENCE}/.default`);
    const response = await get(id.toUpperCase(), token!.token);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { properties: { loginServer: string } }).properties.loginServer).toBe(acr.host);
  });

  it.each([
    ['an unknown registry', registryResourceId('sub-1', 'rg-1', 'nope'), SYSTEM, 404, 'ResourceNotFound'],
    ['an unknown resource group', registryResourceId('sub-1', 'rg-x', 'nope'), SYSTEM, 404, 'ResourceGroupNotFound'],
    ['a caller without read access', id, READER, 403, 'AuthorizationFailed'],
  ])('answers %s as ARM does', async (_, path, principal, status, code) => {
    const response = await get(path, tenant.issue({ principal, audience: ARM_AUDIENCE }).token);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it('refuses a token for another audience', async () => {
    const response = await get(id, tenant.issue({ principal: SYSTEM, audience: ACR_AUDIENCE }).token);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('InvalidAuthenticationTokenAudience');
  });
});
