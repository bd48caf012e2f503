/**
 * Jobs in Azure Tables: one entity per job in partition `job`, RowKey = job id (newest first, see
 * job-id.ts). Every update is conditional on the ETag the caller read; a lost race is a
 * ConcurrencyError, never a silent overwrite. An entity Azure Tables would refuse is refused here
 * first (EntityTooLargeError), since Azurite takes it.
 */
import { odata, type TableClient, type TableEntityResult } from '@azure/data-tables';
import { ConcurrencyError, JobNotFoundError } from './errors.js';
import { isJobId } from './job-id.js';
import { emptyProgress, type JobRecord, type JobStatus } from './job-record.js';
import { checkEntityLimits, insertEntity, readJson, replaceEntity, restStatus, writeJson } from './tables.js';

/** The partition holding job entities (the idempotency store uses another in the same table). */
export const JOB_PARTITION = 'job';

/** A value and the ETag it was read or written with; pass the ETag back to update it. */
export interface Versioned<T> {
  value: T;
  etag: string;
}

export interface ListJobsOptions {
  /** Only jobs in one of these states. */
  statuses?: JobStatus[];
  /** Jobs per page (1–100). Default 20. */
  pageSize?: number;
  /** Continue after this job id (the `continuationToken` of the previous page). */
  after?: string;
}

export interface JobPage {
  jobs: JobRecord[];
  /** Pass as `after` for the next page; absent on the last page. */
  continuationToken?: string;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

/** Reads and writes job entities with ETag concurrency. */
export class JobStore {
  constructor(readonly table: TableClient) {}

  /** Stores a new job (its own earlier try, applied after it was cut, counts: tables.ts). */
  async create(record: JobRecord): Promise<Versioned<JobRecord>> {
    try {
      return { value: record, etag: await insertEntity(this.table, toEntity(record)) };
    } catch (error) {
      if (restStatus(error) === 409) throw new ConcurrencyError(`job ${record.id}`, { cause: error });
      throw error;
    }
  }

  /** The job with its ETag, or undefined when there is none. */
  async get(id: string): Promise<Versioned<JobRecord> | undefined> {
    if (!isJobId(id)) return undefined;
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(JOB_PARTITION, id);
      return { value: fromEntity(entity), etag: entity.etag };
    } catch (error) {
      if (restStatus(error) === 404) return undefined;
      throw error;
    }
  }

  /**
   * Replaces the job if it still has `etag`; returns the new ETag. Throws ConcurrencyError when
   * someone changed it since, JobNotFoundError when it is gone. This call's own earlier try,
   * applied after it was cut, is not someone (tables.ts).
   */
  async replace(record: JobRecord, etag: string): Promise<string> {
    if (!etag) throw new Error(`refusing an unconditional update of job ${record.id}: pass the ETag it was read with`);
    try {
      return await replaceEntity(this.table, toEntity(record), etag);
    } catch (error) {
      const status = restStatus(error);
      if (status === 412) throw new ConcurrencyError(`job ${record.id}`, { cause: error });
      if (status === 404) throw new JobNotFoundError(record.id);
      throw error;
    }
  }

  /** Deletes the job if it still has `etag`. */
  async delete(id: string, etag: string): Promise<void> {
    try {
      await this.table.deleteEntity(JOB_PARTITION, id, { etag });
    } catch (error) {
      const status = restStatus(error);
      if (status === 404) return;
      if (status === 412) throw new ConcurrencyError(`job ${id}`, { cause: error });
      throw error;
    }
  }

  /**
   * Recent jobs, newest first. Follows the service's continuation until the page is full (the
   * service may answer a filtered query with short or empty pages), and asks for one job more than
   * the page holds to know whether another page exists.
   */
  async list(options: ListJobsOptions = {}): Promise<JobPage> {
    const pageSize = Math.min(Math.max(options.pageSize ?? DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE);
    let filter = odata`PartitionKey eq ${JOB_PARTITION}`;
    if (options.after !== undefined) filter += ` and ${odata`RowKey gt ${options.after}`}`;
    if (options.statuses && options.statuses.length > 0) {
      filter += ` and (${options.statuses.map((s) => odata`status eq ${s}`).join(' or ')})`;
    }
    const jobs: JobRecord[] = [];
    let continuationToken: string | undefined;
    do {
      const pages = this.table
        .listEntities<Record<string, unknown>>({ queryOptions: { filter } })
        .byPage({ maxPageSize: pageSize + 1 - jobs.length, ...(continuationToken !== undefined && { continuationToken }) });
      const { value: page } = await pages.next();
      if (!page) break;
      for (const entity of page) jobs.push(fromEntity(entity));
      continuationToken = page.continuationToken;
    } while (jobs.length <= pageSize && continuationToken !== undefined);
    if (jobs.length > pageSize) {
      jobs.length = pageSize;
      return { jobs, continuationToken: jobs[jobs.length - 1].id };
    }
    return { jobs };
  }
}

function toEntity(record: JobRecord): Entity {
  const entity: Entity = {
    partitionKey: JOB_PARTITION,
    rowKey: record.id,
    status: record.status,
    source: record.source,
    force: record.force,
    referrers: record.referrers,
    attempts: record.attempts,
    continuations: record.continuations,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
  const optional = {
    allowNondistributableArtifacts: record.allowNondistributableArtifacts,
    sourceDigest: record.sourceDigest,
    sourceMediaType: record.sourceMediaType,
    targetDigest: record.targetDigest,
    startedAt: record.startedAt,
    completedAt: record.completedAt,
    leaseOwner: record.leaseOwner,
    leaseExpiresAt: record.leaseExpiresAt,
    deliveryDequeueCount: record.deliveryDequeueCount,
    sealedCredentials: record.sealedCredentials,
    cancelRequestedAt: record.cancelRequestedAt,
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) entity[key] = value;
  writeJson(entity, 'targets', record.targets);
  writeJson(entity, 'platforms', record.platforms);
  writeJson(entity, 'manifests', record.manifests);
  if (record.externalBlobs) writeJson(entity, 'externalBlobs', record.externalBlobs);
  writeJson(entity, 'progress', record.progress);
  if (record.error) writeJson(entity, 'error', record.error);
  if (record.lastError) writeJson(entity, 'lastError', record.lastError);
  if (record.manifestCounts) writeJson(entity, 'manifestCounts', record.manifestCounts);
  checkEntityLimits(entity, `job ${record.id}`);
  return entity;
}

function fromEntity(entity: TableEntityResult<Record<string, unknown>>): JobRecord {
  const str = (key: string) => (typeof entity[key] === 'string' ? (entity[key] as string) : undefined);
  const record: JobRecord = {
    id: entity.rowKey as string,
    status: entity.status as JobStatus,
    source: entity.source as string,
    targets: readJson(entity, 'targets', []),
    force: entity.force === true,
    platforms: readJson(entity, 'platforms', []),
    referrers: entity.referrers === true,
    ...(entity.allowNondistributableArtifacts === true && { allowNondistributableArtifacts: true }),
    manifests: readJson(entity, 'manifests', []),
    progress: readJson(entity, 'progress', emptyProgress()),
    attempts: Number(entity.attempts ?? 0),
    continuations: Number(entity.continuations ?? 0),
    createdAt: entity.createdAt as string,
    updatedAt: entity.updatedAt as string,
  };
  const optional: Partial<JobRecord> = {
    sourceDigest: str('sourceDigest'),
    sourceMediaType: str('sourceMediaType'),
    targetDigest: str('targetDigest'),
    startedAt: str('startedAt'),
    completedAt: str('completedAt'),
    leaseOwner: str('leaseOwner'),
    leaseExpiresAt: str('leaseExpiresAt'),
    deliveryDequeueCount: typeof entity.deliveryDequeueCount === 'number' ? entity.deliveryDequeueCount : undefined,
    sealedCredentials: str('sealedCredentials'),
    cancelRequestedAt: str('cancelRequestedAt'),
    error: readJson(entity, 'error', undefined),
    lastError: readJson(entity, 'lastError', undefined),
    manifestCounts: readJson(entity, 'manifestCounts', undefined),
    externalBlobs: readJson(entity, 'externalBlobs', undefined),
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) (record as unknown as Record<string, unknown>)[key] = value;
  return record;
}
