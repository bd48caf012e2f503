/**
 * The watches API's work, apart from HTTP: saving a checked watch (credentials sealed), and the
 * documents GET answers with, which show each tracked tag with its job's result, the last run
 * and the next scheduled one, and never a password.
 */
import { mapLimit } from '../copy/limit.js';
import { RequestError } from '../jobs/errors.js';
import type { JobStatus } from '../jobs/job-record.js';
import type { JobStore } from '../jobs/job-store.js';
import { checkSource } from '../jobs/outbound-policy.js';
import type { SecretBox } from '../jobs/secret-box.js';
import { sealCredentials } from '../jobs/source-credentials.js';
import type { RegistryHosts } from '../registry/hosts.js';
import { parseReference } from '../registry/reference.js';
import { watchSecretContext } from './resync.js';
import type { TagSelection } from './tag-filter.js';
import { checkWatchName, parseWatchRequest } from './watch-request.js';
import type { TrackedTag, WatchCondition, WatchRecord, WatchRun, WatchStore } from './watch-store.js';

/** Job lookups made at once for one GET. */
const JOB_LOOKUP_CONCURRENCY = 8;

/** A watch as GET shows it. */
export interface WatchDocument {
  name: string;
  source: string;
  target: string;
  tags: TagSelection | { single: string };
  platforms: string[];
  referrers: boolean;
  enabled: boolean;
  /** The source user name when credentials are stored; the password is never shown. */
  username?: string;
  createdAt: string;
  updatedAt: string;
  /** Only in GET of one watch: each tracked tag and its last job's result. */
  trackedTags?: Record<string, TrackedTag & { result?: JobStatus | 'unknown' }>;
  lastRun?: WatchRun;
  /** When the resync timer runs next, as its host last said; absent before its first run. */
  nextRun?: string;
}

export interface SaveWatchDeps {
  store: WatchStore;
  targetRegistry: string;
  /** The service's hosts: their address policy checks the source as an import's is checked. */
  hosts: RegistryHosts;
  /** HOIST_ALLOWED_SOURCES. */
  allowedSources?: readonly string[];
  secretBox?: SecretBox;
  now?: () => Date;
}

/**
 * Validates and stores a watch under `name`, only as `condition` allows (WatchStore.put); returns
 * its document, whether it is new, and its ETag.
 */
export async function saveWatch(name: string, body: unknown, deps: SaveWatchDeps, condition: WatchCondition = {}): Promise<{ created: boolean; watch: WatchDocument; etag: string }> {
  checkWatchName(name);
  const request = parseWatchRequest(body);
  const upstream = parseReference(request.source);
  if (upstream.registry.name === deps.targetRegistry && upstream.repository === request.target) {
    throw new RequestError('INVALID_FIELD', `"target" is the source repository itself (${request.source} in the target registry ${deps.targetRegistry}): a watch would copy onto its own source; give another "target"`, 'target');
  }
  // Refused now rather than by every resync: the same rules as for an import's source.
  await checkSource(upstream.registry, deps);
  const now = (deps.now ?? (() => new Date()))().toISOString();
  const existing = await deps.store.get(name);
  const record: WatchRecord = {
    name,
    source: request.source,
    ...(request.sourceTag !== undefined && { sourceTag: request.sourceTag }),
    target: request.target,
    tags: request.tags,
    platforms: request.platforms,
    referrers: request.referrers,
    enabled: request.enabled,
    ...(request.username !== undefined && request.password !== undefined && {
      username: request.username,
      sealedCredentials: sealCredentials(deps.secretBox, watchSecretContext(name), { username: request.username, password: request.password }),
    }),
    createdAt: existing?.value.createdAt ?? now,
    updatedAt: now,
  };
  const { created, etag } = await deps.store.put(record, condition);
  return { created, watch: toWatchDocument(record), etag };
}

/** A watch's document; with `detail`, its tracked tags (and their jobs' results), last and next run. */
export async function describeWatch(record: WatchRecord, store: WatchStore, jobs: JobStore): Promise<WatchDocument> {
  const [{ value: state }, nextRun] = await Promise.all([store.state(record.name, record.createdAt), store.nextRun()]);
  const entries = Object.entries(state.tags);
  const trackedTags: NonNullable<WatchDocument['trackedTags']> = {};
  await mapLimit(entries, JOB_LOOKUP_CONCURRENCY, async ([tag, tracked]) => {
    const job = tracked.jobId === undefined ? undefined : await jobs.get(tracked.jobId);
    trackedTags[tag] = { ...tracked, ...(tracked.jobId !== undefined && { result: job?.value.status ?? 'unknown' }) };
  });
  return { ...toWatchDocument(record), trackedTags, ...(state.lastRun && { lastRun: state.lastRun }), ...(nextRun !== undefined && { nextRun }) };
}

/** What GET shows of a stored watch, field by field so nothing sealed leaks. */
export function toWatchDocument(record: WatchRecord): WatchDocument {
  return {
    name: record.name,
    source: record.sourceTag === undefined ? record.source : `${record.source}:${record.sourceTag}`,
    target: record.target,
    tags: record.sourceTag === undefined ? record.tags : { single: record.sourceTag },
    platforms: record.platforms,
    referrers: record.referrers,
    enabled: record.enabled,
    ...(record.username !== undefined && { username: record.username }),
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}
