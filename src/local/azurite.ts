/**
 * Azurite, the storage emulator, as a child process: started on loopback ports, waited for until
 * it accepts connections, and stopped again. The local host starts it for
 * `UseDevelopmentStorage=true` (unless one is already listening); tests start private instances
 * on free ports with in-memory storage.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPortListening } from './ports.js';

/** The ports of Azurite's three services. */
export interface AzuritePorts {
  blob: number;
  queue: number;
  table: number;
}

/** The ports `UseDevelopmentStorage=true` means. */
export const DEVELOPMENT_STORAGE_PORTS: Readonly<AzuritePorts> = Object.freeze({ blob: 10000, queue: 10001, table: 10002 });

/** Azurite's well-known development account; its key is public and documented. */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** Options for {@link startAzurite}. */
export interface StartAzuriteOptions {
  /** Workspace directory (data, unless in memory, and Azurite's own metadata); created if missing. */
  location: string;
  /** Loopback ports for the three services (tests pick free ones). */
  ports: AzuritePorts;
  /** Keep data in memory only (tests). */
  inMemoryPersistence?: boolean;
  /**
   * Serve HTTPS with this certificate and key (PEM paths) and accept Entra bearer tokens
   * (`--oauth basic`: audience, issuer and expiry checked, not the signature), as a storage
   * account reached with an identity. Tests of identity-based connections use it.
   */
  oauth?: { certPath: string; keyPath: string };
  /** How long to wait for the three services to listen. Default 30 s. */
  startTimeoutInMs?: number;
  /**
   * Starts the process; default node's `spawn`. Tests pass one that also kills the child if the
   * test process dies first.
   */
  spawnProcess?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
}

/** A running Azurite child process. */
export interface AzuriteInstance {
  readonly ports: AzuritePorts;
  /** A connection string with explicit loopback endpoints for all three services. */
  readonly connectionString: string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** A connection string for Azurite's development account on the given ports of 127.0.0.1. */
export function azuriteConnectionString(ports: AzuritePorts): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY};` +
    `BlobEndpoint=http://127.0.0.1:${ports.blob}/${DEV_ACCOUNT};` +
    `QueueEndpoint=http://127.0.0.1:${ports.queue}/${DEV_ACCOUNT};` +
    `TableEndpoint=http://127.0.0.1:${ports.table}/${DEV_ACCOUNT};`
  );
}

/**
 * Starts Azurite and resolves once all three services accept connections.
 *
 * @throws Error with the tail of Azurite's output when it exits or does not start in time.
 */
export async function startAzurite(options: StartAzuriteOptions): Promise<AzuriteInstance> {
  const { ports } = options;
  mkdirSync(options.location, { recursive: true });
  const args = [
    azuriteEntryPoint(),
    '--silent',
    // Without it Azurite tries to send telemetry, which fails (and logs) on machines with no network.
    '--disableTelemetry',
    // The SDKs here may be newer than the emulator; the emulator would refuse their API version.
    '--skipApiVersionCheck',
    '--blobHost', '127.0.0.1', '--blobPort', String(ports.blob),
    '--queueHost', '127.0.0.1', '--queuePort', String(ports.queue),
    '--tableHost', '127.0.0.1', '--tablePort', String(ports.table),
  ];
  // Azurite 3.35 refuses --location together with --inMemoryPersistence; the child's working
  // directory (its default workspace) still keeps any stray file inside `location`.
  args.push(...(options.inMemoryPersistence ? ['--inMemoryPersistence'] : ['--location', options.location]));
  if (options.oauth) args.push('--oauth', 'basic', '--cert', options.oauth.certPath, '--key', options.oauth.keyPath);
  const spawnProcess = options.spawnProcess ?? ((command, argv, spawnOptions) => spawn(command, [...argv], spawnOptions));
  // Detached into its own process group: Ctrl+C in the terminal signals the whole foreground group,
  // and Azurite must outlive the host's grace period, in which handlers still write to storage.
  // The host stops it last; the exit hook covers a host that exits without stopping it.
  const child = spawnProcess(process.execPath, args, { cwd: options.location, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => {
    const done = (code: number | null) => {
      process.off('exit', killOnExit);
      resolve(code);
    };
    child.once('exit', done);
    // A failed spawn reports 'error' and never 'exit'; without a listener it would crash the host.
    child.once('error', (error) => {
      output += `\n${error.message}`;
      done(null);
    });
  });

  const deadline = Date.now() + (options.startTimeoutInMs ?? 30_000);
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) throw new Error(`Azurite exited (code ${exitCode}) before it was ready:\n${output.trim()}`);
    const listening = await Promise.all([ports.blob, ports.queue, ports.table].map((p) => isPortListening(p)));
    if (listening.every(Boolean)) break;
    if (Date.now() > deadline) {
      await stopChild(child, exited);
      throw new Error(`Azurite did not listen on ports ${ports.blob}-${ports.table} in time:\n${output.trim()}`);
    }
    await sleep(100);
  }
  return { ports, connectionString: azuriteConnectionString(ports), stop: () => stopChild(child, exited) };
}

/** What {@link ensureDevelopmentStorage} found or did. */
export type DevelopmentStorage = { started: AzuriteInstance } | { alreadyRunning: true };

/**
 * Makes `UseDevelopmentStorage=true` work: uses an emulator already listening on 10000-10002,
 * otherwise starts Azurite there with its data under `<projectRoot>/.azurite`.
 *
 * @param ports - the ports to check and use; only tests pass other than the development ones.
 * @throws Error when only some of the three ports are taken: something else holds them, and
 *   starting Azurite would fail or talk to the wrong service.
 */
export async function ensureDevelopmentStorage(
  projectRoot: string,
  ports: AzuritePorts = DEVELOPMENT_STORAGE_PORTS,
  spawnProcess?: StartAzuriteOptions['spawnProcess'],
): Promise<DevelopmentStorage> {
  const all = [ports.blob, ports.queue, ports.table];
  const listening = await Promise.all(all.map((p) => isPortListening(p)));
  if (listening.every(Boolean)) return { alreadyRunning: true };
  if (listening.some(Boolean)) {
    const taken = all.filter((_, i) => listening[i]);
    throw new Error(
      `ports ${taken.join(', ')} are in use but not all of ${all.join(', ')} are: stop that process, or set ` +
        'AzureWebJobsStorage to an explicit connection string',
    );
  }
  const started = await startAzurite({ location: path.join(projectRoot, '.azurite'), ports: { ...ports }, spawnProcess });
  return { started };
}

function azuriteEntryPoint(): string {
  // Azurite is a devDependency: present for `npm start` and tests, never deployed to Azure.
  return path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'azurite.js');
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
