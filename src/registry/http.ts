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
import { Readable } from 'node:stream';
import type { Agent as UndiciAgent, Dispatcher as UndiciDispatcher } from 'undici';

/* eslint-disable @typescript-eslint/no-require-imports -- internal paths, typed by the public ones */
const Agent = require('undici/lib/dispatcher/agent') as typeof UndiciAgent;
const Dispatcher = require('undici/lib/dispatcher/dispatcher') as typeof UndiciDispatcher;
// What undici's index does for every dispatcher, limited to the one API used here.
Dispatcher.prototype.request ??= require('undici/lib/api/api-request') as UndiciDispatcher['request'];
/* eslint-enable @typescript-eslint/no-require-imports */

const CONNECTIONS_PER_ORIGIN = 32;
const KEEP_ALIVE_MS = 10_000;
/** As undici's headersTimeout: a registry that never answers a HEAD fails it instead of hanging. */
const HEAD_TIMEOUT_MS = 300_000;

const agent = new Agent({ keepAliveTimeout: KEEP_ALIVE_MS, connections: CONNECTIONS_PER_ORIGIN });
const headAgents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS_PER_ORIGIN, timeout: KEEP_ALIVE_MS }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: CONNECTIONS_PER_ORIGIN, timeout: KEEP_ALIVE_MS }),
};

/** A response body: read it as a stream, or discard it with `dump`. */
export type ResponseBody = Readable & { dump(): Promise<void> };

interface Exchange {
  url: URL;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal;
}

interface ExchangeResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

/** Sends one request and resolves with the response's status and headers. */
export async function exchange(req: Exchange): Promise<ExchangeResponse> {
  if (req.method === 'HEAD') return head(req);
  const { statusCode, headers, body } = await agent.request({ origin: req.url.origin, path: req.url.pathname + req.url.search, method: req.method, headers: req.headers, body: req.body, signal: req.signal });
  return { statusCode, headers, body };
}

function head(req: Exchange): Promise<ExchangeResponse> {
  const client = req.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(req.url, { method: 'HEAD', headers: req.headers, agent: headAgents[req.url.protocol as 'http:' | 'https:'], signal: req.signal }, (response) => {
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
