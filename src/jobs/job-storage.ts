/**
 * Opens everything the import service keeps in one storage account: the jobs table (jobs and
 * idempotency keys), the checkpoints table and the imports queue.
 */
import { QueueServiceClient } from '@azure/storage-queue';
import { TableCheckpoints } from './checkpoint-store.js';
import { IdempotencyStore } from './idempotency-store.js';
import { JobQueue } from './job-queue.js';
import { JobStore } from './job-store.js';
import { DEFAULT_CHECKPOINTS_TABLE, DEFAULT_JOBS_TABLE, IMPORTS_QUEUE } from './settings.js';
import { openTable } from './tables.js';

export interface JobStorage {
  jobs: JobStore;
  idempotency: IdempotencyStore;
  checkpoints: TableCheckpoints;
  queue: JobQueue;
}

export interface OpenJobStorageOptions {
  jobsTable?: string;
  checkpointsTable?: string;
  queueName?: string;
}

/** Connects to the account in `connectionString`, creating the tables if missing (the queue is created on first send). */
export async function openJobStorage(connectionString: string, options: OpenJobStorageOptions = {}): Promise<JobStorage> {
  const [jobsTable, checkpointsTable] = await Promise.all([
    openTable(connectionString, options.jobsTable ?? DEFAULT_JOBS_TABLE),
    openTable(connectionString, options.checkpointsTable ?? DEFAULT_CHECKPOINTS_TABLE),
  ]);
  const queue = QueueServiceClient.fromConnectionString(connectionString).getQueueClient(options.queueName ?? IMPORTS_QUEUE);
  return {
    jobs: new JobStore(jobsTable),
    idempotency: new IdempotencyStore(jobsTable),
    checkpoints: new TableCheckpoints(checkpointsTable),
    queue: new JobQueue(queue),
  };
}
