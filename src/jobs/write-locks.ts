/**
 * Write locks shared by every worker of a deployment: one lease row in Azure Tables per target
 * tag (registry + repository + tag) and per blob upload (registry + digest), so that jobs racing
 * to write the same tag take turns around check-and-put, and jobs uploading the same blob let one
 * upload while the others wait and then find it in place, or mount it from the repository of
 * the holder they waited for. The engine sees them only as its CopyCoordination hook.
 *
 * A lease is an entity inserted by its holder (an insert of an existing row fails: someone holds
 * it) with an owner and an expiry, renewed every third of its duration while held and deleted on
 * release. An expired lease is taken over with an ETag-conditional replace, so a crashed holder
 * blocks the others for one lease duration at most. A blob upload that pauses at the time budget
 * keeps its lock instead (renewal stops), and the same job's continuation takes it back, so no
 * one starts a second upload of that blob in the gap.
 */
import { createHash, randomUUID } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import type { BlobLock, CopyCoordination, ReleaseLock } from '../copy/types.js';
import type { Reference } from '../registry/reference.js';
import { replaceEntity, restStatus } from './tables.js';

/** The partition of lock rows in the jobs table (jobs and idempotency keys have their own). */
export const LOCK_PARTITION = 'lock';
/** First wait between two looks at a held lock; doubled up to MAX_POLL_MS. */
const FIRST_POLL_MS = 50;
/** A waiter looks at least this often, so a released lock is taken soon after. */
const MAX_POLL_MS = 1000;

export interface WriteLocksOptions {
  /** How long a lock lasts without renewal: how long a crashed holder can block others. */
  durationInMs: number;
  /**
   * Who writes, stable across invocations (the job id): a blob lock kept over a pause is taken
   * back by the same writer's continuation at once. Default: a new identity per instance.
   */
  writer?: string;
  /** Told about renewals and releases that failed (the holder keeps going: an unreleased lock expires). */
  onError?: (subject: string, error: unknown) => void;
  now?: () => number;
}

/** A lock held: let go of it, or keep it for the same owner's return. */
interface Held {
  release: ReleaseLock;
  keep: ReleaseLock;
}

interface LockEntity {
  partitionKey: string;
  rowKey: string;
  /** What is locked, readable: `tag registry/repository:tag` or `blob registry@digest`. */
  subject: string;
  owner: string;
  /** The holder's repository: where a blob's waiters may mount it from once it is released. */
  repository: string;
  expiresAt: string;
}

/** Locks on target tags and blob uploads, in one table shared by every worker. */
export class WriteLocks implements CopyCoordination {
  private readonly now: () => number;
  private readonly writer: string;

  constructor(
    private readonly table: TableClient,
    private readonly options: WriteLocksOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.writer = options.writer ?? randomUUID();
  }

  /** The same locks, for one job's copy: `jobId` names its writer across continuations. */
  forJob(jobId: string): WriteLocks {
    return new WriteLocks(this.table, { ...this.options, writer: jobId });
  }

  /** Waits until this caller alone writes `tag`; undefined when `shouldStop` turned true first. */
  async lockTag(tag: Reference, shouldStop: () => boolean): Promise<ReleaseLock | undefined> {
    // Tag locks are held for three requests and never kept: each holder is new.
    return (await this.lock(`tag ${tag.registry.name}/${tag.repository}:${tag.tag ?? ''}`, tag.repository, randomUUID(), shouldStop))?.release;
  }

  /**
   * Waits until this caller alone uploads `digest` to `target`'s registry; undefined when
   * `shouldStop` turned true first. A holder it waited for in another repository is named as a
   * mount source.
   */
  async lockBlob(target: Reference, digest: string, shouldStop: () => boolean): Promise<BlobLock | undefined> {
    // One writer may copy a blob into two repositories of a registry: each is its own holder.
    const held = await this.lock(`blob ${target.registry.name}@${digest}`, target.repository, `${this.writer} ${target.repository}`, shouldStop);
    if (!held) return undefined;
    const mountFrom = held.waitedFor.filter((repository) => repository !== target.repository);
    return { release: held.release, keepForResume: held.keep, ...(mountFrom.length > 0 && { mountFrom }) };
  }

  /**
   * Takes the lock on `subject`, waiting (polling with back-off) while another live holder has
   * it; says whose repositories it waited for, in the order met.
   */
  private async lock(subject: string, repository: string, owner: string, shouldStop: () => boolean): Promise<(Held & { waitedFor: string[] }) | undefined> {
    // Row keys may not hold '/', '#', '?' or '\': a hash of the subject names the row.
    const rowKey = createHash('sha256').update(subject).digest('hex');
    const waitedFor: string[] = [];
    let pollMs = FIRST_POLL_MS;
    for (;;) {
      const taken = await this.tryTake(rowKey, subject, owner, repository);
      if ('etag' in taken) return { ...this.hold(rowKey, subject, owner, repository, taken.etag), waitedFor };
      if (taken.holder !== undefined && !waitedFor.includes(taken.holder)) waitedFor.push(taken.holder);
      if (shouldStop()) return undefined;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
      pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
    }
  }

  /**
   * Inserts the lock row, or replaces an expired one or one this owner kept: the new ETag, or
   * (held by someone else) the holder's repository when it was read.
   */
  private async tryTake(rowKey: string, subject: string, owner: string, repository: string): Promise<{ etag: string } | { holder?: string }> {
    const entity: LockEntity = { partitionKey: LOCK_PARTITION, rowKey, subject, owner, repository, expiresAt: this.expiry() };
    try {
      return { etag: (await this.table.createEntity(entity)).etag ?? '' };
    } catch (error) {
      if (restStatus(error) !== 409) throw error;
    }
    let current: { expiresAt?: unknown; repository?: unknown; owner?: unknown; etag: string };
    try {
      current = await this.table.getEntity<{ expiresAt?: unknown; repository?: unknown; owner?: unknown }>(LOCK_PARTITION, rowKey);
    } catch (error) {
      // Released between our insert and this read: the next round inserts.
      if (restStatus(error) === 404) return {};
      throw error;
    }
    const holder = typeof current.repository === 'string' ? current.repository : undefined;
    const expiresAt = typeof current.expiresAt === 'string' ? Date.parse(current.expiresAt) : 0;
    if (expiresAt > this.now() && current.owner !== owner) return { holder };
    // Expired (its holder died or stalled), or kept for us over a pause: take it over, unless
    // someone else just did.
    try {
      return { etag: (await this.table.updateEntity(entity, 'Replace', { etag: current.etag })).etag ?? '' };
    } catch (error) {
      if (restStatus(error) === 412 || restStatus(error) === 404) return {};
      throw error;
    }
  }

  /**
   * Renews the held lock every third of its duration; the release stops that and deletes the
   * row, keeping stops it and leaves the row to expire (or to its owner's return).
   */
  private hold(rowKey: string, subject: string, owner: string, repository: string, etag: string): Held {
    let current = etag;
    let renewing: Promise<void> = Promise.resolve();
    let lost = false;
    const renew = async () => {
      const entity: LockEntity = { partitionKey: LOCK_PARTITION, rowKey, subject, owner, repository, expiresAt: this.expiry() };
      try {
        // Its own renewal applied after the try was cut is not a takeover (tables.ts).
        current = await replaceEntity(this.table, entity, current);
      } catch (error) {
        // 412/404: taken over after expiring. Keep working: the lock orders writes, it guards no data.
        if (restStatus(error) === 412 || restStatus(error) === 404) lost = true;
        this.options.onError?.(subject, error);
      }
    };
    const timer = setInterval(() => {
      if (!lost) renewing = renewing.then(renew);
    }, Math.max(Math.floor(this.options.durationInMs / 3), 100));
    timer.unref();
    let ended: Promise<void> | undefined;
    const end = (remove: boolean) => {
      ended ??= (async () => {
        clearInterval(timer);
        await renewing;
        if (lost || !remove) return;
        // Conditional on our ETag: never delete a lock someone took over after ours expired.
        await this.table.deleteEntity(LOCK_PARTITION, rowKey, { etag: current }).catch((error: unknown) => {
          if (restStatus(error) !== 404 && restStatus(error) !== 412) this.options.onError?.(subject, error);
        });
      })();
      return ended;
    };
    return { release: () => end(true), keep: () => end(false) };
  }

  private expiry(): string {
    return new Date(this.now() + this.options.durationInMs).toISOString();
  }
}

/**
 * Lock rows stay this long past their expiry before the sweep deletes them: long enough that a
 * paused upload's continuation (queued at once) still finds the row it kept.
 */
export const EXPIRED_LOCK_GRACE_MS = 60 * 60 * 1000;

/**
 * Deletes lock rows that expired more than EXPIRED_LOCK_GRACE_MS ago. A holder that crashed never
 * deletes its row, and an expired row blocks no one, but without this the partition would grow by
 * one row per tag and digest ever locked. Each delete carries the ETag read, so a lock taken
 * over meanwhile is left alone. Returns how many rows it deleted.
 */
export async function sweepExpiredLocks(table: TableClient, now: () => number = Date.now): Promise<number> {
  const before = new Date(now() - EXPIRED_LOCK_GRACE_MS).toISOString();
  let deleted = 0;
  const rows = table.listEntities<{ expiresAt?: string }>({ queryOptions: { filter: odata`PartitionKey eq ${LOCK_PARTITION} and expiresAt lt ${before}` } });
  for await (const row of rows) {
    try {
      await table.deleteEntity(LOCK_PARTITION, row.rowKey!, { etag: row.etag });
      deleted++;
    } catch (error) {
      // Renewed or taken over since it was listed (412), or deleted by its holder (404).
      if (restStatus(error) !== 412 && restStatus(error) !== 404) throw error;
    }
  }
  return deleted;
}

