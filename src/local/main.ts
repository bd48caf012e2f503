/**
 * `npm start`: runs the app on this machine without Azure Functions Core Tools. Reads
 * local.settings.json (overridable by the environment), starts the local host with the app's
 * function definitions, and shuts down gracefully on SIGINT/SIGTERM (a second signal exits at once).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beginShutdown } from '../functions/shutdown.js';
import { boundProcessMemory } from '../registry/process-memory.js';
import { withDevelopmentSecretKey } from './development-key.js';
import { useLocalLayoutsUnlessRegistry } from './layout-target.js';
import { startLocalHost } from './local-host.js';
import { applySettingsToEnvironment, describeStartup, readLocalSettings, type AppSettings } from './settings.js';

/** The nearest directory at or above `start` holding host.json: the project root, from src/ or dist/. */
export function findProjectRoot(start: string): string {
  for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'host.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no host.json found at or above ${start}`);
  }
}

/**
 * HOIST_LOCAL_MESSAGE_LEASE_SECONDS: how long a received queue message stays hidden while its
 * handler runs (renewed at half). The Functions host uses 10 minutes, the default here too; a
 * shorter lease makes a killed `npm start` hand its work on sooner.
 */
function messageLease(settings: AppSettings): { messageLeaseInMs?: number } {
  const value = settings.HOIST_LOCAL_MESSAGE_LEASE_SECONDS;
  if (value === undefined || value === '') return {};
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 2 || seconds > 3600) {
    throw new Error(`HOIST_LOCAL_MESSAGE_LEASE_SECONDS "${value}" is not valid: give whole seconds from 2 to 3600`);
  }
  return { messageLeaseInMs: seconds * 1000 };
}

async function main(): Promise<void> {
  boundProcessMemory();
  const projectRoot = findProjectRoot(__dirname);
  const { settings, notice } = withDevelopmentSecretKey(readLocalSettings(projectRoot), projectRoot);
  for (const line of describeStartup(projectRoot, settings)) process.stdout.write(`${line}\n`);
  applySettingsToEnvironment(settings);
  if (notice) {
    // The environment wins over settings files, and an empty variable would hide the key.
    process.env.HOIST_SECRET_KEY = settings.HOIST_SECRET_KEY;
    process.stdout.write(`${notice}\n`);
  }
  const layouts = useLocalLayoutsUnlessRegistry(projectRoot);
  if (layouts) process.stdout.write(`${layouts}\n`);
  // Loaded only now, after the settings are in process.env, so modules that read settings while
  // loading see local.settings.json values, as they do under `func start`.
  const { definitions } = await import('../functions/definitions.js');
  const { secretKeyProblem } = await import('../functions/services.js');
  // Reported once: requests that need no key go on working; those that do fail with 500.
  const keyProblem = secretKeyProblem();
  if (keyProblem) process.stderr.write(`${keyProblem}\n`);
  const host = await startLocalHost({ definitions, settings, projectRoot, ...messageLease(settings) });

  let signalled = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (signalled) {
      process.stdout.write(`${signal} again: exiting without waiting\n`);
      process.exit(130);
    }
    signalled = true;
    process.stdout.write(`${signal}: stopping (press Ctrl+C again to exit at once)\n`);
    // Running imports pause at their next chunk boundary and queue their continuations within
    // the drain, instead of holding their jobs until the lease expires.
    beginShutdown(signal);
    host.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`error while stopping: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`hoist local host failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
