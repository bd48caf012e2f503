/**
 * The outbound address policy: which addresses are refused, however they are spelled, and that a
 * refusal comes before any socket is opened, on the address a connection would really use (after
 * an injected resolver answers), for the registry, its token realm and every redirect hop.
 *
 * The peers are scripted loopback servers: no real registry redirects to the metadata address on
 * cue. Every socket the process opens is seen by a hook on Node's `net.client.socket` channel,
 * which also stops any that would go anywhere but loopback, so even a broken policy never
 * reaches 169.254.169.254.
 */
import diagnostics from 'node:diagnostics_channel';
import type { LookupOptions } from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { AddressRefusedError, createAddressPolicy, refusingRule, type AddressPolicy, type Resolver } from '../../src/registry/address-policy.js';
import { DEFAULT_RETRY } from '../../src/registry/retry.js';
import { anonymous } from '../../src/registry/credentials.js';
import { Connections } from '../../src/registry/http.js';
import { Transport } from '../../src/registry/transport.js';
import { openUrlBlob, UrlBlobError } from '../../src/registry/url-blob.js';

/** The address of every TCP connection attempt the process made since the test began (after any lookup). */
const connects: string[] = [];
const onSocket = (message: unknown): void => {
  const socket = (message as { socket: Socket }).socket;
  socket.on('connectionAttempt', (ip: string) => connects.push(ip));
  const connect = socket.connect.bind(socket) as (...args: unknown[]) => Socket;
  socket.connect = ((...args: unknown[]) => {
    const host = ((Array.isArray(args[0]) ? args[0][0] : args[0]) as { host?: string }).host ?? '';
    // The safety net: no IP literal but loopback is ever connected to, whatever the code under
    // test does. (Names in these tests are under .test, which no resolver but the injected ones answers.)
    if (isIP(host) && host !== '127.0.0.1' && host !== '::1') {
      // Destroyed once the caller has its listeners on, so the request fails instead of hanging.
      process.nextTick(() => socket.destroy(Object.assign(new Error(`test hook: blocked a connection to ${host}`), { code: 'ETESTBLOCKED' })));
      return socket;
    }
    return connect(...args);
  }) as Socket['connect'];
};

const servers: Server[] = [];
let accepted = 0;

beforeAll(() => diagnostics.subscribe('net.client.socket', onSocket));
afterAll(async () => {
  diagnostics.unsubscribe('net.client.socket', onSocket);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});
beforeEach(() => {
  connects.length = 0;
  accepted = 0;
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A loopback HTTP server answering with `handler`; counts the connections it accepts. Resolves with its port. */
async function scripted(handler: Handler): Promise<number> {
  const server = createServer((req, res) => {
    req.resume();
    handler(req, res);
  });
  server.on('connection', () => accepted++);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

const ok: Handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
const noRetry = { ...DEFAULT_RETRY, maxAttempts: 1 };

function get(url: string, policy: AddressPolicy, method: 'GET' | 'HEAD' = 'GET') {
  const { host } = new URL(url);
  return new Transport(host, host, anonymous, noRetry, new Connections({ policy })).send({ method, url: new URL(url), scopes: [], reference: host, expect: [200] });
}

/** What a send refused by the policy rejects with. */
async function refusal(promise: Promise<unknown>): Promise<AddressRefusedError> {
  const error: unknown = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(AddressRefusedError);
  expect((error as AddressRefusedError).code).toBe('ADDRESS_REFUSED');
  return error as AddressRefusedError;
}

describe('refusingRule', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    // A zone id is no part of the address, whatever it holds (a VLAN interface's name has a dot).
    ['::7f00:1%eth0.100', 'loopback'],
    ['febf::1', 'link-local'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['::ffff:10.1.2.3', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['100.64.0.1', 'CGNAT'],
    ['100.127.255.255', 'CGNAT'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['not-an-address', 'unspecified'],
    // Brackets are stripped only around the whole literal: a bracket inside is not an address,
    // and must not be cleaned into one (here a public one).
    ['1.1.[1.1', 'unspecified'],
    ['1.1.]1.1', 'unspecified'],
  ])('%s is refused as %s', (address, rule) => {
    expect(refusingRule(address)).toBe(rule);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.15.255.255', '172.32.0.1', '100.63.255.255', '100.128.0.1', '169.253.255.255', '192.169.0.1', '11.0.0.1', '2001:4860:4860::8888', '::ffff:8.8.8.8', '64:ff9b::808:808', 'fec0::1'])('%s may be reached', (address) => {
    expect(refusingRule(address)).toBeUndefined();
  });

  // Only the four forms that deliver to an IPv4 host are read as one: an address that merely
  // ends in the bits of 127.0.0.1, or starts like a prefix in one group, is an ordinary IPv6 address.
  it.each([
    ['the ::ffff: marker after a non-zero prefix', '2001:4860::ffff:7f00:1'],
    ['the IPv4-compatible shape after a non-zero prefix', '2001:4860::7f00:1'],
    ['a non-zero group where ::ffff: or ::0: would be', '::1:7f00:1'],
    ['the NAT64 first group without the second', '64:1::7f00:1'],
    ['the NAT64 second group without the first', '2001:ff9b::7f00:1'],
    ['the NAT64 groups with a non-zero group before the /96', '64:ff9b:0:0:1::7f00:1'],
    // An IPv4 address is never read for embedded IPv4: its first two octets spell 0x2002 (6to4).
    ['an IPv4 address starting 32.2', '32.2.127.0'],
  ])('%s (%s) is not read as embedded IPv4, and may be reached', (_label, address) => {
    expect(refusingRule(address)).toBeUndefined();
  });
});

describe('the policy at connection time', () => {
  const strict = createAddressPolicy({ trustedHosts: [] });

  it.each([
    ['127.0.0.1', 'http://127.0.0.1:PORT/v2/'],
    ['a decimal number', 'http://2130706433:PORT/v2/'],
    ['hex and a short form', 'http://0x7f.1:PORT/v2/'],
    ['octal', 'http://0177.0.0.1:PORT/v2/'],
    ['two parts', 'http://127.1:PORT/v2/'],
    ['IPv4-mapped IPv6', 'http://[::ffff:127.0.0.1]:PORT/v2/'],
    ['IPv4-mapped IPv6 in hex', 'http://[::ffff:7f00:1]:PORT/v2/'],
    ['IPv4-compatible IPv6', 'http://[::127.0.0.1]:PORT/v2/'],
  ])('refuses loopback spelled as %s, for GET and HEAD, before any socket is opened', async (_label, template) => {
    const port = await scripted(ok);
    const url = template.replace('PORT', String(port));
    for (const method of ['GET', 'HEAD'] as const) {
      const error = await refusal(get(url, strict, method));
      expect(error.rule).toBe('loopback');
    }
    expect(connects).toEqual([]);
    expect(accepted).toBe(0);
  });

  it('refuses a name that resolves to 127.0.0.1, on the address the connection would use', async () => {
    const port = await scripted(ok);
    const asked: string[] = [];
    const resolve: Resolver = (hostname) => {
      asked.push(hostname);
      return Promise.resolve([{ address: '127.0.0.1', family: 4 }]);
    };
    const policy = createAddressPolicy({ trustedHosts: [], resolve });
    for (const method of ['GET', 'HEAD'] as const) {
      const error = await refusal(get(`http://registry.example.test:${port}/v2/`, policy, method));
      expect(error).toMatchObject({ host: 'registry.example.test', address: '127.0.0.1', rule: 'loopback' });
      expect(error.message).toContain('registry.example.test');
      expect(error.message).toContain('loopback');
    }
    expect(asked).toEqual(['registry.example.test', 'registry.example.test']);
    expect(accepted).toBe(0);
  });

  it('checks again when connecting: a name that first resolved to a public address and then to loopback is refused', async () => {
    const port = await scripted(ok);
    const answers = ['93.184.216.34', '127.0.0.1'];
    const policy = createAddressPolicy({ trustedHosts: [], resolve: () => Promise.resolve([{ address: answers.shift() ?? '127.0.0.1', family: 4 }]) });
    await policy.check('rebind.example.test', port);
    const error = await refusal(get(`http://rebind.example.test:${port}/v2/`, policy));
    expect(error.address).toBe('127.0.0.1');
    expect(accepted).toBe(0);
  });

  it('hands a connection the addresses it checked, in the shape net.connect asks for, without connecting', async () => {
    const policy = createAddressPolicy({
      trustedHosts: [],
      resolve: () => Promise.resolve([{ address: '2001:db8::1', family: 6 }, { address: '93.184.216.34', family: 4 }]),
    });
    const { lookup } = policy.guard('public.example.test', 443);
    const ask = (options: LookupOptions) => new Promise<unknown[]>((resolve) => lookup!('public.example.test', options, (...args: unknown[]) => resolve(args)));
    expect(await ask({ all: true })).toEqual([null, [{ address: '2001:db8::1', family: 6 }, { address: '93.184.216.34', family: 4 }]]);
    expect(await ask({ family: 4 })).toEqual([null, '93.184.216.34', 4]);
    expect(await ask({})).toEqual([null, '2001:db8::1', 6]);
    expect(policy.guard('public.example.test', 443).lookup).toBe(lookup);
  });

  it('refuses a name when any of its addresses is refused', async () => {
    const policy = createAddressPolicy({ trustedHosts: [], resolve: () => Promise.resolve([{ address: '93.184.216.34', family: 4 }, { address: '::ffff:169.254.169.254', family: 6 }]) });
    const error = await refusal(policy.check('mixed.example.test', 443));
    expect(error.rule).toBe('link-local');
  });

  it.each(['GET', 'HEAD'] as const)('refuses a 307 redirect of a trusted registry to 169.254.169.254 before connecting to it (%s)', async (method) => {
    const port = await scripted((_req, res) => res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
    const policy = createAddressPolicy({ trustedHosts: [`127.0.0.1:${port}`] });
    const error = await refusal(get(`http://127.0.0.1:${port}/v2/library/app/blobs/sha256:00`, policy, method));
    expect(error).toMatchObject({ host: '169.254.169.254', rule: 'link-local' });
    // The registry was reached; the metadata address never was.
    expect(accepted).toBe(1);
    expect(connects).toEqual(['127.0.0.1']);
  });

  it('refuses a token realm at the metadata address with its own error, not a network error', async () => {
    const port = await scripted((_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://169.254.169.254/token",service="registry"' }).end());
    const policy = createAddressPolicy({ trustedHosts: [`127.0.0.1:${port}`] });
    const error = await refusal(get(`http://127.0.0.1:${port}/v2/`, policy));
    expect(error).toMatchObject({ host: '169.254.169.254', rule: 'link-local' });
    expect(connects).toEqual(['127.0.0.1']);
  });

  it('reaches a trusted host, by host and port or by host alone, and no other port of it', async () => {
    const port = await scripted(ok);
    const other = await scripted(ok);
    for (const entry of [`127.0.0.1:${port}`, '127.0.0.1', '2130706433']) {
      const policy = createAddressPolicy({ trustedHosts: [entry] });
      expect((await get(`http://127.0.0.1:${port}/v2/`, policy)).status).toBe(200);
      expect((await get(`http://127.0.0.1:${port}/v2/`, policy, 'HEAD')).status).toBe(200);
    }
    const pinned = createAddressPolicy({ trustedHosts: [`127.0.0.1:${port}`] });
    await refusal(get(`http://127.0.0.1:${other}/v2/`, pinned));
  });

  it('refuses a non-distributable layer URL on loopback, and its redirect to the metadata address', async () => {
    const port = await scripted((req, res) => {
      if (req.url === '/hop') res.writeHead(307, { location: 'http://169.254.169.254/layer' }).end();
      else ok(req, res);
    });
    const stream = openUrlBlob({
      urls: [`http://127.0.0.1:${port}/layer`, `http://localhost:${port}/layer`],
      digest: `sha256:${'0'.repeat(64)}`,
      size: 2,
      connections: new Connections({ policy: createAddressPolicy({ trustedHosts: [] }) }),
    });
    const error: unknown = await stream.toArray().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UrlBlobError);
    expect((error as UrlBlobError).failures.join('\n')).toMatch(/127\.0\.0\.1.*loopback[\s\S]*localhost.*loopback/);
    expect(accepted).toBe(0);
    expect(connects).toEqual([]);

    const viaRedirect = openUrlBlob({ urls: [`http://127.0.0.1:${port}/hop`], digest: `sha256:${'0'.repeat(64)}`, size: 2, connections: new Connections({ policy: createAddressPolicy({ trustedHosts: [`127.0.0.1:${port}`] }) }) });
    const redirected: unknown = await viaRedirect.toArray().then(() => undefined, (e: unknown) => e);
    expect((redirected as UrlBlobError).failures.join('\n')).toMatch(/169\.254\.169\.254.*link-local/);
    expect(connects).toEqual(['127.0.0.1']);
  });

  it.each([
    'http://registry.example/',
    'registry.example/v2',
    // http's URL parser reads a backslash as a slash: a path all the same.
    'registry.example\\v2',
    'registry.example?insecure=1',
    'registry.example#top',
    'registry example',
  ])('refuses the trusted-hosts entry %j, naming it', (entry) => {
    expect(() => createAddressPolicy({ trustedHosts: [entry] })).toThrow(TypeError);
    expect(() => createAddressPolicy({ trustedHosts: [entry] })).toThrow(`"${entry}" is not a host[:port]`);
  });

  it.each(['user@registry.example', ':s3cret@registry.example', 'user:s3cret@registry.example', 'http://user:s3cret@registry.example/'])(
    'refuses the trusted-hosts entry %j, naming it without its user and password',
    (entry) => {
      const error = (() => {
        try {
          createAddressPolicy({ trustedHosts: [entry] });
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(TypeError);
      expect(error?.message).toMatch(/^"(http:\/\/)?\*\*\*@registry\.example\/?" is not a host\[:port\]$/);
      expect(error?.message).not.toMatch(/s3cret|user/);
    },
  );
});

/** A resolver that answers `addresses` for every name, and records the names it was asked. */
function recording(addresses: Array<{ address: string; family: number }>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  return Object.assign((hostname: string) => {
    asked.push(hostname);
    return Promise.resolve(addresses);
  }, { asked });
}

/** What `guard` decided for `host:port`: trusted, checked by lookup, or the rule that refused it at once. */
function decision(policy: AddressPolicy, host: string, port: number): 'trusted' | 'lookup' | string {
  try {
    return policy.guard(host, port).lookup ? 'lookup' : 'trusted';
  } catch (error) {
    expect(error).toBeInstanceOf(AddressRefusedError);
    return (error as AddressRefusedError).rule;
  }
}

describe('the policy, host by host', () => {
  it('names the host, and the address it resolved to when that differs, in the refusal', async () => {
    const policy = createAddressPolicy({ trustedHosts: [], resolve: recording([{ address: '10.1.2.3', family: 4 }]) });
    const tail = 'the outbound address policy refuses private addresses; to reach a registry there, list its host in HOIST_ALLOWED_PRIVATE_REGISTRIES';
    const byName = await refusal(policy.check('registry.example.test', 443));
    expect(byName.message).toBe(`refused to connect to registry.example.test (10.1.2.3): ${tail}`);
    expect(byName.name).toBe('AddressRefusedError');
    const byAddress = await refusal(policy.check('10.1.2.3', 443));
    expect(byAddress.message).toBe(`refused to connect to 10.1.2.3: ${tail}`);
  });

  it.each([
    ['hex and a short form', '0x7f.1'],
    ['a decimal number', '2130706433'],
    ['octal', '0177.0.0.1'],
    ['IPv6 without brackets', '::1'],
    ['IPv6 in brackets', '[::1]'],
    ['IPv6 in full', '0:0:0:0:0:0:0:1'],
  ])('reads a host given as %s as the URL parser does: refused as loopback without asking the resolver', async (_label, host) => {
    // The resolver would say "public": a host read as a name instead of an address would pass.
    const resolve = recording([{ address: '93.184.216.34', family: 4 }]);
    const policy = createAddressPolicy({ trustedHosts: [], resolve });
    expect((await refusal(policy.check(host, 80))).rule).toBe('loopback');
    expect(decision(policy, host, 80)).toBe('loopback');
    expect(resolve.asked).toEqual([]);
  });

  it('asks the resolver for a name it cannot parse as a host, in lower case', async () => {
    const resolve = recording([{ address: '93.184.216.34', family: 4 }]);
    await createAddressPolicy({ trustedHosts: [], resolve }).check('Bad Host', 80);
    expect(resolve.asked).toEqual(['bad host']);
  });

  it('trusts a listed host on every port, whatever its case, without resolving it, and no other host', async () => {
    const resolve = recording([{ address: '10.0.0.5', family: 4 }]);
    const policy = createAddressPolicy({ trustedHosts: ['registry.internal.test'], resolve });
    await policy.check('REGISTRY.Internal.test', 5000);
    expect(decision(policy, 'registry.internal.test', 1)).toBe('trusted');
    expect(resolve.asked).toEqual([]);
    expect((await refusal(policy.check('127.0.0.1', 5000))).rule).toBe('loopback');
    expect(decision(policy, '127.0.0.1', 5000)).toBe('loopback');
    expect((await refusal(policy.check('other.internal.test', 5000))).rule).toBe('private');
  });

  it.each([
    ['an IPv6 host, any port', ['[::1]'], [['::1', 5000], ['[::1]', 1], ['0:0:0:0:0:0:0:1', 443]], []],
    // The URL parser drops a port equal to http's default: ":80" must still pin it, and the ':'
    // inside an IPv6 address is not a port.
    ['an IPv6 host on port 80', ['[::1]:80'], [['::1', 80]], [['::1', 8080, 'loopback'], ['::1', 1, 'loopback']]],
    ['an IPv4 host on port 80', ['10.0.0.5:80'], [['10.0.0.5', 80]], [['10.0.0.5', 81, 'private'], ['10.0.0.5', 8, 'private']]],
    ['an IPv4 host on port 5000', ['10.0.0.5:5000'], [['10.0.0.5', 5000]], [['10.0.0.5', 80, 'private']]],
    // Entries come from a comma-separated setting: spaces around them are not part of the host.
    ['entries with spaces around them', [' 10.0.0.5:80 ', ' registry.internal.test '], [['10.0.0.5', 80], ['registry.internal.test', 6000]], [['10.0.0.5', 443, 'private']]],
  ] as Array<[string, string[], Array<[string, number]>, Array<[string, number, string]>]>)('trusts %s exactly as listed', (_label, trustedHosts, reached, refused) => {
    const policy = createAddressPolicy({ trustedHosts });
    for (const [host, port] of reached) expect(decision(policy, host, port), `${host}:${port}`).toBe('trusted');
    for (const [host, port, rule] of refused) expect(decision(policy, host, port), `${host}:${port}`).toBe(rule);
  });
});

describe('the lookup a guarded connection uses', () => {
  const v4 = { address: '93.184.216.34', family: 4 };
  const v6 = { address: '2001:db8::1', family: 6 };

  /** The callback arguments of the policy's lookup for `public.example.test`, answered by `resolve`. */
  function lookupWith(resolve: Resolver) {
    const { lookup } = createAddressPolicy({ trustedHosts: [], resolve }).guard('public.example.test', 443);
    return (options: LookupOptions) => new Promise<unknown[]>((done) => lookup!('public.example.test', options, (...args: unknown[]) => done(args)));
  }

  it.each([
    [{ family: 4 }, [v6, v4], [null, v4.address, 4]],
    [{ family: 'IPv4' }, [v6, v4], [null, v4.address, 4]],
    [{ family: 6 }, [v4, v6], [null, v6.address, 6]],
    [{ family: 'IPv6' }, [v4, v6], [null, v6.address, 6]],
    [{ family: 'IPv6', all: true }, [v4, v6], [null, [v6]]],
    [{ family: 0 }, [v4, v6], [null, v4.address, 4]],
  ] as Array<[LookupOptions, Array<{ address: string; family: number }>, unknown[]]>)('with %j, hands over only that family', async (options, answer, expected) => {
    expect(await lookupWith(() => Promise.resolve(answer))(options)).toEqual(expected);
  });

  it.each([{ family: 4 }, { family: 4, all: true }] as LookupOptions[])('fails as ENOTFOUND, naming the host, when no address of the family is left (%j)', async (options) => {
    const [error] = await lookupWith(() => Promise.resolve([v6]))(options);
    expect(error).toMatchObject({ code: 'ENOTFOUND', hostname: 'public.example.test', message: 'getaddrinfo ENOTFOUND public.example.test' });
  });

  it("hands the resolver's own failure to the connection", async () => {
    const failure = Object.assign(new Error('getaddrinfo EAI_AGAIN public.example.test'), { code: 'EAI_AGAIN' });
    const [error] = await lookupWith(() => Promise.reject(failure))({});
    expect(error).toBe(failure);
  });
});
