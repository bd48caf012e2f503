/**
 * HTTP exchanges on pooled, kept-alive connections: the wire under the transport.
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
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { Agent as UndiciAgent, buildConnector as BuildConnector, Dispatcher as UndiciDispatcher } from 'undici';
import type { AddressPolicy } from './address-policy.js';
import type { TlsConnectionOptions, TlsSettings } from './tls.js';

/* eslint-disable @typescript-eslint/no-require-imports -- internal paths, typed by the public ones */
const Agent = require('undici/lib/dispatcher/agent') as typeof UndiciAgent;
const Dispatcher = require('undici/lib/dispatcher/dispatcher') as typeof UndiciDispatcher;
const buildConnector = require('undici/lib/core/connect') as typeof BuildConnector;
// What undici's index does for every dispatcher, limited to the one API used here.
Dispatcher.prototype.request ??= require('undici/lib/api/api-request') as UndiciDispatcher['request'];
/* eslint-enable @typescript-eslint/no-require-imports */

const CONNECTIONS_PER_ORIGIN = 32;
const KEEP_ALIVE_MS = 10_000;
/** As undici's headersTimeout: a registry that never answers a HEAD fails it instead of hanging. */
const HEAD_TIMEOUT_MS = 300_000;

/** The connection pools of one address policy (or of none). */
interface Pools {
  agent: UndiciAgent;
  head: { 'http:': http.Agent; 'https:': https.Agent };
}

/**
 * Each address policy and each set of TLS options has pools of its own, so a connection opened
 * without a policy (or under another) is never reused by a request that must be checked, and a
 * connection whose certificate was not verified never serves a host that must be.
 */
const NO_POLICY = {};
const DEFAULT_TLS: TlsConnectionOptions = { rejectUnauthorized: true };
const allPools = new WeakMap<object, WeakMap<TlsConnectionOptions, Pools>>();

function poolsFor(policy: AddressPolicy | undefined, tls: TlsConnectionOptions = DEFAULT_TLS): Pools {
  let byTls = allPools.get(policy ?? NO_POLICY);
  if (!byTls) {
    byTls = new WeakMap();
    allPools.set(policy ?? NO_POLICY, byTls);
  }
  let pools = byTls.get(tls);
  if (!pools) {
    pools = makePools(policy, tls);
    byTls.set(tls, pools);
  }
  return pools;
}

function makePools(policy: AddressPolicy | undefined, tls: TlsConnectionOptions): Pools {
  const options = { keepAlive: true, maxSockets: CONNECTIONS_PER_ORIGIN, timeout: KEEP_ALIVE_MS, ...tls };
  if (!policy) {
    return { agent: new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN, connect: { ...tls } }), head: { 'http:': new http.Agent(options), 'https:': new https.Agent(options) } };
  }
  // undici's own connector, given the policy's lookup for hosts that are not trusted. The lookup
  // is one function per policy, so its connector (and TLS session cache) is made once.
  const plain = buildConnector({ ...tls });
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
    checked ??= buildConnector({ ...tls, lookup });
    checked(opts, callback);
  };
  return { agent: new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN, connect }), head: { 'http:': new GuardedHttpAgent(policy, options), 'https:': new GuardedHttpsAgent(policy, options) } };
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

function portOf(port: string | number | null | undefined, protocol: string): number {
  return port !== undefined && port !== null && port !== '' ? Number(port) : protocol === 'https:' ? 443 : 80;
}

/** A response body: read it as a stream, or discard it with `dump`. */
export type ResponseBody = Readable & { dump(): Promise<void> };

interface Exchange {
  url: URL;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal;
  /** Checks every address a connection for this request goes to; none (the CLI's default) when unset. */
  policy?: AddressPolicy;
  /** The TLS options of each https host; Node's defaults (roots, verified) when unset. */
  tls?: TlsSettings;
}

interface ExchangeResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

/** Sends one request and resolves with the response's status and headers. */
export async function exchange(req: Exchange): Promise<ExchangeResponse> {
  if (req.method === 'HEAD') return head(req);
  const { statusCode, headers, body } = await poolsOf(req).agent.request({ origin: req.url.origin, path: req.url.pathname + req.url.search, method: req.method, headers: req.headers, body: req.body, signal: req.signal });
  return { statusCode, headers, body };
}

function poolsOf(req: Exchange): Pools {
  return poolsFor(req.policy, req.url.protocol === 'https:' ? req.tls?.forUrl(req.url) : undefined);
}

function head(req: Exchange): Promise<ExchangeResponse> {
  const client = req.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(req.url, { method: 'HEAD', headers: req.headers, agent: poolsOf(req).head[req.url.protocol as 'http:' | 'https:'], signal: req.signal }, (response) => {
      // A HEAD response has no body; reading to its end hands the connection back to the pool.
      response.resume();
      resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, body: emptyBody() });
    });
    request.setTimeout(HEAD_TIMEOUT_MS, () => request.destroy(Object.assign(new Error(`no response to HEAD ${req.url.origin}${req.url.pathname} in ${HEAD_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
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
