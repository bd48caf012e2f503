/**
 * The local host: runs a list of function definitions on one machine the way the Azure Functions
 * host would, without Core Tools. It wires the pieces together (storage emulator, HTTP front end
 * with the Event Grid webhook, one queue listener per queue function, one scheduler per timer) and
 * shuts them down in order.
 */
import path from 'node:path';
import type { FunctionDefinition } from '../functions/definition.js';
import { ensureDevelopmentStorage, type AzuriteInstance } from './azurite.js';
import { eventFromAdminInput, invokeEventGridFunction, type EventGridDefinition } from './event-grid-webhook.js';
import { API_KEY_SETTING } from './function-keys.js';
import { readHostConfig, type HostConfig } from '../functions/host-config.js';
import { HttpHost, type HttpDefinition } from './http-host.js';
import { describeError, InvocationRunner } from './invocation-runner.js';
import { createConsoleLogger, secretSettingValues, type HostLogger } from './logger.js';
import { QueueListener, type QueueDefinition } from './queue-listener.js';
import { queueClient, storageClients, type StorageConnection } from '../jobs/storage-connection.js';
import {
  DEFAULT_STORAGE_SETTING,
  findStorageConnection,
  isDevelopmentStorage,
  resolveSettingReferences,
  resolveStorageConnection,
  type AppSettings,
} from './settings.js';
import { TableTimerMonitor } from './table-timer-monitor.js';
import { parseTimerSchedule } from './timer-schedule.js';
import { TimerScheduler, type TimerDefinition } from './timer-scheduler.js';

/** The port `func start` uses, and so does `npm start` unless PORT says otherwise. */
export const DEFAULT_HTTP_PORT = 7071;

/** How long shutdown waits for running invocations before it stops anyway. */
export const DEFAULT_SHUTDOWN_GRACE_IN_MS = 10_000;

/** Options for {@link startLocalHost}. */
export interface StartLocalHostOptions {
  /** The functions to run: the same list `app.*` registration uses. */
  definitions: readonly FunctionDefinition[];
  /** App settings (see `readLocalSettings`): connection strings, HOIST_API_KEY, PORT, `%NAME%` targets. */
  settings: AppSettings;
  /** Where host.json is and where `.azurite/` goes. Default: the current directory. */
  projectRoot?: string;
  /** host.json settings; default read from `<projectRoot>/host.json` with the settings' overrides. */
  hostConfig?: HostConfig;
  /** HTTP port; default the PORT setting, else 7071. 0 picks a free port. */
  port?: number;
  /** Where logs go; default stdout with secret settings redacted. */
  logger?: HostLogger;
  /** Queue receive lease, renewed at half; default 10 minutes, as the host. Tests shorten it. */
  messageLeaseInMs?: number;
  /** The timers' clock, in epoch ms; default `Date.now`. Tests move it instead of waiting. */
  timerClock?: () => number;
  /** How long `stop()` waits for running invocations. Default {@link DEFAULT_SHUTDOWN_GRACE_IN_MS}. */
  shutdownGraceInMs?: number;
}

/** A running local host. */
export interface LocalHost {
  /** The HTTP base URL, e.g. `http://localhost:7071`; functions are under `/api`. */
  readonly url: string;
  readonly port: number;
  /**
   * Stops polling and timers and refuses new connections, waits up to the grace period for
   * running invocations, then closes connections and stops Azurite if this host started it.
   * Messages still running then keep their lease and reappear for another instance.
   */
  stop(): Promise<void>;
}

/**
 * Starts the local host and resolves once it serves HTTP and polls its queues.
 *
 * @throws Error for configuration the host would refuse: duplicate function names, a missing
 *   connection or `%SETTING%`, an invalid schedule or route, or a taken port.
 */
export async function startLocalHost(options: StartLocalHostOptions): Promise<LocalHost> {
  const { definitions, settings } = options;
  const projectRoot = path.resolve(options.projectRoot ?? process.cwd());
  const hostConfig = options.hostConfig ?? readHostConfig(projectRoot, settings);
  const logger = options.logger ?? createConsoleLogger({ secrets: secretSettingValues(settings) });
  checkUniqueNames(definitions);

  const http = definitions.filter((d): d is HttpDefinition => d.trigger.type === 'http');
  const queues = definitions.filter((d): d is QueueDefinition => d.trigger.type === 'storageQueue');
  const timers = definitions.filter((d): d is TimerDefinition => d.trigger.type === 'timer');
  const eventGrid = new Map(definitions.filter((d): d is EventGridDefinition => d.trigger.type === 'eventGrid').map((d) => [d.name, d]));

  // Resolve everything that can be wrong before starting anything, so a bad setting leaves no
  // emulator or listener behind.
  const queueConnections = queues.map((d) => resolveStorageConnection(settings, d.trigger.connection));
  const queueNames = queues.map((d) => resolveSettingReferences(d.trigger.queueName, settings).toLowerCase());
  const schedules = timers.map((d) => parseTimerSchedule(d.trigger.schedule, settings));
  const hostStorage = findStorageConnection(settings, DEFAULT_STORAGE_SETTING);
  const runner = new InvocationRunner(logger, hostConfig.functionTimeoutInMs);
  // Clients only: nothing is contacted until the listeners start.
  const listeners = queues.map((definition, i) => {
    const clients = storageClients(queueConnections[i]!);
    return new QueueListener({
      definition,
      queue: queueClient(clients, queueNames[i]!),
      poisonQueue: queueClient(clients, `${queueNames[i]!}-poison`),
      options: hostConfig.queues,
      leaseInMs: options.messageLeaseInMs,
      runner,
      logger,
    });
  });
  // Timer status lives in the host's own storage, as on Azure; without it each host runs every
  // occurrence itself.
  const monitor = hostStorage ? TableTimerMonitor.on(storageClients(hostStorage)) : undefined;
  const schedulers = timers.map((definition, i) => new TimerScheduler({ definition, schedule: schedules[i]!, runner, logger, monitor, now: options.timerClock }));

  let azurite: AzuriteInstance | undefined;
  if ([hostStorage, ...queueConnections].some((c) => isDevelopmentStorage(connectionStringOf(c)))) {
    const storage = await ensureDevelopmentStorage(projectRoot);
    if ('started' in storage) {
      azurite = storage.started;
      logger.log('information', 'host', `started Azurite on ports 10000-10002 with data in ${path.join(projectRoot, '.azurite')}`);
    } else {
      logger.log('information', 'host', 'using the storage emulator already listening on ports 10000-10002');
    }
  }

  let httpHost: HttpHost;
  try {
    httpHost = await HttpHost.listen({
      http,
      eventGrid,
      apiKey: settings[API_KEY_SETTING] || undefined,
      routePrefix: hostConfig.routePrefix,
      port: options.port ?? portSetting(settings),
      runner,
      logger,
      // Any non-HTTP function, as the Functions host's admin API: a timer (`resync`), a queue
      // function on a message text, an Event Grid function on one event.
      runFunction: (name, input) => {
        const named = (d: FunctionDefinition) => d.name.toLowerCase() === name.toLowerCase();
        const timer = timers.findIndex(named);
        if (timer !== -1) {
          void schedulers[timer]!.runNow();
          return 'started';
        }
        const queue = queues.findIndex(named);
        if (queue !== -1) {
          void listeners[queue]!.runNow(input ?? '');
          return 'started';
        }
        const grid = [...eventGrid.values()].find(named);
        if (grid === undefined) return 'not-found';
        const read = eventFromAdminInput(input);
        if ('invalidInput' in read) return read;
        // Logged by the runner when it fails; nothing redelivers it.
        void invokeEventGridFunction(grid, read.event, runner, 'Manually invoked (POST /admin/functions)').catch(() => undefined);
        return 'started';
      },
    });
  } catch (error) {
    await azurite?.stop();
    throw error;
  }

  logFunctions(logger, httpHost.url, hostConfig.routePrefix, http, queueNames, queues, schedules.map((s) => s.expression), timers, eventGrid);
  for (const listener of listeners) listener.start();
  schedulers.forEach((scheduler, i) => {
    scheduler.start().catch((error: unknown) => logger.log('error', `Functions.${timers[i]!.name}`, 'timer failed to start:', describeError(error)));
  });

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    const deadline = Date.now() + (options.shutdownGraceInMs ?? DEFAULT_SHUTDOWN_GRACE_IN_MS);
    for (const scheduler of schedulers) scheduler.stop();
    const httpClosed = httpHost.stopAccepting();
    const unfinishedMessages = await Promise.all(listeners.map((l) => l.stop(deadline)));
    const unfinished = await runner.drain(Math.max(0, deadline - Date.now()));
    await httpHost.drain(deadline);
    if (unfinished > 0 || unfinishedMessages.some((n) => n > 0)) {
      logger.log('warning', 'host', `stopping with ${unfinished} invocation(s) still running; their queue messages will be delivered again`);
    }
    httpHost.closeAllConnections();
    await httpClosed;
    await azurite?.stop();
    logger.log('information', 'host', 'stopped');
  };
  return {
    url: httpHost.url,
    port: httpHost.port,
    stop: () => (stopping ??= stop()),
  };
}

/** A connection's connection string; undefined for an identity-based one, which is never Azurite. */
function connectionStringOf(connection: StorageConnection | undefined): string | undefined {
  return connection && 'connectionString' in connection ? connection.connectionString : undefined;
}

function checkUniqueNames(definitions: readonly FunctionDefinition[]): void {
  const seen = new Set<string>();
  for (const { name } of definitions) {
    // Function names are case-insensitive on Azure.
    const key = name.toLowerCase();
    if (seen.has(key)) throw new Error(`two functions are named "${name}"; function names must be unique`);
    seen.add(key);
  }
}

function portSetting(settings: AppSettings): number {
  const text = settings['PORT'];
  if (text === undefined || text === '') return DEFAULT_HTTP_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT "${text}" is not a port number`);
  return port;
}

function logFunctions(
  logger: HostLogger,
  url: string,
  routePrefix: string,
  http: readonly HttpDefinition[],
  queueNames: readonly string[],
  queues: readonly QueueDefinition[],
  schedules: readonly string[],
  timers: readonly TimerDefinition[],
  eventGrid: ReadonlyMap<string, EventGridDefinition>,
): void {
  const prefix = routePrefix ? `/${routePrefix}` : '';
  const lines = [
    ...http.map((d) => `${d.name}: [${d.trigger.methods.join(',')}] ${url}${prefix}/${(d.trigger.route || d.name).replace(/^\/+/, '')}`),
    ...queues.map((d, i) => `${d.name}: queueTrigger on '${queueNames[i]}'`),
    ...timers.map((d, i) => `${d.name}: timerTrigger '${schedules[i]}'`),
    ...[...eventGrid.keys()].map((name) => `${name}: eventGridTrigger at ${url}/runtime/webhooks/eventgrid?functionName=${name}`),
  ];
  logger.log('information', 'host', `Functions:\n  ${lines.join('\n  ')}\nHost listening on ${url}`);
}
