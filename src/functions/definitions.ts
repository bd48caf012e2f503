/**
 * Every function of the app, in one list: `register.ts` hands them to `app.*` under the Functions
 * runtime, and the local host (src/local) serves them itself.
 */
import type { FunctionDefinition } from './definition.js';
import { importWorkerFunction } from './import-worker.js';
import { importsFunction } from './imports.js';
import { openApiFunction } from './openapi.js';
import { sweepImportsFunction } from './sweep-imports.js';

export const definitions: FunctionDefinition[] = [importsFunction, importWorkerFunction, sweepImportsFunction, openApiFunction];
