/**
 * Blob upload checkpoints in Azure Tables, implementing the engine's CheckpointStore for one job:
 * partition = job id, RowKey = SHA-256 of `target` and `digest` (RowKeys may not hold '/').
 * Each write is conditional on the ETag this process last saw for that checkpoint.
 */
import { odata, type TableClient } from '@azure/data-tables';
import { checkpointKey } from '../copy/checkpoint-key.js';
import { savedCheckpoint } from '../copy/saved-checkpoint.js';
import type { BlobCheckpoint, CheckpointStore } from '../copy/types.js';
import { ConcurrencyError } from './errors.js';
import { insertEntity, replaceEntity, restStatus } from './tables.js';

/** Checkpoints for every job, in one table. */
export class TableCheckpoints {
  constructor(readonly table: TableClient) {}

  /** The engine's store for one job. */
  forJob(jobId: string): JobCheckpointStore {
    return new JobCheckpointStore(this.table, jobId);
  }

  /** Deletes every checkpoint of a job (when it ends). */
  async removeJob(jobId: string): Promise<void> {
    const entities = this.table.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${jobId}`, select: ['RowKey'] } });
    for await (const entity of entities) {
      try {
        await this.table.deleteEntity(jobId, entity.rowKey as string);
      } catch (error) {
        if (restStatus(error) !== 404) throw error;
      }
    }
  }
}

/** Where this process stands with one checkpoint row: its ETag, or known to be absent. */
type Known = { etag: string } | 'absent';

/** The CheckpointStore the engine uses for one job. */
export class JobCheckpointStore implements CheckpointStore {
  private readonly known = new Map<string, Known>();

  constructor(
    private readonly table: TableClient,
    readonly jobId: string,
  ) {}

  /**
   * The checkpoint, or undefined when there is none or its row is not a usable one
   * (saved-checkpoint.ts): the blob then starts from zero, and its first save replaces the row.
   */
  async load(target: string, digest: string): Promise<BlobCheckpoint | undefined> {
    const rowKey = checkpointKey(target, digest);
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(this.jobId, rowKey);
      this.known.set(rowKey, { etag: entity.etag });
      return savedCheckpoint(entity, target, digest);
    } catch (error) {
      if (restStatus(error) !== 404) throw error;
      this.known.set(rowKey, 'absent');
      return undefined;
    }
  }

  async save(checkpoint: BlobCheckpoint): Promise<void> {
    const rowKey = checkpointKey(checkpoint.target, checkpoint.digest);
    const entity = {
      partitionKey: this.jobId,
      rowKey,
      target: checkpoint.target,
      digest: checkpoint.digest,
      // Sizes and offsets pass 2^31, where an untyped JSON number stops being an Int32: store them
      // as Edm.Double (exact up to 2^53).
      size: { value: checkpoint.size, type: 'Double' as const },
      location: checkpoint.location,
      offset: { value: checkpoint.offset, type: 'Double' as const },
      chunkSize: checkpoint.chunkSize,
      updatedAt: checkpoint.updatedAt,
    };
    let known = this.known.get(rowKey);
    if (known === undefined) {
      // The engine saved without loading first: learn where the row stands.
      await this.load(checkpoint.target, checkpoint.digest);
      known = this.known.get(rowKey);
    }
    try {
      // A save whose cut try the service applied late is this save's, not a rival's (tables.ts).
      const etag = known === 'absent' || known === undefined ? await insertEntity(this.table, entity) : await replaceEntity(this.table, entity, known.etag);
      this.known.set(rowKey, { etag });
    } catch (error) {
      const status = restStatus(error);
      if (status === 409 || status === 412 || status === 404) {
        this.known.delete(rowKey);
        throw new ConcurrencyError(`the checkpoint of ${checkpoint.digest} in ${checkpoint.target} (job ${this.jobId})`, { cause: error });
      }
      throw error;
    }
  }

  async remove(target: string, digest: string): Promise<void> {
    const rowKey = checkpointKey(target, digest);
    const known = this.known.get(rowKey);
    if (known === 'absent') return;
    try {
      await this.table.deleteEntity(this.jobId, rowKey, { etag: known?.etag ?? '*' });
    } catch (error) {
      const status = restStatus(error);
      if (status === 412) throw new ConcurrencyError(`the checkpoint of ${digest} in ${target} (job ${this.jobId})`, { cause: error });
      if (status !== 404) throw error;
    }
    this.known.set(rowKey, 'absent');
  }
}
