/**
 * The resync: for every enabled watch, find the tags its filters want (listing upstream tags only
 * when filters need them), HEAD each once upstream, and queue an ordinary import for a tag only
 * when its digest is not what the target tag holds and no job for that digest is already queued
 * or running. Requests per upstream host are bounded and stop when the host's rate limit runs low
 * or it answers 429; what was left waits for the next run. A watch that fails is recorded on
 * that watch and never stops the others.
 */
import { createHash } from 'node:crypto';
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
import { compareTagsNaturally, lastInNaturalOrder, selectTags } from './tag-filter.js';
import { headTag, imageCreated, listTags, type UpstreamCounts } from './upstream.js';
import { seenLater, type TrackedTag, type WatchRecord, type WatchRun, type WatchState, type WatchStore } from './watch-store.js';

/**
 * Tags one watch follows at most; a selection beyond it is cut to the last ones in natural order
 * (compareTagsNaturally), and the run says so (`wantedTags` in its record).
 */
export const MAX_TRACKED_TAGS = 1000;
/**
 * Tags whose creation times a `latest` N of non-semver tags compares at most (the last ones in
 * natural order: compareTagsNaturally): each costs a HEAD every run, and two or three GETs the first time its
 * digest is seen. A run that leaves tags out says so (`creationCandidates` in its record).
 */
export const MAX_CREATION_CANDIDATES = 100;
/** Untracked tags a run names in its record (it counts them all). */
const MAX_REPORTED_UNTRACKED = 20;
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
  /** Tags one watch follows at most (default MAX_TRACKED_TAGS; tests lower it). */
  maxTrackedTags?: number;
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
  const counts: UpstreamCounts = { heads: 0, tagListRequests: 0, gets: 0 };
  const changes = new Map<string, TrackedTag>();
  // Tracked entries to drop, as read at the start: an event that rewrites one meanwhile keeps it.
  const untracked = new Map<string, TrackedTag>();
  let created: WatchState['created'];
  let creationCandidates: WatchRun['creationCandidates'];
  let jobsQueued = 0;
  let wanted = 0;
  let cut: WatchRun['wantedTags'];
  let stopped: WatchRun['stopped'];
  const secrets: Array<string | undefined> = [];
  try {
    const credentials = watchCredentials(watch, deps.submit.secretBox);
    secrets.push(credentials?.password);
    const repository = parseReference(watch.source);
    const upstream = repository.withRepository(repository.repository);
    const hosts = deps.submit.hosts.withCredentials(upstreamProvider(watch, credentials, deps.submit));
    const budget = budgets.for(upstream.registry.apiHost);
    const state = (await deps.store.state(watch.name, watch.createdAt)).value;
    const want = await wantedTags(watch, upstream, hosts, budget, counts, state, deps.tagPageSize);
    if (want === 'stopped') {
      stopped = { ...budget.stop! };
    } else {
      const { tags, digests } = want;
      created = want.created;
      creationCandidates = want.candidates;
      wanted = tags.length;
      const cap = deps.maxTrackedTags ?? MAX_TRACKED_TAGS;
      const follow = tags.length > cap ? lastInNaturalOrder(tags, cap) : tags;
      if (tags.length > cap) cut = { matched: tags.length, followed: cap };
      const followed = new Set(follow);
      for (const [tag, tracked] of Object.entries(state.tags)) if (!followed.has(tag)) untracked.set(tag, tracked);
      const targetHosts = deps.submit.hosts.withCredentials(targetCheckCredentials(upstream.registry.name, deps.submit));
      await mapLimit(follow, TAG_CONCURRENCY, async (tag) => {
        const digest = digests.has(tag) ? digests.get(tag) : await headTag(upstream.withTag(tag), hosts, budget, counts);
        if (digest === undefined && state.tags[tag] !== undefined) untracked.set(tag, state.tags[tag]);
        if (digest === 'stopped' || digest === undefined) return;
        const outcome = await syncTag({ watch, tag, digest, tracked: state.tags[tag], observedAt: startedAt, epoch: state.epoch ?? 0, trigger: 'resync', credentials, targetHosts }, deps);
        changes.set(tag, outcome.tracked);
        if (outcome.queued) jobsQueued++;
      });
      if (budget.stop) stopped = { ...budget.stop };
    }
  } catch (error) {
    const message = redact(error instanceof Error ? error.message : String(error), secrets);
    deps.log?.(`resync: watch ${watch.name} failed: ${message}`);
    stopped = { code: 'FAILED', reason: message };
  }
  const dropped = [...untracked.keys()].sort();
  const run: WatchRun = {
    startedAt,
    finishedAt: now().toISOString(),
    tagListRequests: counts.tagListRequests,
    heads: counts.heads,
    ...(counts.gets > 0 && { gets: counts.gets }),
    jobsQueued,
    wanted,
    ...(cut && { wantedTags: cut }),
    ...(creationCandidates && { creationCandidates }),
    ...(dropped.length > 0 && { untracked: { count: dropped.length, tags: dropped.slice(0, MAX_REPORTED_UNTRACKED) } }),
    ...(stopped && { stopped }),
  };
  try {
    await recordRun(watch, deps.store, { untracked, changes, created, run });
  } catch (error) {
    // Recording is the last step. A watch whose state cannot be written (storage refusing, writers
    // racing past every retry, the entity at Azure Tables' size limit) is logged and the other
    // watches go on; the jobs it queued are found again by their keys on the next run.
    deps.log?.(`resync: watch ${watch.name}: could not record the run: ${redact(error instanceof Error ? error.message : String(error), secrets)}`);
  }
  return run;
}

/** What a run learned, written onto the watch's freshest state. */
async function recordRun(watch: WatchRecord, store: WatchStore, learned: { untracked: Map<string, TrackedTag>; changes: Map<string, TrackedTag>; created: WatchState['created']; run: WatchRun }): Promise<void> {
  const { untracked, changes, created, run } = learned;
  await store.updateState(watch.name, watch.createdAt, (state) => {
    let droppedAny = false;
    for (const [tag, tracked] of untracked) {
      if (state.tags[tag]?.checkedAt !== tracked.checkedAt) continue; // rewritten meanwhile (an event): kept
      delete state.tags[tag];
      droppedAny = true;
    }
    // Its sync count goes with a dropped tag: tracked again, it restarts under a new epoch.
    if (droppedAny) state.epoch = (state.epoch ?? 0) + 1;
    for (const [tag, tracked] of changes) {
      // A push event recorded while this run was under way saw upstream later than the run did:
      // its digest and job stand (the run's record would move the tag back to an older sighting).
      const fresh = state.tags[tag];
      if (seenLater(fresh?.observedAt, tracked.observedAt)) continue;
      state.tags[tag] = tracked;
    }
    if (created !== undefined) state.created = created;
    state.lastRun = run;
  });
}

/** What a watch wants now: the tags, the digests already HEADed for them, and the creation-time cache to keep. */
interface Wanted {
  tags: string[];
  digests: Map<string, string | undefined>;
  created?: Record<string, string>;
  /** Set when more tags matched than MAX_CREATION_CANDIDATES, of which only the last (in natural order) were compared. */
  candidates?: { matched: number; compared: number };
}

/**
 * The tags a watch wants now: its one tag, or the upstream list through its filters. A `latest`
 * N of tags that are not all semver is ordered by creation time: every candidate is HEADed, and a
 * digest neither in the watch's cache nor already read this run costs the GETs of its config.
 */
async function wantedTags(watch: WatchRecord, upstream: Reference, hosts: RegistryHosts, budget: HostBudget, counts: UpstreamCounts, state: WatchState, pageSize?: number): Promise<Wanted | 'stopped'> {
  if (watch.sourceTag !== undefined) return { tags: [watch.sourceTag], digests: new Map() };
  const listed = await listTags(upstream, hosts, budget, counts, pageSize);
  if (listed === 'stopped') return listed;
  const selected = selectTags(listed, watch.tags);
  if (!selected.byCreation) return { tags: selected.tags, digests: new Map() };
  const candidates = lastInNaturalOrder(selected.tags, MAX_CREATION_CANDIDATES);
  const digests = new Map<string, string | undefined>();
  const created: Record<string, string> = {};
  // Tags often share an image (`1.27`, `1.27.3`, `stable`): its config is read once per run.
  const reading = new Map<string, Promise<string | undefined | 'stopped'>>();
  const readCreated = (digest: string) => {
    let read = reading.get(digest);
    if (read === undefined) reading.set(digest, (read = imageCreated(upstream.withDigest(digest), hosts, budget, counts)));
    return read;
  };
  const stops = await mapLimit(candidates, TAG_CONCURRENCY, async (tag) => {
    const digest = await headTag(upstream.withTag(tag), hosts, budget, counts);
    if (digest === 'stopped') return true;
    digests.set(tag, digest);
    if (digest === undefined) return false;
    const when = state.created?.[digest] ?? (await readCreated(digest));
    if (when === 'stopped') return true;
    if (when !== undefined) created[digest] = when;
    return false;
  });
  if (stops.some(Boolean)) return 'stopped';
  // Newest first; an image that names no creation time sorts last, ties by tag in natural order from the end.
  const time = (tag: string) => {
    const digest = digests.get(tag);
    const when = digest === undefined ? undefined : created[digest];
    return when === undefined ? -Infinity : Date.parse(when);
  };
  const ordered = candidates.filter((tag) => digests.get(tag) !== undefined).sort((a, b) => time(b) - time(a) || compareTagsNaturally(b, a));
  const matched = selected.tags.length;
  return { tags: ordered.slice(0, watch.tags.latest), digests, created, ...(matched > candidates.length && { candidates: { matched, compared: candidates.length } }) };
}

/** What to do about one upstream tag at one digest. */
export interface SyncTagInput {
  watch: WatchRecord;
  tag: string;
  digest: string;
  tracked: TrackedTag | undefined;
  /** When the trigger saw the tag at `digest` upstream (TrackedTag.observedAt). */
  observedAt: string;
  /** The watch state's epoch as the trigger read it (0 when absent): a tag not tracked starts in it. */
  epoch: number;
  /** `resync`, or `event:<id>`. */
  trigger: string;
  credentials: Credentials | undefined;
  /** Hosts with the target credentials, for the target tag's HEAD. */
  targetHosts: RegistryHosts;
}

/**
 * Queues an import of `digest` into the watch's target tag unless the target tag already holds it
 * or a job for that digest is still queued or running. Every trigger (the timer, any number of
 * push events) submits under one Idempotency-Key per watch version, tag, digest, tracking epoch
 * and sync count, so triggers racing on the same digest get one job between them: the "still
 * queued or running" check alone reads and then writes, and two triggers can both pass it.
 * Returns the tag's new tracked entry.
 */
export async function syncTag(input: SyncTagInput, deps: Pick<ResyncDeps, 'submit' | 'now'>): Promise<{ tracked: TrackedTag; queued: boolean; jobId?: string }> {
  const now = (deps.now ?? (() => new Date()))().toISOString();
  const { watch, tag, digest, tracked } = input;
  // A tag tracked afresh starts in the state's current epoch; a tracked one stays in its own
  // (absent: 0), whatever epoch the state had when this trigger read it, so that triggers that
  // read it before and after another tag's drop still ask under one key.
  const epoch = tracked ? (tracked.epoch ?? 0) : input.epoch;
  const inEpoch = epoch > 0 ? { epoch } : {};
  // The latest sighting of this digest counts: a resync that started before an event for the same digest must not move it back.
  const observedAt = tracked?.digest === digest && seenLater(tracked.observedAt, input.observedAt) ? tracked.observedAt! : input.observedAt;
  // The target may be the local host's layouts (`oci:DIR`), which only the stores read.
  const target = targetReference(deps.submit.targetRegistries[0]!, `${watch.target}:${tag}`);
  const held = (await defaultStores(input.targetHosts).target(target).headManifest(target))?.digest;
  if (held === digest) {
    const kept = tracked?.digest === digest ? tracked : undefined;
    return { tracked: { ...kept, digest, checkedAt: now, observedAt, ...(tracked?.syncs !== undefined && { syncs: tracked.syncs }), ...inEpoch }, queued: false };
  }
  if (tracked?.digest === digest && tracked.jobId !== undefined && (await isPending(tracked.jobId, deps.submit.jobs))) {
    return { tracked: { ...tracked, checkedAt: now, observedAt }, queued: false };
  }
  const syncs = tracked?.syncs ?? 0;
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
    { sourceSeen: true, idempotencyKey: syncKey(watch, tag, digest, epoch, syncs) },
    deps.submit,
  );
  return { tracked: { digest, checkedAt: now, observedAt, jobId: job.id, queuedAt: job.createdAt, trigger: input.trigger, syncs: syncs + 1, ...inEpoch }, queued: !replayed, jobId: job.id };
}

/**
 * The Idempotency-Key of a sync: the watch's version (a watch re-created or edited asks afresh,
 * and an edited request under an old key would be refused as a reuse), the tag, the digest, the
 * epoch its tracking began in and how many syncs of the tag came before. Hashed, as names, tags
 * and digests together can exceed the key's 255 characters.
 */
function syncKey(watch: WatchRecord, tag: string, digest: string, epoch: number, syncs: number): string {
  // Epoch 0 leaves the identity as it was before epochs, so syncs queued then are still found.
  const identity = JSON.stringify([watch.name, watch.createdAt, watch.updatedAt, tag, digest, syncs, ...(epoch > 0 ? [epoch] : [])]);
  return `sync:${createHash('sha256').update(identity, 'utf8').digest('hex')}`;
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

