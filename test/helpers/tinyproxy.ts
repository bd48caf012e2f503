/**
 * Debian's tinyproxy on loopback: a real forward proxy, as users have them. It logs every
 * request it carries (`Request (file descriptor N): METHOD TARGET HTTP/1.1`), which is how a
 * test counts what went through it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { killAndWait, spawnTracked } from './processes.js';

export const TINYPROXY_BINARY = process.env.HOIST_TEST_TINYPROXY_BINARY ?? '/usr/bin/tinyproxy';

export interface Tinyproxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Every request it logged so far: `METHOD TARGET` (an absolute URL, or `host:port` for CONNECT). */
  requests(): Promise<Array<{ method: string; target: string }>>;
  stop(): Promise<void>;
}

const REQUEST_LINE = /Request \(file descriptor \d+\): (\S+) (\S+) HTTP\/[\d.]+/;

/** Starts tinyproxy in the foreground on a free loopback port, accepting loopback clients only. */
export async function startTinyproxy(): Promise<Tinyproxy> {
  const directory = await mkdtemp(path.join(tmpdir(), 'hoist-tinyproxy-'));
  const port = await freePort();
  const logFile = path.join(directory, 'tinyproxy.log');
  const config = path.join(directory, 'tinyproxy.conf');
  // No ConnectPort line: CONNECT to any port is allowed (the test registries' ports are random).
  await writeFile(config, [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${logFile}"`, 'LogLevel Connect', 'MaxClients 100', 'Allow 127.0.0.1', 'DisableViaHeader Yes', ''].join('\n'));
  const child = spawnTracked(TINYPROXY_BINARY, ['-d', '-c', config], {}, [directory]);
  child.stdout?.resume();
  child.stderr?.resume();
  // Ready once it accepts connections.
  for (let attempt = 0; ; attempt++) {
    const listening = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (listening) break;
    if (attempt >= 100 || child.exitCode !== null) throw new Error(`tinyproxy did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async requests() {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').flatMap((line) => {
        const match = REQUEST_LINE.exec(line);
        return match ? [{ method: match[1], target: match[2] }] : [];
      });
    },
    async stop() {
      await killAndWait(child);
      await rm(directory, { recursive: true, force: true });
    },
  };
}
