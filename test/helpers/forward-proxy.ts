/**
 * A forward proxy on loopback, as corporate networks have them: absolute-form requests for http
 * URLs (forwarded, each recorded) and CONNECT tunnels for https ones (the bytes relayed, each
 * tunnel recorded). Not to be confused with proxy.ts, a reverse proxy in front of one registry.
 *
 * It can resolve names of its own (`hosts`), which the client cannot resolve: a request that
 * reaches such a name went through the proxy. It can ask for credentials (407) or refuse every
 * request with a status, as a proxy whose rules forbid a destination does. With a certificate it
 * is an https:// proxy: clients reach it over TLS, and tunnels run TLS inside that.
 */
import { request as httpRequest, createServer, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';

/** One request the proxy was asked to carry. */
export interface ForwardedRequest {
  method: string;
  /** The absolute URL (forwarded), or `host:port` (CONNECT). */
  target: string;
  /** What the proxy answered: the registry's status when forwarded, 200 for a tunnel opened. */
  status: number;
  /** Whether the request carried the proxy's credentials (when it asks for some). */
  authorized: boolean;
}

export interface ForwardProxyOptions {
  /** Ask for these credentials (407 with Proxy-Authenticate without them). */
  credentials?: { username: string; password: string };
  /** Answer every request with this status instead of carrying it. */
  refuseWith?: number;
  /** Names only the proxy resolves: name → address. */
  hosts?: Record<string, string>;
  /** Serve the proxy itself over TLS with this key and certificate (PEM): an `https://` proxy. */
  tls?: { key: string; cert: string };
}

export interface TestForwardProxy {
  /** `http://127.0.0.1:PORT` (`https://` with {@link ForwardProxyOptions.tls}). */
  url: string;
  port: number;
  /** Every request the proxy was asked to carry, in arrival order. */
  requests: ForwardedRequest[];
  /** The most requests forwarded at once (from arrival to the destination's response headers). */
  peakInFlight: number;
  stop(): Promise<void>;
}

export async function startForwardProxy(options: ForwardProxyOptions = {}): Promise<TestForwardProxy> {
  const requests: ForwardedRequest[] = [];
  const sockets = new Set<Socket>();
  const agent = new Agent({ keepAlive: true });
  const expected = options.credentials && `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`;
  let inFlight = 0;
  const state = { peakInFlight: 0 };
  const resolve = (host: string) => options.hosts?.[host] ?? host;
  const refusal = (req: IncomingMessage): { status: number; authorized: boolean } | undefined => {
    const authorized = expected === undefined || req.headers['proxy-authorization'] === expected;
    if (options.refuseWith) return { status: options.refuseWith, authorized };
    if (!authorized) return { status: 407, authorized };
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const target = req.url ?? '';
    const refused = refusal(req);
    if (refused || !/^http:\/\//.test(target)) {
      const status = refused?.status ?? 400;
      requests.push({ method: req.method ?? '', target, status, authorized: refused?.authorized ?? true });
      res.writeHead(status, status === 407 ? { 'proxy-authenticate': 'Basic realm="test proxy"' } : {}).end();
      return;
    }
    const url = new URL(target);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const record: ForwardedRequest = { method: req.method ?? '', target, status: 0, authorized: true };
    requests.push(record);
    inFlight++;
    state.peakInFlight = Math.max(state.peakInFlight, inFlight);
    let counted = true;
    const done = () => {
      if (counted) inFlight--;
      counted = false;
    };
    const upstream = httpRequest({ host: resolve(url.hostname), port: url.port || 80, method: req.method, path: url.pathname + url.search, headers, agent }, (response) => {
      done();
      record.status = response.statusCode ?? 0;
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    });
    upstream.on('error', () => {
      done();
      record.status = 502;
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  };
  const server = options.tls ? createTlsServer({ key: options.tls.key, cert: options.tls.cert }, handle) : createServer(handle);
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const refused = refusal(req);
    if (refused) {
      requests.push({ method: 'CONNECT', target, status: refused.status, authorized: refused.authorized });
      client.end(`HTTP/1.1 ${refused.status} Refused\r\n${refused.status === 407 ? 'Proxy-Authenticate: Basic realm="test proxy"\r\n' : ''}Content-Length: 0\r\n\r\n`);
      return;
    }
    const record: ForwardedRequest = { method: 'CONNECT', target, status: 0, authorized: true };
    requests.push(record);
    const [, host, port] = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target) ?? [];
    const upstream = connect(Number(port), resolve(host), () => {
      record.status = 200;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => {
      if (record.status === 0) {
        record.status = 502;
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      } else client.destroy();
    });
    client.on('error', () => upstream.destroy());
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    get peakInFlight() {
      return state.peakInFlight;
    },
    async stop() {
      agent.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}
