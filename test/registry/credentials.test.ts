/**
 * Credential providers and the token flow against real registries: providers asked again after a
 * 401 and near expiry, docker's identity token in the refresh-token grant, credential helpers run
 * from PATH, token requests retried under the host's retry policy, and a shared token request
 * that one caller's abort does not fail for the others.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/registry/client.js';
import { forRegistry, type CredentialProvider, type RegistryCredential } from '../../src/registry/credentials.js';
import { dockerConfigCredentials } from '../../src/registry/docker-config.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { parseReference } from '../../src/registry/reference.js';
import { writeCredentialHelper } from '../helpers/credential-helper.js';
import { pushImage } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const FAST_RETRY = { maxAttempts: 3, baseDelayInMs: 10, maxDelayInMs: 50 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoist-credentials-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A provider answering each call with the next of `answers` (the last one repeats), counting calls. */
function scripted(answers: RegistryCredential[]): CredentialProvider & { calls: number } {
  const provider = {
    id: 'scripted',
    calls: 0,
    getCredentials: () => Promise.resolve(answers[Math.min(provider.calls++, answers.length - 1)]),
  };
  return provider;
}

function head(registry: TestRegistry, hosts: RegistryHosts, path: string, signal?: AbortSignal) {
  const ref = parseReference(`${registry.host}/${path}`);
  return RegistryClient.for(ref.registry, hosts).headManifest(ref, signal);
}

describe('token auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token', tokenIssuer: { refreshTokens: { 'refresh-for-alice': 'alice' } } });
    await pushImage(registry, 'tok/app', 'v1', { layers: [100] });
    await pushImage(registry, 'tok/other', 'v1', { layers: [100] });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it.each([
    [503, undefined],
    [429, 0],
  ])('retries a token request the realm answers %i, under the host retry policy', async (status, retryAfter) => {
    const issuer = registry.tokenIssuer!;
    issuer.failNext(status, 1, retryAfter);
    const before = issuer.requests.length;
    const hosts = new RegistryHosts({ credentials: forRegistry(registry.host, registry.credentials!), retry: FAST_RETRY });
    const found = await head(registry, hosts, 'tok/app:v1');
    expect(found?.digest).toMatch(/^sha256:/);
    expect(issuer.requests.slice(before).map((r) => r.status)).toEqual([status, 200]);
  });

  it('gives up on a realm in trouble after the policy attempts, naming the token service', async () => {
    const issuer = registry.tokenIssuer!;
    issuer.failNext(503, 2);
    const before = issuer.requests.length;
    const hosts = new RegistryHosts({ credentials: forRegistry(registry.host, registry.credentials!), retry: { ...FAST_RETRY, maxAttempts: 2 } });
    const error = await head(registry, hosts, 'tok/app:v1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 503 });
    expect(issuer.requests.length - before).toBe(2);
  });

  it("uses the Docker config's identitytoken in the OAuth2 refresh-token grant", async () => {
    const path = join(dir, 'identity.json');
    await writeFile(path, JSON.stringify({ auths: { [registry.host]: { identitytoken: 'refresh-for-alice' } } }));
    const issuer = registry.tokenIssuer!;
    const before = issuer.requests.length;
    const hosts = new RegistryHosts({ credentials: dockerConfigCredentials({ path }) });
    expect((await head(registry, hosts, 'tok/app:v1'))?.digest).toMatch(/^sha256:/);
    const asked = issuer.requests.slice(before);
    expect(asked.map((r) => [r.method, r.account, r.status])).toEqual([['POST', 'alice', 200]]);
    expect(asked[0].scope).toEqual(['repository:tok/app:pull']);
  });

  it('refuses an identity token the realm does not know as UNAUTHORIZED', async () => {
    const path = join(dir, 'bad-identity.json');
    await writeFile(path, JSON.stringify({ auths: { [registry.host]: { identitytoken: 'not-a-known-token' } } }));
    const error = await head(registry, new RegistryHosts({ credentials: dockerConfigCredentials({ path }) }), 'tok/app:v1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect((error as Error).message).not.toContain('not-a-known-token');
  });

  it('sends a registry access token from the provider as is, without asking the realm', async () => {
    const issuer = registry.tokenIssuer!;
    const { username, password } = registry.credentials!;
    const url = `${issuer.realm}?service=${encodeURIComponent(issuer.service)}&scope=${encodeURIComponent('repository:tok/app:pull')}`;
    const answer = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` } });
    const { token } = (await answer.json()) as { token: string };
    const before = issuer.requests.length;
    const provider = scripted([{ kind: 'accessToken', token }]);
    expect((await head(registry, new RegistryHosts({ credentials: provider }), 'tok/app:v1'))?.digest).toMatch(/^sha256:/);
    expect(issuer.requests.length).toBe(before);
    expect(provider.calls).toBe(1);
  });

  it("lets one caller abort without failing the others that share its token request", async () => {
    const hosts = new RegistryHosts({ credentials: forRegistry(registry.host, registry.credentials!) });
    // Learn the challenge first, so both callers go straight to the one token request for their scope.
    await head(registry, hosts, 'tok/other:v1');
    const issuer = registry.tokenIssuer!;
    const before = issuer.requests.length;
    const held = issuer.holdNext();
    const impatient = new AbortController();
    const first = head(registry, hosts, 'tok/app:v1', impatient.signal);
    const second = head(registry, hosts, 'tok/app:v1');
    await held.arrived;
    impatient.abort(new Error('the caller gave up'));
    await expect(first).rejects.toThrow('the caller gave up');
    held.release();
    expect((await second)?.digest).toMatch(/^sha256:/);
    expect(issuer.requests.length - before).toBe(1);
  });
});

describe('basic auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'basic' });
    await pushImage(registry, 'basic/app', 'v1', { layers: [100] });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('asks the provider again after a 401, and uses what it answers then', async () => {
    const { username, password } = registry.credentials!;
    const provider = scripted([
      { kind: 'basic', username, password: 'rotated-away' },
      { kind: 'basic', username, password },
    ]);
    expect((await head(registry, new RegistryHosts({ credentials: provider }), 'basic/app:v1'))?.digest).toMatch(/^sha256:/);
    expect(provider.calls).toBe(2);
  });

  it('asks the provider again when what it gave is about to expire', async () => {
    const { username, password } = registry.credentials!;
    // Inside the renewal margin from the start: every request asks again.
    const provider = scripted([{ kind: 'basic', username, password, expiresAt: Date.now() + 1000 }]);
    const hosts = new RegistryHosts({ credentials: provider });
    await head(registry, hosts, 'basic/app:v1');
    const afterFirst = provider.calls;
    await head(registry, hosts, 'basic/app:v1');
    expect(provider.calls).toBeGreaterThan(afterFirst);
  });

  it('asks a lasting answer only once', async () => {
    const provider = scripted([{ kind: 'basic', ...registry.credentials! }]);
    const hosts = new RegistryHosts({ credentials: provider });
    await head(registry, hosts, 'basic/app:v1');
    await head(registry, hosts, 'basic/app:v1');
    expect(provider.calls).toBe(1);
  });

  describe('credential helpers', () => {
    /** Writes `docker-credential-NAME` into a directory and returns an env whose PATH has it first. */
    const helper = (name: string, script: string) => writeCredentialHelper(dir, name, script);

    async function config(content: unknown): Promise<string> {
      const path = join(await mkdtemp(join(dir, 'cfg-')), 'config.json');
      await writeFile(path, JSON.stringify(content));
      return path;
    }

    it('runs credHelpers[registry] with the registry on stdin', async () => {
      const { username, password } = registry.credentials!;
      const env = await helper('hoisttest', `read server\n[ "$1" = get ] && [ "$server" = "${registry.host}" ] || exit 3\nprintf '{"ServerURL":"%s","Username":"${username}","Secret":"${password}"}' "$server"`);
      const path = await config({ credHelpers: { [registry.host]: 'hoisttest' } });
      const hosts = new RegistryHosts({ credentials: dockerConfigCredentials({ path, env }) });
      expect((await head(registry, hosts, 'basic/app:v1'))?.digest).toMatch(/^sha256:/);
    });

    it("falls back to auths when credsStore's helper holds nothing for the registry", async () => {
      const env = await helper('empty', `echo 'credentials not found in native keychain'\nexit 1`);
      const auth = Buffer.from(`${registry.credentials!.username}:${registry.credentials!.password}`).toString('base64');
      const path = await config({ credsStore: 'empty', auths: { [registry.host]: { auth } } });
      const hosts = new RegistryHosts({ credentials: dockerConfigCredentials({ path, env }) });
      expect((await head(registry, hosts, 'basic/app:v1'))?.digest).toMatch(/^sha256:/);
    });

    it('names a helper missing from PATH', async () => {
      const path = await config({ credsStore: 'nowhere-to-be-found' });
      const error = await head(registry, new RegistryHosts({ credentials: dockerConfigCredentials({ path, env: { PATH: dir } }) }), 'basic/app:v1').catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CREDENTIAL_HELPER' });
      expect((error as Error).message).toMatch(/docker-credential-nowhere-to-be-found .*is not on PATH/);
    });

    it('reports a failing helper by its exit code, without quoting what it printed', async () => {
      const env = await helper('broken', `echo 'secret-in-output'\nexit 7`);
      const path = await config({ credHelpers: { [registry.host]: 'broken' } });
      const error = await head(registry, new RegistryHosts({ credentials: dockerConfigCredentials({ path, env }) }), 'basic/app:v1').catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CREDENTIAL_HELPER' });
      expect((error as Error).message).toMatch(/docker-credential-broken failed for .* \(exit code 7\)/);
      expect((error as Error).message).not.toContain('secret-in-output');
    });

    it('stops a helper that does not answer within its timeout', async () => {
      const env = await helper('hung', 'exec sleep 30');
      const path = await config({ credHelpers: { [registry.host]: 'hung' } });
      const error = await head(registry, new RegistryHosts({ credentials: dockerConfigCredentials({ path, env, helperTimeoutInMs: 200 }) }), 'basic/app:v1').catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CREDENTIAL_HELPER' });
      expect((error as Error).message).toMatch(/did not answer .* within 200 ms/);
    });
  });
});
