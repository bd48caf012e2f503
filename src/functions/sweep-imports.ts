/**
 * The `sweepImports` timer function: every five minutes, fails the jobs whose final delivery
 * died, and those never delivered within their message's time to live (see
 * src/jobs/sweep-abandoned.ts), so no job stays `running` or `queued` for ever, and deletes lock
 * rows long expired (src/jobs/write-locks.ts).
 */
import type { InvocationContext, Timer } from '@azure/functions';
import { jobEvent } from '../jobs/job-events.js';
import { sweepAbandonedImports } from '../jobs/sweep-abandoned.js';
import { sweepExpiredLocks } from '../jobs/write-locks.js';
import type { FunctionDefinition } from './definition.js';
import { appMaxDequeueCount } from './host-config.js';
import { currentSettings, jobStorage } from './services.js';
import { logJobEvent } from './telemetry.js';

export async function sweepImportsHandler(_timer: Timer, context: InvocationContext): Promise<void> {
  const settings = currentSettings();
  const storage = await jobStorage(settings);
  await sweepAbandonedImports({
    jobs: storage.jobs,
    checkpoints: storage.checkpoints,
    maxDequeueCount: appMaxDequeueCount(),
    onFailed: (job) => {
      // Its caller had asked it to stop (sweep-abandoned.ts): what it ended as is canceled, no failure.
      if (job.status === 'canceled') {
        logJobEvent(context, 'warn', `sweepImports: job ${job.id} canceled: its caller had asked it to stop, and its last attempt died`, jobEvent(job, 'canceled', 'canceled', Date.now()));
        return;
      }
      const code = job.error?.code ?? 'WORKER_LOST';
      const why = code === 'NEVER_DELIVERED' ? 'it was never delivered' : 'its last attempt died';
      logJobEvent(context, 'error', `sweepImports: job ${job.id} ${job.status}: ${code}, ${why}`, jobEvent(job, 'failed', 'failed', Date.now(), { errorCode: code }));
    },
  });
  const locks = await sweepExpiredLocks(storage.jobs.table);
  if (locks > 0) context.log(`sweepImports: deleted ${locks} expired lock row(s)`);
}

/** The definition both hosts register. */
export const sweepImportsFunction: FunctionDefinition = {
  name: 'sweepImports',
  trigger: { type: 'timer', schedule: '0 */5 * * * *' },
  handler: sweepImportsHandler,
};
