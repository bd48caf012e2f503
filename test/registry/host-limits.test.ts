/**
 * Per-host limits of a RegistryHosts, against a real docker-registry behind the fault-injecting
 * proxy (test/helpers/proxy.ts): a cap on the requests in flight to a host, and a 429's
 * Retry-After that every request to the host waits out, token services' included. The pause runs
 * on an injected clock.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { HostLimits, LimitsByHost, type LimitsClock } from '../../src/registry/host-limits.js';
import { RegistryClient } from '../../src/registry/client.js';
import { forRegistry } from '../../src/registry/credentials.js';
import { parseReference } from '../../src/registry/reference.js';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let proxy: TestProxy | undefined;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

/** Lets every pending promise callback run: what is left waiting then waits on something outside. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A clock whose sleeps end only when the test moves it on. */
function manualClock() {
  let now = 1_000_000;
  const sleepers: Array<{ until: number; wake: () => void }> = [];
  const slept: number[] = [];
  let onSleep: (() => void) | undefined;
  const clock: LimitsClock = {
    now: () => now,
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        slept.push(ms);
        sleepers.push({ until: now + ms, wake: resolve });
        onSleep?.();
      }),
  };
  return {
    clock,
    slept,
    /** Resolves once `count` sleeps have begun in all. */
    sleeps: (count: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (slept.length >= count) resolve();
        };
        onSleep = check;
        check();
      }),
    advance(ms: number) {
      now += ms;
      for (const sleeper of sleepers.splice(0)) {
        if (sleeper.until <= now) sleeper.wake();
        else sleepers.push(sleeper);
      }
    },
  };
}

const v2 = (host: string) => ({ method: 'GET' as const, url: new URL(`http://${host}/v2/`), scopes: [], reference: host, expect: [200] });

describe('a host’s request cap', () => {
  it('holds a request back while the host has as many in flight as it allows', async () => {
    const arrived = deferred();
    const release = deferred();
    proxy = await startProxy(registry.url, [
      (request) => {
        if (request.index !== 0) return undefined;
        arrived.resolve();
        return { type: 'forward', waitFor: release.promise };
      },
    ]);
    const hosts = new RegistryHosts({ maxRequestsPerHost: 1 });
    const reference = parseReference(`${proxy.host}/a/b`);
    const transport = hosts.transport(reference.registry);
    const limits = hosts.host(reference.registry).limits;

    const first = transport.send(v2(proxy.host));
    await arrived.promise;
    const second = transport.send(v2(proxy.host));
    await settle();
    // The second waits for the first's slot, unsent.
    expect(limits.inFlight).toBe(1);
    expect(limits.queued).toBe(1);
    expect(proxy.requests).toHaveLength(1);

    release.resolve();
    await expect(Promise.all([first, second])).resolves.toMatchObject([{ status: 200 }, { status: 200 }]);
    expect(proxy.requests).toHaveLength(2);
    expect(limits.inFlight).toBe(0);
  });

  it('never lets an upload whose body streams from the same host hold the only slot', async () => {
    const image = await pushImage(registry, 'limits/src', 'v1', { layers: [5000] });
    const layer = image.blobs[1];
    const hosts = new RegistryHosts({ maxRequestsPerHost: 1 });
    const from = parseReference(`${registry.host}/limits/src`);
    const to = parseReference(`${registry.host}/limits/dst`);
    const client = RegistryClient.for(to.registry, hosts);
    const session = await client.startUpload(to);
    if (session === 'mounted') throw new Error('no mount was asked for');
    // The PUT's body is a GET from the same host, opened only when the PUT reads it.
    await client.completeUpload(to, session, layer.digest, { stream: client.openBlob(from, layer.digest, layer.size), length: layer.size });
    expect(await client.headBlob(to, layer.digest)).toBe(layer.size);
  });

  it('hands a freed slot to the first waiter, and lets an aborted waiter go', async () => {
    const limits = new HostLimits(1);
    const releaseFirst = await limits.acquire();
    const order: string[] = [];
    const controller = new AbortController();
    const aborted = limits.acquire(controller.signal).catch((error: unknown) => error);
    const second = limits.acquire().then((release) => (order.push('second'), release));
    const third = limits.acquire().then((release) => (order.push('third'), release));
    await settle();
    expect(limits.queued).toBe(3);
    controller.abort(new Error('gone'));
    expect(await aborted).toMatchObject({ message: 'gone' });
    releaseFirst();
    releaseFirst();
    (await second)();
    (await third)();
    expect(order).toEqual(['second', 'third']);
    expect([limits.inFlight, limits.queued]).toEqual([0, 0]);
  });

  it('refuses a waiter whose signal was aborted before it asked, while every slot is taken', async () => {
    const limits = new HostLimits(1);
    const release = await limits.acquire();
    await expect(limits.acquire(AbortSignal.abort(new Error('gone already')))).rejects.toThrow('gone already');
    expect(limits.queued).toBe(0);
    release();
  });

  it('is one per host, however the host is written', () => {
    const limits = new LimitsByHost();
    expect(limits.for('Registry.Example:5000')).toBe(limits.for('registry.example:5000'));
    expect(limits.for('registry.example:5001')).not.toBe(limits.for('registry.example:5000'));
  });
});

describe('a host’s 429', () => {
  it('makes every request to the host wait out its Retry-After, not only the one refused', async () => {
    const manual = manualClock();
    proxy = await startProxy(registry.url, [(request) => (request.index === 0 ? { type: 'respond', status: 429, headers: { 'Retry-After': '7' } } : undefined)]);
    const hosts = new RegistryHosts({ clock: manual.clock, retry: { maxAttempts: 3, baseDelayInMs: 1, maxDelayInMs: 30_000 } });
    const transport = hosts.transport(parseReference(`${proxy.host}/a/b`).registry);

    const refused = transport.send(v2(proxy.host));
    // Either the host's pause is waited out on the clock, or the request ends some other way.
    expect(await Promise.race([manual.sleeps(1).then(() => 'paused'), refused.then(() => 'ended')])).toBe('paused');
    // Another request to the host, sent while the pause is on, waits too, unsent.
    const later = transport.send(v2(proxy.host));
    expect(await Promise.race([manual.sleeps(2).then(() => 'paused'), later.then(() => 'sent')])).toBe('paused');
    expect(manual.slept).toEqual([7000, 7000]);
    expect(proxy.requests.map((r) => r.status)).toEqual([429]);

    manual.advance(7000);
    await expect(Promise.all([refused, later])).resolves.toMatchObject([{ status: 200 }, { status: 200 }]);
    expect(proxy.requests.map((r) => r.status)).toEqual([429, 200, 200]);
  });
});

describe('a token service’s 429', () => {
  let tokenRegistry: TestRegistry;
  let tokenProxy: TestProxy;
  /** Whether the next token request is refused with 429. */
  let throttleNext = false;
  beforeAll(async () => {
    // The registry's challenge names the proxy, on a host of its own, as its realm.
    tokenRegistry = await startRegistry({
      auth: 'token',
      tokenRealm: async (issuer) => {
        tokenProxy = await startProxy(issuer.url, [
          () => {
            if (!throttleNext) return undefined;
            throttleNext = false;
            return { type: 'respond', status: 429, headers: { 'Retry-After': '7' } };
          },
        ]);
        return `${tokenProxy.url}/token`;
      },
    });
    await pushImage(tokenRegistry, 'tok/one', 'v1', { layers: [100] });
    await pushImage(tokenRegistry, 'tok/two', 'v1', { layers: [100] });
  });
  afterAll(async () => {
    await Promise.all([tokenRegistry?.stop(), tokenProxy?.stop()]);
  });

  it('makes every token request to that service wait out its Retry-After, whichever scope it is for', async () => {
    const manual = manualClock();
    const hosts = new RegistryHosts({ clock: manual.clock, credentials: forRegistry(tokenRegistry.host, tokenRegistry.credentials!), retry: { maxAttempts: 3, baseDelayInMs: 1, maxDelayInMs: 30_000 } });
    const head = (repository: string) => {
      const ref = parseReference(`${tokenRegistry.host}/${repository}:v1`);
      return RegistryClient.for(ref.registry, hosts).headManifest(ref);
    };
    const before = tokenProxy.requests.length;
    throttleNext = true;
    const first = head('tok/one');
    expect(await Promise.race([manual.sleeps(1).then(() => 'paused'), first.then(() => 'ended')])).toBe('paused');
    // Another scope's token request, asked while the pause is on, waits too, unsent.
    const second = head('tok/two');
    expect(await Promise.race([manual.sleeps(2).then(() => 'paused'), second.then(() => 'sent')])).toBe('paused');
    expect(manual.slept).toEqual([7000, 7000]);
    expect(tokenProxy.requests.slice(before).map((r) => r.status)).toEqual([429]);

    manual.advance(7000);
    const [one, two] = await Promise.all([first, second]);
    expect([one?.digest, two?.digest]).toEqual([expect.stringMatching(/^sha256:/), expect.stringMatching(/^sha256:/)]);
    expect(tokenProxy.requests.slice(before).map((r) => r.status)).toEqual([429, 200, 200]);
  });
});
