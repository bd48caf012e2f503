/**
 * A TCP proxy that makes a loopback registry look like one across a real network link: every
 * byte is held `delayInMs` in each direction (so a round trip costs twice that), and each
 * connection's downstream (registry → client) is paced to `downstreamBytesPerSecond`, as a
 * per-flow bandwidth cap would. It works below HTTP, so request counts, connection reuse and TLS
 * fall-back attempts cost what they would on the real link, and the registry builds its Location
 * URLs from the Host header, which names the proxy.
 *
 * Unlike bench/relay.ts (paces bodies, HTTP-aware) and test/e2e/delay-proxy.ts (store and
 * forward), it delays every packet. Each direction buffers at most about `HIGH_WATER` bytes
 * before it stops reading, so a fast sender is slowed by TCP back-pressure, not by memory.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** Stop reading a side once this much is queued for the other: well above 50 MB/s × 25 ms. */
const HIGH_WATER = 4 * 1024 * 1024;

export interface LinkProxy {
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  stop(): Promise<void>;
}

export interface LinkOptions {
  /** One-way delay added to every byte, both directions. */
  delayInMs: number;
  /** Pace of each connection's downstream; unlimited when undefined. */
  downstreamBytesPerSecond?: number;
}

/** Starts a proxy on 127.0.0.1 in front of `upstream` (`127.0.0.1:PORT`). */
export async function startLinkProxy(upstream: string, options: LinkOptions): Promise<LinkProxy> {
  const [upstreamHost, upstreamPort] = splitHost(upstream);
  const sockets = new Set<Socket>();
  // Half-open allowed: one side's FIN must not cut what is still delayed on its way to it.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const registry = createConnection({ host: upstreamHost, port: upstreamPort, allowHalfOpen: true });
    for (const socket of [client, registry]) {
      sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => sockets.delete(socket));
      // Either side gone: the other goes too, as a broken link would take both.
      socket.on('error', () => {
        client.destroy();
        registry.destroy();
      });
    }
    delayedPipe(client, registry, options.delayInMs);
    delayedPipe(registry, client, options.delayInMs, options.downstreamBytesPerSecond);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('link proxy: no TCP address');
  return {
    host: `127.0.0.1:${address.port}`,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function splitHost(host: string): [string, number] {
  const at = host.lastIndexOf(':');
  return [host.slice(0, at), Number(host.slice(at + 1))];
}

/**
 * Copies `from` to `to`, each piece delivered `delayInMs` after it arrived, or after the pacer
 * has let it out when `bytesPerSecond` is set. Deliveries keep their order (their due times
 * never decrease), and the end of `from` ends `to` after the last piece.
 */
function delayedPipe(from: Socket, to: Socket, delayInMs: number, bytesPerSecond?: number): void {
  // No piece: `from` ended (end `to`) or, when `cut`, was reset (destroy `to`).
  const queue: Array<{ due: number; piece?: Buffer; cut?: boolean }> = [];
  let queuedBytes = 0;
  let lastDue = 0;
  // When the pacer's line is free again.
  let paceFree = 0;
  let timer: NodeJS.Timeout | undefined;

  let ended = false;
  const push = (piece: Buffer | undefined, cut = false) => {
    const now = performance.now();
    let leaves = now;
    if (piece && bytesPerSecond) {
      paceFree = Math.max(now, paceFree) + (piece.length / bytesPerSecond) * 1000;
      leaves = paceFree;
    }
    lastDue = Math.max(lastDue, leaves + delayInMs);
    queue.push({ due: lastDue, piece, cut });
    if (piece) {
      queuedBytes += piece.length;
      if (queuedBytes > HIGH_WATER) from.pause();
    }
    schedule();
  };
  const schedule = () => {
    if (timer || queue.length === 0) return;
    timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };
  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now + 0.5) {
      const { piece, cut } = queue.shift()!;
      if (to.destroyed) return;
      if (!piece) {
        if (cut) to.destroy();
        else to.end();
        return;
      }
      to.write(piece);
      queuedBytes -= piece.length;
    }
    if (from.isPaused() && queuedBytes <= HIGH_WATER / 2) from.resume();
    schedule();
  };
  from.on('data', (piece: Buffer) => push(piece));
  from.on('end', () => {
    ended = true;
    push(undefined);
  });
  // A reset (no clean end) cuts the other side once what was sent before it has gone.
  from.on('close', () => {
    if (!ended) push(undefined, true);
  });
}
