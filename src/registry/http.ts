/**
 * HTTP exchanges on pooled, kept-alive connections: the wire under the transport. Every pool is a
 * {@link Connections}'s, which each RegistryHosts owns (no pool is process-wide), made for its
 * address policy, TLS settings and proxy settings.
 *
 * Everything but HEAD goes through undici, loaded without its package index: the index also
 * loads fetch, WebSocket, the cache stores and the mock agents, code Hoist never calls and a
 * fifth of a CLI start-up (22 ms of 91 for `hoist --version`, bundled, on the benchmark machine).
 * These paths are internal to undici, which is why its version is pinned exactly; if an upgrade
 * moves them, every test fails at load.
 *
 * HEAD goes through Node's own client. undici closes the connection after every HEAD (against
 * servers that wrongly send a body with it), so each existence check would open a new connection,
 * and on a real registry make a new TLS handshake. Registries answer HEAD correctly and keep the
 * connection; Node's client reuses it.
 *
 * Through a forward proxy (proxy.ts), an https URL goes in a CONNECT tunnel (undici's CONNECT,
 * then TLS with the host's TLS settings inside it, by undici's own connector) and an http URL as
 * an absolute-form request to the proxy, both for undici and for Node's HEAD. An https:// proxy
 * is itself reached over TLS (so a tunnel runs TLS inside TLS). undici's ProxyAgent
 * is not used: it would serve undici's requests only (not Node's HEAD), its refusals carry no
 * status or proxy to name (a message to parse), and its module loads its SOCKS agent too. The proxy is the operator's and trusted; the
 * host behind it is checked by the address policy (resolved and judged) before every request
 * that goes through the proxy. The proxy resolves the name again itself, so a name whose answer
 * changes between the two lookups (DNS rebinding) is not caught there (README, on the outbound
 * address policy).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import type { Agent as UndiciAgent, buildConnector as BuildConnector, Dispatcher as UndiciDispatcher } from 'undici';
import type { AddressPolicy } from './address-policy.js';
import { ProxyError, ProxySettings, ProxyTimeoutError, type ForwardProxy } from './proxy.js';
import { TlsSettings, tlsVerifyFailure, type ReachedAs, type TlsConnectionOptions } from './tls.js';

/* eslint-disable @typescript-eslint/no-require-imports -- internal paths, typed by the public ones */
const Agent = require('undici/lib/dispatcher/agent') as typeof UndiciAgent;
const Dispatcher = require('undici/lib/dispatcher/dispatcher') as typeof UndiciDispatcher;
const buildConnector = require('undici/lib/core/connect') as typeof BuildConnector;
// What undici's index does for every dispatcher, limited to the APIs used here.
Dispatcher.prototype.request ??= require('undici/lib/api/api-request') as UndiciDispatcher['request'];
Dispatcher.prototype.connect ??= require('undici/lib/api/api-connect') as UndiciDispatcher['connect'];
/* eslint-enable @typescript-eslint/no-require-imports */

const CONNECTIONS_PER_ORIGIN = 32;
const KEEP_ALIVE_MS = 10_000;
/** As undici's headersTimeout: a registry that never answers a HEAD fails it instead of hanging. */
const HEAD_TIMEOUT_MS = 300_000;
/**
 * How long a proxy may take to answer a CONNECT, its own connection to the host included. Go's
 * HTTP client (skopeo's) allows a minute; without a bound, a proxy that takes the connection and
 * stays silent held the request for undici's 5-minute headers timeout.
 */
export const PROXY_CONNECT_TIMEOUT_MS = 60_000;

/** The connection pools of one kind of connection: one TLS option set, direct or through one proxy. */
interface Pools {
  agent: UndiciAgent;
  /** Node's agent for a HEAD to an `http:` or `https:` URL. */
  head(protocol: string): http.Agent;
}

const DEFAULT_TLS: TlsConnectionOptions = { rejectUnauthorized: true };

/** What a {@link Connections} is made for; each default is stated. */
export interface ConnectionsInit {
  /** Checks every address a connection goes to (or, through a proxy, every host asked for). Default none (the CLI). */
  policy?: AddressPolicy;
  /** The TLS options of each https host. Default Node's (its roots, verified). */
  tls?: TlsSettings;
  /** Which proxy each URL goes through. Default none: every URL directly. */
  proxy?: ProxySettings;
  /** How long a proxy may take to answer a CONNECT. Default PROXY_CONNECT_TIMEOUT_MS. */
  proxyConnectTimeoutInMs?: number;
}

/**
 * The connection pools of one RegistryHosts. There is one set of pools per TLS option set (at
 * most two: verified, and not verified for skip-verify hosts) and per route (directly, or through
 * the HTTP or the HTTPS proxy): at most six, so the set is bounded by construction. Inside each,
 * undici and Node keep a pool per origin that goes when its last connection does, and a
 * connection goes after KEEP_ALIVE_MS idle, so idle pools do not outlive a copy by long. A
 * connection opened under one policy, TLS option set or route never serves another.
 */
export class Connections {
  readonly policy: AddressPolicy | undefined;
  readonly tls: TlsSettings;
  readonly proxy: ProxySettings;
  private readonly proxyConnectTimeoutInMs: number;
  private readonly pools = new Map<TlsConnectionOptions, Map<ForwardProxy | undefined, Pools>>();
  /** Connections to each proxy itself, shared by every TLS option set. */
  private readonly toProxy = new Map<ForwardProxy, { agent: UndiciAgent; head: http.Agent }>();

  constructor(init: ConnectionsInit = {}) {
    this.policy = init.policy;
    this.tls = init.tls ?? new TlsSettings();
    this.proxy = init.proxy ?? new ProxySettings();
    this.proxyConnectTimeoutInMs = init.proxyConnectTimeoutInMs ?? PROXY_CONNECT_TIMEOUT_MS;
  }

  /** Sends one request and resolves with the response's status and headers. */
  async exchange(req: Exchange): Promise<ExchangeResponse> {
    const proxy = this.proxy.forUrl(req.url);
    const port = portOf(req.url.port, req.url.protocol);
    // Through a proxy no connection goes to the host itself, so its name is judged here, before
    // the proxy is asked for it; a refusal (AddressRefusedError) means nothing was sent.
    if (proxy && this.policy) await this.policy.check(req.url.hostname, port);
    if (proxy && req.url.protocol === 'http:') return this.forward(proxy, req);
    const pools = this.poolsFor(req.url.protocol === 'https:' ? this.tls.forUrl(req.url, req.registryHost, req.reachedAs) : DEFAULT_TLS, proxy);
    try {
      if (req.method === 'HEAD') return await head(req, { agent: pools.head(req.url.protocol) }, req.url);
      const { statusCode, headers, body } = await pools.agent.request({ origin: req.url.origin, path: req.url.pathname + req.url.search, method: req.method, headers: req.headers, body: req.body, signal: req.signal });
      return { statusCode, headers, body };
    } catch (error) {
      // A certificate that did not verify is named as such, never taken for a dropped connection.
      throw (req.url.protocol === 'https:' && tlsVerifyFailure(error, req.url, req.registryHost, req.reachedAs)) || error;
    }
  }

  /** An http URL through `proxy`: an absolute-form request on a connection to the proxy. */
  private async forward(proxy: ForwardProxy, req: Exchange): Promise<ExchangeResponse> {
    const pools = this.proxyPools(proxy);
    const headers = { ...req.headers, host: req.url.host, ...proxy.headers() };
    const response =
      req.method === 'HEAD'
        ? await head(req, { agent: pools.head, host: proxy.hostname, port: proxy.port, path: req.url.href, headers }, req.url)
        : await pools.agent.request({ origin: proxy.origin, path: req.url.href, method: req.method, headers, body: req.body, signal: req.signal });
    // Only a proxy answers 407; other statuses may be the registry's and are the transport's to judge.
    if (response.statusCode === 407) {
      await response.body.dump();
      throw new ProxyError(proxy.origin, req.url.host, 407, proxy.hasCredentials);
    }
    return { statusCode: response.statusCode, headers: response.headers, body: response.body };
  }

  private poolsFor(tlsOptions: TlsConnectionOptions, proxy: ForwardProxy | undefined): Pools {
    let byProxy = this.pools.get(tlsOptions);
    if (!byProxy) {
      byProxy = new Map();
      this.pools.set(tlsOptions, byProxy);
    }
    let pools = byProxy.get(proxy);
    if (!pools) {
      pools = proxy ? this.tunnelPools(tlsOptions, proxy) : directPools(this.policy, tlsOptions);
      byProxy.set(proxy, pools);
    }
    return pools;
  }

  private proxyPools(proxy: ForwardProxy): { agent: UndiciAgent; head: http.Agent } {
    let pools = this.toProxy.get(proxy);
    if (!pools) {
      // An https:// proxy is connected to with TLS, verified as a registry would be (its CA file, skip-verify).
      const tlsOptions = proxy.secure ? this.tls.forUrl(new URL(proxy.origin)) : undefined;
      const headOptions = { keepAlive: true, maxSockets: CONNECTIONS_PER_ORIGIN, timeout: KEEP_ALIVE_MS };
      pools = {
        agent: new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN, ...(tlsOptions && { connect: toSecureProxy(tlsOptions) }) }),
        head: tlsOptions ? new https.Agent({ ...headOptions, ...tlsOptions }) : new http.Agent(headOptions),
      };
      this.toProxy.set(proxy, pools);
    }
    return pools;
  }

  /** Pools whose every connection is a CONNECT tunnel through `proxy`, with TLS inside it. */
  private tunnelPools(tlsOptions: TlsConnectionOptions, proxy: ForwardProxy): Pools {
    const toProxy = this.proxyPools(proxy).agent;
    const tunnel = (hostname: string, port: number) => openTunnel(toProxy, proxy, hostname, port, this.proxyConnectTimeoutInMs);
    const secure = buildConnector({ ...tlsOptions });
    const connect: BuildConnector.connector = (opts, callback) => {
      tunnel(opts.hostname, portOf(opts.port, opts.protocol)).then(
        (socket) => secure({ ...opts, httpSocket: socket }, callback),
        (error: Error) => callback(error, null),
      );
    };
    // Only https URLs reach these pools: an http URL goes to the proxy in absolute form.
    const headAgent = new TunnelHttpsAgent(tunnel, { keepAlive: true, maxSockets: CONNECTIONS_PER_ORIGIN, timeout: KEEP_ALIVE_MS, ...tlsOptions });
    return { agent: new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN, connect }), head: () => headAgent };
  }
}

/**
 * TLS connections to an https:// proxy. undici names the TLS server after a request's Host header,
 * which through a proxy is the host behind it: the proxy's certificate is checked against the
 * proxy's own name (its origin's host, or its address) instead.
 */
function toSecureProxy(tlsOptions: TlsConnectionOptions): BuildConnector.connector {
  const secure = buildConnector({ ...tlsOptions });
  return (opts, callback) => secure({ ...opts, servername: undefined }, callback);
}

/**
 * Asks `proxy` (through `toProxy`, connections to it) for a tunnel to `hostname:port`.
 * @throws ProxyError when the proxy answers anything but 200, naming the proxy without credentials
 * @throws ProxyTimeoutError when it has not answered within `timeoutInMs`
 */
async function openTunnel(toProxy: UndiciAgent, proxy: ForwardProxy, hostname: string, port: number, timeoutInMs: number): Promise<Socket> {
  const target = `${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}:${port}`;
  const timeout = AbortSignal.timeout(timeoutInMs);
  const { statusCode, socket } = await toProxy.connect({ origin: proxy.origin, path: target, headers: { host: target, ...proxy.headers() }, signal: timeout }).catch((error: unknown) => {
    throw timeout.aborted ? new ProxyTimeoutError(proxy.origin, target, timeoutInMs) : error;
  });
  if (statusCode !== 200) {
    socket.on('error', () => undefined).destroy();
    throw new ProxyError(proxy.origin, target, statusCode, proxy.hasCredentials);
  }
  return socket as Socket;
}

/** Direct connections, each checked by `policy` (when there is one) on the address it connects to. */
function directPools(policy: AddressPolicy | undefined, tlsOptions: TlsConnectionOptions): Pools {
  const options = { keepAlive: true, maxSockets: CONNECTIONS_PER_ORIGIN, timeout: KEEP_ALIVE_MS, ...tlsOptions };
  if (!policy) {
    return { agent: new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN, connect: { ...tlsOptions } }), head: headAgents(new http.Agent(options), new https.Agent(options)) };
  }
  // undici's own connector, given the policy's lookup for hosts that are not trusted. The lookup
  // is one function per policy, so its connector (and TLS session cache) is made once.
  const plain = buildConnector({ ...tlsOptions });
  let checked: BuildConnector.connector | undefined;
  const connect: BuildConnector.connector = (opts, callback) => {
    let lookup;
    try {
      lookup = policy.guard(opts.hostname, portOf(opts.port, opts.protocol)).lookup;
    } catch (error) {
      callback(error as Error, null);
      return;
    }
    if (!lookup) return plain(opts, callback);
    checked ??= buildConnector({ ...tlsOptions, lookup });
    checked(opts, callback);
  };
  return { agent: new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN, connect }), head: headAgents(new GuardedHttpAgent(policy, options), new GuardedHttpsAgent(policy, options)) };
}

function headAgents(plain: http.Agent, secure: https.Agent): Pools['head'] {
  return (protocol) => (protocol === 'https:' ? secure : plain);
}

type CreateConnection = (options: http.ClientRequestArgs, callback: (error: Error | null, socket: Socket) => void) => Socket | undefined;

/** Node's createConnection with the policy's lookup, or the refusal handed to the request unsent. */
function guardedCreateConnection(policy: AddressPolicy, create: CreateConnection, protocol: string): CreateConnection {
  return (options, callback) => {
    let lookup;
    try {
      lookup = policy.guard(options.hostname ?? options.host ?? '', portOf(options.port, protocol)).lookup;
    } catch (error) {
      // Returning no socket makes the agent wait for the callback, which fails the request.
      callback(error as Error, undefined as unknown as Socket);
      return undefined;
    }
    return create({ ...options, ...(lookup && { lookup }) }, callback);
  };
}

class GuardedHttpAgent extends http.Agent {
  constructor(policy: AddressPolicy, options: http.AgentOptions) {
    super(options);
    (this as unknown as { createConnection: CreateConnection }).createConnection = guardedCreateConnection(policy, (super.createConnection as CreateConnection).bind(this), 'http:');
  }
}

class GuardedHttpsAgent extends https.Agent {
  constructor(policy: AddressPolicy, options: https.AgentOptions) {
    super(options);
    (this as unknown as { createConnection: CreateConnection }).createConnection = guardedCreateConnection(policy, (super.createConnection as CreateConnection).bind(this), 'https:');
  }
}

/** Node's https agent whose connections are TLS inside a CONNECT tunnel, kept alive like any other. */
class TunnelHttpsAgent extends https.Agent {
  constructor(tunnel: (hostname: string, port: number) => Promise<Socket>, options: https.AgentOptions) {
    super(options);
    const create: CreateConnection = (connectOptions, callback) => {
      tunnel(connectOptions.hostname ?? connectOptions.host ?? '', portOf(connectOptions.port, 'https:')).then(
        (socket) => callback(null, tls.connect({ ...(connectOptions as tls.ConnectionOptions), socket })),
        (error: Error) => callback(error, undefined as unknown as Socket),
      );
      // The agent waits for the callback.
      return undefined;
    };
    (this as unknown as { createConnection: CreateConnection }).createConnection = create;
  }
}

function portOf(port: string | number | null | undefined, protocol: string): number {
  return port !== undefined && port !== null && port !== '' ? Number(port) : protocol === 'https:' ? 443 : 80;
}

/** A response body: read it as a stream, or discard it with `dump`. */
export type ResponseBody = Readable & { dump(): Promise<void> };

/** One request, as {@link Connections.exchange} sends it. */
export interface Exchange {
  url: URL;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal;
  /**
   * The registry host the request serves, when it may go to another host: its token service, or
   * a host the registry sends requests to (a redirect to blob storage, an upload Location).
   * TlsSettings.forUrl: the registry's skip-verify covers those hosts.
   */
  registryHost?: string;
  /** What the URL's host is to `registryHost`, for the skip-verify warning. Default its token service. */
  reachedAs?: ReachedAs;
}

/** A response's status and headers, and its body to read or dump. */
export interface ExchangeResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

/** A HEAD with Node's client; `options` say which agent (and, through a proxy, where and with which headers). */
function head(req: Exchange, options: http.RequestOptions, url: URL): Promise<ExchangeResponse> {
  const viaProxy = options.host !== undefined;
  // The agent knows the first hop: the host itself, or the proxy (an https:// one over TLS).
  const client = options.agent instanceof https.Agent ? https : http;
  return new Promise((resolve, reject) => {
    const callback = (response: http.IncomingMessage) => {
      // A HEAD response has no body; reading to its end hands the connection back to the pool.
      response.resume();
      resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, body: emptyBody() });
    };
    const request = viaProxy
      ? client.request({ ...options, method: 'HEAD', signal: req.signal }, callback)
      : client.request(url, { method: 'HEAD', headers: req.headers, ...options, signal: req.signal }, callback);
    request.setTimeout(HEAD_TIMEOUT_MS, () => request.destroy(Object.assign(new Error(`no response to HEAD ${url.origin}${url.pathname} in ${HEAD_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
    request.end();
  });
}

/**
 * Drops a response body unread (a blob nobody wants any more, a manifest too large to take).
 * Destroying an undici body emits an AbortError, which must not reach the process as unhandled.
 */
export function discard(body: ResponseBody): void {
  body.on('error', () => undefined);
  body.destroy();
}

function emptyBody(): ResponseBody {
  return Object.assign(Readable.from([]), { dump: () => Promise.resolve() });
}
