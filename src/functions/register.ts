/**
 * The entry point the Functions runtime loads (package.json `main`): registers every definition
 * with `app.*`. Outside the runtime the package skips these calls; the local host uses the list in
 * definitions.ts directly.
 */
import { app } from '@azure/functions';
import type { FunctionDefinition } from './definition.js';
import { boundProcessMemory } from '../registry/process-memory.js';
import { definitions } from './definitions.js';
import { watchRuntimeShutdown } from './shutdown.js';
import { secretKeyProblem } from './services.js';
import { startTelemetry } from './telemetry.js';
import { LAYOUT_PREFIX } from '../copy/layout-reference.js';
import { ConfigurationError } from '../jobs/errors.js';
import { Settings } from '../jobs/settings.js';

type Of<T extends FunctionDefinition['trigger']['type']> = Extract<FunctionDefinition, { trigger: { type: T } }>;

/** Registers each definition with the matching `app.*` call. */
export function register(list: FunctionDefinition[]): void {
  for (const definition of list) {
    switch (definition.trigger.type) {
      case 'http': {
        const { name, trigger, handler } = definition as Of<'http'>;
        app.http(name, { methods: trigger.methods, authLevel: trigger.authLevel, route: trigger.route, handler });
        break;
      }
      case 'storageQueue': {
        const { name, trigger, handler } = definition as Of<'storageQueue'>;
        app.storageQueue(name, { queueName: trigger.queueName, connection: trigger.connection, handler });
        break;
      }
      case 'timer': {
        const { name, trigger, handler } = definition as Of<'timer'>;
        app.timer(name, { schedule: trigger.schedule, ...(trigger.runOnStartup !== undefined && { runOnStartup: trigger.runOnStartup }), handler });
        break;
      }
      case 'eventGrid': {
        const { name, handler } = definition as Of<'eventGrid'>;
        app.eventGrid(name, { handler });
        break;
      }
    }
  }
}

/**
 * A deployment writes to a registry: local OCI layouts are `npm start`'s alone (the local host
 * never loads this file). Without HOIST_TARGET_REGISTRY the app refuses to start, saying so,
 * instead of failing every import.
 */
function requireTargetRegistry(settings = new Settings()): void {
  let target: string | undefined;
  try {
    target = settings.targetRegistries[0];
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
  }
  if (target === undefined || target.startsWith(LAYOUT_PREFIX)) {
    throw new ConfigurationError('HOIST_TARGET_REGISTRY', 'hoist cannot start: HOIST_TARGET_REGISTRY is not set or not a registry host[:port]. Set it to the registry imports write to, e.g. myregistry.azurecr.io (only npm start writes to local OCI layouts when it is empty)');
  }
}

requireTargetRegistry();
// First, so that records of the first invocations are exported too.
const telemetry = startTelemetry();
boundProcessMemory();
// HTTP streams: the host hands the worker each request body as it arrives instead of buffering
// it whole first, so json-body.ts's 64 KiB cap bounds the host's memory too, not only ours.
// Needs Functions host 4.28 or later; on an older one this throws and the app refuses to load.
app.setup({ enableHttpStream: true });
register(definitions);
// Once the imports have paused, their last transitions go out before the worker does.
watchRuntimeShutdown((handler) => app.hook.appTerminate(handler), telemetry && (() => telemetry.forceFlush()));

// Reported once, as the app loads: a bad key then fails only the requests that need it.
const keyProblem = secretKeyProblem();
if (keyProblem) console.error(`hoist: ${keyProblem}`);
