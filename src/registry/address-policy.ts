/**
 * The outbound address policy (an SSRF guard): which addresses a connection may go to.
 *
 * The import service connects wherever a caller's source, a registry's token realm or a redirect
 * points, from inside its deployment. Unguarded, that reaches the host's own loopback ports (its
 * storage emulator, its own API), the cloud metadata service at 169.254.169.254, and any private
 * host of the network. The policy refuses loopback, link-local, private, CGNAT, unspecified and
 * multicast addresses, except for the hosts the operator trusts (the target registry, and those
 * listed in HOIST_ALLOWED_PRIVATE_REGISTRIES).
 *
 * The check is made on the address a socket is actually opened to: after DNS resolution, inside
 * the connection's own lookup, so a name that resolves to a public address when asked once and
 * to 127.0.0.1 when connecting (DNS rebinding) is still refused. An IP literal, which Node
 * connects to without a lookup, is checked before the socket is opened. IPv4 embedded in IPv6
 * (`::ffff:127.0.0.1`, `::127.0.0.1`, NAT64 and 6to4) is checked as the IPv4 address it
 * carries; numeric spellings of IPv4 (`2130706433`, `0x7f.1`) are normalised by the URL parser
 * before any host reaches a connection.
 *
 * The CLI runs without a policy: it serves the user on their own machine.
 */
import dns, { type LookupAddress } from 'node:dns';
import { BlockList, isIP, isIPv4, isIPv6, type LookupFunction } from 'node:net';
import { withoutUserinfo } from './errors.js';

/** The rule that refuses an address, as named in errors. */
export type AddressRule = 'loopback' | 'link-local' | 'private' | 'CGNAT' | 'unspecified' | 'multicast';

const RANGES: ReadonlyArray<readonly [AddressRule, string, number, 'ipv4' | 'ipv6']> = [
  // 0.0.0.0/8 is "this network": connecting to 0.0.0.0 reaches the local host on Linux.
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['CGNAT', '100.64.0.0', 10, 'ipv4'],
  ['multicast', '224.0.0.0', 4, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['multicast', 'ff00::', 8, 'ipv6'],
];

const RULES: ReadonlyArray<readonly [AddressRule, BlockList]> = (() => {
  const lists = new Map<AddressRule, BlockList>();
  for (const [rule, network, prefix, family] of RANGES) {
    const list = lists.get(rule) ?? new BlockList();
    list.addSubnet(network, prefix, family);
    lists.set(rule, list);
  }
  return [...lists];
})();

/** A refused connection: `code` ADDRESS_REFUSED, never retried. */
export class AddressRefusedError extends Error {
  override readonly name = 'AddressRefusedError';
  readonly code = 'ADDRESS_REFUSED';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly rule: AddressRule,
  ) {
    super(
      `refused to connect to ${host}${address === host ? '' : ` (${address})`}: the outbound address policy refuses ${rule} addresses; ` +
        'to reach a registry there, list its host in HOIST_ALLOWED_PRIVATE_REGISTRIES',
    );
  }
}

/** The rule that refuses `address` (an IPv4 or IPv6 literal), or undefined when it may be reached. */
export function refusingRule(address: string): AddressRule | undefined {
  const plain = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIPv4(plain) ? 'ipv4' : isIPv6(plain) ? 'ipv6' : undefined;
  // Not an address at all: refused as unspecified rather than let through.
  if (family === undefined) return 'unspecified';
  const embedded = family === 'ipv6' ? embeddedIPv4(plain) : undefined;
  for (const [rule, list] of RULES) {
    if (list.check(plain, family) || (embedded !== undefined && list.check(embedded, 'ipv4'))) return rule;
  }
  return undefined;
}

/**
 * The IPv4 address an IPv6 address carries, where the network would deliver it to that IPv4
 * host: IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96, deprecated but still parsed),
 * NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
 */
function embeddedIPv4(address: string): string | undefined {
  const h = hextets(address);
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zeroPrefix = h.slice(0, 5).every((x) => x === 0);
  if (zeroPrefix && h[5] === 0xffff) return v4(h[6], h[7]);
  // IPv4-compatible, but not :: and ::1 (whose own rules apply), nor anything else in ::/112.
  if (zeroPrefix && h[5] === 0 && h[6] !== 0) return v4(h[6], h[7]);
  if (h[0] === 0x64 && h[1] === 0xff9b && h.slice(2, 6).every((x) => x === 0)) return v4(h[6], h[7]);
  if (h[0] === 0x2002) return v4(h[1], h[2]);
  return undefined;
}

/** The eight 16-bit groups of a valid IPv6 literal (a trailing dotted IPv4 counts as two). */
function hextets(address: string): number[] {
  const [head, tail] = address.toLowerCase().split('::') as [string, string | undefined];
  const groups = (part: string | undefined): number[] =>
    (part ? part.split(':') : []).flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const [a, b, c, d] = g.split('.').map(Number);
      return [(a << 8) | b, (c << 8) | d];
    });
  const left = groups(head);
  const right = groups(tail);
  return tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** Resolves a host name to all its addresses (an injection point for tests). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/** How a connection to one host is guarded. */
export interface ConnectGuard {
  /** Undefined: the host is trusted, connect as usual. Else the same function for every host of a policy. */
  lookup?: LookupFunction;
}

/**
 * Decides, for each connection, whether and how it is checked. Made once per configuration and
 * handed to the wire (`http.ts`), which keeps a separate connection pool for it.
 */
export interface AddressPolicy {
  /**
   * For a connection to `hostname:port`: undefined when the host is trusted, else the lookup
   * that checks every address the name resolves to. Throws AddressRefusedError for a refused IP
   * literal, which needs no lookup.
   */
  guard(hostname: string, port: number): ConnectGuard;
  /** Resolves `hostname` and checks it as a connection would (for a check before any request). */
  check(hostname: string, port: number): Promise<void>;
}

export interface AddressPolicyOptions {
  /**
   * Hosts reached whatever their address: `host` (any port) or `host:port`, IPv6 in brackets.
   * The operator's choices: the target registry, HOIST_ALLOWED_PRIVATE_REGISTRIES.
   */
  trustedHosts: readonly string[];
  /** Name resolution; the system's (getaddrinfo, as connections use) by default. */
  resolve?: Resolver;
}

/** Builds the policy. An entry of `trustedHosts` that is not a `host[:port]` throws a TypeError naming it. */
export function createAddressPolicy(options: AddressPolicyOptions): AddressPolicy {
  const trusted = options.trustedHosts.map(parseHostEntry);
  const resolve = options.resolve ?? systemResolver;
  const isTrusted = (hostname: string, port: number): boolean => {
    const host = normaliseHostname(hostname);
    return trusted.some((t) => t.host === host && (t.port === undefined || t.port === port));
  };
  const refuse = (hostname: string, address: string): void => {
    const rule = refusingRule(address);
    if (rule) throw new AddressRefusedError(hostname, address, rule);
  };
  const lookup = checkingLookup(resolve, refuse);
  return {
    guard(hostname, port) {
      if (isTrusted(hostname, port)) return {};
      const host = normaliseHostname(hostname);
      if (isIP(host)) refuse(host, host);
      return { lookup };
    },
    async check(hostname, port) {
      if (isTrusted(hostname, port)) return;
      const host = normaliseHostname(hostname);
      if (isIP(host)) return refuse(host, host);
      for (const { address } of await resolve(host)) refuse(host, address);
    },
  };
}

/**
 * A `lookup` for net.connect that resolves with `resolve` and fails when any address is refused:
 * a name that also resolves to an internal address is not one the service should trust.
 */
function checkingLookup(resolve: Resolver, refuse: (hostname: string, address: string) => void): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
        const usable = addresses.filter((a) => family === 0 || a.family === family);
        try {
          for (const { address } of usable) refuse(hostname, address);
        } catch (error) {
          callback(error as NodeJS.ErrnoException, '', 0);
          return;
        }
        if (usable.length === 0) {
          callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), '', 0);
        } else if (options.all) {
          (callback as unknown as (error: null, addresses: LookupAddress[]) => void)(null, usable);
        } else {
          callback(null, usable[0].address, usable[0].family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}

/** Lower case, without IPv6 brackets, numeric IPv4 spellings normalised (as the URL parser does). */
function normaliseHostname(hostname: string): string {
  try {
    return new URL(`http://${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}/`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return hostname.toLowerCase();
  }
}

function parseHostEntry(entry: string): { host: string; port?: number } {
  let url: URL;
  try {
    url = new URL(`http://${entry.trim()}/`);
  } catch {
    throw new TypeError(`"${withoutUserinfo(entry)}" is not a host[:port]`);
  }
  if (url.pathname !== '/' || url.username || url.password || url.search || url.hash || entry.includes('/')) throw new TypeError(`"${withoutUserinfo(entry)}" is not a host[:port]`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // The URL parser drops a port equal to http's default; an explicit ":80" must still pin it.
  const port = url.port || /:(\d+)$/.exec(entry.trim())?.[1];
  return port ? { host, port: Number(port) } : { host };
}
