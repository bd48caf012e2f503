/**
 * The resync timer against real registries and Azurite: an upstream docker-registry behind a
 * counting, header-injecting proxy, a target docker-registry, watches saved through the API
 * handler, jobs worked through the worker handler as the host would, and skopeo as the check.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TableClient } from '@azure/data-tables';
import type { Timer } from '@azure/functions';
import { resyncHandler } from '../../src/functions/resync.js';
import { currentSettings, submitDeps, watchStore } from '../../src/functions/services.js';
import { handlePush } from '../../src/mirror/push-events.js';
import { MAX_CREATION_CANDIDATES, resyncAll, syncTag, type ResyncDeps } from '../../src/mirror/resync.js';
import { WatchStore } from '../../src/mirror/watch-store.js';
import { sha256Digest, pushImage, type PushedManifest } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { SKOPEO_BINARY, skopeoInspectRaw } from '../helpers/skopeo.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { clearQueue, deleteAllWatches, getWatch, putWatch, testContext, useMirrorSettings, workQueue as workImports } from './support.js';

const run = promisify(execFile);
let azurite: TestAzurite;
let upstream: TestRegistry;
let target: TestRegistry;
let proxy: TestProxy;
const logs: string[] = [];

beforeAll(async () => {
  [azurite, upstream, target] = await Promise.all([startAzurite(), startRegistry(), startRegistry()]);
  proxy = await startProxy(upstream.url);
  useMirrorSettings(azurite, target);
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), upstream?.stop(), target?.stop(), proxy?.stop()]);
});

const TIMER: Timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '2999-01-01T00:00:00.000Z', lastUpdated: '' } };
const workQueue = () => workImports(azurite, logs);

/** Runs the timer through its handler; returns the upstream requests it made (through the proxy). */
async function runTimer(): Promise<Array<{ method: string; path: string }>> {
  const before = proxy.requests.length;
  await resyncHandler(TIMER, testContext('resync', logs));
  return proxy.requests.slice(before).map((r) => ({ method: r.method, path: r.path }));
}

async function targetDigest(ref: string): Promise<string> {
  return sha256Digest(await skopeoInspectRaw(`${target.host}/${ref}`));
}

/**
 * Pages `tags` as the distribution spec describes (`n`, `last`, a `Link` to the next page), for
 * GETs of `repository`'s tag list: Debian's docker-registry 2.8.2 answers every tag at once and
 * ignores `n`, so this proxy rule stands in for a registry that pages (as Docker Hub does).
 */
function pagedTagList(repository: string, tags: readonly string[]): ProxyRule {
  const sorted = [...tags].sort();
  return (request) => {
    if (request.method !== 'GET' || request.pathname !== `/v2/${repository}/tags/list`) return undefined;
    const query = new URL(request.path, 'http://proxy').searchParams;
    const n = Number(query.get('n') ?? sorted.length);
    const last = query.get('last');
    const start = last === null ? 0 : sorted.indexOf(last) + 1;
    const page = sorted.slice(start, start + n);
    const more = start + n < sorted.length;
    return {
      type: 'respond',
      status: 200,
      headers: { 'content-type': 'application/json', ...(more && { link: `</v2/${repository}/tags/list?last=${page[page.length - 1]}&n=${n}>; rel="next"` }) },
      body: JSON.stringify({ name: repository, tags: page }),
    };
  };
}

afterEach(async () => {
  proxy.rules.length = 0;
  await deleteAllWatches();
  await clearQueue(azurite);
});

describe('resync', () => {
  it('queues exactly one job when a tag moves upstream, none when nothing changed, and the target follows', async () => {
    const first = await pushImage(upstream, 'team/app', 'stable', { seed: 'first', layers: [200] });
    await putWatch('app', { source: `${proxy.host}/team/app:stable`, target: 'mirror/app' });

    // First run: the target lacks the tag.
    await runTimer();
    expect(await workQueue()).toHaveLength(1);
    expect(await targetDigest('mirror/app:stable')).toBe(first.digest);

    // The tag moves upstream; two runs before any worker runs still make one job.
    const moved = await pushImage(upstream, 'team/app', 'stable', { seed: 'second', layers: [300] });
    expect(moved.digest).not.toBe(first.digest);
    await runTimer();
    await runTimer();
    const jobs = await workQueue();
    expect(jobs).toHaveLength(1);
    expect(await targetDigest('mirror/app:stable')).toBe(moved.digest);

    const watch = await getWatch('app');
    expect(watch.trackedTags.stable).toMatchObject({ digest: moved.digest, jobId: jobs[0], result: 'succeeded', trigger: 'resync' });
    expect(watch.nextRun).toBe('2999-01-01T00:00:00.000Z');

    // Nothing changed: one HEAD upstream, no manifest GET, no job.
    const requests = await runTimer();
    expect(requests.filter((r) => r.path.includes('/manifests/'))).toEqual([{ method: 'HEAD', path: '/v2/team/app/manifests/stable' }]);
    expect(requests.filter((r) => r.method === 'GET' && r.path.includes('/manifests/'))).toEqual([]);
    expect(await workQueue()).toEqual([]);
    expect((await getWatch('app')).lastRun).toMatchObject({ heads: 1, jobsQueued: 0, tagListRequests: 0, wanted: 1 });
    expect((await getWatch('app')).lastRun.stopped).toBeUndefined();
  });

  it('leaves a watch deleted and re-created during a run without the old watch\'s state', async () => {
    const image = await pushImage(upstream, 'team/again', 'v1', { seed: 'again', layers: [90] });
    await putWatch('again', { source: `${proxy.host}/team/again:v1`, target: 'mirror/again' });
    // While the run HEADs the tag, the watch is deleted and a new one of the same name saved.
    proxy.rules.push((request) => {
      if (request.method !== 'HEAD' || request.pathname !== '/v2/team/again/manifests/v1') return undefined;
      proxy.rules.length = 0;
      return {
        type: 'forward',
        afterUpstream: async () => {
          await deleteAllWatches();
          await putWatch('again', { source: `${proxy.host}/team/again:v1`, target: 'mirror/again-new' });
        },
      };
    });
    await runTimer();
    // The old run queued its job (for the old watch) but what it learned is not the new watch's.
    const fresh = await getWatch('again');
    expect(fresh.target).toBe('mirror/again-new');
    expect(fresh.trackedTags).toEqual({});
    expect(fresh.lastRun).toBeUndefined();

    // The new watch's first run starts clean and syncs its own target.
    await runTimer();
    const synced = await getWatch('again');
    expect(synced.trackedTags.v1).toMatchObject({ digest: image.digest, syncs: 1 });
    expect(synced.lastRun).toMatchObject({ jobsQueued: 1 });
    await workQueue();
    expect(await targetDigest('mirror/again-new:v1')).toBe(image.digest);
  });

  it('stops tracking tags the filters no longer pick and tags gone upstream, and says so in the last run', async () => {
    const v1 = await pushImage(upstream, 'team/stale', 'v1', { seed: 'stale-1', layers: [40] });
    const v2 = await pushImage(upstream, 'team/stale', 'v2', { seed: 'stale-2', layers: [41] });
    const v3 = await pushImage(upstream, 'team/stale', 'v3', { seed: 'stale-3', layers: [42] });
    await putWatch('stale', { source: `${proxy.host}/team/stale`, target: 'mirror/stale', tags: { include: ['v.*'] } });
    await runTimer();
    expect(Object.keys((await getWatch('stale')).trackedTags).sort()).toEqual(['v1', 'v2', 'v3']);

    // v1 is excluded now; v2's manifest is deleted upstream (its tag goes with it).
    await putWatch('stale', { source: `${proxy.host}/team/stale`, target: 'mirror/stale', tags: { include: ['v.*'], exclude: ['v1'] } });
    const deleted = await fetch(`${upstream.url}/v2/team/stale/manifests/${v2.digest}`, { method: 'DELETE' });
    expect(deleted.status).toBe(202);
    await runTimer();
    const watch = await getWatch('stale');
    expect(watch.trackedTags).toEqual({ v3: expect.objectContaining({ digest: v3.digest }) });
    expect(watch.lastRun.untracked).toEqual({ count: 2, tags: ['v1', 'v2'] });
    expect(v1.digest).not.toBe(v3.digest);

    // Nothing more to drop: the next run says nothing of it.
    await runTimer();
    expect((await getWatch('stale')).lastRun.untracked).toBeUndefined();
  });

  it('syncs a tag that comes back at a digest it once had a job for in the run that sees it, not a run later', async () => {
    const image = await pushImage(upstream, 'team/back', 'v1', { seed: 'back', layers: [70] });
    await putWatch('back', { source: `${proxy.host}/team/back`, target: 'mirror/back', tags: { include: ['v.*'] } });
    await runTimer();
    const first = await workQueue();
    expect(first).toHaveLength(1);
    expect(await targetDigest('mirror/back:v1')).toBe(image.digest);

    // v1 goes away upstream (its manifest deleted, the tag with it): the next run stops tracking it.
    expect((await fetch(`${upstream.url}/v2/team/back/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
    await runTimer();
    expect((await getWatch('back')).trackedTags).toEqual({});
    // Meanwhile the target tag is overwritten, and then v1 comes back upstream at the very same digest.
    await pushImage(target, 'mirror/back', 'v1', { seed: 'back-overwritten', layers: [20] });
    expect((await pushImage(upstream, 'team/back', 'v1', { seed: 'back', layers: [70] })).digest).toBe(image.digest);

    // The first run that sees it again queues a new job (the first one ended long ago).
    await runTimer();
    expect((await getWatch('back')).lastRun).toMatchObject({ jobsQueued: 1 });
    const second = await workQueue();
    expect(second).toHaveLength(1);
    expect(second[0]).not.toBe(first[0]);
    expect(await targetDigest('mirror/back:v1')).toBe(image.digest);
    // Tracked afresh after the drop: a new epoch, its sync count started over.
    expect((await getWatch('back')).trackedTags.v1).toMatchObject({ digest: image.digest, jobId: second[0], result: 'succeeded', epoch: 1, syncs: 1 });
  });

  it('gives two triggers for a moved tag one job when one read the state before another tag was dropped and one after', async () => {
    await pushImage(upstream, 'team/race', 'v1', { seed: 'race-1', layers: [30] });
    await putWatch('race', { source: `${proxy.host}/team/race`, target: 'mirror/race', tags: { include: ['v.*'] } });
    await runTimer();
    expect(await workQueue()).toHaveLength(1);
    const store = await watchStore();
    const watch = (await store.get('race'))!.value;
    // Tracked while the watch had dropped nothing (epoch 0).
    const tracked = (await store.state(watch.name, watch.createdAt)).value.tags.v1;
    expect(tracked).toMatchObject({ syncs: 1 });
    const moved = await pushImage(upstream, 'team/race', 'v1', { seed: 'race-2', layers: [31] });

    // Two triggers for the move, say an event delivered twice, read the same entry for v1, one
    // before and one after a run dropped another tag of the watch (epoch 0, then 1). v1 stays in
    // the epoch it was tracked in, so they ask under one key.
    const deps = { submit: await submitDeps() };
    const input = { watch, tag: 'v1', digest: moved.digest, tracked, observedAt: new Date().toISOString(), credentials: undefined, targetHosts: deps.submit.hosts };
    const before = await syncTag({ ...input, epoch: 0, trigger: 'event:race' }, deps);
    const after = await syncTag({ ...input, epoch: 1, trigger: 'event:race' }, deps);
    expect(after.jobId).toBe(before.jobId);
    expect([before.queued, after.queued]).toEqual([true, false]);
    expect(await workQueue()).toEqual([before.jobId]);
    expect(await targetDigest('mirror/race:v1')).toBe(moved.digest);
  });

  it('picks exactly the tags the filters select from a repository of 14 tags, following Link pages', async () => {
    const tags = ['0.9.0', '1.0.0', '1.1.0', '1.2.0', '1.2.1', '1.3.0-rc.1', '1.3.0', '1.4.0', '1.4.1-debug', '2.0.0', '2.1.0', '3.0.0-beta', 'latest', 'edge'];
    const pushed: Record<string, PushedManifest> = {};
    for (const tag of tags) pushed[tag] = await pushImage(upstream, 'team/many', tag, { layers: [50] });
    await putWatch('many', { source: `${proxy.host}/team/many`, target: 'mirror/many', tags: { include: ['1\\..*', '2\\..*'], exclude: ['.*-(rc|debug).*'], semver: '>=1.2.0 <2.1.0', latest: 3 } });
    // A second watch on a host that refuses connections fails alone.
    await putWatch('broken', { source: '127.0.0.1:1/team/none', target: 'mirror/none' });
    await putWatch('disabled', { source: `${proxy.host}/team/many`, target: 'mirror/disabled', enabled: false });

    proxy.rules.push(pagedTagList('team/many', tags));
    const before = proxy.requests.length;
    const deps: ResyncDeps = { store: await watchStore(), submit: await submitDeps(), concurrency: 2, rateLimitReserve: 10, tagPageSize: 5 };
    const result = await resyncAll(deps);
    const requests = proxy.requests.slice(before);
    // 14 tags, five a page: three pages, each found through the previous page's Link.
    expect(requests.filter((r) => r.path.includes('/tags/list')).map((r) => r.path)).toEqual([
      '/v2/team/many/tags/list?n=5',
      '/v2/team/many/tags/list?last=1.2.1&n=5',
      '/v2/team/many/tags/list?last=2.0.0&n=5',
    ]);
    expect(result.watches.map((w) => w.name).sort()).toEqual(['broken', 'many']);
    const many = result.watches.find((w) => w.name === 'many')!.run;
    expect(many).toMatchObject({ tagListRequests: 3, heads: 3, jobsQueued: 3, wanted: 3 });
    const broken = result.watches.find((w) => w.name === 'broken')!.run;
    expect(broken.stopped).toMatchObject({ code: 'FAILED' });
    expect(broken.stopped!.reason).toMatch(/NETWORK_ERROR/);

    await workQueue();
    const watch = await getWatch('many');
    expect(Object.keys(watch.trackedTags).sort()).toEqual(['1.3.0', '1.4.0', '2.0.0']);
    for (const tag of ['1.3.0', '1.4.0', '2.0.0']) expect(await targetDigest(`mirror/many:${tag}`)).toBe(pushed[tag]!.digest);
    expect((await getWatch('broken')).lastRun.stopped.code).toBe('FAILED');
  });

  it('keeps a push event recorded while the run was under way: the run does not move the tag back to its older sighting', async () => {
    const first = await pushImage(upstream, 'team/during', 'v1', { seed: 'during-1', layers: [40] });
    await putWatch('during', { source: `${upstream.host}/team/during:v1`, target: 'mirror/during' });
    const store = await watchStore();
    const submit = await submitDeps();
    // The run HEADs v1 at `first`; just before it records what it learned, upstream is pushed
    // again and that push's event is handled: a later sighting than the run's.
    let second: PushedManifest | undefined;
    const racing = Object.create(store) as WatchStore;
    racing.updateState = async (name, createdAt, change) => {
      if (name === 'during' && second === undefined) {
        second = await pushImage(upstream, 'team/during', 'v1', { seed: 'during-2', layers: [40] });
        const event = { id: 'evt-during', host: upstream.host, repository: 'team/during', tag: 'v1', digest: second.digest, time: new Date().toISOString() };
        expect((await handlePush(event, { store, submit })).kind).toBe('queued');
      }
      return store.updateState(name, createdAt, change);
    };
    const run = (await resyncAll({ store: racing, submit, concurrency: 1, rateLimitReserve: 10 })).watches.find((w) => w.name === 'during')!.run;
    expect(run.jobsQueued).toBe(1);
    expect(second?.digest).not.toBe(first.digest);
    expect((await getWatch('during')).trackedTags.v1).toMatchObject({ digest: second!.digest, trigger: 'event:evt-during' });

  });

  it('follows the last tags in natural order when the filters pick more than a watch follows, and records the cut without calling the run failed', async () => {
    const tags = ['build-1', 'build-2', 'build-9', 'build-10', 'build-11', 'build-100'];
    const pushed: Record<string, PushedManifest> = {};
    for (const tag of tags) pushed[tag] = await pushImage(upstream, 'team/builds', tag, { seed: `builds-${tag}`, layers: [40] });
    await putWatch('builds', { source: `${upstream.host}/team/builds`, target: 'mirror/builds', tags: { include: ['build-.*'] } });
    // The registry lists build-1, build-10, build-100, build-11, ...: its first three are not the newest three.
    const deps: ResyncDeps = { store: await watchStore(), submit: await submitDeps(), concurrency: 2, rateLimitReserve: 10, maxTrackedTags: 3 };
    const followed = ['build-10', 'build-11', 'build-100'];
    for (let round = 0; round < 2; round++) {
      const run = (await resyncAll(deps)).watches.find((w) => w.name === 'builds')!.run;
      expect(run).toMatchObject({ wanted: 6, wantedTags: { matched: 6, followed: 3 }, heads: 3, jobsQueued: round === 0 ? 3 : 0 });
      expect(run.stopped).toBeUndefined();
      expect(run.untracked).toBeUndefined();
      await workQueue();
      const watch = await getWatch('builds');
      expect(Object.keys(watch.trackedTags).sort()).toEqual([...followed].sort());
      expect(watch.lastRun.wantedTags).toEqual({ matched: 6, followed: 3 });
    }
    for (const tag of followed) expect(await targetDigest(`mirror/builds:${tag}`)).toBe(pushed[tag]!.digest);
  });

  it('orders a latest N of tags that are not semver by their config\'s creation time, reading each digest\'s config once', async () => {
    const config = (created: string) => Buffer.from(JSON.stringify({ created, architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { created } } }));
    const at: Record<string, string> = { alpha: '2024-03-01T00:00:00Z', beta: '2024-01-01T00:00:00Z', gamma: '2024-04-01T00:00:00Z', delta: '2024-02-01T00:00:00Z' };
    const pushed: Record<string, PushedManifest> = {};
    for (const [tag, created] of Object.entries(at)) pushed[tag] = await pushImage(upstream, 'team/dated', tag, { layers: [30], config: config(created) });
    await putWatch('dated', { source: `${proxy.host}/team/dated`, target: 'mirror/dated', tags: { latest: 2 } });
    const gets = (requests: Array<{ method: string; path: string }>) => requests.filter((r) => r.method === 'GET' && !r.path.includes('/tags/list')).length;

    // First run: a HEAD per candidate, a manifest and a config GET per digest; the newest two by
    // creation time (not gamma and delta, as reverse lexical order would have it).
    let requests = await runTimer();
    expect(gets(requests)).toBe(8);
    let watch = await getWatch('dated');
    expect(watch.lastRun).toMatchObject({ heads: 4, gets: 8, jobsQueued: 2, wanted: 2 });
    expect(Object.keys(watch.trackedTags).sort()).toEqual(['alpha', 'gamma']);
    expect(watch.trackedTags.gamma.digest).toBe(pushed.gamma!.digest);

    // Nothing changed: one HEAD per candidate, no GET at all (the creation times are cached by digest).
    requests = await runTimer();
    expect(requests.filter((r) => r.method === 'HEAD')).toHaveLength(4);
    expect(gets(requests)).toBe(0);
    watch = await getWatch('dated');
    expect(watch.lastRun).toMatchObject({ heads: 4, jobsQueued: 0 });
    expect(watch.lastRun.gets).toBeUndefined();

    // delta moves to a newer image: only its new digest costs GETs, and it displaces alpha.
    await pushImage(upstream, 'team/dated', 'delta', { layers: [31], config: config('2024-05-01T00:00:00Z') });
    requests = await runTimer();
    expect(gets(requests)).toBe(2);
    watch = await getWatch('dated');
    expect(Object.keys(watch.trackedTags).sort()).toEqual(['delta', 'gamma']);
    expect(watch.lastRun).toMatchObject({ heads: 4, gets: 2, jobsQueued: 1, untracked: { count: 1, tags: ['alpha'] } });
  });

  it('says in the last run when more non-semver tags match than a latest N compares, cuts them in natural order, and reads each image once per run', async () => {
    const config = (created: string) => Buffer.from(JSON.stringify({ created, architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    // build-0 … build-104: the candidates are build-5 … build-104 in natural order (in lexical
    // order build-101 would be cut; distribution itself lists them in no fixed order).
    const tags = Array.from({ length: MAX_CREATION_CANDIDATES + 5 }, (_, i) => `build-${i}`);
    const newest = await pushImage(upstream, 'team/builds', 'build-0', { layers: [30], config: config('2025-01-01T00:00:00Z') });
    const middle = await pushImage(upstream, 'team/builds', 'build-50', { layers: [31], config: config('2024-06-01T00:00:00Z') });
    const later = await pushImage(upstream, 'team/builds', 'build-101', { layers: [32], config: config('2024-07-01T00:00:00Z') });
    const old = await pushImage(upstream, 'team/builds', 'build-1', { layers: [33], config: config('2023-01-01T00:00:00Z') });
    // Every other tag names the old image (tagging is a manifest PUT of the same bytes).
    for (const tag of tags.filter((t) => !['build-0', 'build-1', 'build-50', 'build-101'].includes(t))) {
      const put = await fetch(`${upstream.url}/v2/team/builds/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': old.mediaType }, body: old.manifestBytes });
      expect(put.status).toBe(201);
    }
    await putWatch('builds', { source: `${proxy.host}/team/builds`, target: 'mirror/builds', tags: { include: ['build-.*'], latest: 2 } });

    const requests = await runTimer();
    const watch = await getWatch('builds');
    // Three images among the candidates (the newest, under build-0, is not one): a manifest and a
    // config GET each, however many tags name them.
    expect(watch.lastRun).toMatchObject({ heads: MAX_CREATION_CANDIDATES, gets: 6, wanted: 2, jobsQueued: 2, creationCandidates: { matched: tags.length, compared: MAX_CREATION_CANDIDATES } });
    expect(requests.filter((r) => r.method === 'HEAD').map((r) => r.path)).not.toContain('/v2/team/builds/manifests/build-0');
    expect(requests.filter((r) => r.path.includes(newest.digest))).toEqual([]);
    expect(watch.trackedTags).toEqual({
      'build-101': expect.objectContaining({ digest: later.digest }),
      'build-50': expect.objectContaining({ digest: middle.digest }),
    });
  });

  it('stops a host when its rate limit runs low, and on a 429 waits out Retry-After into the next run', async () => {
    for (let i = 1; i <= 8; i++) await pushImage(upstream, 'team/rated', `1.${i}.0`, { layers: [40] });
    await putWatch('limited', { source: `${proxy.host}/team/rated`, target: 'mirror/limited', tags: { include: ['[0-9.]+'] } });
    const deps = async (): Promise<ResyncDeps> => ({ store: await watchStore(), submit: await submitDeps(), concurrency: 1, rateLimitReserve: 10 });

    // Docker Hub's form: 15 left before the first request, one less after each.
    let left = 15;
    const limits: ProxyRule = () => ({ type: 'forward', addResponseHeaders: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': `${--left};w=21600` } });
    proxy.rules.push(limits);
    const before = proxy.requests.length;
    const low = (await resyncAll(await deps())).watches.find((w) => w.name === 'limited')!.run;
    proxy.rules.length = 0;
    // The list (14 left), then HEADs at 13, 12, 11 and 10: at the reserve of 10 the host stops.
    expect(proxy.requests.length - before).toBe(5);
    expect(low, JSON.stringify(low)).toMatchObject({ tagListRequests: 1, heads: 4, jobsQueued: 4, stopped: { code: 'RATE_LIMIT_LOW' } });
    expect(low.stopped!.reason).toMatch(/10 of 100 requests left/);
    expect((await getWatch('limited')).lastRun.stopped.code).toBe('RATE_LIMIT_LOW');

    // A 429 on the third HEAD: the run stops there, and records when to come back.
    let heads = 0;
    proxy.rules.push((request) =>
      request.method === 'HEAD' && ++heads === 3 ? { type: 'respond', status: 429, headers: { 'retry-after': '3600' }, body: '{"errors":[{"code":"TOOMANYREQUESTS"}]}' } : undefined,
    );
    const throttled = (await resyncAll(await deps())).watches.find((w) => w.name === 'limited')!.run;
    proxy.rules.length = 0;
    expect(throttled).toMatchObject({ heads: 3, stopped: { code: 'TOO_MANY_REQUESTS' } });
    const retryAfter = Date.parse(throttled.stopped!.retryAfter!);
    expect(retryAfter).toBeGreaterThan(Date.now() + 3000 * 1000);

    // The next run, inside Retry-After, asks nothing of that host at all.
    const quiet = proxy.requests.length;
    const next = (await resyncAll(await deps())).watches.find((w) => w.name === 'limited')!.run;
    expect(proxy.requests.length).toBe(quiet);
    expect(next).toMatchObject({ heads: 0, tagListRequests: 0, stopped: { code: 'TOO_MANY_REQUESTS', retryAfter: throttled.stopped!.retryAfter } });
    expect(currentSettings().rateLimitReserve).toBe(10);
  });
  it('logs a watch whose run cannot be recorded and runs and records the others; the next run finds its jobs again', async () => {
    await pushImage(upstream, 'team/fine', 'v1', { seed: 'fine-1', layers: [44] });
    await pushImage(upstream, 'team/doomed', 'v1', { seed: 'doomed-1', layers: [45] });
    // Straight to the registry: the rate-limit test above left its proxy host cooling down.
    await putWatch('fine', { source: `${upstream.host}/team/fine:v1`, target: 'mirror/fine' });
    await putWatch('doomed', { source: `${upstream.host}/team/doomed:v1`, target: 'mirror/doomed' });
    await runTimer();
    expect(await workQueue()).toHaveLength(2);
    const fine = await pushImage(upstream, 'team/fine', 'v1', { seed: 'fine-2', layers: [46] });
    const doomed = await pushImage(upstream, 'team/doomed', 'v1', { seed: 'doomed-2', layers: [47] });

    // Table storage through a proxy that refuses every write of doomed's state as a lost race
    // (412), as writers racing it past every retry would.
    const tables = await startProxy(`http://127.0.0.1:${azurite.ports.table}`);
    try {
      tables.rules.push((request) =>
        (request.method === 'PUT' || request.method === 'MERGE') && decodeURIComponent(request.pathname).includes("(PartitionKey='state',RowKey='doomed')")
          ? { type: 'respond', status: 412, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ 'odata.error': { code: 'UpdateConditionNotSatisfied', message: { lang: 'en-US', value: 'The update condition specified in the request was not satisfied.' } } }) }
          : undefined,
      );
      const proxied = azurite.connectionString.replace(/TableEndpoint=[^;]+/, `TableEndpoint=${tables.url}/devstoreaccount1`);
      const store = new WatchStore(TableClient.fromConnectionString(proxied, currentSettings().watchesTable, { allowInsecureConnection: true }));
      const logged: string[] = [];
      const result = await resyncAll({ store, submit: await submitDeps(), concurrency: 2, rateLimitReserve: 10, log: (message) => logged.push(message) });
      expect(result.watches.map((w) => w.name).sort()).toEqual(['doomed', 'fine']);
      expect(result.watches.map((w) => w.run.jobsQueued)).toEqual([1, 1]);
      expect(logged.join('\n')).toMatch(/resync: watch doomed: could not record the run/);
      expect(tables.requests.filter((r) => r.status === 412).length).toBeGreaterThan(0);
    } finally {
      await tables.stop();
    }
    expect((await getWatch('fine')).trackedTags.v1).toMatchObject({ digest: fine.digest, syncs: 2 });
    expect((await getWatch('doomed')).trackedTags.v1).toMatchObject({ syncs: 1 });

    // With storage answering again, the next run records doomed and finds its pending job by key.
    await runTimer();
    expect((await getWatch('doomed')).trackedTags.v1).toMatchObject({ digest: doomed.digest, syncs: 2 });
    expect((await getWatch('doomed')).lastRun).toMatchObject({ jobsQueued: 0 });
    expect(await workQueue()).toHaveLength(2);
    expect(await targetDigest('mirror/fine:v1')).toBe(fine.digest);
    expect(await targetDigest('mirror/doomed:v1')).toBe(doomed.digest);
  });

  it('pulls with the sealed credentials of the watch from an upstream that needs them, and shows them nowhere', async () => {
    const password = `upstream-${randomBytes(8).toString('hex')}`;
    const locked = await startRegistry({ auth: 'basic', users: { reader: password } });
    try {
      const image = await pushImage(locked, 'team/private', '1.0', { layers: [64] });
      await putWatch('private', { source: `${locked.host}/team/private:1.0`, target: 'mirror/private', username: 'reader', password });
      logs.length = 0;
      await runTimer();
      const jobs = await workQueue();
      expect(jobs).toHaveLength(1);
      expect(await targetDigest('mirror/private:1.0')).toBe(image.digest);
      const watch = await getWatch('private');
      expect(watch.trackedTags['1.0']).toMatchObject({ digest: image.digest, result: 'succeeded' });
      expect(JSON.stringify(watch)).not.toContain(password);
      expect(logs.join('\n')).not.toContain(password);

      // Wrong credentials: the watch's run fails, saying why, without the password.
      const wrong = `wrong-${randomBytes(8).toString('hex')}`;
      await putWatch('private', { source: `${locked.host}/team/private:1.0`, target: 'mirror/private', username: 'reader', password: wrong });
      await runTimer();
      const failed = await getWatch('private');
      expect(failed.lastRun.stopped).toMatchObject({ code: 'FAILED' });
      expect(failed.lastRun.stopped.reason).toMatch(/UNAUTHORIZED/);
      expect(JSON.stringify(failed)).not.toContain(wrong);
      expect(logs.join('\n')).not.toContain(wrong);
    } finally {
      await locked.stop();
    }
  });

  it('keeps the local host\'s layouts (no HOIST_TARGET_REGISTRY) in sync: the target tag is read from the layout', async () => {
    const layouts = await mkdtemp(join(tmpdir(), 'hoist-resync-layouts-'));
    const saved = { registry: process.env.HOIST_TARGET_REGISTRY, layouts: process.env.HOIST_TARGET_LAYOUTS };
    Object.assign(process.env, { HOIST_TARGET_REGISTRY: '', HOIST_TARGET_LAYOUTS: layouts });
    try {
      const image = await pushImage(upstream, 'team/layout', 'stable', { seed: 'layout', layers: [100] });
      await putWatch('layout', { source: `${upstream.host}/team/layout:stable`, target: 'mirror/layout' });
      await runTimer();
      expect((await getWatch('layout')).lastRun.stopped).toBeUndefined();
      expect(await workQueue()).toHaveLength(1);
      const { stdout } = await run(SKOPEO_BINARY, ['inspect', '--raw', `oci:${join(layouts, 'mirror/layout')}:stable`], { encoding: 'buffer' });
      expect(sha256Digest(stdout)).toBe(image.digest);
      // The layout holds the digest now: the next run queues nothing.
      await runTimer();
      expect(await workQueue()).toEqual([]);
      expect((await getWatch('layout')).lastRun).toMatchObject({ heads: 1, jobsQueued: 0, wanted: 1 });
    } finally {
      Object.assign(process.env, { HOIST_TARGET_REGISTRY: saved.registry ?? '', HOIST_TARGET_LAYOUTS: saved.layouts ?? '' });
      await rm(layouts, { recursive: true, force: true });
    }
  });
});
