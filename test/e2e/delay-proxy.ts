/**
 * A store-and-forward proxy that adds latency, for making a loopback registry as slow as a real
 * network path. test/helpers/proxy.ts injects faults through synchronous rules and has no way to
 * wait, hence this small one.
 *
 * Each request's body is read whole before anything is sent upstream, then (for the chosen
 * methods) held for `delayInMs`, then forwarded in one piece. So a client killed mid-request
 * either delivered a whole chunk or nothing, as the registry sees it; a request whose body had
 * already arrived is still forwarded after its client is gone (the registry accepts a PATCH whose
 * answer nobody reads, which is what a client killed while waiting for a response looks like).
 *
 * Every request is recorded with its Content-Range, so tests can tell which bytes of an upload
 * were sent, and how many times.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from '../helpers/ports.js';

/** One request as the proxy saw it. */
export interface DelayedRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  /** The request's Content-Range header (`start-end` on upload PATCHes). */
  contentRange?: string;
  /** Request body bytes received. */
  bodyBytes: number;
  /** Status from the registry; 0 while pending or when the client had gone before forwarding. */
  status: number;
  /** Whether the request was forwarded to the registry. */
  forwarded: boolean;
}

export interface DelayProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, for image references and HOIST_TARGET_REGISTRY. */
  host: string;
  /** Every request, in arrival order. */
  requests: DelayedRequest[];
  /** The delay applied to `methods`; change it at any time. */
  delayInMs: number;
  /**
   * Holds the next request of a delayed method once its whole body has arrived, and resolves with
   * it: `release()` forwards it (even if its client has gone meanwhile), `drop()` cuts its client
   * off and never forwards it, so the registry never sees it.
   */
  holdNext(): Promise<HeldRequest>;
  stop(): Promise<void>;
}

/** A request stopped by {@link DelayProxy.holdNext}. */
export interface HeldRequest {
  request: DelayedRequest;
  release(): void;
  drop(): void;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

/** Starts a proxy on 127.0.0.1 in front of `upstream` (`http://127.0.0.1:PORT`). */
export async function startDelayProxy(upstream: string, options: { delayInMs: number; methods?: string[] }): Promise<DelayProxy> {
  const upstreamUrl = new URL(upstream);
  const methods = new Set((options.methods ?? ['PATCH']).map((m) => m.toUpperCase()));
  const agent = new Agent({ keepAlive: true });
  const requests: DelayedRequest[] = [];
  let proxyOrigin = '';
  let holdWaiter: ((held: HeldRequest) => void) | undefined;

  const readBody = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
      req.on('close', () => {
        if (!req.complete) reject(new Error('client went away mid-body'));
      });
    });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const contentRange = req.headers['content-range'];
    const record: DelayedRequest = { method, path: req.url ?? '/', ...(typeof contentRange === 'string' && { contentRange }), bodyBytes: 0, status: 0, forwarded: false };
    requests.push(record);
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      res.socket?.destroy();
      return;
    }
    record.bodyBytes = body.length;
    if (methods.has(method) && holdWaiter) {
      const notify = holdWaiter;
      holdWaiter = undefined;
      const forward = await new Promise<boolean>((resolve) => notify({ request: record, release: () => resolve(true), drop: () => resolve(false) }));
      if (!forward) {
        res.socket?.destroy();
        return;
      }
    }
    if (methods.has(method) && proxy.delayInMs > 0) await new Promise((resolve) => setTimeout(resolve, proxy.delayInMs));

    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    headers.host = upstreamUrl.host;
    headers['content-length'] = String(body.length);
    record.forwarded = true;
    const upstreamReq = httpRequest(new URL(req.url ?? '/', upstreamUrl.origin), { method, headers, agent });
    upstreamReq.on('response', (upstreamRes) => {
      record.status = upstreamRes.statusCode ?? 0;
      const out: string[] = [];
      const raw = upstreamRes.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i]!;
        let value = raw[i + 1]!;
        if (HOP_BY_HOP.has(name.toLowerCase())) continue;
        // Keep the client on the proxy for the whole upload session.
        if (name.toLowerCase() === 'location' && value.startsWith(upstreamUrl.origin)) value = proxyOrigin + value.slice(upstreamUrl.origin.length);
        out.push(name, value);
      }
      if (res.destroyed) {
        upstreamRes.resume();
        return;
      }
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, out);
      upstreamRes.pipe(res);
    });
    upstreamReq.on('error', () => {
      if (!res.headersSent && !res.destroyed) res.writeHead(502).end('delay proxy: upstream error');
      else res.destroy();
    });
    upstreamReq.end(body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.socket?.destroy());
  });
  const listening = await listenOnLoopback(server);
  proxyOrigin = listening.url;
  const proxy: DelayProxy = {
    url: proxyOrigin,
    host: listening.host,
    requests,
    delayInMs: options.delayInMs,
    holdNext() {
      if (holdWaiter) throw new Error('already holding the next request');
      return new Promise((resolve) => (holdWaiter = resolve));
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
  return proxy;
}

/** The upload-session id in a PATCH/PUT path, e.g. `/v2/repo/blobs/uploads/<uuid>?_state=…`. */
export function uploadSessionOf(path: string): string | undefined {
  return /\/blobs\/uploads\/([^/?]+)/.exec(path)?.[1];
}

/** `start-end` → [start, end]. */
export function parseContentRange(range: string | undefined): [number, number] | undefined {
  const match = /^(\d+)-(\d+)$/.exec(range ?? '');
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}
