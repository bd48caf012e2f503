/**
 * A streaming reverse proxy for the crash-resume benchmark: it paces response bodies to a rate
 * (a source slower than loopback, so a copy can be killed half-way), and counts the request body
 * bytes it passes on to upload URLs as they stream (so a PATCH cut by a kill reaches the registry
 * cut, as it would without the proxy). Unlike test/e2e/delay-proxy.ts it never buffers a body.
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import { listenOnLoopback } from '../test/helpers/ports.js';

export interface Relay {
  url: string;
  host: string;
  /** Request body bytes passed on to `/blobs/uploads/` URLs so far. */
  uploadBytes: number;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

/**
 * Starts a relay on 127.0.0.1 in front of `upstream`; `bytesPerSecond` paces response bodies, and
 * `onUploadBytes` is called with the running total as each piece of an upload body passes.
 */
export async function startRelay(upstream: string, options: { bytesPerSecond?: number; onUploadBytes?: (total: number) => void } = {}): Promise<Relay> {
  const upstreamUrl = new URL(upstream);
  const agent = new Agent({ keepAlive: true });
  let origin = '';
  const server = createServer((req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    headers.host = upstreamUrl.host;
    const upload = (req.url ?? '').includes('/blobs/uploads/');
    const out = httpRequest(new URL(req.url ?? '/', upstreamUrl.origin), { method: req.method, headers, agent }, (up) => {
      const raw: string[] = [];
      for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
        const name = up.rawHeaders[i]!;
        let value = up.rawHeaders[i + 1]!;
        if (HOP_BY_HOP.has(name.toLowerCase())) continue;
        if (name.toLowerCase() === 'location' && value.startsWith(upstreamUrl.origin)) value = origin + value.slice(upstreamUrl.origin.length);
        raw.push(name, value);
      }
      res.writeHead(up.statusCode ?? 502, up.statusMessage, raw);
      const rate = options.bytesPerSecond;
      if (!rate) {
        up.pipe(res);
        return;
      }
      // Pace: after each piece, wait until the bytes sent so far are due at the rate.
      const started = Date.now();
      let sent = 0;
      up.on('data', (piece: Buffer) => {
        sent += piece.length;
        res.write(piece);
        const due = started + (sent / rate) * 1000 - Date.now();
        if (due > 0) {
          up.pause();
          setTimeout(() => up.resume(), due);
        }
      });
      up.on('end', () => res.end());
      up.on('error', () => res.destroy());
    });
    out.on('error', () => res.destroy());
    // A client gone mid-body cuts the upstream request too, as a direct connection would be cut.
    req.on('close', () => {
      if (!req.complete) out.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.on('data', (piece: Buffer) => {
      if (!upload) return;
      relay.uploadBytes += piece.length;
      options.onUploadBytes?.(relay.uploadBytes);
    });
    req.pipe(out);
  });
  const listening = await listenOnLoopback(server);
  origin = listening.url;
  const relay: Relay = {
    url: listening.url,
    host: new URL(listening.url).host,
    uploadBytes: 0,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
  return relay;
}
