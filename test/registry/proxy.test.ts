/**
 * Forward proxies, for real: copies between docker-registry processes through a loopback forward
 * proxy (test/helpers/forward-proxy.ts) that records every request it carries. Plain-http
 * registries are reached by absolute-form requests, a TLS registry through a CONNECT tunnel
 * under a name only the proxy resolves, so the copy succeeding proves nothing went around it.
 * How the variables are read (no sockets): proxy-settings.test.ts.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { copy } from '../../src/copy/index.js';
import { createAddressPolicy } from '../../src/registry/address-policy.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { Connections } from '../../src/registry/http.js';
import { openUrlBlob } from '../../src/registry/url-blob.js';
import { readProxyEnvironment, ProxySettings, type ProxyEnvironment } from '../../src/registry/proxy.js';
import { readCaFile } from '../../src/registry/tls.js';
import { makeCertificates, type TestCertificates } from '../helpers/certificates.js';
import { pushImage } from '../helpers/fixtures.js';
import { startForwardProxy, type TestForwardProxy } from '../helpers/forward-proxy.js';
import { startProxy } from '../helpers/proxy.js';
import { freePort } from '../helpers/ports.js';
import { settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { credentialsFor, ref } from '../copy/support.js';

const NAME = 'registry.hoist.test';
const ONE_ATTEMPT = { baseDelayInMs: 10, maxDelayInMs: 50, maxAttempts: 1 };

let source: TestRegistry;
let target: TestRegistry;
let secure: TestRegistry;
let directory: string;
let ca: string[];
let proxy: TestForwardProxy | undefined;

beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), 'hoist-proxy-'));
  const certificates = await makeCertificates(directory, NAME);
  ca = readCaFile(certificates.caPath, 'test CA');
  [source, target, secure] = await Promise.all([startRegistry({ auth: 'token' }), startRegistry(), startRegistry({ tls: { certificate: certificates.certPath, key: certificates.keyPath } })]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop(), secure?.stop()]);
  await rm(directory, { recursive: true, force: true });
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

const env = (variables: Record<string, string>): ProxyEnvironment => readProxyEnvironment((name) => variables[name]);

/** The digest `repository:tag` points at in a registry's own storage, or undefined. */
async function storedTag(registry: TestRegistry, repository: string, tag: string): Promise<string | undefined> {
  const link = path.join(registry.rootDirectory, 'docker/registry/v2/repositories', repository, '_manifests/tags', tag, 'current/link');
  return readFile(link, 'utf8').catch(() => undefined);
}

describe('a copy through HTTP_PROXY', () => {
  it('sends every request through the proxy: HEAD, token, blob GET and PUT, on both registries', async () => {
    const image = await pushImage(source, 'proxied/src', 'v1', { layers: [3000, 5000] });
    proxy = await startForwardProxy();
    const sourceBefore = (await settledAccessLog(source)).length;
    const targetBefore = (await settledAccessLog(target)).length;
    const tokensBefore = source.tokenIssuer!.requests.length;
    const hosts = new RegistryHosts({ credentials: credentialsFor(source), proxy: env({ HTTP_PROXY: proxy.url }) });
    expect(hosts.host(ref(source, 'x').registry).proxy?.origin).toBe(proxy.url);

    const result = await copy({ source: ref(source, 'proxied/src:v1'), targets: [ref(target, 'proxied/dst:v1')] }, { hosts });
    expect(result).toMatchObject({ status: 'completed', sourceDigest: image.digest });
    expect(await storedTag(target, 'proxied/dst', 'v1')).toBe(image.digest);

    const carried = (registry: TestRegistry) => proxy!.requests.filter((r) => r.target.startsWith(`${registry.url}/v2/`));
    // settledAccessLog's own marker request is not the copy's.
    const seen = async (registry: TestRegistry, before: number) => (await settledAccessLog(registry)).slice(before).filter((r) => !r.uri.includes('hoist-log-marker'));
    const sourceSeen = await seen(source, sourceBefore);
    const targetSeen = await seen(target, targetBefore);
    // Each registry saw exactly the requests the proxy carried to it: none went around it.
    expect(carried(source).map((r) => `${r.method} ${r.status}`).sort()).toEqual(sourceSeen.map((r) => `${r.method} ${r.status}`).sort());
    expect(carried(target).map((r) => `${r.method} ${r.status}`).sort()).toEqual(targetSeen.map((r) => `${r.method} ${r.status}`).sort());
    const methods = new Set([...carried(source), ...carried(target)].map((r) => r.method));
    expect([...methods].sort()).toEqual(expect.arrayContaining(['GET', 'HEAD', 'POST', 'PUT']));
    expect(carried(source).some((r) => r.method === 'GET' && r.target.endsWith(image.blobs[1].digest) && r.status === 200)).toBe(true);
    // The token service is another origin; its requests went through the proxy too.
    const tokenRequests = proxy.requests.filter((r) => r.target.startsWith(source.tokenIssuer!.realm));
    expect(tokenRequests.length).toBeGreaterThan(0);
    expect(tokenRequests.length).toBe(source.tokenIssuer!.requests.length - tokensBefore);
  });

  it('fetches a blob redirected to another origin through the proxy, which alone resolves that origin', async () => {
    const image = await pushImage(target, 'redirect/src', 'v1', { layers: [2000] });
    const layer = image.blobs[1].digest;
    // The source answers the layer's GET with a redirect to storage elsewhere: the target
    // registry under a name only the forward proxy knows.
    const storage = `storage.hoist.test:${target.port}`;
    const redirecting = await startProxy(target.url, [(request) => (request.method === 'GET' && request.pathname.endsWith(`/blobs/${layer}`) ? { type: 'respond', status: 307, headers: { Location: `http://${storage}/v2/redirect/src/blobs/${layer}` } } : undefined)]);
    try {
      proxy = await startForwardProxy({ hosts: { 'storage.hoist.test': '127.0.0.1' } });
      const hosts = new RegistryHosts({ proxy: env({ HTTP_PROXY: proxy.url }) });
      const result = await copy({ source: ref(redirecting, 'redirect/src:v1'), targets: [ref(target, 'redirect/dst:v1')] }, { hosts });
      expect(result).toMatchObject({ status: 'completed', sourceDigest: image.digest });
      expect(proxy.requests.filter((r) => r.target === `http://${storage}/v2/redirect/src/blobs/${layer}`).map((r) => `${r.method} ${r.status}`)).toEqual(['GET 200']);
    } finally {
      await redirecting.stop();
    }
  });

  it('reads a non-distributable layer’s URL through the proxy', async () => {
    const image = await pushImage(target, 'foreign/src', 'v1', { layers: [1500] });
    const layer = image.blobs[1];
    proxy = await startForwardProxy({ hosts: { 'layers.hoist.test': '127.0.0.1' } });
    const connections = new Connections({ proxy: new ProxySettings(env({ HTTP_PROXY: proxy.url })) });
    const url = `http://layers.hoist.test:${target.port}/v2/foreign/src/blobs/${layer.digest}`;
    const bytes = Buffer.concat(await openUrlBlob({ urls: [url], digest: layer.digest, size: layer.size, connections }).toArray());
    expect(bytes.length).toBe(layer.size);
    expect(proxy.requests.map((r) => `${r.method} ${r.target} ${r.status}`)).toEqual([`GET ${url} 200`]);
  });

  it('goes around the proxy for a host NO_PROXY lists, loopback included', async () => {
    const image = await pushImage(source, 'bypass/src', 'v1', { layers: [1000] });
    proxy = await startForwardProxy();
    const realmHost = new URL(source.tokenIssuer!.realm).host;
    const hosts = new RegistryHosts({ credentials: credentialsFor(source), proxy: env({ HTTP_PROXY: proxy.url, NO_PROXY: `${source.host},${target.host},${realmHost}` }) });
    await expect(copy({ source: ref(source, 'bypass/src:v1'), targets: [ref(target, 'bypass/dst:v1')] }, { hosts })).resolves.toMatchObject({ status: 'completed' });
    expect(await storedTag(target, 'bypass/dst', 'v1')).toBe(image.digest);
    expect(proxy.requests).toEqual([]);
  });

  it('sends the proxy URL’s credentials, and names the proxy without them when they are refused', async () => {
    const image = await pushImage(source, 'auth/src', 'v1', { layers: [1000] });
    proxy = await startForwardProxy({ credentials: { username: 'proxyuser', password: 'pr0xy-s3cret' } });
    const authorized = new RegistryHosts({ credentials: credentialsFor(source), proxy: env({ http_proxy: `http://proxyuser:pr0xy-s3cret@127.0.0.1:${proxy.port}` }) });
    await expect(copy({ source: ref(source, 'auth/src:v1'), targets: [ref(target, 'auth/dst:v1')] }, { hosts: authorized })).resolves.toMatchObject({ status: 'completed' });
    expect(await storedTag(target, 'auth/dst', 'v1')).toBe(image.digest);
    expect(proxy.requests.length).toBeGreaterThan(0);
    expect(proxy.requests.every((r) => r.authorized)).toBe(true);

    const refusedHosts = new RegistryHosts({ credentials: credentialsFor(source), retry: ONE_ATTEMPT, proxy: env({ http_proxy: `http://proxyuser:wrong-s3cret@127.0.0.1:${proxy.port}` }) });
    const refused = await copy({ source: ref(source, 'auth/src:v1'), targets: [ref(target, 'auth/refused:v1')] }, { hosts: refusedHosts }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'PROXY_REFUSED', status: 407, proxy: proxy.url });
    const text = `${(refused as Error).message} ${JSON.stringify(refused)}`;
    expect(text).toContain(proxy.url);
    expect(text).not.toMatch(/wrong-s3cret|proxyuser/);
  });

  it('judges the host behind the proxy by the address policy before asking the proxy for it', async () => {
    await pushImage(source, 'policy/src', 'v1', { layers: [1000] });
    proxy = await startForwardProxy();
    const proxied = { HTTP_PROXY: proxy.url };
    const guarded = new RegistryHosts({ credentials: credentialsFor(source), retry: ONE_ATTEMPT, proxy: env(proxied), addressPolicy: createAddressPolicy({ trustedHosts: [target.host] }) });
    const refused = await copy({ source: ref(source, 'policy/src:v1'), targets: [ref(target, 'policy/dst:v1')] }, { hosts: guarded }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'ADDRESS_REFUSED', rule: 'loopback' });
    expect(proxy.requests.filter((r) => r.target.startsWith(source.url))).toEqual([]);
  });
});

describe('a TLS registry through HTTPS_PROXY', () => {
  it('is reached in a CONNECT tunnel, under a name only the proxy resolves, with the CA file trusted', async () => {
    const image = await pushImage(source, 'tunnel/src', 'v1', { layers: [4000] });
    proxy = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' } });
    const hosts = new RegistryHosts({ credentials: credentialsFor(source), caCertificates: ca, proxy: env({ HTTPS_PROXY: proxy.url }) });
    const secureRef = `${NAME}:${secure.port}/tunnel/dst:v1`;
    const result = await copy({ source: ref(source, 'tunnel/src:v1'), targets: [ref({ host: `${NAME}:${secure.port}` }, 'tunnel/dst:v1')] }, { hosts });
    expect(result, secureRef).toMatchObject({ status: 'completed', sourceDigest: image.digest });
    expect(await storedTag(secure, 'tunnel/dst', 'v1')).toBe(image.digest);
    // Only tunnels: an https URL never goes to the proxy in the clear.
    expect(proxy.requests.length).toBeGreaterThan(0);
    expect(proxy.requests.every((r) => r.method === 'CONNECT' && r.target === `${NAME}:${secure.port}` && r.status === 200)).toBe(true);
  });

  it('fails with the proxy named when it refuses the tunnel, instead of hanging', async () => {
    await pushImage(source, 'tunnel/refused', 'v1', { layers: [1000] });
    proxy = await startForwardProxy({ refuseWith: 403 });
    const hosts = new RegistryHosts({
      credentials: credentialsFor(source),
      caCertificates: ca,
      retry: ONE_ATTEMPT,
      proxy: env({ https_proxy: `user:hunter2@127.0.0.1:${proxy.port}`, HTTPS_PROXY: 'http://127.0.0.1:1' }),
    });
    const refused = await copy({ source: ref(source, 'tunnel/refused:v1'), targets: [ref({ host: `${NAME}:${secure.port}` }, 'tunnel/refused:v1')] }, { hosts }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'PROXY_REFUSED', status: 403, proxy: proxy.url, target: `${NAME}:${secure.port}` });
    expect((refused as Error).message).not.toContain('hunter2');
    expect(proxy.requests.map((r) => r.method)).toContain('CONNECT');
  });
});

describe('an https:// proxy', () => {
  let certificates: TestCertificates;
  beforeAll(async () => {
    const proxyDirectory = path.join(directory, 'https-proxy');
    await mkdir(proxyDirectory);
    // From a CA of its own (not the registry's), for 127.0.0.1 (makeCertificates always adds it).
    certificates = await makeCertificates(proxyDirectory, 'proxy.hoist.test');
  });

  it('is reached over TLS, verified with the CA file: tunnels run TLS inside TLS, http URLs go to it encrypted', async () => {
    const image = await pushImage(source, 'tls-proxy/src', 'v1', { layers: [3000] });
    proxy = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' }, tls: { key: certificates.key, cert: certificates.cert } });
    expect(proxy.url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const proxyCa = readCaFile(certificates.caPath, 'test CA');
    const hosts = new RegistryHosts({ credentials: credentialsFor(source), caCertificates: [...ca, ...proxyCa], retry: ONE_ATTEMPT, proxy: env({ HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url }) });
    // Plain http → TLS, then TLS → plain http: both kinds of registry on both sides.
    const there = await copy({ source: ref(source, 'tls-proxy/src:v1'), targets: [ref({ host: `${NAME}:${secure.port}` }, 'tls-proxy/mid:v1')] }, { hosts });
    expect(there).toMatchObject({ status: 'completed', sourceDigest: image.digest });
    expect(await storedTag(secure, 'tls-proxy/mid', 'v1')).toBe(image.digest);
    const back = await copy({ source: ref({ host: `${NAME}:${secure.port}` }, 'tls-proxy/mid:v1'), targets: [ref(target, 'tls-proxy/dst:v1')] }, { hosts });
    expect(back).toMatchObject({ status: 'completed', sourceDigest: image.digest });
    expect(await storedTag(target, 'tls-proxy/dst', 'v1')).toBe(image.digest);
    // The plain-http registries in absolute form (Node's HEAD included), the TLS one by CONNECT.
    const methods = (registry: TestRegistry) => new Set(proxy!.requests.filter((r) => r.target.startsWith(`${registry.url}/v2/`) && r.status < 400).map((r) => r.method));
    expect([...methods(source)]).toContain('GET');
    expect([...methods(target)]).toEqual(expect.arrayContaining(['HEAD', 'PUT']));
    expect(proxy.requests.some((r) => r.method === 'CONNECT' && r.target === `${NAME}:${secure.port}` && r.status === 200)).toBe(true);
  });

  it('whose certificate is not trusted is refused before anything is sent to it', async () => {
    proxy = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' }, tls: { key: certificates.key, cert: certificates.cert } });
    // The registry's CA only: the proxy's is another one.
    const hosts = new RegistryHosts({ caCertificates: ca, retry: ONE_ATTEMPT, proxy: env({ HTTPS_PROXY: proxy.url }) });
    const failed = await copy({ source: ref({ host: `${NAME}:${secure.port}` }, 'tls-proxy/none:v1'), targets: [ref(target, 'tls-proxy/none:v1')] }, { hosts }).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(Error);
    expect(JSON.stringify(failed) + String((failed as Error).cause ?? '') + (failed as Error).message).toMatch(/certificate|UNABLE_TO_VERIFY|self.signed/i);
    expect(proxy.requests).toEqual([]);
  });
});

describe('a proxy that cannot reach the host', () => {
  it('is asked again, as a dropped connection would be, then named with what it answered', async () => {
    proxy = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' } });
    // Nothing listens on the port the proxy is asked for: it answers 502.
    const closed = await freePort();
    const hosts = new RegistryHosts({ caCertificates: ca, retry: { baseDelayInMs: 1, maxDelayInMs: 5, maxAttempts: 2 }, proxy: env({ HTTPS_PROXY: proxy.url }) });
    const failed = await copy({ source: ref({ host: `${NAME}:${closed}` }, 'gone/src:v1'), targets: [ref(target, 'gone/dst:v1')] }, { hosts }).catch((error: unknown) => error);
    expect(failed).toMatchObject({ message: expect.stringContaining(`the proxy ${proxy.url} refused to connect to ${NAME}:${closed} (it answered 502)`) });
    expect(proxy.requests.map((r) => `${r.method} ${r.target} ${r.status}`)).toEqual([`CONNECT ${NAME}:${closed} 502`, `CONNECT ${NAME}:${closed} 502`]);
  });
});

describe('a proxy that takes the connection and never answers', () => {
  /** A loopback server that accepts connections, records what they send, and never answers. */
  async function startSilentProxy(): Promise<{ url: string; received: () => string; stop: () => Promise<void> }> {
    const sockets = new Set<Socket>();
    let received = '';
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      received: () => received,
      stop: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  it('fails a tunnel once the bound passes, naming the proxy without its credentials, for undici and for HEAD', async () => {
    const silent = await startSilentProxy();
    try {
      const connections = new Connections({ proxy: new ProxySettings(env({ HTTPS_PROXY: `http://user:hunter2@${silent.url.slice('http://'.length)}` })), proxyConnectTimeoutInMs: 100 });
      for (const method of ['GET', 'HEAD'] as const) {
        const failed = await connections.exchange({ url: new URL(`https://${NAME}:${secure.port}/v2/`), method, headers: {} }).catch((error: unknown) => error);
        expect(failed).toMatchObject({ code: 'PROXY_TIMEOUT', proxy: silent.url, target: `${NAME}:${secure.port}`, timeoutInMs: 100 });
        expect((failed as Error).message).toContain(`the proxy ${silent.url} did not answer`);
        expect(`${(failed as Error).message} ${JSON.stringify(failed)}`).not.toContain('hunter2');
      }
      // The proxy was asked, and by CONNECT: the bound is on its answer, not on reaching it.
      expect(silent.received().match(new RegExp(`CONNECT ${NAME}:${secure.port} `, 'g'))).toHaveLength(2);
    } finally {
      await silent.stop();
    }
  });

  it('fails a copy with PROXY_TIMEOUT, the bound set on its RegistryHosts', async () => {
    const silent = await startSilentProxy();
    try {
      const hosts = new RegistryHosts({ caCertificates: ca, retry: ONE_ATTEMPT, proxy: env({ HTTPS_PROXY: silent.url }), proxyConnectTimeoutInMs: 100 });
      const failed = await copy({ source: ref({ host: `${NAME}:${secure.port}` }, 'silent/src:v1'), targets: [ref(target, 'silent/dst:v1')] }, { hosts }).catch((error: unknown) => error);
      expect(failed).toMatchObject({ code: 'PROXY_TIMEOUT', proxy: silent.url, target: `${NAME}:${secure.port}` });
    } finally {
      await silent.stop();
    }
  });
});

describe('two RegistryHosts in one process', () => {
  it('copy at once, one through a proxy with 3 attempts, one directly with 1, without affecting each other', async () => {
    const [a] = await Promise.all([pushImage(target, 'pair/a', 'v1', { layers: [2000, 3000] }), pushImage(target, 'pair/b', 'v1', { layers: [2500] })]);
    // The first manifest GET of each repository fails: 3 attempts get through, 1 does not.
    const failed = new Set<string>();
    const flaky = await startProxy(target.url, [
      (request) => {
        const repository = /^\/v2\/(.+)\/manifests\//.exec(request.pathname)?.[1];
        if (request.method !== 'GET' || !repository || failed.has(repository)) return undefined;
        failed.add(repository);
        return { type: 'respond', status: 503, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'busy' }] }) };
      },
    ]);
    try {
      proxy = await startForwardProxy();
      const proxied = new RegistryHosts({ proxy: env({ HTTP_PROXY: proxy.url }), retry: { baseDelayInMs: 10, maxDelayInMs: 50, maxAttempts: 3 } });
      const direct = new RegistryHosts({ retry: ONE_ATTEMPT });
      const [ra, rb] = await Promise.allSettled([
        copy({ source: ref(flaky, 'pair/a:v1'), targets: [ref(target, 'pair/a-copy:v1')] }, { hosts: proxied }),
        copy({ source: ref(flaky, 'pair/b:v1'), targets: [ref(target, 'pair/b-copy:v1')] }, { hosts: direct }),
      ]);
      expect(ra).toMatchObject({ status: 'fulfilled', value: { status: 'completed', sourceDigest: a.digest } });
      expect(rb).toMatchObject({ status: 'rejected', reason: { code: 'REGISTRY_ERROR', message: expect.stringMatching(/UNAVAILABLE \(HTTP 503\)/) } });
      expect(await storedTag(target, 'pair/a-copy', 'v1')).toBe(a.digest);
      expect(await storedTag(target, 'pair/b-copy', 'v1')).toBeUndefined();
      const paths = proxy.requests.map((r) => new URL(r.target).pathname);
      expect(paths.some((p) => p.includes('/pair/a'))).toBe(true);
      expect(paths.filter((p) => p.includes('/pair/b'))).toEqual([]);
    } finally {
      await flaky.stop();
    }
  });
});
