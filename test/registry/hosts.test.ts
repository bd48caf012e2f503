/**
 * RegistryHosts, against real registries: everything a copy learns or is configured with lives in
 * the hosts object it is given, so two copies in one process with different settings never
 * affect each other.
 */
import { copy, CopyError } from '../../src/copy/index.js';
import { forRegistry } from '../../src/registry/credentials.js';
import { parseHostList, RegistryHosts } from '../../src/registry/hosts.js';
import { parseReference } from '../../src/registry/reference.js';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget, ref } from '../copy/support.js';

const FAST = { baseDelayInMs: 10, maxDelayInMs: 50 };

let source: TestRegistry;
let target: TestRegistry;
const proxies: TestProxy[] = [];
beforeAll(async () => {
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([...proxies.map((p) => p.stop()), source?.stop(), target?.stop()]);
});

async function proxy(upstream: TestRegistry, rules: ProxyRule[]): Promise<TestProxy> {
  const started = await startProxy(upstream.url, rules);
  proxies.push(started);
  return started;
}

/** Answers 503 to the first manifest request of each repository matching `pattern`. */
function firstManifestUnavailable(pattern: RegExp): ProxyRule {
  const seen = new Set<string>();
  return (request) => {
    const match = /^\/v2\/(.+)\/manifests\//.exec(request.pathname);
    if (!match || !pattern.test(match[1]) || seen.has(match[1])) return undefined;
    seen.add(match[1]);
    return { type: 'respond', status: 503, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'busy' }] }) };
  };
}

/** Refuses bytes on a closing PUT, as some registries do (the spec allows them). */
const refuseChunkOnClose: ProxyRule = (request) =>
  request.method === 'PUT' && request.pathname.includes('/blobs/uploads/') && Number(request.headers['content-length'] ?? 0) > 0
    ? { type: 'respond', status: 400, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'no bytes on PUT here' }] }) }
    : undefined;

describe('two copies in one process', () => {
  it('each follow their own retry policy, at the same time', async () => {
    const [a, b] = await Promise.all([pushImage(source, 'iso/a', 'v1', { layers: [500] }), pushImage(source, 'iso/b', 'v1', { layers: [600] })]);
    const flaky = await proxy(source, [firstManifestUnavailable(/^iso\//)]);
    const once = new RegistryHosts({ retry: { ...FAST, maxAttempts: 1 } });
    const thrice = new RegistryHosts({ retry: { ...FAST, maxAttempts: 3 } });
    const [failed, copied] = await Promise.allSettled([
      copy({ source: ref(flaky, 'iso/a:v1'), targets: [ref(target, 'iso/a:v1')] }, { hosts: once }),
      copy({ source: ref(flaky, 'iso/b:v1'), targets: [ref(target, 'iso/b:v1')] }, { hosts: thrice }),
    ]);
    expect(failed.status).toBe('rejected');
    expect((failed as PromiseRejectedResult).reason).toBeInstanceOf(CopyError);
    expect((failed as PromiseRejectedResult).reason).toMatchObject({ side: 'source' });
    expect(copied).toMatchObject({ status: 'fulfilled', value: { status: 'completed', sourceDigest: b.digest } });
    await expectIdenticalInTarget(target, 'iso/b', 'v1', [b]);
    expect(a.digest).not.toBe(b.digest);
  });

  it('each learn a quirk and mount hints for themselves', async () => {
    const image = await pushImage(source, 'quirk/src', 'v1', { layers: [150_000] });
    const refusing = await proxy(target, [refuseChunkOnClose]);
    const first = new RegistryHosts();
    const second = new RegistryHosts();
    const options = { uploadMode: 'chunked' as const, chunkSizeInBytes: 65536, concurrency: 1 };
    const refusals = () => refusing.requests.filter((r) => r.status === 400).length;

    await copy({ source: ref(source, 'quirk/src:v1'), targets: [ref(refusing, 'quirk/one:v1')] }, { ...options, hosts: first });
    expect(refusals()).toBe(1);
    const host = parseReference(`${refusing.host}/x`).registry;
    expect(first.host(host).quirks.noChunkOnClose).toBe(true);
    expect(second.host(host).quirks.noChunkOnClose).toBe(false);

    // The second copy has not learned it: it meets the refusal itself, once.
    await copy({ source: ref(source, 'quirk/src:v1'), targets: [ref(refusing, 'quirk/two:v1')] }, { ...options, hosts: second });
    expect(refusals()).toBe(2);
    expect(second.host(host).quirks.noChunkOnClose).toBe(true);
    await expectIdenticalInTarget(target, 'quirk/two', 'v1', [image]);

    // Each hosts object remembers where it put the layer, and only that.
    const layer = image.blobs.find((b) => b.size === 150_000)!;
    const candidates = (hosts: RegistryHosts) => hosts.host(host).mountHints.candidates(ref(source, 'quirk/src'), ref(refusing, 'quirk/three'), layer.digest);
    expect(candidates(first)).toEqual(['quirk/one']);
    expect(candidates(second)).toEqual(['quirk/two']);
    expect(candidates(new RegistryHosts())).toEqual([]);
  });

  it('keep their credentials apart on one registry', async () => {
    const locked = await startRegistry({ auth: 'basic' });
    try {
      await pushImage(locked, 'creds/app', 'v1', { layers: [100] });
      const right = new RegistryHosts({ credentials: forRegistry(locked.host, locked.credentials!, 'right') });
      const wrong = new RegistryHosts({ credentials: forRegistry(locked.host, { username: 'alice', password: 'wrong' }, 'wrong') });
      const results = await Promise.allSettled([right, wrong].map((hosts) => copy({ source: ref(locked, 'creds/app:v1'), targets: [ref(target, 'creds/app:v1')], dryRun: true }, { hosts })));
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'AUTH_FAILED' });
    } finally {
      await locked.stop();
    }
  });
});

describe('RegistryHosts', () => {
  it('keeps at most maxTransports transports, dropping the least recently used', () => {
    const hosts = new RegistryHosts({ maxTransports: 2 });
    const [a, b, c] = ['a.example', 'b.example', 'c.example'].map((h) => parseReference(`${h}/x`).registry);
    const first = hosts.transport(a);
    expect(hosts.transport(a)).toBe(first);
    const second = hosts.transport(b);
    hosts.transport(a);
    hosts.transport(c);
    // b was the least recently used: dropped; a stayed.
    expect(hosts.transport(a)).toBe(first);
    expect(hosts.transport(b)).not.toBe(second);
  });

  it('reaches loopback over http unless told https, other hosts over https unless told insecure, whatever the case and spaces', () => {
    const hosts = new RegistryHosts({ insecureRegistries: [' Lab.Example:5000 ', ''], httpsRegistries: ['127.0.0.1:5443'] });
    const scheme = (name: string) => hosts.host(parseReference(`${name}/x`).registry).scheme;
    expect([scheme('lab.example:5000'), scheme('lab.example'), scheme('127.0.0.1:5000'), scheme('127.0.0.1:5443'), scheme('r.example')]).toEqual(['http', 'https', 'http', 'https', 'https']);
  });
});

describe('parseHostList', () => {
  it('reads a comma-separated list, lower-cased, without blanks', () => {
    expect(parseHostList(' A.Example , ,b.example:5000,')).toEqual(['a.example', 'b.example:5000']);
    expect(parseHostList(undefined)).toEqual([]);
  });

  it('shares host state but not transports with a view under other credentials', () => {
    const hosts = new RegistryHosts();
    const registry = parseReference('r.example/x').registry;
    const view = hosts.withCredentials(forRegistry('r.example', { username: 'u', password: 'p' }, 'job:1'));
    expect(view.host(registry)).toBe(hosts.host(registry));
    expect(view.transport(registry)).not.toBe(hosts.transport(registry));
    expect(view.transport(registry)).toBe(view.transport(registry));
  });
});
