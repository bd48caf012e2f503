/**
 * The `importWorker` queue function: runs one delivery of an `imports` message through
 * src/jobs/run-import.ts with the deployment's settings. Returns normally when the message is done
 * with (succeeded, failed for good, paused and continued, re-queued); throws when the host should
 * retry it, or move it to `imports-poison` after the last attempt.
 */
import type { InvocationContext } from '@azure/functions';
import { parseJobMessage } from '../jobs/job-queue.js';
import type { JobStorage } from '../jobs/job-storage.js';
import { runImport } from '../jobs/run-import.js';
import { WriteLocks } from '../jobs/write-locks.js';
import { IMPORTS_QUEUE, STORAGE_CONNECTION_SETTING, type Settings } from '../jobs/settings.js';
import type { FunctionDefinition } from './definition.js';
import { appMaxDequeueCount } from './host-config.js';
import { azureIdentity, configuredTargets, currentEngine, currentSettings, jobStorage, registryHosts, secretBox } from './services.js';
import { shutdownSignal, trackUntilShutdown } from './shutdown.js';
import { logJobEvent } from './telemetry.js';

/**
 * How long a delivery that came during shutdown waits in the queue: long enough for this instance
 * to be gone, short enough that another one picks the job up at once.
 */
const SHUTDOWN_REQUEUE_DELAY_IN_SECONDS = 10;

export async function importWorkerHandler(message: unknown, context: InvocationContext): Promise<void> {
  const startedAt = Date.now();
  const settings = currentSettings();
  const storage = await jobStorage(settings);
  if (shutdownSignal.aborted) {
    // Taking the lease would only re-read the source and pause at once, pushing the exit back:
    // leave the job alone and hand the message on. (runImport drops a message that is no job's.)
    const job = parseJobMessage(message);
    if (job) {
      await trackUntilShutdown(storage.queue.enqueue(job, { delayInSeconds: SHUTDOWN_REQUEUE_DELAY_IN_SECONDS }));
      context.log(`importWorker: host shutting down; job ${job.jobId} re-queued for another instance`);
      return;
    }
  }
  const box = secretBox(settings);
  const targetCredentials = settings.targetCredentials;
  // Scopes the target credentials (jobs carry their own target); none when the setting is bad.
  const targetRegistries = configuredTargets(settings);
  const { chunkSizeInBytes, concurrency, maxBlobBytes, maxManifests } = settings;
  const outcome = await trackUntilShutdown(runImport(
    { message, dequeueCount: Number(context.triggerMetadata?.dequeueCount ?? 1), invocationId: context.invocationId, startedAt },
    {
      jobs: storage.jobs,
      checkpoints: storage.checkpoints,
      queue: storage.queue,
      copy: currentEngine().copy,
      coordination: writeLocks(storage, settings, context),
      ...(box && { secretBox: box }),
      ...(targetCredentials && { targetCredentials }),
      targetRegistries,
      hosts: registryHosts(settings),
      identity: azureIdentity(settings),
      timeBudgetInMs: settings.timeBudgetInMs,
      leaseDurationInMs: settings.leaseDurationInMs,
      maxDequeueCount: appMaxDequeueCount(),
      ...(chunkSizeInBytes !== undefined && { chunkSizeInBytes }),
      ...(concurrency !== undefined && { concurrency }),
      ...(maxBlobBytes !== undefined && { maxBlobBytes }),
      maxManifests,
      stopSignal: shutdownSignal,
      log: { info: (m) => context.log(m), warn: (m) => context.warn(m), error: (m) => context.error(m), event: (level, m, event) => logJobEvent(context, level, m, event) },
    },
  ));
  context.log(`importWorker: ${outcome}`);
}

/** Tag and blob locks in the jobs table, held for as long as a job lease (HOIST_JOB_LEASE_SECONDS). */
function writeLocks(storage: JobStorage, settings: Settings, context: InvocationContext): WriteLocks {
  return new WriteLocks(storage.jobs.table, {
    durationInMs: settings.leaseDurationInMs,
    onError: (subject, error) => context.warn(`importWorker: lock on ${subject}: ${error instanceof Error ? error.message : String(error)}`),
  });
}

/** The definition both hosts register. */
export const importWorkerFunction: FunctionDefinition = {
  name: 'importWorker',
  trigger: { type: 'storageQueue', queueName: IMPORTS_QUEUE, connection: STORAGE_CONNECTION_SETTING },
  handler: importWorkerHandler,
};
