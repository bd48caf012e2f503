/**
 * Idempotency-Key records: which job a key created, and a fingerprint of the request it came
 * with. Stored in the jobs table, partition `idempotency`, RowKey = SHA-256 of the key (keys may
 * hold characters RowKeys refuse). A key is claimed with an insert, so two concurrent requests with
 * one key cannot both create a job.
 */
import { createHash } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { ConcurrencyError } from './errors.js';
import type { Versioned } from './job-store.js';
import { insertEntity, replaceEntity, restStatus } from './tables.js';

export const IDEMPOTENCY_PARTITION = 'idempotency';

export interface IdempotencyRecord {
  jobId: string;
  /** Fingerprint of the canonical request (keyed HMAC when HOIST_SECRET_KEY is set). */
  fingerprint: string;
  createdAt: string;
}

/** Claims and looks up Idempotency-Keys. */
export class IdempotencyStore {
  constructor(readonly table: TableClient) {}

  async get(key: string): Promise<Versioned<IdempotencyRecord> | undefined> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(IDEMPOTENCY_PARTITION, keyRow(key));
      return {
        value: { jobId: entity.jobId as string, fingerprint: entity.fingerprint as string, createdAt: entity.createdAt as string },
        etag: entity.etag,
      };
    } catch (error) {
      if (restStatus(error) === 404) return undefined;
      throw error;
    }
  }

  /**
   * Claims `key` for a job; false when the key is already claimed (by another request: this
   * call's own earlier try, applied after it was cut, is this claim; tables.ts).
   */
  async claim(key: string, record: IdempotencyRecord): Promise<boolean> {
    try {
      await insertEntity(this.table, { partitionKey: IDEMPOTENCY_PARTITION, rowKey: keyRow(key), ...record });
      return true;
    } catch (error) {
      if (restStatus(error) === 409) return false;
      throw error;
    }
  }

  /** Re-points an abandoned claim (read with `etag`) at a new job. */
  async takeOver(key: string, etag: string, record: IdempotencyRecord): Promise<void> {
    try {
      await replaceEntity(this.table, { partitionKey: IDEMPOTENCY_PARTITION, rowKey: keyRow(key), ...record }, etag);
    } catch (error) {
      const status = restStatus(error);
      if (status === 412 || status === 404) throw new ConcurrencyError(`the Idempotency-Key record`, { cause: error });
      throw error;
    }
  }

  /** Drops a claim whose job could not be queued, so the client's retry starts afresh. */
  async release(key: string, jobId: string): Promise<void> {
    const current = await this.get(key);
    if (!current || current.value.jobId !== jobId) return;
    try {
      await this.table.deleteEntity(IDEMPOTENCY_PARTITION, keyRow(key), { etag: current.etag });
    } catch (error) {
      const status = restStatus(error);
      if (status !== 404 && status !== 412) throw error;
    }
  }
}

function keyRow(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
