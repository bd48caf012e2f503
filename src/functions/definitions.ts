/**
 * Every function of the app, in one list: `register.ts` hands them to `app.*` under the Functions
 * runtime, and the local host (src/local) serves them itself.
 */
import type { FunctionDefinition } from './definition.js';
import { distributionHookFunction } from './distribution-hook.js';
import { importWorkerFunction } from './import-worker.js';
import { importsFunction } from './imports.js';
import { resyncFunction } from './resync.js';
import { openApiFunction } from './openapi.js';
import { sweepImportsFunction } from './sweep-imports.js';
import { upstreamPushFunction } from './upstream-push.js';
import { watchesFunction } from './watches.js';

export const definitions: FunctionDefinition[] = [importsFunction, importWorkerFunction, sweepImportsFunction, openApiFunction, watchesFunction, resyncFunction, upstreamPushFunction, distributionHookFunction];
