/**
 * A private Azurite for one test file: free loopback ports, in-memory storage, a temporary
 * workspace, and a process that dies with the test process however it ends. Reuses the local
 * host's launcher (src/local/azurite.ts) and the harness's port and process helpers.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAzurite as launchAzurite } from '../../src/local/azurite.js';
import { freePort } from './ports.js';
import { spawnTracked } from './processes.js';

export interface TestAzurite {
  /** Explicit-endpoint connection string for the blob, queue and table services. */
  connectionString: string;
  ports: { blob: number; queue: number; table: number };
  stop(): Promise<void>;
  /**
   * Freezes the Azurite process (SIGSTOP): the kernel still accepts connections on its ports, but
   * nothing answers, as a storage account that hangs. `resume()` (SIGCONT) lets it go on.
   */
  pause(): void;
  resume(): void;
}

/** Starts Azurite on free loopback ports; retries with new ports if one was taken meanwhile. */
export async function startAzurite(): Promise<TestAzurite> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const location = mkdtempSync(path.join(tmpdir(), 'hoist-azurite-'));
    const ports = { blob: await freePort(), queue: await freePort(), table: await freePort() };
    try {
      let child: ChildProcess | undefined;
      const instance = await launchAzurite({
        location,
        ports,
        inMemoryPersistence: true,
        spawnProcess: (command, args, options) => (child = spawnTracked(command, args, options, [location])),
      });
      return {
        connectionString: instance.connectionString,
        ports,
        pause: () => child?.kill('SIGSTOP'),
        resume: () => child?.kill('SIGCONT'),
        stop: async () => {
          await instance.stop();
          rmSync(location, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
      rmSync(location, { recursive: true, force: true });
    }
  }
  throw lastError;
}
