/**
 * Opens everything the import service keeps in one storage account: the jobs table (jobs and
 * idempotency keys), the checkpoints table and the imports queue.
 */
import { TableCheckpoints } from './checkpoint-store.js';
import { IdempotencyStore } from './idempotency-store.js';
import { JobQueue } from './job-queue.js';
import { JobStore } from './job-store.js';
import { DEFAULT_CHECKPOINTS_TABLE, DEFAULT_JOBS_TABLE, IMPORTS_QUEUE } from './settings.js';
import { queueClient, storageClients, type StorageClients, type StorageConnection } from './storage-connection.js';
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

/**
 * Connects to the account of `connection` (a connection string, an identity-based connection, or
 * the clients storageClients made of one, which other stores on the account then share: one
 * credential and one token for all), creating the tables if missing (the queue is created on
 * first send).
 */
export async function openJobStorage(connection: string | StorageConnection | StorageClients, options: OpenJobStorageOptions = {}): Promise<JobStorage> {
  const clients = storageClients(connection);
  const [jobsTable, checkpointsTable] = await Promise.all([
    openTable(clients, options.jobsTable ?? DEFAULT_JOBS_TABLE),
    openTable(clients, options.checkpointsTable ?? DEFAULT_CHECKPOINTS_TABLE),
  ]);
  const queue = queueClient(clients, options.queueName ?? IMPORTS_QUEUE);
  return {
    jobs: new JobStore(jobsTable),
    idempotency: new IdempotencyStore(jobsTable),
    checkpoints: new TableCheckpoints(checkpointsTable),
    queue: new JobQueue(queue),
  };
}
