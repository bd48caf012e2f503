/**
 * Docker config credentials without a registry: which entry answers for which registry (docker's
 * key spellings, credHelpers before credsStore before auths), the forms of an auths entry, the
 * config refused as a whole, and credential helpers run from PATH (real shell scripts). The token
 * flow with these answers is in credentials.test.ts; the static providers are at the end.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstOf, forRegistry, parseUserPassword } from '../../src/registry/credentials.js';
import { defaultDockerConfigPath, dockerConfigCredentials, runHelper } from '../../src/registry/docker-config.js';
import { writeCredentialHelper } from '../helpers/credential-helper.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoist-docker-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

async function config(content: unknown): Promise<string> {
  const path = join(await mkdtemp(join(dir, 'cfg-')), 'config.json');
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const helper = (name: string, script: string) => writeCredentialHelper(dir, name, script);

async function ask(path: string, registry: string, env: NodeJS.ProcessEnv = { PATH: dir }) {
  return dockerConfigCredentials({ path, env }).getCredentials(registry, []);
}

describe('Docker config auths', () => {
  it("reads auth, username/password and identitytoken, the token first and auth before the pair", async () => {
    const path = await config({
      auths: {
        'a.test': { auth: basic('ann', 'pa:ss') },
        'b.test': { username: 'bob', password: 'pw' },
        'c.test': { identitytoken: 'refresh', auth: basic('x', 'y'), username: 'u', password: 'p' },
        'd.test': { auth: basic('dan', 'from-auth'), username: 'dan', password: 'from-pair' },
        'e.test': { auth: Buffer.from('no-colon').toString('base64'), username: 'eve', password: 'pair' },
        'f.test': { auth: basic('', 'anon'), username: 'fay', password: 'pair' },
        'g.test': { username: 'only-user' },
        'h.test': { password: 'only-password' },
      },
    });
    expect(await ask(path, 'a.test')).toStrictEqual({ kind: 'basic', username: 'ann', password: 'pa:ss' });
    expect(await ask(path, 'b.test')).toStrictEqual({ kind: 'basic', username: 'bob', password: 'pw' });
    expect(await ask(path, 'c.test')).toStrictEqual({ kind: 'identityToken', token: 'refresh' });
    expect(await ask(path, 'd.test')).toStrictEqual({ kind: 'basic', username: 'dan', password: 'from-auth' });
    // An auth without a user before its colon counts as absent: the pair answers.
    expect(await ask(path, 'e.test')).toStrictEqual({ kind: 'basic', username: 'eve', password: 'pair' });
    expect(await ask(path, 'f.test')).toStrictEqual({ kind: 'basic', username: 'fay', password: 'pair' });
    expect(await ask(path, 'g.test')).toBeUndefined();
    expect(await ask(path, 'h.test')).toBeUndefined();
    expect(await ask(path, 'other.test')).toBeUndefined();
  });

  it("finds a registry under its host or URL, and Docker Hub under each of docker's names, the first key first", async () => {
    const path = await config({ auths: { 'https://h.test': { auth: basic('https', 'p') }, 'http://i.test': { auth: basic('http', 'p') }, 'j.test': { auth: basic('host', 'p') }, 'https://j.test': { auth: basic('url', 'p') } } });
    expect(await ask(path, 'h.test')).toMatchObject({ username: 'https' });
    expect(await ask(path, 'i.test')).toMatchObject({ username: 'http' });
    expect(await ask(path, 'j.test')).toMatchObject({ username: 'host' });
    for (const [i, key] of ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'].entries()) {
      expect(await ask(await config({ auths: { [key]: { auth: basic(`user${i}`, 'p') } } }), 'docker.io')).toMatchObject({ username: `user${i}` });
    }
    const both = await config({ auths: { 'registry-1.docker.io': { auth: basic('last', 'p') }, 'https://index.docker.io/v1/': { auth: basic('first', 'p') } } });
    expect(await ask(both, 'docker.io')).toMatchObject({ username: 'first' });
    // Docker Hub's names belong to docker.io only.
    expect(await ask(both, 'registry-1.docker.io')).toMatchObject({ username: 'last' });
  });

  it('means no credentials when the file is missing, and refuses one that is too large, not JSON or not a Docker config, naming it and never quoting it', async () => {
    expect(await ask(join(dir, 'absent', 'config.json'), 'a.test')).toBeUndefined();
    const body = JSON.stringify({ auths: { 'a.test': { auth: basic('max', 'p') } }, pad: '' });
    const exactly = await config(body.replace('"pad":""', `"pad":"${'x'.repeat(1024 * 1024 - body.length)}"`));
    expect(await ask(exactly, 'a.test')).toMatchObject({ username: 'max' });
    const big = await config(JSON.stringify({ auths: { 'a.test': { auth: 'c2VjcmV0' } }, pad: 'x'.repeat(1024 * 1024) }));
    expect(() => dockerConfigCredentials({ path: big })).toThrow(expect.objectContaining({ code: 'CREDENTIAL_HELPER', message: `the Docker config ${big} is over 1048576 bytes; a Docker config is far smaller` }));
    const notJson = await config('{"auths": {"a.test": {"auth": "c2VjcmV0"');
    expect(() => dockerConfigCredentials({ path: notJson })).toThrow(expect.objectContaining({ code: 'CREDENTIAL_HELPER', message: expect.stringMatching(/^the Docker config \S+ is not JSON/) }));
    const wrong = await config({ auths: { 'a.test': { auth: 42 } } });
    expect(() => dockerConfigCredentials({ path: wrong })).toThrow(expect.objectContaining({ code: 'CREDENTIAL_HELPER', message: expect.stringContaining(`the Docker config ${wrong} is not valid at "auths.a.test.auth"`) }));
    const list = await config(42);
    expect(() => dockerConfigCredentials({ path: list })).toThrow(/is not valid at "\(top level\)"/);
    expect(() => dockerConfigCredentials({ path: dir })).toThrow(expect.objectContaining({ code: 'EISDIR' }));
  });

  it('is found under $DOCKER_CONFIG, else ~/.docker', () => {
    expect(defaultDockerConfigPath({ DOCKER_CONFIG: '/etc/docker-cfg' })).toBe('/etc/docker-cfg/config.json');
    expect(defaultDockerConfigPath({})).toMatch(/\/\.docker\/config\.json$/);
    expect(dockerConfigCredentials({ path: '/nonexistent/config.json' }).id).toBe('docker-config:/nonexistent/config.json');
  });
});

describe('Docker config credential helpers', () => {
  it('asks credHelpers[registry] before credsStore, and credsStore before auths, by the server docker logged in with', async () => {
    const env = await helper('echo', `read server\nprintf '{"Username":"%s","Secret":"s"}' "$server"`);
    const envOther = await helper('other', `printf '{"Username":"store","Secret":"s"}'`);
    env.PATH = `${env.PATH}:${envOther.PATH}`;
    const path = await config({ credHelpers: { 'https://k.test': 'echo', 'docker.io': 'echo' }, credsStore: 'other', auths: { 'k.test': { auth: basic('auths', 'p') }, 'l.test': { auth: basic('auths', 'p') } } });
    expect(await ask(path, 'k.test', env)).toStrictEqual({ kind: 'basic', username: 'k.test', password: 's' });
    expect(await ask(path, 'docker.io', env)).toStrictEqual({ kind: 'basic', username: 'https://index.docker.io/v1/', password: 's' });
    expect(await ask(path, 'l.test', env)).toStrictEqual({ kind: 'basic', username: 'store', password: 's' });
  });

  it("reads a helper's <token> answer as an identity token, and an answer without Username as an empty one", async () => {
    const env = await helper('tok', `printf '{"Username":"<token>","Secret":"refresh"}'`);
    expect(await runHelper('tok', 'a.test', { timeoutInMs: 30_000, env })).toStrictEqual({ kind: 'identityToken', token: 'refresh' });
    const nameless = await helper('nameless', `printf '{"Secret":"s"}'`);
    expect(await runHelper('nameless', 'a.test', { timeoutInMs: 30_000, env: nameless })).toStrictEqual({ kind: 'basic', username: '', password: 's' });
  });

  it('refuses a bad helper name, a non-JSON or oversized answer, and a helper killed by a signal, quoting none of it', async () => {
    await expect(runHelper('../evil', 'a.test', { timeoutInMs: 30_000, env: {} })).rejects.toMatchObject({ code: 'CREDENTIAL_HELPER', message: expect.stringContaining('credential helper name "../evil" is not valid') });
    await expect(runHelper('evil name', 'a.test', { timeoutInMs: 30_000, env: {} })).rejects.toMatchObject({ code: 'CREDENTIAL_HELPER' });
    const junk = await helper('junk', `echo 'secret-junk'`);
    const error = await runHelper('junk', 'a.test', { timeoutInMs: 30_000, env: junk }).catch((e: unknown) => e as Error);
    expect(error).toMatchObject({ code: 'CREDENTIAL_HELPER', message: 'credential helper docker-credential-junk answered for a.test with something other than {"Username", "Secret"} JSON' });
    const noSecret = await helper('nosecret', `printf '{"Username":"u"}'`);
    await expect(runHelper('nosecret', 'a.test', { timeoutInMs: 30_000, env: noSecret })).rejects.toMatchObject({ code: 'CREDENTIAL_HELPER' });
    // 64 KiB and one byte, then silence until killed; exactly 64 KiB is an answer.
    const flood = await helper('flood', `head -c 65537 /dev/zero\nexec sleep 30`);
    await expect(runHelper('flood', 'a.test', { timeoutInMs: 30_000, env: flood })).rejects.toMatchObject({ code: 'CREDENTIAL_HELPER', message: 'credential helper docker-credential-flood printed over 65536 bytes' });
    const exact = await helper('exact', `printf '{"Username":"u","Secret":"'\nhead -c 65508 /dev/zero | tr '\\0' 'a'\nprintf '"}'`);
    expect(await runHelper('exact', 'a.test', { timeoutInMs: 30_000, env: exact })).toMatchObject({ kind: 'basic', username: 'u' });
    const killed = await helper('killed', 'kill -TERM $$');
    await expect(runHelper('killed', 'a.test', { timeoutInMs: 30_000, env: killed })).rejects.toMatchObject({ code: 'CREDENTIAL_HELPER', message: 'credential helper docker-credential-killed was killed by SIGTERM' });
  });

  it('names a helper that cannot be run', async () => {
    const env = await helper('noexec', 'exit 0');
    await chmod(join(env.PATH!.split(':')[0], 'docker-credential-noexec'), 0o644);
    await expect(runHelper('noexec', 'a.test', { timeoutInMs: 30_000, env })).rejects.toMatchObject({ code: 'CREDENTIAL_HELPER', message: 'credential helper docker-credential-noexec could not run (EACCES)' });
  });

  it('passes the caller\'s abort on as an AbortError', async () => {
    const hung = await helper('hung', 'exec sleep 30');
    const controller = new AbortController();
    const asked = runHelper('hung', 'a.test', { timeoutInMs: 30_000, env: hung, signal: controller.signal });
    controller.abort();
    await expect(asked).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('static credential providers', () => {
  it('parses USER:PASSWORD at the first colon, and refuses a value without a user, naming the field', () => {
    expect(parseUserPassword('u:p:q', '--src-creds')).toStrictEqual({ username: 'u', password: 'p:q' });
    expect(parseUserPassword('u:', '--src-creds')).toStrictEqual({ username: 'u', password: '' });
    expect(() => parseUserPassword(':p', '--src-creds')).toThrow('--src-creds must be USER:PASSWORD');
    expect(() => parseUserPassword('up', '--dest-creds')).toThrow('--dest-creds must be USER:PASSWORD');
  });

  it('answers for its registry only, and the first provider with an answer wins', async () => {
    const a = forRegistry('a.test', { username: 'ua', password: 'pa' });
    const b = forRegistry('b.test', { username: 'ub', password: 'pb' }, 'flags');
    const b2 = forRegistry('b.test', { username: 'late', password: 'x' });
    expect(a.id).toBe('static:a.test');
    expect(await a.getCredentials('b.test', [])).toBeUndefined();
    const both = firstOf(a, b, b2);
    expect(both.id).toBe('static:a.test+flags+static:b.test');
    expect(await both.getCredentials('a.test', [])).toStrictEqual({ kind: 'basic', username: 'ua', password: 'pa' });
    expect(await both.getCredentials('b.test', [])).toStrictEqual({ kind: 'basic', username: 'ub', password: 'pb' });
    expect(await both.getCredentials('c.test', [])).toBeUndefined();
    expect(firstOf().id).toBe('anonymous');
    expect(await firstOf().getCredentials('a.test', [])).toBeUndefined();
  });
});
