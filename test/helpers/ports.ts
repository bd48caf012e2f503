/**
 * Loopback port allocation for test servers.
 *
 * The registries, token issuers and proxies started by the test harness each need a port
 * of their own. Asking the kernel for an ephemeral port (listen on port 0) avoids
 * collisions between test files that run in parallel forks, unlike a fixed port range.
 */
import type { Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago.
 *
 * The port is found by listening on `127.0.0.1:0`, reading the port the kernel chose and
 * closing the listener again. Another process could take the port between this call and the
 * caller's own `listen`, so callers that start external processes (see `startRegistry`)
 * retry with a new port when the process reports "address already in use".
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    // Only loopback: the harness must never listen on (or contact) another interface.
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: listener has no TCP address'));
        return;
      }
      const { port } = address;
      server.close((error) => (error ? reject(error) : resolve(port)));
    });
  });
}

/** Starts `server` listening on a free 127.0.0.1 port; resolves with its origin and host:port. */
export async function listenOnLoopback(server: HttpServer): Promise<{ url: string; host: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, port };
}
