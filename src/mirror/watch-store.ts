/**
 * Watches in Azure Tables, two entities per watch in one table so that the API and the timer never
 * overwrite each other's writes: the watch as the caller gave it (partition `watch`), and what
 * resyncs and push events learned (partition `state`: tracked tags, the last run). Each is
 * written conditionally on the ETag it was read with; a lost race is a ConcurrencyError, and
 * state updates are re-read and re-applied. A state names the version of the watch it is for (its
 * createdAt), so a watch deleted and re-created under one name never inherits the old one's.
 */
import { odata, type TableClient, type TableEntityResult } from '@azure/data-tables';
import { ConcurrencyError } from '../jobs/errors.js';
import type { Versioned } from '../jobs/job-store.js';
import { checkEntityLimits, entitySize, MAX_ENTITY_BYTES, readJson, restStatus, writeJson } from '../jobs/tables.js';
import type { WatchRequest } from './watch-request.js';

const WATCH_PARTITION = 'watch';
const STATE_PARTITION = 'state';
/** One entity for the resync timer's own schedule (its next run, as the host told it). */
const SCHEDULE_KEY = { partitionKey: 'schedule', rowKey: 'resync' };
/** Upstream hosts waiting out a 429's Retry-After, one row each. */
const COOLDOWN_PARTITION = 'cooldown';
/** Attempts of a state read-modify-write racing other writers (the timer, events) before giving up. */
const STATE_UPDATE_ATTEMPTS = 5;

/** A watch as stored: the checked request, with the password sealed (never stored in the clear). */
export interface WatchRecord extends Omit<WatchRequest, 'password'> {
  name: string;
  /** `{username, password}` sealed with HOIST_SECRET_KEY for the context `watch:<name>`. */
  sealedCredentials?: string;
  createdAt: string;
  updatedAt: string;
}

/** One upstream tag a watch keeps in sync. */
export interface TrackedTag {
  /** The upstream digest last synced (queued, or found already at the target). */
  digest: string;
  /** When that digest was last seen upstream. */
  checkedAt: string;
  /**
   * When the upstream tag was last seen at `digest`, by the clock that saw it: the push event's
   * own time, or the start of the resync that HEADed it (before its HEADs, so a push during the
   * run is never taken for an older one). A push event no newer than this is late or repeated
   * and is skipped. Absent in states written before it was kept.
   */
  observedAt?: string;
  /** The job that copies it, when one had to; absent when the target already held it. */
  jobId?: string;
  /** When that job was queued; shed, with `trigger`, by a state at Azure Tables' size limit (stateEntity). */
  queuedAt?: string;
  /** What queued it: `resync`, or `event:<id>` for a push event; shed like `queuedAt`. */
  trigger?: string;
  /**
   * Syncs submitted for this tag so far (kept across digests). Part of the sync's Idempotency-Key:
   * every trigger that read the same count asks for the same job, and a sync after that job
   * ended reads a higher count, so it may queue a new one.
   */
  syncs?: number;
  /**
   * The watch's epoch (WatchState.epoch) when tracking of this tag began; absent for 0. Part of
   * the sync's Idempotency-Key with `syncs`: a tag dropped and tracked again starts counting its
   * syncs afresh, under a higher epoch, so it can never ask for a job of its earlier tracking.
   */
  epoch?: number;
}

/**
 * Whether sighting `a` (an observedAt) came after sighting `b`; false when either is unknown. The
 * one rule by which push events and resyncs decide whose sighting of a tag is the newer.
 */
export function seenLater(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && Date.parse(a) > Date.parse(b);
}

/** What the last resync did for a watch. */
export interface WatchRun {
  startedAt: string;
  finishedAt: string;
  /** Tag-list pages read. */
  tagListRequests: number;
  /** Manifest HEADs upstream. */
  heads: number;
  /** Manifest and config GETs upstream, for creation times not yet cached; absent when none. */
  gets?: number;
  jobsQueued: number;
  /** Tags the filters picked. */
  wanted: number;
  /**
   * Set when the filters picked more tags than a watch follows (MAX_TRACKED_TAGS): only the last
   * `followed` of the `matched`, in natural order (compareTagsNaturally), were synced and tracked.
   */
  wantedTags?: { matched: number; followed: number };
  /**
   * Set when a `latest` N of tags that are not semver matched more tags than a run compares by
   * creation time (MAX_CREATION_CANDIDATES): only the last `compared` of the `matched`, in
   * natural order (compareTagsNaturally), were candidates, so a newer image under an earlier tag
   * is missed.
   */
  creationCandidates?: { matched: number; compared: number };
  /** Tracked tags this run dropped: no longer picked by the filters, or gone upstream. */
  untracked?: { count: number; tags: string[] };
  /** Set when a rate limit, a 429 or a failure cut the run short; the rest waits for the next run. */
  stopped?: { reason: string; code: 'RATE_LIMIT_LOW' | 'TOO_MANY_REQUESTS' | 'FAILED'; retryAfter?: string };
}

/** What resyncs and events learned about a watch. */
export interface WatchState {
  tags: Record<string, TrackedTag>;
  lastRun?: WatchRun;
  /**
   * Creation times by manifest digest, for a `latest` N of tags that are not semver: a digest
   * seen once costs no GET again. Only the last run's candidates are kept.
   */
  created?: Record<string, string>;
  /**
   * Raised each time a run drops tracked tags (absent for 0). A tag tracked afresh takes the
   * current epoch, so its sync count, which restarts at 0, never meets the keys of jobs from
   * before it was dropped (the count that told them apart was dropped with it).
   */
  epoch?: number;
}

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

/**
 * A caller's precondition on writing a watch (HTTP If-Match / If-None-Match): `ifMatch` is an
 * ETag that GET returned, or `*` for any existing version; `ifNoneMatch: '*'` asks for a create.
 */
export interface WatchCondition {
  ifMatch?: string;
  ifNoneMatch?: '*';
}

/** A watch write refused because the stored watch is not the version the caller named. */
export class WatchPreconditionError extends Error {
  override readonly name = 'WatchPreconditionError';
  readonly code = 'PRECONDITION_FAILED';
  constructor(
    message: string,
    /** The header whose condition failed. */
    readonly header: 'If-Match' | 'If-None-Match',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Watches and their state, with ETag concurrency. */
export class WatchStore {
  constructor(readonly table: TableClient) {}

  /** The watch, or undefined. */
  async get(name: string): Promise<Versioned<WatchRecord> | undefined> {
    const entity = await this.read(WATCH_PARTITION, name);
    return entity && { value: readJson<WatchRecord>(entity, 'watch', undefined as never), etag: entity.etag };
  }

  /**
   * Creates or replaces a watch; with a `condition`, only when the stored watch is the version it
   * names (Tables checks the ETag, so two writers cannot both pass), else WatchPreconditionError.
   * Without one the last writer wins. Returns whether it was created, and its new ETag.
   */
  async put(record: WatchRecord, condition: WatchCondition = {}): Promise<{ created: boolean; etag: string }> {
    const entity: Entity = { partitionKey: WATCH_PARTITION, rowKey: record.name, enabled: record.enabled };
    writeJson(entity, 'watch', record);
    checkEntityLimits(entity, `watch ${record.name}`);
    if (condition.ifMatch !== undefined) {
      try {
        const response = await this.table.updateEntity(entity, 'Replace', { etag: condition.ifMatch });
        return { created: false, etag: response.etag ?? '' };
      } catch (error) {
        throw preconditionFailed(error, record.name, condition.ifMatch);
      }
    }
    try {
      const response = await this.table.createEntity(entity);
      return { created: true, etag: response.etag ?? '' };
    } catch (error) {
      if (restStatus(error) !== 409) throw error;
      if (condition.ifNoneMatch === '*') throw new WatchPreconditionError(`watch ${record.name} already exists (If-None-Match: * creates only): GET it for its ETag and replace it with If-Match`, 'If-None-Match', { cause: error });
    }
    const response = await this.table.upsertEntity(entity, 'Replace');
    return { created: false, etag: response.etag ?? '' };
  }

  /**
   * Deletes a watch and its state; false when there was none. With `ifMatch` (an ETag, or `*`),
   * only the version it names is deleted, else WatchPreconditionError (none at all included).
   */
  async delete(name: string, ifMatch?: string): Promise<boolean> {
    let existed: boolean;
    try {
      existed = await this.remove(WATCH_PARTITION, name, ifMatch);
    } catch (error) {
      throw ifMatch === undefined ? error : preconditionFailed(error, name, ifMatch);
    }
    if (!existed && ifMatch !== undefined) throw preconditionFailed(undefined, name, ifMatch);
    await this.remove(STATE_PARTITION, name);
    return existed;
  }

  /** Every watch, by name. */
  async list(): Promise<WatchRecord[]> {
    const watches: WatchRecord[] = [];
    const entities = this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${WATCH_PARTITION}` } });
    for await (const entity of entities) watches.push(readJson<WatchRecord>(entity, 'watch', undefined as never));
    return watches;
  }

  /**
   * The state of the watch `name` created at `createdAt` (empty when nothing ran yet). State left
   * by an earlier watch of that name (deleted, and re-created while a run of it was still
   * writing) is not this watch's: it reads as empty.
   */
  async state(name: string, createdAt: string): Promise<Versioned<WatchState>> {
    return stateOf(await this.read(STATE_PARTITION, name), createdAt);
  }

  /**
   * Applies `change` to the freshest state of the watch created at `createdAt` and writes it
   * conditionally, re-reading and re-applying when another writer got there first. `change` must
   * be safe to call again. A writer for a watch that has since been deleted and re-created (the
   * stored state is a newer watch's) writes nothing: that state is not its own to change.
   */
  async updateState(name: string, createdAt: string, change: (state: WatchState) => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const stored = await this.read(STATE_PARTITION, name);
      if (typeof stored?.watchCreatedAt === 'string' && stored.watchCreatedAt > createdAt) return;
      const { value, etag } = stateOf(stored, createdAt);
      change(value);
      const entity = stateEntity(name, createdAt, value);
      checkEntityLimits(entity, `watch state ${name}`);
      try {
        if (etag === '') await this.table.createEntity(entity);
        else await this.table.updateEntity(entity, 'Replace', { etag });
        return;
      } catch (error) {
        const status = restStatus(error);
        const lostRace = (etag === '' && status === 409) || status === 412;
        if (!lostRace) throw error;
        if (attempt >= STATE_UPDATE_ATTEMPTS) throw new ConcurrencyError(`watch state ${name}`, { cause: error });
      }
    }
  }

  /** Records when the resync timer runs next (the host's `scheduleStatus.next`). */
  async setNextRun(next: string): Promise<void> {
    await this.table.upsertEntity({ ...SCHEDULE_KEY, next }, 'Replace');
  }

  /** When the resync timer runs next, as last recorded; undefined before its first run. */
  async nextRun(): Promise<string | undefined> {
    const entity = await this.read(SCHEDULE_KEY.partitionKey, SCHEDULE_KEY.rowKey);
    return typeof entity?.next === 'string' ? entity.next : undefined;
  }

  /** Upstream hosts still inside a 429's Retry-After, with the ISO time each may be asked again. */
  async hostCooldowns(now: Date): Promise<Map<string, string>> {
    const cooldowns = new Map<string, string>();
    const entities = this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${COOLDOWN_PARTITION}` } });
    for await (const entity of entities) {
      if (typeof entity.host === 'string' && typeof entity.until === 'string' && Date.parse(entity.until) > now.getTime()) cooldowns.set(entity.host, entity.until);
    }
    return cooldowns;
  }

  /** Records that `host` asked (with a 429's Retry-After) not to be asked again before `until`. */
  async setHostCooldown(host: string, until: string): Promise<void> {
    // RowKeys may not hold '/', '#' or '?' among others: base64url of the host never does.
    await this.table.upsertEntity({ partitionKey: COOLDOWN_PARTITION, rowKey: Buffer.from(host).toString('base64url'), host, until }, 'Replace');
  }

  private async read(partition: string, name: string): Promise<TableEntityResult<Record<string, unknown>> | undefined> {
    try {
      return await this.table.getEntity<Record<string, unknown>>(partition, name);
    } catch (error) {
      if (restStatus(error) === 404) return undefined;
      throw error;
    }
  }

  private async remove(partition: string, name: string, etag?: string): Promise<boolean> {
    try {
      await this.table.deleteEntity(partition, name, etag === undefined ? {} : { etag });
      return true;
    } catch (error) {
      if (restStatus(error) === 404) return false;
      throw error;
    }
  }
}

/**
 * A state's entity, kept within Azure Tables' 1 MiB: 1000 tracked tags of 128 characters at
 * sha512 digests, with their event triggers and a full creation-time cache, come to about 1.1 MB.
 * Past the limit, what only saves requests or informs is shed, in this order: the creation-time
 * cache (the next run reads those configs again), then every tag's `trigger` and `queuedAt`
 * (shown by GET, used by nothing). Digests, observation times, job ids, sync counts and epochs,
 * which keep syncs right, are always kept; with them alone MAX_TRACKED_TAGS tags at their longest
 * fit (test/mirror/watch-store.test.ts writes that worst case).
 */
function stateEntity(name: string, createdAt: string, value: WatchState): Entity {
  const build = (): Entity => {
    const entity: Entity = { partitionKey: STATE_PARTITION, rowKey: name, watchCreatedAt: createdAt };
    writeJson(entity, 'tags', value.tags);
    if (value.lastRun) writeJson(entity, 'lastRun', value.lastRun);
    if (value.created) writeJson(entity, 'created', value.created);
    if (value.epoch) entity.epoch = value.epoch;
    return entity;
  };
  let entity = build();
  if (entitySize(entity) > MAX_ENTITY_BYTES && value.created !== undefined) {
    delete value.created;
    entity = build();
  }
  if (entitySize(entity) > MAX_ENTITY_BYTES) {
    for (const tracked of Object.values(value.tags)) {
      delete tracked.trigger;
      delete tracked.queuedAt;
    }
    entity = build();
  }
  return entity;
}

/**
 * The error for a conditional write that Tables refused: a precondition failure when the watch
 * changed (412) or is gone (404, or `error` undefined), and `error` itself otherwise.
 */
function preconditionFailed(error: unknown, name: string, ifMatch: string): unknown {
  const status = error === undefined ? 404 : restStatus(error);
  if (status === 404) return new WatchPreconditionError(`there is no watch named "${name}", so If-Match: ${ifMatch.slice(0, 100)} cannot match: leave If-Match out to create it`, 'If-Match', { cause: error });
  if (status === 412) return new WatchPreconditionError(`watch ${name} has changed since ETag ${ifMatch.slice(0, 100)} was read: GET it again for its current ETag`, 'If-Match', { cause: error });
  return error;
}

/** A stored state entity as the state of the watch created at `createdAt`. */
function stateOf(entity: TableEntityResult<Record<string, unknown>> | undefined, createdAt: string): Versioned<WatchState> {
  if (!entity) return { value: emptyState(), etag: '' };
  if (!belongsTo(entity, createdAt)) return { value: emptyState(), etag: entity.etag };
  const lastRun = readJson<WatchRun | undefined>(entity, 'lastRun', undefined);
  const created = readJson<Record<string, string> | undefined>(entity, 'created', undefined);
  const epoch = typeof entity.epoch === 'number' && entity.epoch > 0 ? entity.epoch : undefined;
  return { value: { tags: readJson(entity, 'tags', {}), ...(lastRun && { lastRun }), ...(created && { created }), ...(epoch && { epoch }) }, etag: entity.etag };
}

/** Whether a state entity is the watch created at `createdAt`'s (rows written before states were versioned count as any watch's). */
function belongsTo(entity: Record<string, unknown>, createdAt: string): boolean {
  return entity.watchCreatedAt === undefined || entity.watchCreatedAt === createdAt;
}

function emptyState(): WatchState {
  return { tags: {} };
}
