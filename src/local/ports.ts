/**
 * The loopback port probe the local host uses to find an emulator that is already running. Only
 * 127.0.0.1 is ever contacted.
 */
import { createConnection } from 'node:net';

/** Tells whether a TCP server accepts connections on 127.0.0.1:`port`. */
export function isPortListening(port: number, timeoutInMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(timeoutInMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
