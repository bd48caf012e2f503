/**
 * HTTPS registries, for real: a TLS-serving proxy (certificate from an openssl-made CA) in front
 * of a docker-registry, reached by the CLI under a name that is not loopback, so Hoist speaks
 * HTTPS to it. The CLI process trusts the CA through NODE_EXTRA_CA_CERTS and resolves the name
 * to 127.0.0.1 through a preload (test/helpers/map-hosts.cjs), as an /etc/hosts line would.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { manifestStatus, requireBuild, runHoist, tempHome, type TempHome } from './support.js';

const NAME = 'registry.hoist.test';
const run = promisify(execFile);

/** A CA, and a server certificate it signed for NAME. */
async function makeCertificates(directory: string): Promise<{ caPath: string; key: string; cert: string }> {
  const file = (name: string) => path.join(directory, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=Hoist test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await run('openssl', ['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', `/CN=${NAME}`]);
  await writeFile(file('server.ext'), `subjectAltName=DNS:${NAME}\nextendedKeyUsage=serverAuth\n`);
  await run('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-out', file('server.pem'), '-extfile', file('server.ext')]);
  return { caPath: file('ca.pem'), key: await readFile(file('server.key'), 'utf8'), cert: await readFile(file('server.pem'), 'utf8') };
}

let source: TestRegistry;
let target: TestRegistry;
let home: TempHome;
let directory: string;
let certificates: Awaited<ReturnType<typeof makeCertificates>>;
let proxy: TestProxy | undefined;

beforeAll(async () => {
  requireBuild();
  directory = await mkdtemp(path.join(tmpdir(), 'hoist-tls-'));
  [source, target, home, certificates] = await Promise.all([startRegistry(), startRegistry(), tempHome(), makeCertificates(directory)]);
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
