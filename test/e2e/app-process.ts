/**
 * The app as `npm start` runs it, in child processes: compiled once into a private directory
 * under dist/ (so a stale or concurrent build of dist/ cannot affect the test), then any number
 * of `node …/src/local/main.js` hosts on free ports, each with its output captured.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../helpers/ports.js';
import { ALLOW_LOOPBACK_REGISTRIES } from '../helpers/registry.js';
import { spawnTracked } from '../helpers/processes.js';
import { PROJECT_ROOT, waitFor } from '../local/support.js';
import { ImportsApi } from './support.js';

/** One `npm start` process. */
export interface HostProcess {
  child: ChildProcess;
  port: number;
  api: ImportsApi;
  /** Everything it printed so far. */
  output: () => string;
  exited: Promise<number | null>;
}

/** A private build of the app and the hosts started from it. */
export interface AppProcesses {
  readonly hosts: HostProcess[];
  /** Starts a host with these settings (plus PATH and PORT) and waits until it listens. */
  startHost(env: Record<string, string>): Promise<HostProcess>;
  /** Kills every host, waits for them, and removes the build. */
  stop(): Promise<void>;
}

/** Compiles the app into `dist/<name>-<random>`; rejects with tsc's output when it does not compile. */
export async function buildApp(name: string): Promise<AppProcesses> {
  const outDir = path.join(PROJECT_ROOT, 'dist', `${name}-${randomUUID().slice(0, 8)}`);
  const tsc = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', path.join(PROJECT_ROOT, 'tsconfig.build.json'), '--outDir', outDir]).catch((error: { stdout?: string }) => {
    throw new Error(`the project does not compile:\n${error.stdout ?? String(error)}`);
  });
  const hosts: HostProcess[] = [];
  return {
    hosts,
    async startHost(env) {
      const port = await freePort();
      const child = spawnTracked(process.execPath, [path.join(outDir, 'src', 'local', 'main.js')], {
        cwd: PROJECT_ROOT,
        env: { PATH: process.env.PATH ?? '', PORT: String(port), ...ALLOW_LOOPBACK_REGISTRIES, ...env },
      });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const host: HostProcess = { child, port, api: new ImportsApi(`http://127.0.0.1:${port}`), output: () => output, exited };
      hosts.push(host);
      await waitFor(() => output.includes('Host listening on') || child.exitCode !== null, 30_000, `host to listen:\n${output}`);
      if (child.exitCode !== null) throw new Error(`host exited ${child.exitCode}:\n${output}`);
      return host;
    },
    async stop() {
      for (const host of hosts) host.child.kill('SIGKILL');
      await Promise.all(hosts.map((h) => h.exited));
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}
