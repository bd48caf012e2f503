/**
 * Push events against real registries and Azurite: ACR events in the Event Grid schema and in
 * CloudEvents 1.0 through the `upstreamPush` handler and through the local host's Event Grid
 * webhook (handshakes included), and a real docker-registry whose notifications point at the
 * local host's `/api/hooks/distribution`. Each sync must be an import of exactly the pushed digest.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { EventGridEvent } from '@azure/functions';
import { resyncHandler } from '../../src/functions/resync.js';
import { distributionHookFunction, distributionHookHandler } from '../../src/functions/distribution-hook.js';
import { jobStorage, watchStore } from '../../src/functions/services.js';
import { MAX_TRACKED_TAGS } from '../../src/mirror/resync.js';
import { upstreamPushFunction, upstreamPushHandler } from '../../src/functions/upstream-push.js';
import type { JobRecord } from '../../src/jobs/job-record.js';
import { pushImage, sha256Digest } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { callChecked as call } from '../functions/support.js';
import { ImportsApi } from '../e2e/support.js';
import { startTestHost, waitFor, type TestHost } from '../local/support.js';
import { deleteAllWatches, getWatch, putWatch as saveWatch, testContext, useMirrorSettings, workQueue as workImports } from './support.js';

const API_KEY = `key-${randomBytes(6).toString('hex')}`;
let azurite: TestAzurite;
let upstream: TestRegistry;
let target: TestRegistry;
const logs: string[] = [];

beforeAll(async () => {
  [azurite, upstream, target] = await Promise.all([startAzurite(), startRegistry(), startRegistry()]);
  useMirrorSettings(azurite, target);
  delete process.env.HOIST_API_KEY;
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), upstream?.stop(), target?.stop()]);
});
// The key is sent always: the local host tests below set HOIST_API_KEY.
afterEach(() => deleteAllWatches({ 'x-functions-key': API_KEY }));

const ctx = (functionName: string) => testContext(functionName, logs);
const putWatch = (name: string, json: unknown) => saveWatch(name, json, { 'x-functions-key': API_KEY });
const workQueue = () => workImports(azurite, logs);

/** Every job whose source is in `repository` (host/repo), oldest first. */
async function jobsFor(repository: string): Promise<JobRecord[]> {
  const page = await (await jobStorage()).jobs.list({ pageSize: 100 });
  return page.jobs.filter((j) => j.source.startsWith(`${repository}@`)).reverse();
}

/** ACR's ImagePushed data for a push of `digest` to `host/repository:tag`. */
function pushData(host: string, repository: string, tag: string, digest: string) {
  return {
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 500, digest, length: 500, repository, tag },
    request: { id: randomUUID(), host, method: 'PUT', useragent: 'docker/27' },
  };
}
function eventGridEvent(host: string, repository: string, tag: string, digest: string, id = randomUUID()): EventGridEvent {
  return { id, topic: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/upstream', subject: `${repository}:${tag}`, eventType: 'Microsoft.ContainerRegistry.ImagePushed', eventTime: new Date().toISOString(), dataVersion: '1.0', metadataVersion: '1', data: pushData(host, repository, tag, digest) } as EventGridEvent;
}
function cloudEvent(host: string, repository: string, tag: string, digest: string, id = randomUUID()) {
  return { specversion: '1.0', type: 'Microsoft.ContainerRegistry.ImagePushed', source: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/upstream', id, time: new Date().toISOString(), subject: `${repository}:${tag}`, data: pushData(host, repository, tag, digest) };
}

describe('push events', () => {
  it('queues an import of exactly the pushed digest for an event in either schema, once per event', async () => {
    const pushed = await pushImage(upstream, 'team/web', 'v1', { seed: 'pushed', layers: [100] });
    // The tag moves on before the event arrives: the event's digest is what is synced, not the tag's.
    const later = await pushImage(upstream, 'team/web', 'v1', { seed: 'later', layers: [120] });
    await putWatch('web', { source: `${upstream.host}/team/web`, target: 'mirror/web', tags: { include: ['v.*'] } });

    const event = eventGridEvent(upstream.host, 'team/web', 'v1', pushed.digest);
    await upstreamPushHandler(event, ctx('upstreamPush'));
    await upstreamPushHandler(event, ctx('upstreamPush')); // delivered twice
    let jobs = await jobsFor(`${upstream.host}/team/web`);
    expect(jobs.map((j) => j.source)).toEqual([`${upstream.host}/team/web@${pushed.digest}`]);
    expect(jobs[0]!.targets).toEqual([{ reference: `${target.host}/mirror/web:v1`, tagged: true }]);
    await workQueue();
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/web:v1`))).toBe(pushed.digest);

    const cloud = cloudEvent(upstream.host, 'team/web', 'v1', later.digest);
    // Two deliveries of one event at once (Event Grid retries while the first is still running).
    await Promise.all([upstreamPushHandler(cloud as unknown as EventGridEvent, ctx('upstreamPush')), upstreamPushHandler(cloud as unknown as EventGridEvent, ctx('upstreamPush'))]);
    jobs = await jobsFor(`${upstream.host}/team/web`);
    expect(jobs.map((j) => j.source)).toEqual([`${upstream.host}/team/web@${pushed.digest}`, `${upstream.host}/team/web@${later.digest}`]);
    await workQueue();
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/web:v1`))).toBe(later.digest);

    const watch = await getWatch('web');
    expect(watch.trackedTags.v1).toMatchObject({ digest: later.digest, jobId: jobs[1]!.id, result: 'succeeded', trigger: `event:${cloud.id}` });
  });

  it('gives one job for any number of triggers racing on one digest: events with different ids and the timer', async () => {
    const image = await pushImage(upstream, 'team/race', 'v1', { seed: 'race', layers: [110] });
    await putWatch('race', { source: `${upstream.host}/team/race`, target: 'mirror/race', tags: { include: ['v.*'] } });
    const timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
    // Two pushes reported (two ids, one digest: a registry's retry, or two subscriptions) while the timer runs.
    await Promise.all([
      upstreamPushHandler(eventGridEvent(upstream.host, 'team/race', 'v1', image.digest), ctx('upstreamPush')),
      upstreamPushHandler(eventGridEvent(upstream.host, 'team/race', 'v1', image.digest), ctx('upstreamPush')),
      resyncHandler(timer, ctx('resync')),
    ]);
    const jobs = await jobsFor(`${upstream.host}/team/race`);
    expect(jobs.map((j) => j.source)).toEqual([`${upstream.host}/team/race@${image.digest}`]);
    expect((await getWatch('race')).trackedTags.v1).toMatchObject({ digest: image.digest, jobId: jobs[0]!.id });

    // Once that job has ended, a target tag someone overwrote gets a new one (the key is not for ever).
    await workQueue();
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/race:v1`))).toBe(image.digest);
    await pushImage(target, 'mirror/race', 'v1', { seed: 'overwritten', layers: [30] });
    await upstreamPushHandler(eventGridEvent(upstream.host, 'team/race', 'v1', image.digest), ctx('upstreamPush'));
    expect((await jobsFor(`${upstream.host}/team/race`)).map((j) => j.source)).toEqual([`${upstream.host}/team/race@${image.digest}`, `${upstream.host}/team/race@${image.digest}`]);
  });

  it('skips an event older than the digest last observed: a late push leaves the target at the newer digest and queues nothing', async () => {
    const older = await pushImage(upstream, 'team/late', 'v1', { seed: 'late-older', layers: [70] });
    const newer = await pushImage(upstream, 'team/late', 'v1', { seed: 'late-newer', layers: [71] });
    await putWatch('late', { source: `${upstream.host}/team/late`, target: 'mirror/late', tags: { include: ['v.*'] } });
    const pushedAt = Date.parse('2026-11-30T20:00:00.000Z');
    // The newer push is delivered first; the older one arrives after it (unordered delivery, a retry).
    await upstreamPushHandler({ ...eventGridEvent(upstream.host, 'team/late', 'v1', newer.digest), eventTime: new Date(pushedAt).toISOString() }, ctx('upstreamPush'));
    await workQueue();
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/late:v1`))).toBe(newer.digest);
    logs.length = 0;
    // CloudEvents' `time`, with Event Grid's seven fractional digits, one second earlier.
    const late = { ...cloudEvent(upstream.host, 'team/late', 'v1', older.digest), time: '2026-11-30T19:59:59.0000001Z' };
    await upstreamPushHandler(late as unknown as EventGridEvent, ctx('upstreamPush'));
    expect((await jobsFor(`${upstream.host}/team/late`)).map((j) => j.source)).toEqual([`${upstream.host}/team/late@${newer.digest}`]);
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/late:v1`))).toBe(newer.digest);
    expect(logs.join('\n')).toMatch(/watch late saw v1 at sha256:[a-f0-9]+ upstream at 2026-11-30T20:00:00\.000Z, not before this push of 2026-11-30T19:59:59\.000Z/);
    expect((await getWatch('late')).trackedTags.v1).toMatchObject({ digest: newer.digest, observedAt: '2026-11-30T20:00:00.000Z' });
  });

  it('gives no second job for the same event delivered again after its job ended, even when the target tag was changed meanwhile', async () => {
    const image = await pushImage(upstream, 'team/again', 'v1', { seed: 'again', layers: [72] });
    await putWatch('again', { source: `${upstream.host}/team/again`, target: 'mirror/again', tags: { include: ['v.*'] } });
    const event = eventGridEvent(upstream.host, 'team/again', 'v1', image.digest);
    await upstreamPushHandler(event, ctx('upstreamPush'));
    await workQueue();
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/again:v1`))).toBe(image.digest);
    const byHand = await pushImage(target, 'mirror/again', 'v1', { seed: 'again-by-hand', layers: [31] });
    // Event Grid redelivers for up to 24 hours when an acknowledgement is lost.
    await upstreamPushHandler(event, ctx('upstreamPush'));
    expect((await jobsFor(`${upstream.host}/team/again`)).map((j) => j.source)).toEqual([`${upstream.host}/team/again@${image.digest}`]);
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/again:v1`))).toBe(byHand.digest);
  });

  it('ignores unwatched repositories and tags and the target registry, and drops malformed events without throwing', async () => {
    const image = await pushImage(upstream, 'team/api', 'v2', { layers: [80] });
    await putWatch('api', { source: `${upstream.host}/team/api`, target: 'team/api', tags: { include: ['v.*'], exclude: ['v2'] } });
    // A watch on the target registry itself: the pushes Hoist makes there must not come back as syncs.
    await putWatch('loop', { source: `${target.host}/team/api`, target: 'copy/api' });
    logs.length = 0;
    await upstreamPushHandler(eventGridEvent(upstream.host, 'team/other', 'v1', image.digest), ctx('upstreamPush'));
    await upstreamPushHandler(eventGridEvent(upstream.host, 'team/api', 'v2', image.digest), ctx('upstreamPush'));
    // Hoist's own push to the target registry, reported back: never a sync.
    await upstreamPushHandler(eventGridEvent(target.host, 'team/api', 'v3', image.digest), ctx('upstreamPush'));
    expect(await jobsFor(`${target.host}/team/api`)).toEqual([]);
    await upstreamPushHandler({ id: 'x', eventType: 'Microsoft.ContainerRegistry.ImagePushed', data: { target: { digest: 'md5:nope' } } } as unknown as EventGridEvent, ctx('upstreamPush'));
    await upstreamPushHandler({ ...eventGridEvent(upstream.host, 'team/api', 'v1', image.digest), eventType: 'Microsoft.ContainerRegistry.ImageDeleted' }, ctx('upstreamPush'));
    await upstreamPushHandler({ ...eventGridEvent(upstream.host, 'team/api', 'v1', image.digest), eventTime: 'yesterday' }, ctx('upstreamPush'));
    expect(await jobsFor(`${upstream.host}/team/api`)).toEqual([]);
    expect(logs.join('\n')).toMatch(/no enabled watch covers .*team\/other:v1/);
    expect(logs.join('\n')).toMatch(/no enabled watch covers .*team\/api:v2/);
    expect(logs.join('\n')).toMatch(/went to the target registry/);
    expect(logs.join('\n')).toMatch(/warning: upstreamPush: dropped a malformed event: .*data\.target/);
    expect(logs.join('\n')).toMatch(/ImageDeleted is not a push/);
    expect(logs.join('\n')).toMatch(/dropped a malformed event: the event time \(eventTime, time or timestamp\) is not an RFC 3339 date-time/);
  });

  it('leaves a new tag to the resync once the watch tracks MAX_TRACKED_TAGS, so its state stays bounded', async () => {
    const fresh = await pushImage(upstream, 'team/capped', 'v-new', { seed: 'capped-new', layers: [60] });
    const known = await pushImage(upstream, 'team/capped', 'v0', { seed: 'capped-0', layers: [61] });
    await putWatch('capped', { source: `${upstream.host}/team/capped`, target: 'mirror/capped', tags: { include: ['v.*'] } });
    // A watch already following as many tags as a resync follows at most, written through the
    // real store (as a resync over that many upstream tags would leave it).
    const store = await watchStore();
    const watch = (await store.get('capped'))!.value;
    const checkedAt = new Date().toISOString();
    await store.updateState('capped', watch.createdAt, (state) => {
      for (let i = 0; i < MAX_TRACKED_TAGS; i++) state.tags[`v${i}`] = { digest: `sha256:${i.toString(16).padStart(64, '0')}`, checkedAt };
    });
    logs.length = 0;

    await upstreamPushHandler(eventGridEvent(upstream.host, 'team/capped', 'v-new', fresh.digest), ctx('upstreamPush'));
    expect(await jobsFor(`${upstream.host}/team/capped`)).toEqual([]);
    expect(logs.join('\n')).toMatch(new RegExp(`watch capped already tracks ${MAX_TRACKED_TAGS} tags`));
    let state = (await store.state('capped', watch.createdAt)).value;
    expect(Object.keys(state.tags)).toHaveLength(MAX_TRACKED_TAGS);
    expect(state.tags['v-new']).toBeUndefined();

    // A tag it already tracks is still synced at once.
    await upstreamPushHandler(eventGridEvent(upstream.host, 'team/capped', 'v0', known.digest), ctx('upstreamPush'));
    expect((await jobsFor(`${upstream.host}/team/capped`)).map((j) => j.source)).toEqual([`${upstream.host}/team/capped@${known.digest}`]);
    state = (await store.state('capped', watch.createdAt)).value;
    expect(Object.keys(state.tags)).toHaveLength(MAX_TRACKED_TAGS);
    expect(state.tags.v0).toMatchObject({ digest: known.digest, syncs: 1 });
    await workQueue();
    expect(sha256Digest(await skopeoInspectRaw(`${target.host}/mirror/capped:v0`))).toBe(known.digest);
  });

  it('reads a distribution 3.x (v2) envelope: a manifest push by tag queues, pulls and blob pushes are ignored, malformed events dropped with 200', async () => {
    const image = await pushImage(upstream, 'team/three', 'v3', { layers: [75] });
    await putWatch('three', { source: `${upstream.host}/team/three`, target: 'mirror/three', tags: { include: ['v.*'] } });
    const request = { id: randomUUID(), addr: '127.0.0.1:40000', host: upstream.host, method: 'PUT', useragent: 'containerd/2' };
    const envelope = {
      events: [
        { id: randomUUID(), timestamp: new Date().toISOString(), action: 'push', target: { mediaType: 'application/octet-stream', digest: image.blobs[0]!.digest, size: 75, repository: 'team/three' }, request },
        { id: randomUUID(), timestamp: new Date().toISOString(), action: 'pull', target: { mediaType: image.mediaType, digest: image.digest, size: 400, repository: 'team/three', tag: 'v3' }, request },
        { id: 'evt-push-v3', timestamp: new Date().toISOString(), action: 'push', target: { mediaType: image.mediaType, digest: image.digest, size: 400, repository: 'team/three', tag: 'v3', url: `http://${upstream.host}/v2/team/three/manifests/${image.digest}` }, request, actor: {}, source: { addr: 'registry:5000', instanceID: randomUUID() } },
        { id: randomUUID(), action: 'push', target: { digest: 'sha256:short', repository: 'team/three', tag: 'v3' }, request },
      ],
    };
    const answer = await call(distributionHookHandler, { method: 'POST', path: '/api/hooks/distribution', body: JSON.stringify(envelope), headers: { 'content-type': 'application/vnd.docker.distribution.events.v2+json', 'x-functions-key': API_KEY } }, logs);
    expect(answer.status).toBe(200);
    expect(answer.body.events.map((e: { outcome: string }) => e.outcome)).toEqual(['ignored', 'ignored', 'queued', 'dropped']);
    expect(answer.body.events[3].reason).toMatch(/target\.digest/);
    expect((await jobsFor(`${upstream.host}/team/three`)).map((j) => j.source)).toEqual([`${upstream.host}/team/three@${image.digest}`]);

    const notAnEnvelope = await call(distributionHookHandler, { method: 'POST', path: '/api/hooks/distribution', json: { hello: 'world' }, headers: { 'x-functions-key': API_KEY } }, logs);
    expect(notAnEnvelope.status).toBe(200);
    expect(notAnEnvelope.body.events[0].outcome).toBe('dropped');

    // What is not JSON at all is refused (distribution would redeliver it, but it sends only JSON).
    const hook = (body: string, contentType: string) => call(distributionHookHandler, { method: 'POST', path: '/api/hooks/distribution', body, headers: { 'content-type': contentType, 'x-functions-key': API_KEY } }, logs);
    const notJson = await hook('{"events": [', 'application/vnd.docker.distribution.events.v1+json');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('INVALID_JSON');
    expect((await hook('events', 'text/plain')).status).toBe(415);
    const large = await hook(JSON.stringify({ events: [{ id: 'x'.repeat(1024 * 1024) }] }), 'application/json');
    expect(large.status).toBe(413);
    expect(large.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  describe('through the local host', () => {
    let host: TestHost;
    let notifying: TestRegistry | undefined;
    beforeAll(async () => {
      process.env.HOIST_API_KEY = API_KEY;
      host = await startTestHost({ definitions: [upstreamPushFunction, distributionHookFunction], settings: { AzureWebJobsStorage: azurite.connectionString, HOIST_API_KEY: API_KEY } });
    });
    afterAll(async () => {
      delete process.env.HOIST_API_KEY;
      await Promise.all([host?.stop(), notifying?.stop()]);
    });

    it('answers both Event Grid handshakes and runs a CloudEvents delivery', async () => {
      // Through the OpenAPI checker, as every e2e call: each answer must be one the document describes.
      const api = ImportsApi.of(host);
      const webhook = `/runtime/webhooks/eventgrid?functionName=upstreamPush&code=${API_KEY}`;
      const validation = await api.request('POST', webhook, {
        headers: { 'aeg-event-type': 'SubscriptionValidation' },
        json: [{ id: randomUUID(), eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent', subject: '', data: { validationCode: 'code-512' }, eventTime: new Date().toISOString(), dataVersion: '1' }],
      });
      expect(validation.status).toBe(200);
      expect(validation.body).toEqual({ validationResponse: 'code-512' });
      const options = await api.request('OPTIONS', webhook, { headers: { 'WebHook-Request-Origin': 'eventgrid.azure.net' } });
      expect(options.status).toBe(200);
      expect(options.headers.get('webhook-allowed-origin')).toBe('eventgrid.azure.net');

      const image = await pushImage(upstream, 'team/cloud', 'v1', { layers: [90] });
      await putWatch('cloud', { source: `${upstream.host}/team/cloud:v1`, target: 'mirror/cloud' });
      const delivered = await api.request('POST', webhook, { headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(cloudEvent(upstream.host, 'team/cloud', 'v1', image.digest)) });
      expect(delivered.status).toBe(202);
      expect((await jobsFor(`${upstream.host}/team/cloud`)).map((j) => j.source)).toEqual([`${upstream.host}/team/cloud@${image.digest}`]);
    });

    it('runs upstreamPush on the event given to POST /admin/functions/{name}, as the Functions host would', async () => {
      const image = await pushImage(upstream, 'team/admin', 'v1', { layers: [85] });
      await putWatch('admin', { source: `${upstream.host}/team/admin:v1`, target: 'mirror/admin' });
      const event = eventGridEvent(upstream.host, 'team/admin', 'v1', image.digest);
      const answer = await ImportsApi.of(host, API_KEY).request('POST', '/admin/functions/upstreamPush', { json: { input: JSON.stringify(event) } });
      expect(answer.status).toBe(202);
      const jobs = await waitFor(async () => {
        const found = await jobsFor(`${upstream.host}/team/admin`);
        return found.length > 0 && found;
      }, 30_000, 'the sync job the event asks for');
      expect(jobs.map((j) => j.source)).toEqual([`${upstream.host}/team/admin@${image.digest}`]);
      expect(jobs[0]!.targets).toEqual([{ reference: `${target.host}/mirror/admin:v1`, tagged: true }]);
    });

    it('turns a real docker-registry notification of a push into a sync job', async () => {
      notifying = await startRegistry({
        extraConfig: {
          notifications: {
            endpoints: [{ name: 'hoist', url: `${host.url}/api/hooks/distribution`, headers: { 'x-functions-key': [API_KEY] }, timeout: '5s', threshold: 3, backoff: '1s' }],
          },
        },
      });
      await putWatch('hooked', { source: `${notifying.host}/team/hooked`, target: 'mirror/hooked', tags: { include: ['1\\..*'] } });
      const image = await pushImage(notifying, 'team/hooked', '1.0', { layers: [70] });
      await pushImage(notifying, 'team/hooked', 'nightly', { layers: [60] });
      const jobs = await waitFor(async () => {
        const found = await jobsFor(`${notifying!.host}/team/hooked`);
        return found.length > 0 && found;
      }, 30_000, 'a sync job queued by the notification');
      expect(jobs.map((j) => j.source)).toEqual([`${notifying.host}/team/hooked@${image.digest}`]);
      expect(jobs[0]!.targets).toEqual([{ reference: `${target.host}/mirror/hooked:1.0`, tagged: true }]);
      // The hook logs once its handler is done, after the job is recorded: waited for, not raced.
      await waitFor(() => host.logs.some((line) => /distribution hook: event .* queued job/.test(line)), 30_000, 'the hook\'s log line');
    });
  });
});
