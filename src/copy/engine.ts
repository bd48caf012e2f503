/**
 * The copy engine: resolve the source once, plan, move the blobs each target lacks, push
 * manifests children-first, and write target tags last, only when everything they reach is in
 * place. A time budget or abort stops it between chunks with checkpoints saved, and the same
 * request continues from them later, in this process or another.
 */
import type { Descriptor, Manifest } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { RegistryHosts } from '../registry/hosts.js';
import { isNonDistributableType } from '../registry/media-types.js';
import type { Reference } from '../registry/reference.js';
import { heldSizeMismatch } from './blob-transfer.js';
import { deferred } from './deferred.js';
import { CopyError, copyErrorFrom } from './errors.js';
import { mapLargestFirst, mapLimit } from './limit.js';
import type { ManifestNode } from './manifest.js';
import { mergeFallbackIndex, targetHasReferrersApi } from './referrers.js';
import { readSourceGraph, type SourceGraph } from './source-graph.js';
import type { SourceStore, Stores, TargetStore } from './store.js';
import { defaultStores } from './stores.js';
import type { BlobOutcome, CopyCoordination, CopyOptions, CopyPlan, CopyRequest, CopyResult, ExternalBlob, PlannedBlob, ProgressEvent, WrittenManifest } from './types.js';

export const DEFAULT_CONCURRENCY = 4;
/** HEADs carry no body and cost the registry little: check an image's many blobs 16 at a time. */
const HEAD_CONCURRENCY = 16;
/**
 * Blobs up to 1 MiB are bound by round trips, not bandwidth, and hold at most their own size in
 * memory: unless a concurrency is asked for, SMALL_BLOB_LANES more transfers move them beside the
 * DEFAULT_CONCURRENCY ones, so a registry tens of milliseconds away is not left waiting on one
 * small blob at a time. An explicit concurrency is a cap on all transfers, as asked.
 */
const SMALL_BLOB_BYTES = 1024 * 1024;
const SMALL_BLOB_LANES = 8;
/**
 * How long a wait for another copy's blob lock outlasts a spent time budget when this call has
 * moved nothing yet. Without it a continuation whose planning used up the budget would pause at
 * its first held lock, re-plan, and pause there again, for as long as the other copy runs.
 */
export const MIN_LOCK_WAIT_IN_MS = 30_000;
/** 4 MiB: GHCR refuses larger PATCHes, and the Azure SDK uses the same. */
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
/**
 * 200 GiB, ACR's limit on one layer. A descriptor's size is only a claim until the bytes come: the
 * limit turns an absurd claim (a manifest saying 10 TiB for a 115-byte config) into a clear
 * refusal at planning instead of a copy that runs until the bytes disagree.
 */
export const DEFAULT_MAX_BLOB_BYTES = 200 * 1024 ** 3;

/** One target repository and the tags wanted in it. */
interface TargetRepo {
  ref: Reference;
  store: TargetStore;
  tags: Reference[];
  blobs: PlannedBlob[];
}

/**
 * Copies `request.source` to every target: resolves the source once, copies blobs then manifests
 * (children before parents), and writes target tags last.
 */
export async function copy(request: CopyRequest, options: CopyOptions = {}): Promise<CopyResult> {
  const startedAt = Date.now();
  // A spent time budget pauses the copy only once this call has moved something, so a budget
  // shorter than the planning still makes progress on every call instead of none on any.
  let moved = false;
  const emit = (event: ProgressEvent) => {
    if (event.type === 'blob-progress' || (event.type === 'blob-done' && event.outcome !== 'skipped')) moved = true;
    options.onProgress?.(event);
  };
  // Abort means pause at the next chunk boundary; it is never passed to a socket (see
  // BlobTransfer.shouldPause).
  const budgetSpent = () => options.timeBudgetInMs !== undefined && Date.now() - startedAt >= options.timeBudgetInMs;
  // Set when the copy has failed: transfers still running stop at their next chunk boundary.
  let failing = false;
  const shouldPause = () => failing || options.abortSignal?.aborted === true || (moved && budgetSpent());
  if (request.targets.length === 0) throw new CopyError('INVALID_TARGET', 'no target given: name at least one target reference', 'target');

  // A copy given no hosts gets its own: nothing it learns outlives it.
  const hosts = options.hosts ?? new RegistryHosts();
  const stores = options.stores ?? defaultStores(hosts);
  const source = stores.source(request.source);
  const graph = await readSourceGraph(source, request.source, { platforms: request.platforms, referrers: request.referrers });
  const sourceDigest = graph.root.manifest.digest;
  const targetDigest = graph.top.manifest.digest;
  emit({ type: 'resolved', source: request.source.toString(), digest: sourceDigest, mediaType: graph.root.manifest.mediaType });
  const { blobs, external } = splitNonDistributable(uniqueBlobs(graph.manifests), request.allowNondistributableArtifacts ?? false);
  refuseOversizedBlobs(blobs, options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES);
  if (options.maxManifests !== undefined) refuseTooManyManifests(graph.manifests.length, options.maxManifests);

  // A target that names a digest says what it expects to receive: refuse anything else up front.
  for (const target of request.targets) {
    if (target.digest && target.digest !== targetDigest) {
      throw new CopyError('INVALID_TARGET', `target ${target} names digest ${target.digest}, but the copy produces ${targetDigest}; drop the digest from the target or fix it`, 'target');
    }
  }
  const repos = groupTargets(request.targets, stores);
  // No-force check, before any bytes move.
  const existing = await existingTags(request.targets, stores, targetDigest);
  if (existing.length && !request.force) throw tagExists(existing);

  // The plan needs every blob's existence check, but a copy does not wait for all of them: a
  // missing blob starts moving as soon as its own HEAD answers. Its events are held back until
  // the plan is reported, so callers still see the plan first.
  const checks = checkBlobs(repos, blobs, Math.max(options.concurrency ?? DEFAULT_CONCURRENCY, HEAD_CONCURRENCY));
  let held: ProgressEvent[] | undefined = [];
  const emitAfterPlan = (event: ProgressEvent) => (held ? held.push(event) : emit(event));
  // Waiting for another copy's upload does not move anything, yet must end with the budget: at
  // once when this call has moved something (shouldPause), else once it waited MIN_LOCK_WAIT_IN_MS.
  const shouldStopWaiting = (waitingSince: number) => shouldPause() || (budgetSpent() && Date.now() - waitingSince >= MIN_LOCK_WAIT_IN_MS);
  const transfers = request.dryRun ? Promise.resolve([]) : copyBlobs(checks, source, request.source, { ...options, hosts }, { shouldPause, shouldStopWaiting, isFailing: () => failing }, emitAfterPlan);
  // Awaited below; a failure must not count as unhandled meanwhile.
  transfers.catch(() => undefined);
  let result: CopyResult;
  let moves: Awaited<typeof transfers>;
  try {
    for (const { repo, planned } of checks) repo.blobs.push(await planned);
    const plan = makePlan(request.source, graph, repos, external);
    emit({ type: 'plan', manifests: plan.manifests.length, blobs: plan.blobs.length, bytesTotal: plan.bytesTotal, bytesToMove: plan.bytesToMove, blobsPresent: plan.blobs.filter((b) => b.present).length, blobsExternal: external.length });
    for (const blob of external) emit({ type: 'blob-external', ...blob });
    for (const event of held) emit(event);
    held = undefined;
    result = {
      status: 'completed',
      source: request.source.toString(),
      sourceDigest,
      targetDigest,
      indexDigestChanged: targetDigest !== sourceDigest,
      targets: [],
      manifests: [],
      blobs: { total: plan.blobs.length, copied: 0, skipped: 0, mounted: 0 },
      bytes: { total: plan.bytesTotal, moved: 0 },
      plan,
    };
    if (request.dryRun) return result;
    moves = await transfers;
  } catch (error) {
    // Nothing keeps uploading after copy() has failed: stop what moves, and let it settle.
    failing = true;
    await transfers.catch(() => undefined);
    throw error;
  }
  for (const { blob, outcome } of moves) {
    if (outcome === 'paused') continue;
    result.blobs[outcome]++;
    if (outcome === 'copied') result.bytes.moved += blob.size;
  }
  if (moves.some((m) => m.outcome === 'paused')) return { ...result, status: 'paused' };

  let tagged: boolean;
  try {
    for (const repo of repos) {
      await pushManifests(repo, graph, emit, result);
    }
    tagged = await writeTags(request, repos, graph.top.manifest, emit, result, options.coordination, () => options.abortSignal?.aborted === true);
  } catch (error) {
    throw explainRefusedUrls(error, graph, request.allowNondistributableArtifacts ?? false);
  }
  return tagged ? result : { ...result, status: 'paused' };
}

/**
 * Target tags that already exist and do not point at `digest` (when given): the no-force check,
 * made before any bytes move and again just before each tag is written.
 */
export async function findExistingTags(targets: Reference[], hosts: RegistryHosts, digest?: string): Promise<Array<{ reference: string; digest: string }>> {
  return existingTags(targets, defaultStores(hosts), digest);
}

async function existingTags(targets: Reference[], stores: Stores, digest?: string): Promise<Array<{ reference: string; digest: string }>> {
  const found: Array<{ reference: string; digest: string }> = [];
  for (const target of targets) {
    if (!target.tag) continue;
    // By the tag alone: a digest beside it must not turn this into a lookup by digest.
    const head = await stores
      .target(target)
      .headManifest(target.withTag(target.tag))
      .catch((e: unknown) => Promise.reject(copyErrorFrom(e, 'target')));
    if (head && head.digest !== digest) found.push({ reference: target.toString(), digest: head.digest });
  }
  return found;
}

/** The digest `ref` names now (one HEAD), or undefined when the registry has no such manifest. */
export async function resolveDigest(ref: Reference, hosts: RegistryHosts, signal?: AbortSignal): Promise<string | undefined> {
  return (await defaultStores(hosts).source(ref).headManifest(ref, signal))?.digest;
}

function tagExists(existing: Array<{ reference: string; digest: string }>): CopyError {
  const list = existing.map((e) => `${e.reference} (now ${e.digest})`).join(', ');
  // No advice here: the CLI and the API each say how to ask for force in their own words.
  return new CopyError('TAG_EXISTS', `target tag already exists: ${list}`, 'target');
}

function groupTargets(targets: Reference[], stores: Stores): TargetRepo[] {
  const byName = new Map<string, TargetRepo>();
  for (const target of targets) {
    let repo = byName.get(target.name);
    if (!repo) {
      const ref = target.withRepository(target.repository);
      repo = { ref, store: stores.target(ref), tags: [], blobs: [] };
      byName.set(target.name, repo);
    }
    if (target.tag) repo.tags.push(target.withTag(target.tag));
  }
  return [...byName.values()];
}

function uniqueBlobs(manifests: ManifestNode[]): Descriptor[] {
  const blobs = new Map<string, Descriptor>();
  for (const node of manifests) for (const blob of node.blobs) if (!blobs.has(blob.digest)) blobs.set(blob.digest, blob);
  return [...blobs.values()];
}

/**
 * Non-distributable layers are left referenced by URL unless `copyThem`: those are the
 * `external` ones, neither checked on the target nor moved.
 */
function splitNonDistributable(all: Descriptor[], copyThem: boolean): { blobs: Descriptor[]; external: ExternalBlob[] } {
  if (copyThem) return { blobs: all, external: [] };
  const external = all.filter((b) => isNonDistributableType(b.mediaType)).map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType, urls: b.urls ?? [] }));
  return { blobs: all.filter((b) => !isNonDistributableType(b.mediaType)), external };
}

/**
 * A target that refuses manifests referencing layers by URL lists MANIFEST_BLOB_UNKNOWN or
 * MANIFEST_INVALID among its errors: distribution 2.8 without `validation.manifests.urls.allow`
 * refuses the URLs themselves (HTTP 500, UNKNOWN, then MANIFEST_BLOB_UNKNOWN), other registries
 * the layer they do not hold. When the copy has non-distributable layers, say so and name the
 * ways out.
 */
function explainRefusedUrls(error: unknown, graph: SourceGraph, copied: boolean): unknown {
  const cause = error instanceof CopyError && error.cause instanceof RegistryError ? error.cause : undefined;
  if (cause?.method !== 'PUT' || ![cause.code, ...cause.details.map((d) => d.code)].some((code) => REFUSED_MANIFEST_CODES.includes(code))) return error;
  const layers = uniqueBlobs(graph.manifests).filter((b) => isNonDistributableType(b.mediaType));
  if (layers.length === 0) return error;
  const wayOut = copied
    ? 'the layers were copied, so the target refuses the URLs themselves: allow them on the target registry (distribution: validation.manifests.urls.allow)'
    : 'copy the layers into the target with --allow-nondistributable-artifacts (API: "allowNondistributableArtifacts": true), or allow foreign URLs on the target registry (distribution: validation.manifests.urls.allow)';
  return new CopyError(
    'NONDISTRIBUTABLE',
    `the target refused manifest ${cause.reference}, which references non-distributable layer(s) by URL (${layers.map((b) => b.digest).join(', ')}): it answered HTTP ${cause.status} ${[...new Set(cause.details.map((d) => d.code))].join(', ') || cause.code}. ${wayOut}; nothing was tagged`,
    'target',
    { cause },
  );
}

/** How registries refuse a manifest for a layer they do not hold or a URL they do not allow. */
const REFUSED_MANIFEST_CODES = ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID', 'BLOB_UNKNOWN'];

/** Refuses, before the target is asked anything, a blob whose descriptor claims more than `max` bytes. */
function refuseOversizedBlobs(blobs: Descriptor[], max: number): void {
  const tooLarge = blobs.find((b) => b.size > max);
  if (tooLarge) {
    throw new CopyError(
      'BLOB_TOO_LARGE',
      `blob ${tooLarge.digest} claims ${tooLarge.size} bytes, over the limit of ${max} bytes (HOIST_MAX_BLOB_BYTES): raise the limit if the blob is really that large; nothing was copied`,
      'source',
    );
  }
}

/** Refuses, before the target is asked anything, an import of more than `max` manifests. */
function refuseTooManyManifests(count: number, max: number): void {
  if (count > max) {
    throw new CopyError(
      'TOO_MANY_MANIFESTS',
      `the source has ${count} manifests to copy, over the limit of ${max} per import (HOIST_MAX_MANIFESTS): copy a subset of its platforms, or raise the limit; nothing was copied`,
      'source',
    );
  }
}

function makePlan(source: Reference, graph: SourceGraph, repos: TargetRepo[], externalBlobs: ExternalBlob[]): CopyPlan {
  const blobs = repos.flatMap((r) => r.blobs);
  const subjects = new Map([...graph.referrers].flatMap(([subject, nodes]) => nodes.map((n) => [n.manifest.digest, subject] as const)));
  return {
    source: source.toString(),
    sourceDigest: graph.root.manifest.digest,
    mediaType: graph.root.manifest.mediaType,
    targetDigest: graph.top.manifest.digest,
    manifests: graph.manifests.map((n) => {
      const attestationFor = graph.attestations.get(n.manifest.digest);
      const referrerOf = subjects.get(n.manifest.digest);
      return { digest: n.manifest.digest, mediaType: n.manifest.mediaType, size: n.manifest.bytes.length, platform: graph.platforms.get(n.manifest.digest), ...(attestationFor && { attestationFor }), ...(referrerOf && { referrerOf }) };
    }),
    blobs,
    externalBlobs,
    bytesTotal: blobs.reduce((sum, b) => sum + b.size, 0),
    bytesToMove: blobs.filter((b) => !b.present).reduce((sum, b) => sum + b.size, 0),
    ...(graph.subset && { platformSubset: graph.subset }),
  };
}

/** One blob for one target repository, and the answer of its existence check once it comes. */
interface BlobCheck {
  repo: TargetRepo;
  size: number;
  planned: Promise<PlannedBlob>;
  /** Settles once the same blob's checks in every target repository have answered. */
  checkedEverywhere: Promise<unknown>;
}

/**
 * HEADs every blob in every target repository, `concurrency` at a time: blob by blob, each in
 * every repository together, so what one repository holds is known (as a mount source) by the
 * time another's transfer of it starts.
 */
function checkBlobs(repos: TargetRepo[], blobs: Descriptor[], concurrency: number): BlobCheck[] {
  const pending = blobs.flatMap((blob) => repos.map((repo) => ({ repo, blob, ...deferred<PlannedBlob>() })));
  // Largest first, like the transfers that wait on them.
  void mapLargestFirst(pending, (p) => p.blob.size, { concurrency, smallConcurrency: 0, smallMaxSize: 0 }, async ({ repo, blob, resolve }) => {
    const present = await targetHolds(repo, blob);
    resolve({ digest: blob.digest, size: blob.size, mediaType: blob.mediaType, present, ...(isNonDistributableType(blob.mediaType) && { urls: blob.urls ?? [] }) });
  }).catch((error: unknown) => {
    // Checks not made fail with the error that stopped them (settled ones stay as they are).
    for (const check of pending) check.reject(error);
  });
  const everywhere = new Map(blobs.map((blob) => [blob.digest, Promise.allSettled(pending.filter((p) => p.blob === blob).map((p) => p.promise))]));
  return pending.map(({ repo, blob, promise }) => ({ repo, size: blob.size, planned: promise, checkedEverywhere: everywhere.get(blob.digest)! }));
}

/**
 * Whether the target repository holds `blob`, by a HEAD. Only at the descriptor's size: a lying
 * size over a blob the target holds would otherwise be tagged, and no client could pull it, so a
 * blob held at another size fails the copy.
 */
async function targetHolds(repo: TargetRepo, blob: Descriptor): Promise<boolean> {
  const held = await repo.store.headBlob(repo.ref, blob.digest).catch((e: unknown) => Promise.reject(copyErrorFrom(e, 'target')));
  if (held === undefined) return false;
  if (held !== blob.size) throw heldSizeMismatch(repo.ref.name, blob, held);
  repo.store.noteHeld(repo.ref, blob.digest);
  return true;
}

/**
 * Moves every missing blob as soon as its check answers (and the checks of the same blob in the
 * other target repositories, which may offer a mount): the largest checked blob of every platform
 * first, small ones alongside (see SMALL_BLOB_BYTES); `paused` for those the budget or an abort
 * stopped.
 */
function copyBlobs(
  checks: BlobCheck[],
  source: SourceStore,
  sourceRef: Reference,
  options: CopyOptions & { hosts: RegistryHosts },
  { shouldPause, shouldStopWaiting, isFailing }: { shouldPause: () => boolean; shouldStopWaiting: (waitingSince: number) => boolean; isFailing: () => boolean },
  emit: (event: ProgressEvent) => void,
): Promise<Array<{ blob: PlannedBlob; outcome: BlobOutcome | 'paused' }>> {
  const limits = {
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    smallConcurrency: options.concurrency ? 0 : SMALL_BLOB_LANES,
    smallMaxSize: SMALL_BLOB_BYTES,
    // A blob whose check has not answered holds no transfer slot meanwhile.
    ready: (check: BlobCheck) => check.planned,
  };
  const chunkSize = options.chunkSizeInBytes ?? DEFAULT_CHUNK_SIZE;
  // The first transfer of a blob into each registry, by registry and digest: another target
  // repository of that registry waits for it and then mounts, so the bytes cross once per registry.
  const firstUploads = new Map<string, Promise<unknown>>();
  return mapLargestFirst(checks, (check) => check.size, limits, async ({ repo, planned, checkedEverywhere }) => {
    const blob = await planned;
    if (blob.present) {
      emit({ type: 'blob-done', digest: blob.digest, size: blob.size, target: repo.ref.name, outcome: 'skipped' });
      return { blob, outcome: 'skipped' as const };
    }
    if (shouldPause()) return { blob, outcome: 'paused' as const };
    await checkedEverywhere;
    const uploadKey = `${repo.ref.registry.apiHost} ${blob.digest}`;
    const first = firstUploads.get(uploadKey);
    if (first) {
      // Waited for before any lock is taken, since the first upload may need the same lock. It
      // holds a transfer slot already, so waiting here cannot starve it.
      await first.catch(() => undefined);
      return moveOne(repo, blob);
    }
    const move = moveOne(repo, blob);
    firstUploads.set(uploadKey, move);
    return move;
  });

  async function moveOne(repo: TargetRepo, blob: PlannedBlob): Promise<{ blob: PlannedBlob; outcome: BlobOutcome | 'paused' }> {
    // Another copy may be uploading the same blob to this registry: wait for it, then skip it,
    // or mount it from the repository that copy wrote.
    const waitingSince = Date.now();
    const lock = options.coordination ? await options.coordination.lockBlob(repo.ref, blob.digest, () => shouldStopWaiting(waitingSince)) : { release: async () => {}, keepForResume: async () => {} };
    if (!lock) return { blob, outcome: 'paused' as const };
    let paused = false;
    try {
      if (options.coordination && (await targetHolds(repo, blob))) {
        emit({ type: 'blob-done', digest: blob.digest, size: blob.size, target: repo.ref.name, outcome: 'skipped' });
        return { blob, outcome: 'skipped' as const };
      }
      const outcome = await transferOne(repo, blob, lock.mountFrom);
      paused = outcome === 'paused';
      return { blob, outcome };
    } finally {
      // Only a real pause (budget, abort) resumes: a failed copy's job never comes back for the
      // blob, so keeping its lock would hold every other writer of it for a whole lease.
      await (paused && !isFailing() ? lock.keepForResume() : lock.release());
    }
  }

  function transferOne(repo: TargetRepo, blob: PlannedBlob, mountFrom: string[] | undefined): Promise<BlobOutcome | 'paused'> {
    return repo.store.pushBlob(
      {
        source,
        sourceRef: sourceRef.withRepository(sourceRef.repository),
        targetRef: repo.ref,
        mode: options.checkpoints ? 'chunked' : (options.uploadMode ?? 'monolithic'),
        chunkSize,
        checkpoints: options.checkpoints,
        mountFrom,
        shouldPause,
        onProgress: emit,
        ...(blob.urls && { foreign: { urls: blob.urls, connections: options.hosts.connections } }),
      },
      { digest: blob.digest, size: blob.size, mediaType: blob.mediaType },
    );
  }
}

/**
 * Pushes every manifest by digest, children before parents, then referrers and their fallback
 * indexes, then cosign tags. Manifests the target already has are left alone.
 */
async function pushManifests(repo: TargetRepo, graph: SourceGraph, emit: (event: ProgressEvent) => void, result: CopyResult): Promise<void> {
  // Per subject: whether the target answered a referrer's PUT with OCI-Subject (it keeps the
  // subject's referrers itself) or without (the spec says the client must keep the fallback tag).
  const subjectsWithApi = new Set<string>();
  const subjectsWithoutApi = new Set<string>();
  // Pushes one manifest unless the target has it; reported by the caller, in graph order.
  const pushOne = async (node: ManifestNode): Promise<boolean> => {
    if (await repo.store.headManifest(repo.ref.withDigest(node.manifest.digest))) return false;
    const { subjectProcessed } = await repo.store.putManifest(repo.ref, node.manifest);
    if (node.parsed.subject) (subjectProcessed ? subjectsWithApi : subjectsWithoutApi).add(node.parsed.subject.digest);
    return true;
  };
  const report = (node: ManifestNode) => {
    const platform = graph.platforms.get(node.manifest.digest);
    result.manifests.push({ digest: node.manifest.digest, mediaType: node.manifest.mediaType, target: repo.ref.name, ...(platform ? { platform } : {}) } satisfies WrittenManifest);
    emit({ type: 'manifest', digest: node.manifest.digest, mediaType: node.manifest.mediaType, target: repo.ref.name });
  };
  try {
    // The manifest the tags name is pushed once, by writeTags under its first tag, unless
    // referrers follow: their subject goes first, for registries that check it exists.
    const nodes = graph.manifests.filter((node) => !(node === graph.top && repo.tags.length > 0 && graph.referrers.size === 0));
    for (const wave of independentWaves(nodes)) {
      const pushed = await mapLimit(wave, HEAD_CONCURRENCY, pushOne);
      for (const [i, node] of wave.entries()) if (pushed[i]) report(node);
    }
    for (const [subject, nodes] of graph.referrers) {
      if (!subjectsWithoutApi.has(subject) && (subjectsWithApi.has(subject) || (await targetHasReferrersApi(repo.store, repo.ref, subject)))) continue;
      // Without a referrers API, keep the target's fallback tag index merged: add, never drop.
      const tag = repo.ref.withTag(subject.replace(':', '-'));
      const current = (await repo.store.headManifest(tag)) ? await repo.store.getManifest(tag) : undefined;
      const merged = mergeFallbackIndex(current, nodes, graph.fallbackIndexes.get(subject));
      if (merged) await repo.store.putManifest(tag, merged);
    }
    for (const { tag, node } of graph.cosignTags) {
      const ref = repo.ref.withTag(tag);
      const head = await repo.store.headManifest(ref);
      if (head?.digest === node.manifest.digest) continue;
      await repo.store.putManifest(ref, node.manifest);
    }
  } catch (error) {
    throw copyErrorFrom(error, 'target');
  }
}

/**
 * `nodes` (children before parents) cut into waves that can go up together: a run of image
 * manifests that name no subject references no other manifest, so a platform's manifests go up
 * at once; an index or a referrer waits for everything before it, and goes alone.
 */
function independentWaves(nodes: ManifestNode[]): ManifestNode[][] {
  const waves: ManifestNode[][] = [];
  let run: ManifestNode[] = [];
  for (const node of nodes) {
    if (!node.isIndex && !node.parsed.subject) {
      run.push(node);
      continue;
    }
    if (run.length) waves.push(run);
    run = [];
    waves.push([node]);
  }
  if (run.length) waves.push(run);
  return waves;
}

/**
 * Writes the target tags: each one under the coordination's lock when there is one, re-checked
 * just before it is written and read back after, so `written: true` means the tag holds this
 * copy's digest. False when `shouldStop` ended a wait for a lock (the copy pauses).
 */
async function writeTags(
  request: CopyRequest,
  repos: TargetRepo[],
  top: Manifest,
  emit: (event: ProgressEvent) => void,
  result: CopyResult,
  coordination: CopyCoordination | undefined,
  shouldStop: () => boolean,
): Promise<boolean> {
  for (const repo of repos) {
    if (repo.tags.length === 0) {
      result.targets.push({ reference: repo.ref.withDigest(top.digest).toString(), digest: top.digest, written: result.manifests.some((m) => m.digest === top.digest && m.target === repo.ref.name) });
    }
    for (const tag of repo.tags) {
      const unlock = coordination ? await coordination.lockTag(tag, shouldStop) : async () => {};
      if (!unlock) return false;
      let written: boolean;
      try {
        written = await writeTag(repo.store, tag, top, request.force === true);
      } catch (error) {
        throw copyErrorFrom(error, 'target');
      } finally {
        await unlock();
      }
      if (written && !result.manifests.some((m) => m.digest === top.digest && m.target === repo.ref.name)) {
        result.manifests.push({ digest: top.digest, mediaType: top.mediaType, target: repo.ref.name });
        emit({ type: 'manifest', digest: top.digest, mediaType: top.mediaType, target: repo.ref.name });
      }
      result.targets.push({ reference: tag.toString(), digest: top.digest, written });
      emit({ type: 'tag', reference: tag.toString(), digest: top.digest, written });
    }
  }
  return true;
}

/**
 * Check, put, read back: false when the tag already held `top`; true once the registry shows it
 * holding `top`. A writer that moved the tag in between (one this copy's lock does not reach,
 * such as a CLI or another tool) makes it TAG_EXISTS, naming the digest that won.
 */
async function writeTag(store: TargetStore, tag: Reference, top: Manifest, force: boolean): Promise<boolean> {
  const head = await store.headManifest(tag);
  if (head?.digest === top.digest) return false;
  if (head && !force) throw tagExists([{ reference: tag.toString(), digest: head.digest }]);
  await store.putManifest(tag, top);
  const after = await store.headManifest(tag);
  if (after?.digest !== top.digest) {
    const now = after ? `now holds ${after.digest}` : 'is gone';
    throw new CopyError('TAG_EXISTS', `another writer moved target tag ${tag} right after this copy wrote ${top.digest}: it ${now}; nothing was overwritten back`, 'target');
  }
  return true;
}
