/**
 * HTTPS registries, for real: a TLS-serving proxy (certificate from an openssl-made CA) in front
 * of a docker-registry, reached by the CLI under a name that is not loopback, so Hoist speaks
 * HTTPS to it. The CLI process trusts the CA through NODE_EXTRA_CA_CERTS and resolves the name
 * to 127.0.0.1 through a preload (test/helpers/map-hosts.cjs), as an /etc/hosts line would.
 *
 * And a docker-registry serving TLS itself on loopback (same CA), reached as https://127.0.0.1:PORT
 * when HOIST_HTTPS_REGISTRIES lists it: trusted with --ca-file, or not verified when asked.
 */
import { createServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeCertificates, makeServerCertificate, type ServerCertificate, type TestCertificates } from '../helpers/certificates.js';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { EXIT } from '../../src/cli/main.js';
import { manifestStatus, requireBuild, runHoist, tempHome, type TempHome } from './support.js';

const NAME = 'registry.hoist.test';

let source: TestRegistry;
let target: TestRegistry;
let home: TempHome;
let directory: string;
let certificates: TestCertificates;
let proxy: TestProxy | undefined;

beforeAll(async () => {
  requireBuild();
  directory = await mkdtemp(path.join(tmpdir(), 'hoist-tls-'));
  [source, target, home, certificates] = await Promise.all([startRegistry(), startRegistry(), tempHome(), makeCertificates(directory, NAME)]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop(), home?.cleanup()]);
  await rm(directory, { recursive: true, force: true });
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

/** The source registry over HTTPS as `registry.hoist.test:PORT`. */
async function httpsSource(rules: ProxyRule[] = []): Promise<TestProxy> {
  proxy = await startProxy(source.url, rules, { tls: { key: certificates.key, cert: certificates.cert }, hostname: NAME });
  return proxy;
}

function hoistOverTls(args: string[], trustCa = true) {
  return runHoist(args, home, {
    NODE_OPTIONS: `--require ${path.resolve(__dirname, '../helpers/map-hosts.cjs')}`,
    TEST_HOSTS_MAP: `${NAME}=127.0.0.1`,
    ...(trustCa && { NODE_EXTRA_CA_CERTS: certificates.caPath }),
  });
}

describe('an https registry', () => {
  it('is copied from over https when its CA is trusted, and refused when it is not', async () => {
    const image = await pushImage(source, 'tls/src', 'v1', { layers: [3000] });
    const secure = await httpsSource();
    const untrusted = await hoistOverTls(['copy', `${secure.host}/tls/src:v1`, `${target.host}/tls/untrusted:v1`], false);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/certificate/i);
    expect(secure.requests).toEqual([]);

    const copied = await hoistOverTls(['copy', `${secure.host}/tls/src:v1`, `${target.host}/tls/dst:v1`]);
    expect(copied.code, copied.all).toBe(0);
    // Every request went through the TLS proxy, the layer among them.
    expect(secure.requests.some((r) => r.method === 'GET' && r.path.endsWith(image.blobs[1].digest) && r.status === 200)).toBe(true);
    expect(await manifestStatus(target, 'tls/dst', 'v1')).toBe(200);
  });

  it('still trusts NODE_EXTRA_CA_CERTS when --ca-file gives another CA', async () => {
    const image = await pushImage(source, 'tls/both', 'v1', { layers: [1000] });
    const otherDirectory = path.join(directory, 'other');
    await mkdir(otherDirectory);
    const other = await makeCertificates(otherDirectory, 'other.hoist.test');
    const secure = await httpsSource();
    const copied = await hoistOverTls(['copy', '--ca-file', other.caPath, `${secure.host}/tls/both:v1`, `${target.host}/tls/both:v1`]);
    expect(copied.code, copied.all).toBe(0);
    expect(secure.requests.some((r) => r.method === 'GET' && r.path.endsWith(image.blobs[1].digest) && r.status === 200)).toBe(true);
    expect(await manifestStatus(target, 'tls/both', 'v1')).toBe(200);
  });

  it('never follows a blob redirect from https down to http', async () => {
    const image = await pushImage(source, 'tls/redirect', 'v1', { layers: [2000] });
    const storageRequests: string[] = [];
    const storage = createServer((req, res) => {
      storageRequests.push(req.url ?? '');
      res.end('plain-text bytes anyone on the path could have changed');
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    try {
      const layer = image.blobs[1].digest;
      const insecure = `http://127.0.0.1:${(storage.address() as AddressInfo).port}/blob?sig=x`;
      const secure = await httpsSource([(request) => (request.method === 'GET' && request.pathname.endsWith(`/blobs/${layer}`) ? { type: 'respond', status: 307, headers: { Location: insecure } } : undefined)]);
      const result = await hoistOverTls(['copy', `${secure.host}/tls/redirect:v1`, `${target.host}/tls/redirected:v1`]);
      expect(result.code, result.all).not.toBe(0);
      expect(result.stderr).toMatch(/refused a redirect from https down to http/);
      expect(storageRequests).toEqual([]);
      expect(await manifestStatus(target, 'tls/redirected', 'v1')).toBe(404);
    } finally {
      storage.close();
    }
  });
});

describe('blob storage on another TLS host', () => {
  it('--src-tls-verify=false covers the hosts the registry redirects to, as skopeo’s flag covers the whole side; without it they are verified', async () => {
    const image = await pushImage(source, 'tls/hop', 'v1', { layers: [2000] });
    const layer = image.blobs[1].digest;
    // Storage on 127.0.0.1, serving the registry's own bytes, its certificate from a CA nobody trusts.
    const storageDirectory = path.join(directory, 'storage');
    await mkdir(storageDirectory);
    const untrusted = await makeCertificates(storageDirectory, 'storage.hoist.test');
    const storage = await startProxy(source.url, [], { tls: { key: untrusted.key, cert: untrusted.cert } });
    try {
      const secure = await httpsSource([(request) => (request.method === 'GET' && request.pathname.endsWith(`/blobs/${layer}`) ? { type: 'respond', status: 307, headers: { Location: `${storage.url}${request.path}` } } : undefined)]);

      const verified = await hoistOverTls(['copy', `${secure.host}/tls/hop:v1`, `${target.host}/tls/hop-verified:v1`]);
      expect(verified.code, verified.all).not.toBe(0);
      expect(verified.stderr).toMatch(/certificate|altname/i);
      expect(storage.requests).toEqual([]);

      const skipped = await hoistOverTls(['copy', '--src-tls-verify=false', `${secure.host}/tls/hop:v1`, `${target.host}/tls/hop:v1`], false);
      expect(skipped.code, skipped.all).toBe(0);
      expect(storage.requests.some((r) => r.method === 'GET' && r.path.endsWith(layer) && r.status === 200)).toBe(true);
      expect(skipped.stderr).toContain(`hoist: warning: TLS certificates of ${storage.host} (where ${secure.host} sends requests) are NOT verified`);
      expect(await manifestStatus(target, 'tls/hop', 'v1')).toBe(200);
    } finally {
      await storage.stop();
    }
  });
});

describe('a registry serving TLS on loopback', () => {
  let secure: TestRegistry;
  beforeAll(async () => {
    secure = await startRegistry({ tls: { certificate: certificates.certPath, key: certificates.keyPath } });
  });
  afterAll(() => secure?.stop());

  /** The digest `repository:tag` points at in the TLS registry's own storage, or undefined. */
  async function storedTag(repository: string, tag: string): Promise<string | undefined> {
    const link = path.join(secure.rootDirectory, 'docker/registry/v2/repositories', repository, '_manifests/tags', tag, 'current/link');
    return readFile(link, 'utf8').catch(() => undefined);
  }

  /** The CLI with the TLS registry listed in HOIST_HTTPS_REGISTRIES, unless `https` is false. */
  function hoist(args: string[], env: Record<string, string> = {}, https = true) {
    return runHoist(args, home, { ...(https && { HOIST_HTTPS_REGISTRIES: secure.host }), ...env });
  }

  it('is copied to over https when listed in HOIST_HTTPS_REGISTRIES and its CA is given with --ca-file', async () => {
    const image = await pushImage(source, 'tls/loop', 'v1', { layers: [3000] });
    // The source, an unlisted loopback registry, is still read over plain http.
    const copied = await hoist(['copy', '--ca-file', certificates.caPath, `${source.host}/tls/loop:v1`, `${secure.host}/tls/loop:v1`]);
    expect(copied.code, copied.all).toBe(0);
    expect(await storedTag('tls/loop', 'v1')).toBe(image.digest);
    expect(copied.stderr).not.toMatch(/NOT verified/);
  });

  it('trusts the CA from HOIST_CA_FILE too', async () => {
    const image = await pushImage(source, 'tls/env', 'v1', { layers: [1000] });
    const copied = await hoist(['copy', `${source.host}/tls/env:v1`, `${secure.host}/tls/env:v1`], { HOIST_CA_FILE: certificates.caPath });
    expect(copied.code, copied.all).toBe(0);
    expect(await storedTag('tls/env', 'v1')).toBe(image.digest);
  });

  it('is refused, naming the host, the reason and what to do, when its CA is not trusted', async () => {
    await pushImage(source, 'tls/untrusted', 'v1', { layers: [1000] });
    const refused = await hoist(['copy', '--format', 'json', `${source.host}/tls/untrusted:v1`, `${secure.host}/tls/untrusted:v1`]);
    expect(refused.code, refused.all).toBe(EXIT.failure);
    expect(refused.stderr).toContain(`TLS failed on the target ${secure.host}/tls/untrusted:v1: TLS_VERIFY_FAILED on HEAD`);
    expect(refused.stderr).toContain(`the TLS certificate of ${secure.host} could not be verified: its certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    expect(refused.stderr).toContain('(trust the CA with --ca-file FILE or HOIST_CA_FILE, or NODE_EXTRA_CA_CERTS; for a test registry only, --dest-tls-verify=false skips verification');
    expect(JSON.parse(refused.stdout.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'TLS_VERIFY_FAILED', exitCode: EXIT.failure } });
    expect(await storedTag('tls/untrusted', 'v1')).toBeUndefined();
  });

  it('is copied to without verification with --dest-tls-verify=false, warning exactly once', async () => {
    const image = await pushImage(source, 'tls/skip', 'v1', { layers: [3000, 2000] });
    const copied = await hoist(['copy', '--dest-tls-verify=false', `${source.host}/tls/skip:v1`, `${secure.host}/tls/skip:v1`]);
    expect(copied.code, copied.all).toBe(0);
    expect(await storedTag('tls/skip', 'v1')).toBe(image.digest);
    expect(copied.stderr.match(/NOT verified/g)).toHaveLength(1);
    expect(copied.stderr).toContain(`hoist: warning: TLS certificates of ${secure.host} are NOT verified`);
  });

  it('is read by digest, inspect and tags with --ca-file, or --tls-verify=false (warning once), and refused otherwise', async () => {
    const image = await pushImage(source, 'tls/read', 'v1', { layers: [1000] });
    expect((await hoist(['copy', '--ca-file', certificates.caPath, `${source.host}/tls/read:v1`, `${secure.host}/tls/read:v1`])).code).toBe(0);
    const ref = `${secure.host}/tls/read:v1`;
    const trusted = await hoist(['digest', '--ca-file', certificates.caPath, ref]);
    expect(trusted.code, trusted.all).toBe(0);
    expect(trusted.stdout).toBe(`${image.digest}\n`);
    const skipped = await hoist(['inspect', '--tls-verify=false', ref]);
    expect(skipped.code, skipped.all).toBe(0);
    expect(skipped.stdout).toContain(`  digest      ${image.digest}\n`);
    expect(skipped.stderr.match(/NOT verified/g)).toHaveLength(1);
    const tags = await hoist(['tags', '--tls-verify=false', `${secure.host}/tls/read`]);
    expect(tags.stdout).toBe('v1\n');
    const refused = await hoist(['digest', ref]);
    expect(refused.code, refused.all).toBe(EXIT.failure);
    expect(refused.stderr).toContain(`TLS_VERIFY_FAILED on HEAD ${ref}: the TLS certificate of ${secure.host} could not be verified`);
    expect(refused.stderr).toContain('--tls-verify=false skips verification for it and its token service)');
  });

  it('is copied to without verification when HOIST_TLS_SKIP_VERIFY lists it', async () => {
    const image = await pushImage(source, 'tls/skip-env', 'v1', { layers: [1000] });
    const copied = await hoist(['copy', `${source.host}/tls/skip-env:v1`, `${secure.host}/tls/skip-env:v1`], { HOIST_TLS_SKIP_VERIFY: secure.host });
    expect(copied.code, copied.all).toBe(0);
    expect(await storedTag('tls/skip-env', 'v1')).toBe(image.digest);
    expect(copied.stderr.match(/NOT verified/g)).toHaveLength(1);
  });

  it('is spoken to over plain http when not listed, as every loopback registry', async () => {
    await pushImage(source, 'tls/plain', 'v1', { layers: [1000] });
    const before = secure.logLines.length;
    const result = await hoist(['copy', '--ca-file', certificates.caPath, `${source.host}/tls/plain:v1`, `${secure.host}/tls/plain:v1`], {}, false);
    expect(result.code, result.all).not.toBe(0);
    // Go's TLS server answers a plain-HTTP request with a bare 400 before any handler sees it:
    // the registry logged no request, and the only answer was that 400.
    expect(result.stderr).toContain(`(HTTP 400) on HEAD ${secure.host}/tls/plain:v1`);
    expect(secure.logLines.slice(before)).toEqual([]);
    expect(await storedTag('tls/plain', 'v1')).toBeUndefined();
  });

  it('refuses a --dest-tls-verify that is neither true nor false', async () => {
    const result = await hoist(['copy', '--dest-tls-verify=no', `${source.host}/tls/x:v1`, `${secure.host}/tls/x:v1`]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain('--dest-tls-verify "no" is not valid: give --dest-tls-verify=true or --dest-tls-verify=false');
  });

  it('refuses a CA file that holds no certificate, naming the flag and the file', async () => {
    const bogus = path.join(directory, 'not-a-ca.pem');
    await writeFile(bogus, 'hello\n');
    const result = await hoist(['copy', '--ca-file', bogus, `${source.host}/tls/x:v1`, `${secure.host}/tls/x:v1`]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain(`--ca-file "${bogus}" holds no certificate`);
  });
});

describe('a TLS registry whose token service is on another TLS host', () => {
  /** Token auth; its realm is an https proxy in front of its issuer, on a port of its own. */
  let tokenAuth: TestRegistry;
  let realm: TestProxy;
  beforeAll(async () => {
    tokenAuth = await startRegistry({
      auth: 'token',
      tls: { certificate: certificates.certPath, key: certificates.keyPath },
      tokenRealm: async (issuer) => {
        realm = await startProxy(issuer.url, [], { tls: { key: certificates.key, cert: certificates.cert } });
        return `${realm.url}/token`;
      },
    });
  });
  afterAll(async () => {
    await Promise.all([tokenAuth?.stop(), realm?.stop()]);
  });

  const credentials = () => `${tokenAuth.credentials!.username}:${tokenAuth.credentials!.password}`;
  function hoist(args: string[], env: Record<string, string> = {}) {
    return runHoist(args, home, { HOIST_HTTPS_REGISTRIES: tokenAuth.host, ...env });
  }

  it('--dest-tls-verify=false covers the target’s token service too, as skopeo’s flag covers the whole side', async () => {
    const image = await pushImage(source, 'tls/token-dst', 'v1', { layers: [1000] });
    const before = realm.requests.length;
    const copied = await hoist(['copy', '--dest-tls-verify=false', '--dest-creds', credentials(), `${source.host}/tls/token-dst:v1`, `${tokenAuth.host}/tls/token-dst:v1`]);
    expect(copied.code, copied.all).toBe(0);
    expect(realm.requests.slice(before).some((r) => r.path.startsWith('/token?') && r.status === 200)).toBe(true);
    expect(copied.stderr).toContain(`hoist: warning: TLS certificates of ${tokenAuth.host} are NOT verified`);
    expect(copied.stderr).toContain(`hoist: warning: TLS certificates of ${realm.host} (the token service of ${tokenAuth.host}) are NOT verified`);
    const read = await hoist(['digest', '--ca-file', certificates.caPath, '--creds', credentials(), `${tokenAuth.host}/tls/token-dst:v1`]);
    expect(read.stdout, read.all).toBe(`${image.digest}\n`);
  });

  it('--src-tls-verify=false covers the source’s token service too', async () => {
    const image = await pushImage(source, 'tls/token-seed', 'v1', { layers: [1000] });
    // Seeded with the CA trusted: the registry and its token service both verified.
    const seeded = await hoist(['copy', '--ca-file', certificates.caPath, '--dest-creds', credentials(), `${source.host}/tls/token-seed:v1`, `${tokenAuth.host}/tls/token-src:v1`]);
    expect(seeded.code, seeded.all).toBe(0);
    expect(seeded.stderr).not.toMatch(/NOT verified/);
    const copied = await hoist(['copy', '--src-tls-verify=false', '--src-creds', credentials(), `${tokenAuth.host}/tls/token-src:v1`, `${source.host}/tls/token-src:v1`]);
    expect(copied.code, copied.all).toBe(0);
    expect(await manifestStatus(source, 'tls/token-src', 'v1')).toBe(200);
    expect(copied.stderr).toContain(`(the token service of ${tokenAuth.host}) are NOT verified`);
    expect(copied.stdout).toContain(image.digest);
  });
});

describe('a TLS registry whose token service has a certificate the client does not trust', () => {
  /** The token service: an https server that counts the connections made to it; its certificate changes per case. */
  let realm: HttpsServer;
  let realmHost: string;
  let connections = 0;
  let tokenAuth: TestRegistry;
  const certificatesFor: Record<string, ServerCertificate> = {};
  beforeAll(async () => {
    const other = await makeCertificates(await mkdtemp(path.join(directory, 'other-ca-')), 'other.hoist.test');
    certificatesFor.UNABLE_TO_VERIFY_LEAF_SIGNATURE = other;
    certificatesFor.DEPTH_ZERO_SELF_SIGNED_CERT = await makeServerCertificate(directory, 'self-signed', { subjectAltName: 'IP:127.0.0.1' });
    certificatesFor.ERR_TLS_CERT_ALTNAME_INVALID = await makeServerCertificate(directory, 'elsewhere', { ca: certificates, subjectAltName: 'DNS:elsewhere.hoist.test' });
    certificatesFor.CERT_HAS_EXPIRED = await makeServerCertificate(directory, 'expired', { ca: certificates, subjectAltName: 'IP:127.0.0.1', days: -1 });
    realm = createHttpsServer({ key: other.key, cert: other.cert }, (_req, res) => res.writeHead(500).end());
    realm.on('connection', () => connections++);
    await new Promise<void>((resolve) => realm.listen(0, '127.0.0.1', resolve));
    realmHost = `127.0.0.1:${(realm.address() as AddressInfo).port}`;
    tokenAuth = await startRegistry({ auth: 'token', tls: { certificate: certificates.certPath, key: certificates.keyPath }, tokenRealm: () => `https://${realmHost}/token` });
  });
  afterAll(async () => {
    realm?.closeAllConnections();
    realm?.close();
    await tokenAuth?.stop();
  });

  it.each([
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'its certificate is self-signed'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'its certificate is signed by a CA that is not trusted'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'its certificate is for another name'],
    ['CERT_HAS_EXPIRED', 'its certificate has expired'],
  ])('%s: refused at once, naming the token service, its registry and the reason, and no secret', async (code, reason) => {
    realm.setSecureContext({ key: certificatesFor[code]!.key, cert: certificatesFor[code]!.cert });
    const password = tokenAuth.credentials!.password;
    const before = connections;
    // The registry itself is trusted (--ca-file): only its token service fails.
    const refused = await runHoist(['digest', '--ca-file', certificates.caPath, '--creds', `${tokenAuth.credentials!.username}:${password}`, `${tokenAuth.host}/tls/realm:v1`], home, { HOIST_HTTPS_REGISTRIES: tokenAuth.host });
    expect(refused.code, refused.all).toBe(EXIT.failure);
    expect(refused.stderr).toContain(`TLS_VERIFY_FAILED on GET token service for ${tokenAuth.host}: the TLS certificate of ${realmHost} (the token service of ${tokenAuth.host}) could not be verified: ${reason} (${code})`);
    expect(refused.stderr).toContain('--tls-verify=false skips verification for it and its token service)');
    expect(refused.all).not.toContain(password);
    // Not retried: the same certificate would come back.
    expect(connections - before).toBe(1);
  });
});
