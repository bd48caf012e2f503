/**
 * `hoist copy` builds its RegistryHosts from flags, environment and the Docker config: the retry
 * policy from `--retry-times` or HOIST_RETRY_ATTEMPTS, credentials from credential helpers, the
 * proxies from HTTP_PROXY, HTTPS_PROXY and NO_PROXY (through Debian's tinyproxy).
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { startTinyproxy } from '../helpers/tinyproxy.js';
import { EXIT } from '../../src/cli/main.js';
import { requireBuild, runHoist, tempHome, type TempHome } from './support.js';

let source: TestRegistry;
let target: TestRegistry;
let locked: TestRegistry;
let flaky: TestProxy;
let home: TempHome;

/** Answers 503 to the first two manifest requests of each repository: three attempts get through, one does not. */
function manifestsUnavailableTwice(): ProxyRule {
  const seen = new Map<string, number>();
  return (request) => {
    const match = /^\/v2\/(.+)\/manifests\//.exec(request.pathname);
    if (!match) return undefined;
    const count = seen.get(match[1]) ?? 0;
    if (count >= 2) return undefined;
    seen.set(match[1], count + 1);
    return { type: 'respond', status: 503, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'busy' }] }) };
  };
}

beforeAll(async () => {
  requireBuild();
  [source, target, locked, home] = await Promise.all([startRegistry(), startRegistry(), startRegistry({ auth: 'basic' }), tempHome()]);
  flaky = await startProxy(source.url, [manifestsUnavailableTwice()]);
});
afterAll(async () => {
  await Promise.all([flaky?.stop(), source?.stop(), target?.stop(), locked?.stop(), home?.cleanup()]);
});

describe('the retry policy', () => {
  it.each([
    ['--retry-times 2', ['--retry-times', '2'], {}, 1],
    ['HOIST_RETRY_ATTEMPTS=2', [], { HOIST_RETRY_ATTEMPTS: '2' }, 1],
    ['--retry-times 3', ['--retry-times', '3'], {}, 0],
    ['the default (5)', [], {}, 0],
    ['--retry-times 3 over HOIST_RETRY_ATTEMPTS=1', ['--retry-times', '3'], { HOIST_RETRY_ATTEMPTS: '1' }, 0],
  ] as Array<[string, string[], Record<string, string>, number]>)('follows %s', async (name, flags, env, code) => {
    const repository = `retry/${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().replace(/^-|-$/g, '')}`;
    await pushImage(source, repository, 'v1', { layers: [300] });
    const run = await runHoist(['copy', `${flaky.host}/${repository}:v1`, `${target.host}/${repository}:v1`, ...flags], home, env);
    expect(run.code, run.all).toBe(code);
    if (code !== 0) expect(run.stderr).toMatch(/UNAVAILABLE \(HTTP 503\)/);
  });

  it.each([
    [['--retry-times', '0'], {}, /--retry-times "0" is not valid: give a whole number from 1 to 20/],
    [['--retry-times', '21'], {}, /--retry-times "21" is not valid/],
    [[], { HOIST_RETRY_ATTEMPTS: 'many' }, /HOIST_RETRY_ATTEMPTS "many" is not valid: give a whole number from 1 to 20, or leave it unset for 5/],
  ] as Array<[string[], Record<string, string>, RegExp]>)('refuses %j %j naming it', async (flags, env, message) => {
    const run = await runHoist(['copy', `${source.host}/x:v1`, `${target.host}/x:v1`, ...flags], home, env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});

describe('credential helpers from the Docker config', () => {
  it('runs credHelpers[registry] from PATH, and names one that is missing', async () => {
    const { username, password } = locked.credentials!;
    const image = await pushImage(locked, 'helper/src', 'v1', { layers: [700] });
    const helperHome = await tempHome();
    try {
      const bin = join(helperHome.home, 'bin');
      await mkdir(bin);
      const helper = join(bin, 'docker-credential-hoistcli');
      await writeFile(helper, `#!/bin/sh\nread server\n[ "$server" = "${locked.host}" ] || exit 3\nprintf '{"Username":"${username}","Secret":"${password}"}'\n`);
      await chmod(helper, 0o755);
      await writeFile(join(helperHome.dockerConfig, 'config.json'), JSON.stringify({ credHelpers: { [locked.host]: 'hoistcli' } }));
      const path = `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`;
      const run = await runHoist(['copy', `${locked.host}/helper/src:v1`, `${target.host}/helper/dst:v1`], helperHome, { PATH: path });
      expect(run.code, run.all).toBe(0);
      expect(run.all).not.toContain(password);
      expect((await skopeoInspectRaw(`${target.host}/helper/dst:v1`)).equals(image.manifestBytes)).toBe(true);

      await writeFile(join(helperHome.dockerConfig, 'config.json'), JSON.stringify({ credHelpers: { [locked.host]: 'absent' } }));
      const missing = await runHoist(['copy', `${locked.host}/helper/src:v1`, `${target.host}/helper/dst2:v1`], helperHome, { PATH: path });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/credential helper docker-credential-absent \(from the Docker config\) is not on PATH/);
    } finally {
      await helperHome.cleanup();
    }
  });
});

describe('the proxy variables', () => {
  it('send every request through HTTP_PROXY, loopback registries included, unless NO_PROXY lists them', async () => {
    const image = await pushImage(source, 'proxy/src', 'v1', { layers: [900, 1800] });
    const proxy = await startTinyproxy();
    try {
      const run = await runHoist(['copy', `${source.host}/proxy/src:v1`, `${target.host}/proxy/dst:v1`], home, { HTTP_PROXY: proxy.url });
      expect(run.code, run.all).toBe(0);
      expect((await skopeoInspectRaw(`${target.host}/proxy/dst:v1`)).equals(image.manifestBytes)).toBe(true);
      const carried = await proxy.requests();
      const to = (registry: TestRegistry, method: string) => carried.filter((r) => r.method === method && r.target.startsWith(`${registry.url}/v2/`)).length;
      expect(to(source, 'GET')).toBeGreaterThanOrEqual(3);
      expect(to(target, 'HEAD')).toBeGreaterThan(0);
      expect(to(target, 'PUT')).toBeGreaterThan(0);

      const bypassed = await runHoist(['copy', `${source.host}/proxy/src:v1`, `${target.host}/proxy/bypassed:v1`], home, { HTTP_PROXY: proxy.url, no_proxy: '127.0.0.1' });
      expect(bypassed.code, bypassed.all).toBe(0);
      expect((await proxy.requests()).length).toBe(carried.length);
    } finally {
      await proxy.stop();
    }
  });

  it('refuse a proxy they cannot use, naming the variable without quoting its password', async () => {
    const run = await runHoist(['copy', `${source.host}/any:v1`, `${target.host}/any:v1`], home, { HTTPS_PROXY: 'socks5://user:s3cret@127.0.0.1:1080' });
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/HTTPS_PROXY names a socks5 proxy: only http:\/\/ and https:\/\/ proxies are supported/);
    expect(run.all).not.toContain('s3cret');
  });

  it('refuse a request cap that is not a whole number of at least 1', async () => {
    const run = await runHoist(['copy', `${source.host}/any:v1`, `${target.host}/any:v1`], home, { HOIST_MAX_REQUESTS_PER_HOST: '0' });
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/HOIST_MAX_REQUESTS_PER_HOST "0" is not valid: give a whole number of at least 1, or leave it unset for 32/);
  });
});
