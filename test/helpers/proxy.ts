/**
 * A fault-injecting HTTP proxy for loopback test registries.
 *
 * Hoist must survive what real registries and networks do: rate limiting (429 + Retry-After),
 * corrupted downloads, connections cut mid-body, tokens expiring mid-copy and upload sessions
 * that vanish. docker-registry does none of that on demand, so tests put this proxy in front of
 * it and point Hoist at the proxy.
 *
 * The proxy is a plain reverse proxy: it rewrites `Host` to the upstream and rewrites absolute
 * `Location` headers that point at the upstream back to itself, so a client keeps talking through
 * the proxy for a whole upload. (A token realm in `WWW-Authenticate` still points at the token
 * issuer directly, which is fine: the issuer is not under test.)
 *
 * Behaviour is a list of rules, asked in order for every request; the first that returns an
 * action decides, and no action means "forward unchanged". The rule constructors below cover the
 * usual faults and keep their own counters; `proxy.rules` is a live array, so a test may add or
 * remove rules mid-copy.
 */
import { request as httpRequest, Agent, createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { listenOnLoopback } from './ports.js';

/** What a rule sees about one request. */
export interface ProxyRequest {
  /** 0-based position among all requests the proxy received. */
  index: number;
  method: string;
  /** Path and query as received, e.g. `/v2/a/blobs/uploads/<uuid>?_state=…`. */
  path: string;
  /** Path without the query. */
  pathname: string;
  headers: IncomingHttpHeaders;
  /** The Bearer token the request carries, if any. */
  bearerToken?: string;
}

/** What the proxy does with a request. */
export type ProxyAction =
  /** Answer directly without contacting the registry (the request body is read and dropped). */
  | { type: 'respond'; status: number; headers?: Record<string, string>; body?: string | Buffer; label?: string }
  /** Forward to the registry, optionally damaging the exchange. */
  | {
      type: 'forward';
      /** XOR 0xff the response body byte at this offset (if the body is that long). */
      corruptResponseByteAt?: number;
      /** Send only this many request body bytes upstream, then cut both connections. */
      cutRequestAfterBytes?: number;
      /** Relay only this many response body bytes to the client, then cut its connection. */
      cutResponseAfterBytes?: number;
      /** Headers added to the registry's response (e.g. one a newer registry would send). */
      addResponseHeaders?: Record<string, string>;
      /**
       * Let the registry handle the request in full, then answer the client with this status
       * instead of the registry's response, as a gateway that times out after the registry acted.
       */
      replaceStatus?: number;
      /** With `replaceStatus`: the spec error code of the replaced answer (default UNAVAILABLE). */
      replaceErrorCode?: string;
      /** Wait this long before forwarding, as a slow link or a busy registry would. */
      delayMs?: number;
      /**
       * Runs once the registry has answered, before the client sees the answer: another writer
       * acting in between (moving a tag right after the client's PUT landed).
       */
      afterUpstream?: () => Promise<void>;
      /**
       * Forward only once this settles: a test's own action (another writer, say) happens
       * between the client's request and the registry seeing it, with no timing involved.
       */
      waitFor?: Promise<unknown>;
      label?: string;
    }
  /**
   * Answer with the registry's own 401 for an invalid token: the request is replayed upstream
   * without a body and with a garbage Bearer token, and that response (status, headers including
   * `WWW-Authenticate: Bearer realm=…,service=…,scope=…,error="invalid_token"`, body) is relayed.
   */
  | { type: 'invalidToken'; label?: string };

/** A behaviour: returns an action to take over a request, or undefined to pass. */
export type ProxyRule = (request: ProxyRequest) => ProxyAction | undefined;

/** What the proxy recorded about one request. */
export interface ProxyRecord {
  index: number;
  method: string;
  path: string;
  /** Status sent to the client; 0 when the connection was cut before a response. */
  status: number;
  /** `forward`, `respond`, `invalidToken` or the rule's label. */
  action: string;
  /** True when the proxy cut the connection on purpose. */
  cut: boolean;
}

/** A running proxy. */
export interface TestProxy {
  /** `http://127.0.0.1:PORT` (`https://` and another name with {@link ProxyListenOptions}) */
  url: string;
  /** `127.0.0.1:PORT` (or `hostname:PORT`) */
  host: string;
  /** Every request, in arrival order (a record is updated when its response is sent). */
  requests: ProxyRecord[];
  /** The live rule list (first match wins). */
  rules: ProxyRule[];
  /** TCP connections clients opened to the proxy so far. */
  readonly connections: number;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

/** Matches the upload-session URLs (not the POST that starts one). */
const UPLOAD_SESSION = /\/blobs\/uploads\/([^/?]+)/;

/** Blob GETs by digest: the default target of corruption. */
const BLOB_BY_DIGEST = /\/blobs\/sha256:[0-9a-f]{64}$/;

/** A request's headers for the upstream registry: hop-by-hop removed, `Host` the upstream's. */
export function forwardedHeaders(headers: IncomingHttpHeaders, upstreamHost: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    out[name] = value;
  }
  out.host = upstreamHost;
  return out;
}

/**
 * A registry's raw response headers for the client: hop-by-hop removed, and absolute
 * `Location`s at the upstream rewritten to `clientOrigin`, so an upload keeps coming back through.
 */
export function relayedHeaders(raw: string[], upstreamOrigin: string, clientOrigin: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    let value = raw[i + 1] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    if (lower === 'location' && value.startsWith(upstreamOrigin)) value = clientOrigin + value.slice(upstreamOrigin.length);
    out.push(name, value);
  }
  return out;
}

function bearer(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer\s+(\S+)/i.exec(headers.authorization ?? '');
  return match?.[1];
}

function matches(pattern: RegExp | undefined, request: ProxyRequest, method: string | undefined): boolean {
  if (method !== undefined && request.method !== method.toUpperCase()) return false;
  return pattern === undefined || pattern.test(request.path);
}

function registryError(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message, detail: 'injected by the test proxy' }] });
}

// ---------------------------------------------------------------------------------------------
// Rule constructors

/**
 * Answers 429 TOOMANYREQUESTS with `Retry-After: retryAfterSeconds` to the first `times` requests
 * whose path (with query) matches `path` (and `method`, if given); later ones pass.
 */
export function tooManyRequests(options: { path: RegExp; times: number; retryAfterSeconds?: number; method?: string }): ProxyRule {
  let remaining = options.times;
  return (request) => {
    if (remaining <= 0 || !matches(options.path, request, options.method)) return undefined;
    remaining--;
    return {
      type: 'respond',
      status: 429,
      headers: { 'Retry-After': String(options.retryAfterSeconds ?? 1), 'Content-Type': 'application/json' },
      body: registryError('TOOMANYREQUESTS', 'too many requests'),
      label: 'tooManyRequests',
    };
  };
}

/**
 * Flips one byte (at `offset`, default 0) of response bodies of GETs matching `path` (default:
 * blob GETs by digest), for the first `times` matches (default: all).
 */
export function corruptResponses(options: { path?: RegExp; times?: number; offset?: number; method?: string } = {}): ProxyRule {
  let remaining = options.times ?? Infinity;
  return (request) => {
    if (remaining <= 0 || !matches(options.path ?? BLOB_BY_DIGEST, request, options.method ?? 'GET')) return undefined;
    remaining--;
    return { type: 'forward', corruptResponseByteAt: options.offset ?? 0, label: 'corruptResponse' };
  };
}

/**
 * Forwards only the first `afterBytes` bytes of the request body of matching requests (e.g. a
 * PATCH), then cuts the client's and the registry's connections, as a network failure would.
 * Applies to the first `times` matches (default 1).
 */
export function cutRequestBody(options: { path: RegExp; afterBytes: number; method?: string; times?: number }): ProxyRule {
  let remaining = options.times ?? 1;
  return (request) => {
    if (remaining <= 0 || !matches(options.path, request, options.method)) return undefined;
    remaining--;
    return { type: 'forward', cutRequestAfterBytes: options.afterBytes, label: 'cutRequestBody' };
  };
}

/**
 * Forwards matching requests (e.g. a PATCH the registry then appends) but answers the client with
 * `status` instead of the registry's response: the client cannot tell whether the request took
 * effect. Applies to the first `times` matches (default 1).
 */
export function failAfterForwarding(options: { path: RegExp; status: number; method?: string; times?: number }): ProxyRule {
  let remaining = options.times ?? 1;
  return (request) => {
    if (remaining <= 0 || !matches(options.path, request, options.method)) return undefined;
    remaining--;
    return { type: 'forward', replaceStatus: options.status, label: 'failAfterForwarding' };
  };
}

/**
 * Answers the commits (closing PUT `?digest=`) of `digest` as distribution 2.8 answers the losers
 * of concurrent commits of one digest: `status` with the error `code`. `committed`: the registry
 * commits first, as when another upload won the race and the blob is there; otherwise the commit
 * never reaches it. Applies to the first `times` commits (default 1).
 */
export function loseCommitRace(options: { digest: string; status: number; code: string; committed: boolean; times?: number }): ProxyRule {
  let remaining = options.times ?? 1;
  const commit = new RegExp(`/blobs/uploads/.*digest=${encodeURIComponent(options.digest)}`);
  return (request) => {
    if (remaining <= 0 || !matches(commit, request, 'PUT')) return undefined;
    remaining--;
    if (options.committed) return { type: 'forward', replaceStatus: options.status, replaceErrorCode: options.code, label: 'loseCommitRace' };
    return { type: 'respond', status: options.status, headers: { 'Content-Type': 'application/json' }, body: registryError(options.code, 'injected lost commit race'), label: 'loseCommitRace' };
  };
}

/**
 * Relays only the first `afterBytes` bytes of the response body of matching requests (default
 * method GET), then cuts the client's connection. Applies to the first `times` matches (default 1).
 */
export function cutResponseBody(options: { path: RegExp; afterBytes: number; method?: string; times?: number }): ProxyRule {
  let remaining = options.times ?? 1;
  return (request) => {
    if (remaining <= 0 || !matches(options.path, request, options.method ?? 'GET')) return undefined;
    remaining--;
    return { type: 'forward', cutResponseAfterBytes: options.afterBytes, label: 'cutResponseBody' };
  };
}

/**
 * Simulates a token expiring mid-copy, deterministically.
 *
 * The first `afterRequests` requests that carry a Bearer token (and match `path`, if given) pass.
 * The token carried by the next one is declared expired: that request and every later request
 * carrying the same token get the registry's own `401 … error="invalid_token"` challenge (see the
 * `invalidToken` action). A client that fetches a new token carries on; one that retries with the
 * old token keeps failing, as with a really expired token. Only one token is ever expired.
 */
export function expireToken(options: { afterRequests: number; path?: RegExp }): ProxyRule {
  let seen = 0;
  let expired: string | undefined;
  return (request) => {
    const token = request.bearerToken;
    if (token === undefined) return undefined;
    if (expired !== undefined) return token === expired ? { type: 'invalidToken', label: 'expiredToken' } : undefined;
    if (options.path && !options.path.test(request.path)) return undefined;
    seen++;
    if (seen <= options.afterRequests) return undefined;
    expired = token;
    return { type: 'invalidToken', label: 'expiredToken' };
  };
}

/**
 * Answers requests carrying a token that `issuer.revokeAll()` revoked with the registry's own
 * `invalid_token` challenge (pair with `startTokenIssuer`'s `revokeAll`).
 */
export function rejectRevokedTokens(issuer: { isRevoked(token: string): boolean }): ProxyRule {
  return (request) => (request.bearerToken !== undefined && issuer.isRevoked(request.bearerToken) ? { type: 'invalidToken', label: 'revokedToken' } : undefined);
}

/**
 * Simulates lost upload sessions: requests to an upload session URL (status GET, PATCH, PUT,
 * DELETE) get `404 BLOB_UPLOAD_UNKNOWN`. `location` selects the session: a Location URL (or its
 * UUID) as returned by the registry, or a RegExp on the path; default every session. POSTs that
 * start new uploads are never affected, so a client can recover by starting over.
 */
export function dropUploads(location?: string | RegExp): ProxyRule {
  let uuid: string | undefined;
  if (typeof location === 'string') uuid = UPLOAD_SESSION.exec(location)?.[1] ?? location;
  return (request) => {
    const session = UPLOAD_SESSION.exec(request.pathname)?.[1];
    if (session === undefined) return undefined;
    if (uuid !== undefined && session !== uuid) return undefined;
    if (location instanceof RegExp && !location.test(request.path)) return undefined;
    return {
      type: 'respond',
      status: 404,
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'Docker-Distribution-Api-Version': 'registry/2.0' },
      body: registryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry'),
      label: 'dropUpload',
    };
  };
}

// ---------------------------------------------------------------------------------------------
// The proxy

/**
 * Starts a proxy on 127.0.0.1 (a free port) in front of `upstream` (`http://127.0.0.1:PORT`).
 *
 * @example
 * const proxy = await startProxy(reg.url, [tooManyRequests({ path: /\/manifests\//, times: 2 })]);
 * // point the client at proxy.host instead of reg.host
 */
/** How the proxy itself is reached. */
export interface ProxyListenOptions {
  /** Serve HTTPS with this key and certificate (PEM) instead of plain HTTP. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * The name clients use for the proxy (it still listens on 127.0.0.1 only), for `url`, `host`
   * and rewritten Locations: a certificate names it, and a client maps it to 127.0.0.1.
   */
  hostname?: string;
}

export async function startProxy(upstream: string, rules: ProxyRule[] = [], listen: ProxyListenOptions = {}): Promise<TestProxy> {
  const upstreamUrl = new URL(upstream);
  const upstreamOrigin = upstreamUrl.origin;
  const agent = new Agent({ keepAlive: true });
  const requests: ProxyRecord[] = [];
  let counter = 0;
  let proxyOrigin = '';

  function upstreamHeaders(headers: IncomingHttpHeaders, overrides: Record<string, string> = {}): Record<string, string | string[]> {
    return { ...forwardedHeaders(headers, upstreamUrl.host), ...overrides };
  }

  function clientHeaders(raw: string[]): string[] {
    return relayedHeaders(raw, upstreamOrigin, proxyOrigin);
  }

  function drain(req: IncomingMessage): Promise<void> {
    return new Promise((resolve) => {
      if (req.complete) return resolve();
      req.on('end', resolve);
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.resume();
    });
  }

  function cutClient(res: ServerResponse, record: ProxyRecord): void {
    record.cut = true;
    res.socket?.destroy();
  }

  async function forward(req: IncomingMessage, res: ServerResponse, action: Extract<ProxyAction, { type: 'forward' }>, record: ProxyRecord): Promise<void> {
    const upstreamReq = httpRequest(new URL(req.url ?? '/', upstreamOrigin), { method: req.method, headers: upstreamHeaders(req.headers), agent });
    upstreamReq.on('response', (response) => {
      const hook = action.afterUpstream;
      if (!hook) return relay(response);
      response.pause();
      hook().then(
        () => relay(response),
        () => cutClient(res, record),
      );
    });
    const relay = (upstreamRes: IncomingMessage) => {
      if (action.replaceStatus !== undefined) {
        upstreamRes.resume();
        record.status = action.replaceStatus;
        res.writeHead(action.replaceStatus, { 'Content-Type': 'application/json' });
        res.end(registryError(action.replaceErrorCode ?? 'UNAVAILABLE', 'the registry acted, then the gateway failed'));
        return;
      }
      record.status = upstreamRes.statusCode ?? 0;
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, [...clientHeaders(upstreamRes.rawHeaders), ...Object.entries(action.addResponseHeaders ?? {}).flat()]);
      let offset = 0;
      upstreamRes.on('data', (chunk: Buffer) => {
        if (record.cut) return;
        let data = chunk;
        const at = action.corruptResponseByteAt;
        if (at !== undefined && at >= offset && at < offset + data.length) {
          data = Buffer.from(data);
          data[at - offset] = (data[at - offset] ?? 0) ^ 0xff;
        }
        const limit = action.cutResponseAfterBytes;
        if (limit !== undefined && offset + data.length >= limit) {
          const part = data.subarray(0, limit - offset);
          offset = limit;
          upstreamRes.destroy();
          // Let the partial bytes reach the client, then drop the connection.
          res.write(part, () => cutClient(res, record));
          return;
        }
        offset += data.length;
        if (!res.write(data)) {
          upstreamRes.pause();
          res.once('drain', () => upstreamRes.resume());
        }
      });
      upstreamRes.on('end', () => res.end());
      upstreamRes.on('error', () => cutClient(res, record));
      upstreamRes.resume();
    };
    upstreamReq.on('error', () => {
      if (record.cut) return;
      if (!res.headersSent) {
        record.status = 502;
        res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end('test proxy: upstream error');
      } else cutClient(res, record);
    });

    // The client went away before the exchange finished: don't leave the upstream half-open.
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });

    const limit = action.cutRequestAfterBytes;
    let sent = 0;
    req.on('data', (chunk: Buffer) => {
      if (record.cut) return;
      if (limit !== undefined && sent + chunk.length >= limit) {
        const part = chunk.subarray(0, limit - sent);
        sent = limit;
        record.cut = true;
        req.pause();
        // Make sure the registry received the partial body before both connections die.
        upstreamReq.write(part, () => {
          upstreamReq.destroy();
          req.socket.destroy();
        });
        return;
      }
      sent += chunk.length;
      if (!upstreamReq.write(chunk)) {
        req.pause();
        upstreamReq.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      if (!record.cut) upstreamReq.end();
    });
    req.on('error', () => upstreamReq.destroy());
  }

  async function invalidToken(req: IncomingMessage, res: ServerResponse, record: ProxyRecord): Promise<void> {
    await drain(req);
    // Same method and path, no body: the registry checks auth before reading a body, so this
    // yields exactly the challenge it gives for an expired token on this request.
    const headers = upstreamHeaders(req.headers, { authorization: 'Bearer hoist-test-proxy.expired.token', 'content-length': '0' });
    const upstreamReq = httpRequest(new URL(req.url ?? '/', upstreamOrigin), { method: req.method, headers, agent });
    upstreamReq.on('response', (upstreamRes) => {
      record.status = upstreamRes.statusCode ?? 0;
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, clientHeaders(upstreamRes.rawHeaders));
      upstreamRes.pipe(res);
    });
    upstreamReq.on('error', () => cutClient(res, record));
    upstreamReq.end();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    const info: ProxyRequest = {
      index: counter++,
      method: (req.method ?? 'GET').toUpperCase(),
      path,
      pathname: path.split('?')[0] ?? path,
      headers: req.headers,
      bearerToken: bearer(req.headers),
    };
    let action: ProxyAction | undefined;
    for (const rule of [...rules]) {
      action = rule(info);
      if (action) break;
    }
    action ??= { type: 'forward' };
    const record: ProxyRecord = { index: info.index, method: info.method, path, status: 0, action: action.label ?? action.type, cut: false };
    requests.push(record);

    if (action.type === 'respond') {
      await drain(req);
      const body = action.body === undefined ? Buffer.alloc(0) : Buffer.from(action.body);
      record.status = action.status;
      res.writeHead(action.status, { 'Content-Length': String(body.length), ...action.headers });
      res.end(body);
      return;
    }
    if (action.type === 'invalidToken') return invalidToken(req, res, record);
    if (action.delayMs) await new Promise((resolve) => setTimeout(resolve, action.delayMs));
    if (action.waitFor) await action.waitFor.catch(() => undefined);
    return forward(req, res, action, record);
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => res.socket?.destroy());
  };
  const server = listen.tls ? createTlsServer({ key: listen.tls.key, cert: listen.tls.cert }, onRequest) : createServer(onRequest);
  let connections = 0;
  server.on(listen.tls ? 'secureConnection' : 'connection', () => connections++);
  const listening = await listenOnLoopback(server);
  const host = `${listen.hostname ?? '127.0.0.1'}:${listening.port}`;
  proxyOrigin = `${listen.tls ? 'https' : 'http'}://${host}`;

  return {
    url: proxyOrigin,
    host,
    requests,
    rules,
    get connections() {
      return connections;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
