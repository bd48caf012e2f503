/**
 * One list of function definitions serves two hosts: `register.ts` hands each to `app.*` for the
 * Azure Functions runtime (and `func start`), and the local host (src/local) runs the same
 * handlers itself. The Functions package skips `app.*` registrations outside its runtime, so the
 * list, not the package, is the source of truth.
 */
import type { EventGridHandler, HttpHandler, StorageQueueHandler, TimerHandler } from '@azure/functions';

export type FunctionDefinition =
  | {
      name: string;
      trigger: { type: 'http'; methods: Array<'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'>; route: string; authLevel: 'anonymous' | 'function' | 'admin' };
      handler: HttpHandler;
    }
  | {
      name: string;
      /** `connection` names the app setting holding the storage connection string. */
      trigger: { type: 'storageQueue'; queueName: string; connection: string };
      handler: StorageQueueHandler;
    }
  | {
      name: string;
      /** NCRONTAB with seconds, or `%SETTING%` naming an app setting that holds one. */
      trigger: { type: 'timer'; schedule: string; runOnStartup?: boolean };
      handler: TimerHandler;
    }
  | {
      name: string;
      trigger: { type: 'eventGrid' };
      handler: EventGridHandler;
    };
