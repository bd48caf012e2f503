/**
 * The resync: for every enabled watch, find the tags its filters want (listing upstream tags only
 * when filters need them), HEAD each once upstream, and queue an ordinary import for a tag only
 * when its digest is not what the target tag holds and no job for that digest is already queued
 * or running. Requests per upstream host are bounded and stop when the host's rate limit runs low
 * or it answers 429; what was left waits for the next run. A watch that fails is recorded on
 * that watch and never stops the others.
 */
import { mapLimit } from '../copy/limit.js';
import type { CredentialProvider, Credentials } from '../registry/credentials.js';
import { defaultStores } from '../copy/stores.js';
import type { RegistryHosts } from '../registry/hosts.js';
import { parseReference, type Reference } from '../registry/reference.js';
import type { JobStore } from '../jobs/job-store.js';
import type { SecretBox } from '../jobs/secret-box.js';
import { targetReference } from '../jobs/import-references.js';
import { jobCredentials, openCredentials, redact } from '../jobs/source-credentials.js';
import { submitImport, type SubmitImportDeps } from '../jobs/submit-import.js';
import { HostBudgets, type HostBudget } from './rate-limit.js';
import { selectTags } from './tag-filter.js';
import { headTag, listTags, type UpstreamCounts } from './upstream.js';
import type { TrackedTag, WatchRecord, WatchRun, WatchStore } from './watch-store.js';

/** Tags one watch follows at most; a selection beyond it is cut (and the run says so). */
export const MAX_TRACKED_TAGS = 1000;
/** Watches resynced at once; each host's own gate bounds the requests. */
const WATCH_CONCURRENCY = 4;
/** Tags of one watch in flight at once (the host gate is the real bound). */
const TAG_CONCURRENCY = 16;

export interface ResyncDeps {
  store: WatchStore;
  /** What submitImport needs: the job storage, target registry, hosts and engine checks. */
  submit: SubmitImportDeps;
  /** Upstream requests in flight per registry host. */
  concurrency: number;
  /** Requests of a rate limit left unused. */
  rateLimitReserve: number;
  /** Tags per tag-list page (default DEFAULT_TAG_PAGE_SIZE). */
  tagPageSize?: number;
  now?: () => Date;
  log?: (message: string) => void;
}

/** What one resync did, per watch. */
export interface ResyncResult {
  watches: Array<{ name: string; run: WatchRun }>;
}

/** Resyncs every enabled watch. */
export async function resyncAll(deps: ResyncDeps): Promise<ResyncResult> {
  const now = deps.now ?? (() => new Date());
  const budgets = new HostBudgets(deps.concurrency, deps.rateLimitReserve, now, await deps.store.hostCooldowns(now()));
  const watches = (await deps.store.list()).filter((w) => w.enabled);
  const runs = await mapLimit(watches, WATCH_CONCURRENCY, async (watch) => ({ name: watch.name, run: await resyncWatch(watch, budgets, deps) }));
  // A Retry-After beyond the next run is honoured by that run too.
  for (const { host, until } of budgets.newCooldowns()) await deps.store.setHostCooldown(host, until);
  return { watches: runs };
}

/** Resyncs one watch and records its run; never throws for the watch's own failures. */
async function resyncWatch(watch: WatchRecord, budgets: HostBudgets, deps: ResyncDeps): Promise<WatchRun> {
  const now = deps.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const counts: UpstreamCounts = { heads: 0, tagListRequests: 0 };
  const changes = new Map<string, TrackedTag>();
  let jobsQueued = 0;
  let wanted = 0;
  let stopped: WatchRun['stopped'];
  const secrets: Array<string | undefined> = [];
  try {
    const credentials = watchCredentials(watch, deps.submit.secretBox);
    secrets.push(credentials?.password);
    const repository = parseReference(watch.source);
    const upstream = repository.withRepository(repository.repository);
    const hosts = deps.submit.hosts.withCredentials(upstreamProvider(watch, credentials, deps.submit));
    const budget = budgets.for(upstream.registry.apiHost);
    const tags = await wantedTags(watch, upstream, hosts, budget, counts, deps.tagPageSize);
    if (tags === 'stopped') {
      stopped = { ...budget.stop! };
    } else {
      wanted = tags.length;
      const state = (await deps.store.state(watch.name)).value;
      const targetHosts = deps.submit.hosts.withCredentials(targetCheckCredentials(upstream.registry.name, deps.submit));
      await mapLimit(tags.slice(0, MAX_TRACKED_TAGS), TAG_CONCURRENCY, async (tag) => {
        const digest = await headTag(upstream.withTag(tag), hosts, budget, counts);
        if (digest === 'stopped' || digest === undefined) return;
        const outcome = await syncTag({ watch, tag, digest, tracked: state.tags[tag], trigger: 'resync', credentials, targetHosts }, deps);
        changes.set(tag, outcome.tracked);
        if (outcome.queued) jobsQueued++;
      });
      if (budget.stop) stopped = { ...budget.stop };
      else if (tags.length > MAX_TRACKED_TAGS) stopped = { code: 'FAILED', reason: `the filters pick ${tags.length} tags; only the first ${MAX_TRACKED_TAGS} are followed: narrow "tags"` };
    }
  } catch (error) {
    const message = redact(error instanceof Error ? error.message : String(error), secrets);
    deps.log?.(`resync: watch ${watch.name} failed: ${message}`);
    stopped = { code: 'FAILED', reason: message };
  }
  const run: WatchRun = { startedAt, finishedAt: now().toISOString(), tagListRequests: counts.tagListRequests, heads: counts.heads, jobsQueued, wanted, ...(stopped && { stopped }) };
  await deps.store.updateState(watch.name, (state) => {
    for (const [tag, tracked] of changes) state.tags[tag] = tracked;
    state.lastRun = run;
  });
  return run;
}

/** The tags a watch wants now: its one tag, or the upstream list through its filters. */
async function wantedTags(watch: WatchRecord, upstream: Reference, hosts: RegistryHosts, budget: HostBudget, counts: UpstreamCounts, pageSize?: number): Promise<string[] | 'stopped'> {
  if (watch.sourceTag !== undefined) return [watch.sourceTag];
  const listed = await listTags(upstream, hosts, budget, counts, pageSize);
  return listed === 'stopped' ? listed : selectTags(listed, watch.tags);
}

/** What to do about one upstream tag at one digest. */
export interface SyncTagInput {
  watch: WatchRecord;
  tag: string;
  digest: string;
  tracked: TrackedTag | undefined;
  /** `resync`, or `event:<id>`. */
  trigger: string;
  credentials: Credentials | undefined;
  /** Hosts with the target credentials, for the target tag's HEAD. */
  targetHosts: RegistryHosts;
  /** For a push event: one job per event, watch and tag, however often the event is delivered. */
  idempotencyKey?: string;
}

/**
 * Queues an import of `digest` into the watch's target tag unless the target tag already holds it
 * or a job for that digest is still queued or running. Returns the tag's new tracked entry.
 */
export async function syncTag(input: SyncTagInput, deps: Pick<ResyncDeps, 'submit' | 'now'>): Promise<{ tracked: TrackedTag; queued: boolean; jobId?: string }> {
  const now = (deps.now ?? (() => new Date()))().toISOString();
  const { watch, tag, digest, tracked } = input;
  // The target may be the local host's layouts (`oci:DIR`), which only the stores read.
  const target = targetReference(deps.submit.targetRegistries[0]!, `${watch.target}:${tag}`);
  const held = (await defaultStores(input.targetHosts).target(target).headManifest(target))?.digest;
  if (held === digest) {
    const kept = tracked?.digest === digest ? tracked : undefined;
    return { tracked: { ...kept, digest, checkedAt: now }, queued: false };
  }
  if (tracked?.digest === digest && tracked.jobId !== undefined && (await isPending(tracked.jobId, deps.submit.jobs))) {
    return { tracked: { ...tracked, checkedAt: now }, queued: false };
  }
  const { job, replayed } = await submitImport(
    {
      source: `${watch.source}@${digest}`,
      images: [`${watch.target}:${tag}`],
      // The target tag exists at another digest, or not at all: either way it is to follow upstream.
      force: true,
      platforms: watch.platforms,
      referrers: watch.referrers,
      ...(input.credentials && { username: input.credentials.username, password: input.credentials.password }),
    },
    { sourceSeen: true, ...(input.idempotencyKey !== undefined && { idempotencyKey: input.idempotencyKey }) },
    deps.submit,
  );
  return { tracked: { digest, checkedAt: now, jobId: job.id, queuedAt: job.createdAt, trigger: input.trigger }, queued: !replayed, jobId: job.id };
}

async function isPending(jobId: string, jobs: JobStore): Promise<boolean> {
  const job = await jobs.get(jobId);
  return job !== undefined && (job.value.status === 'queued' || job.value.status === 'running');
}

/** The watch's upstream credentials, opened; undefined for anonymous pulls. */
export function watchCredentials(watch: WatchRecord, box: SecretBox | undefined): Credentials | undefined {
  return watch.sealedCredentials === undefined ? undefined : openCredentials(box, watchSecretContext(watch.name), watch.sealedCredentials);
}

/** What a watch's credentials are sealed to, so a sealed value copied onto another watch does not open. */
export function watchSecretContext(name: string): string {
  return `watch:${name}`;
}

function upstreamProvider(watch: WatchRecord, credentials: Credentials | undefined, submit: SubmitImportDeps): CredentialProvider {
  return jobCredentials({
    // One token cache per watch and version of it: a PUT with new credentials must not go on
    // using the transport (and the credentials) of the old ones.
    id: `watch:${watch.name}:${watch.updatedAt}`,
    sourceRegistry: parseReference(watch.source).registry.name,
    targetRegistry: submit.targetRegistries[0],
    ...(credentials && { source: credentials }),
    ...(submit.targetCredentials && { target: submit.targetCredentials }),
    // An ACR upstream the watch has no credentials for is read with the app's identity, as imports are.
    ...(submit.identity && { identity: submit.identity }),
  });
}

/**
 * The credentials of the target tag's HEAD: the target settings' Basic credentials, else the
 * app's Azure identity (an ACR target reached with a managed identity has no password at all).
 */
export function targetCheckCredentials(sourceRegistry: string, submit: SubmitImportDeps): CredentialProvider {
  return jobCredentials({
    id: 'mirror:target-check',
    sourceRegistry,
    targetRegistry: submit.targetRegistries[0]!,
    ...(submit.targetCredentials && { target: submit.targetCredentials }),
    ...(submit.identity && { identity: submit.identity }),
  });
}

