/**
 * `hoist copy` to and from an Azure Container Registry with the developer's Azure login: the
 * compiled CLI in a child process, the real @azure/identity (AzureCliCredential running a
 * scripted `az` on PATH, since the real CLI cannot log in here), and ACR fixtures (its token
 * service in front of real token-auth registries) that check the Entra token and grant per role.
 */
import { ACR_AUDIENCE, createEntraTenant } from '../helpers/entra-tenant.js';
import { startAcrFixture, type AcrFixture } from '../helpers/acr-fixture.js';
import { fakeAz, type FakeAz } from '../helpers/fake-az.js';
import { pushImage, type PushedManifest } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { requireBuild, runHoist, tempHome, type TempHome } from './support.js';

const tenant = createEntraTenant();
const DEVELOPER = 'developer-oid';
const READ_ONLY = 'read-only-oid';

let plain: TestRegistry;
let locked: TestRegistry;
/** The developer may push here; READ_ONLY may only pull. */
let acr: AcrFixture;
/** A source ACR the developer may pull from. */
let sourceAcr: AcrFixture;
let az: FakeAz;
let home: TempHome;
let image: PushedManifest;
let acrImage: PushedManifest;

beforeAll(async () => {
  requireBuild();
  [plain, locked, acr, sourceAcr, az, home] = await Promise.all([
    startRegistry(),
    startRegistry({ auth: 'token' }),
    startAcrFixture({ tenant, roles: [{ principal: DEVELOPER, role: 'AcrPush' }, { principal: READ_ONLY, role: 'AcrPull' }] }),
    startAcrFixture({ tenant, roles: [{ principal: DEVELOPER, role: 'AcrPull', repository: 'team/app' }] }),
    fakeAz(tenant, [ACR_AUDIENCE]),
    tempHome(),
  ]);
  image = await pushImage(plain, 'library/nginx', '1.27', { layers: [2000, 3000] });
  acrImage = await pushImage(sourceAcr.registry, 'team/app', '1', { layers: [1500] });
});
afterAll(async () => {
  await Promise.all([plain?.stop(), locked?.stop(), acr?.stop(), sourceAcr?.stop(), az?.cleanup(), home?.cleanup()]);
});

/**
 * The CLI with the fake `az` first on PATH, no AZURE_* variables (cliEnv passes none), and the
 * fixtures' loopback login servers trusted as an ACR custom domain would be.
 */
function hoist(args: string[], env: Record<string, string> = {}) {
  return runHoist(args, home, { PATH: `${az.directory}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOIST_ACR_REGISTRIES: `${acr.host},${sourceAcr.host}`, ...env });
}

/** Every token the run could have seen: none may be printed. */
function secrets(): string[] {
  return [...az.tokens, ...acr.issuedTokens, ...sourceAcr.issuedTokens];
}

describe('hoist copy with the developer Azure login', () => {
  it('az login, then a copy to an ACR just works: the Entra token is exchanged at the registry', async () => {
    await az.login(DEVELOPER);
    const run = await hoist(['copy', `${plain.host}/library/nginx:1.27`, `${acr.host}/nginx:1.27`]);
    expect(run.code, run.all).toBe(0);
    expect(JSON.parse((await skopeoInspectRaw(`${acr.registry.host}/nginx:1.27`, acr.adminCredentials)).toString()).layers).toHaveLength(2);
    expect(run.stdout).toContain(`${acr.host}/nginx:1.27 -> ${image.digest}`);
    // What AzureCliCredential runs, and what the registry saw.
    expect(await az.calls()).toContain(`account get-access-token --output json --resource ${ACR_AUDIENCE}`);
    expect(acr.requests.filter((r) => r.endpoint === 'exchange')).toEqual([expect.objectContaining({ status: 200, principal: DEVELOPER, tenant: tenant.tenantId, service: acr.host })]);
    expect(acr.requests.filter((r) => r.endpoint === 'token' && r.status === 200).length).toBeGreaterThan(0);
    for (const secret of secrets()) expect(run.all).not.toContain(secret);
  });

  it('pulls from an ACR source with the same login', async () => {
    await az.login(DEVELOPER);
    const run = await hoist(['copy', `${sourceAcr.host}/team/app:1`, `${plain.host}/from-acr/app:1`]);
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toContain(`${plain.host}/from-acr/app:1 -> ${acrImage.digest}`);
    expect(sourceAcr.requests.some((r) => r.endpoint === 'exchange' && r.principal === DEVELOPER)).toBe(true);
  });

  it('names the role a login lacks on the target (AcrPush), with exit code 3', async () => {
    await az.login(READ_ONLY);
    const run = await hoist(['copy', '--json', `${plain.host}/library/nginx:1.27`, `${acr.host}/denied/nginx:1.27`]);
    expect(run.code, run.all).toBe(3);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('ACR_ROLE_MISSING');
    expect(error.message).toContain('AcrPush');
    expect(error.message).toContain(acr.host);
    for (const secret of secrets()) expect(run.all).not.toContain(secret);
  });

  it('names the role a login lacks on the source (AcrPull)', async () => {
    await az.login(READ_ONLY);
    const run = await hoist(['copy', '--json', `${sourceAcr.host}/team/app:1`, `${plain.host}/denied/app:1`]);
    expect(run.code, run.all).toBe(3);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; message: string } };
    expect(error).toMatchObject({ code: 'ACR_ROLE_MISSING' });
    expect(error.message).toContain('AcrPull role');
  });

  it('says to run az login when nobody is logged in', async () => {
    await az.logout();
    const run = await hoist(['copy', '--json', `${plain.host}/library/nginx:1.27`, `${acr.host}/nobody/nginx:1.27`]);
    expect(run.code, run.all).toBe(3);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('AZURE_IDENTITY_UNAVAILABLE');
    expect(error.message).toContain('run az login');
  });

  it('takes a password alone as a token: an Entra token for the source, an ACR refresh token for the target', async () => {
    await az.logout();
    const entra = tenant.issue({ principal: DEVELOPER, audience: ACR_AUDIENCE }).token;
    const exchanged = await fetch(`${acr.url}/oauth2/exchange`, { method: 'POST', body: new URLSearchParams({ grant_type: 'access_token', service: acr.host, access_token: tenant.issue({ principal: DEVELOPER, audience: ACR_AUDIENCE }).token }) });
    const { refresh_token: refreshToken } = (await exchanged.json()) as { refresh_token: string };
    const run = await hoist(['copy', '--src-creds', `:${entra}`, `${sourceAcr.host}/team/app:1`, `${acr.host}/tokens/app:1`], { HOIST_DEST_PASSWORD: refreshToken });
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toContain(`${acr.host}/tokens/app:1 -> ${acrImage.digest}`);
    expect(sourceAcr.requests.filter((r) => r.endpoint === 'exchange').at(-1)).toMatchObject({ status: 200, principal: DEVELOPER });
    expect(run.all).not.toContain(entra);
    expect(run.all).not.toContain(refreshToken);
  });

  it('never sends the login to a registry that only answers like an ACR: not an ACR domain, not in HOIST_ACR_REGISTRIES', async () => {
    await az.login(DEVELOPER);
    const calls = (await az.calls()).length;
    const exchanges = acr.requests.filter((r) => r.endpoint === 'exchange').length;
    const run = await hoist(['copy', `${plain.host}/library/nginx:1.27`, `${acr.host}/untrusted/nginx:1.27`], { HOIST_ACR_REGISTRIES: sourceAcr.host });
    expect(run.code, run.all).toBe(3);
    expect((await az.calls()).length).toBe(calls);
    expect(acr.requests.filter((r) => r.endpoint === 'exchange').length).toBe(exchanges);
  });

  it('recognises an ACR by its challenge: another token registry never gets the Azure login', async () => {
    await az.login(DEVELOPER);
    const before = (await az.calls()).length;
    const run = await hoist(['copy', `${plain.host}/library/nginx:1.27`, `${locked.host}/x/nginx:1.27`]);
    expect(run.code, run.all).toBe(3);
    expect((await az.calls()).length).toBe(before);
    expect(locked.tokenIssuer!.requests.every((r) => !r.authenticated)).toBe(true);
  });
});
