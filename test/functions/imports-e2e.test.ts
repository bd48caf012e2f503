/**
 * The import service against real registries (distribution, basic auth on both sides) and
 * Azurite: POST through the HTTP handler, drain the queue through the worker handler as the host
 * would, and check the target with skopeo. The local host's process-level tests (crash, poison
 * queue, several hosts) live with src/local.
 */
import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient } from '@azure/storage-queue';
import { copy } from '../../src/copy/index.js';
import type { CheckpointStore } from '../../src/copy/types.js';
import { importWorkerHandler } from '../../src/functions/import-worker.js';
import { importsHandler } from '../../src/functions/imports.js';
import { setEngine } from '../../src/functions/services.js';
import { pushImage, pushOciIndexThreePlatforms, type PushedManifest } from '../helpers/fixtures.js';
import { ALLOW_LOOPBACK_REGISTRIES, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { call } from './support.js';

const SOURCE_PASSWORD = `source-${randomBytes(8).toString('hex')}`;
const TARGET_PASSWORD = `target-${randomBytes(8).toString('hex')}`;
const MiB = 1024 * 1024;

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let image: PushedManifest;
let index: PushedManifest;
const logs: string[] = [];

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([
    startAzurite(),
    startRegistry({ auth: 'basic', users: { reader: SOURCE_PASSWORD } }),
    startRegistry({ auth: 'basic', users: { pusher: TARGET_PASSWORD } }),
  ]);
  image = await pushImage(source, 'team/app', 'v1', { layers: [300, 6 * MiB + 123] });
  index = await pushOciIndexThreePlatforms(source, 'team/multi');
  setEngine();
  Object.assign(process.env, {
    ...ALLOW_LOOPBACK_REGISTRIES,
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: target.host,
    HOIST_TARGET_USERNAME: 'pusher',
    HOIST_TARGET_PASSWORD: TARGET_PASSWORD,
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
    HOIST_CHUNK_SIZE_BYTES: String(MiB),
  });
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
});

const queue = () => QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');
const getJob = async (id: string) => (await call(importsHandler, { method: 'GET', path: `/api/imports/${id}`, params: { id } }, logs)).body;

/**
 * The real engine, with each checkpoint save held up a little: loopback registries take chunks
 * faster than any sane time budget runs out, and a slow save is how a slow network looks here.
 */
function engineWithSlowCheckpoints(delayInMs: number): void {
  setEngine({
    copy: (request, options = {}) => {
      const inner = options.checkpoints;
      const checkpoints: CheckpointStore | undefined = inner && {
        load: (t, d) => inner.load(t, d),
        remove: (t, d) => inner.remove(t, d),
        save: async (c) => {
          await new Promise((r) => setTimeout(r, delayInMs));
          await inner.save(c);
        },
      };
      return copy(request, { ...options, ...(checkpoints && { checkpoints }) });
    },
  });
}

/** Runs the worker on every message until the given jobs have ended, several deliveries at once; counts their invocations. */
async function work(ids: string[], parallel = 4): Promise<number> {
  let invocations = 0;
  for (let round = 0; round < 400; round++) {
    const jobs = await Promise.all(ids.map(getJob));
    if (jobs.every((j) => j.status === 'succeeded' || j.status === 'failed')) return invocations;
    const { receivedMessageItems } = await queue().receiveMessages({ numberOfMessages: parallel, visibilityTimeout: 60 });
    if (receivedMessageItems.length === 0) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    await Promise.all(
      receivedMessageItems.map(async (m) => {
        const body = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as { jobId: string };
        if (ids.includes(body.jobId)) invocations++;
        const context = new InvocationContext({
          invocationId: `w-${randomBytes(4).toString('hex')}`,
          functionName: 'importWorker',
          triggerMetadata: { dequeueCount: m.dequeueCount },
          logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`),
        });
        await importWorkerHandler(body, context);
        await queue().deleteMessage(m.messageId, m.popReceipt);
      }),
    );
  }
  throw new Error(`jobs did not finish: ${JSON.stringify(await Promise.all(ids.map(getJob)))}\n${logs.slice(-30).join('\n')}`);
}

describe('imports end to end', () => {
  it('imports with source credentials across continuations, resuming each blob from its checkpoint', async () => {
    process.env.HOIST_TIME_BUDGET_SECONDS = '0.3';
    engineWithSlowCheckpoints(100);
    const patchesBefore = target.accessLog().filter((e) => e.method === 'PATCH').length;
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:v1`, images: ['copied/app:v1'], username: 'reader', password: SOURCE_PASSWORD } }, logs);
    expect(posted.status).toBe(202);
    const invocations = await work([posted.body.id], 1);
    const job = await getJob(posted.body.id);
    expect(job).toMatchObject({
      status: 'succeeded',
      source: { reference: `${source.host}/team/app:v1`, digest: image.digest },
      targets: [{ reference: `${target.host}/copied/app:v1`, tagged: true, digest: image.digest, written: true }],
      manifests: [{ digest: image.digest, mediaType: image.mediaType, written: true }],
    });
    expect(job.continuations).toBeGreaterThanOrEqual(2);
    expect(invocations).toBe(job.continuations + 1);
    expect(job.progress.bytes.done).toBe(job.progress.bytes.total);
    // 1 MiB chunks: the big layer's seven are six PATCHes and its closing PUT; config and small
    // layer fit in their PUTs. Any chunk sent twice (a continuation restarting a blob from zero)
    // would add PATCHes.
    const patches = target.accessLog().filter((e) => e.method === 'PATCH').length - patchesBefore;
    expect(patches).toBe(6);
    expect((await skopeoInspectRaw(`${target.host}/copied/app:v1`, { username: 'pusher', password: TARGET_PASSWORD })).equals(image.manifestBytes)).toBe(true);
    delete process.env.HOIST_TIME_BUDGET_SECONDS;
    setEngine();
  });

  it('imports the same image to different tags in two concurrent jobs, and refuses an existing tag', async () => {
    const [a, b] = await Promise.all(
      ['multi:a', 'multi:b'].map((tag) => call(importsHandler, { json: { source: `${source.host}/team/multi:multi`, images: [tag], username: 'reader', password: SOURCE_PASSWORD } }, logs)),
    );
    expect([a.status, b.status]).toEqual([202, 202]);
    await work([a.body.id, b.body.id]);
    for (const [res, tag] of [[a, 'multi:a'], [b, 'multi:b']] as const) {
      const job = await getJob(res.body.id);
      expect(job.status).toBe('succeeded');
      expect(job.manifests).toHaveLength(4);
      expect(job.manifests.map((m: { digest: string }) => m.digest).sort()).toEqual([index.digest, ...index.children.map((c) => c.digest)].sort());
      expect(job.manifests.filter((m: { platform?: string }) => m.platform).length).toBe(3);
      expect((await skopeoInspectRaw(`${target.host}/${tag}`, { username: 'pusher', password: TARGET_PASSWORD })).equals(index.manifestBytes)).toBe(true);
    }
    const conflict = await call(importsHandler, { json: { source: `${source.host}/team/app:v1`, images: ['multi:a'], username: 'reader', password: SOURCE_PASSWORD } }, logs);
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatchObject({ code: 'TAG_EXISTS', field: 'images' });
  });

  it('queues an import whose target tag already holds the source tag\'s digest, and ends it as a no-op', async () => {
    const target = 'noop/multi:v1';
    const first = await call(importsHandler, { json: { source: `${source.host}/team/multi:multi`, images: [target], username: 'reader', password: SOURCE_PASSWORD } }, logs);
    await work([first.body.id]);
    expect((await getJob(first.body.id)).targets[0]).toMatchObject({ digest: index.digest, written: true });

    const again = await call(importsHandler, { json: { source: `${source.host}/team/multi:multi`, images: [target], username: 'reader', password: SOURCE_PASSWORD } }, logs);
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    await work([again.body.id]);
    const job = await getJob(again.body.id);
    expect(job.status).toBe('succeeded');
    expect(job.targets[0]).toMatchObject({ digest: index.digest, written: false });
  });

  it('fails at once, with a message saying what to do, when the source refuses the credentials', async () => {
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:v1`, images: ['copied/denied:v1'], username: 'reader', password: 'wrong-password' } }, logs);
    expect(posted.status).toBe(202);
    expect(await work([posted.body.id])).toBe(1);
    const job = await getJob(posted.body.id);
    expect(job.status).toBe('failed');
    expect(job.error.code).toBe('AUTH_FAILED');
    expect(job.error.message).toMatch(/source/);
  });

  describe('the outbound address policy', () => {
    /** Runs `body` with some settings changed, restoring them after. */
    async function withSettings(changes: Record<string, string>, body: () => Promise<void>): Promise<void> {
      const saved = Object.fromEntries(Object.keys(changes).map((k) => [k, process.env[k]]));
      Object.assign(process.env, changes);
      try {
        await body();
      } finally {
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    }

    it('refuses at submit a source on loopback, naming the host and the rule, when loopback is not allowed', async () => {
      const port = source.host.split(':')[1];
      await withSettings({ HOIST_ALLOWED_PRIVATE_REGISTRIES: '' }, async () => {
        for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::ffff:127.0.0.1]:${port}`]) {
          const posted = await call(importsHandler, { json: { source: `${host}/team/app:v1`, images: ['copied/refused:v1'] } }, logs);
          expect(posted.status, host).toBe(400);
          expect(posted.body.error).toMatchObject({ code: 'ADDRESS_REFUSED', field: 'source' });
          expect(posted.body.error.message).toMatch(/refused to connect to (localhost \(127\.0\.0\.1\)|127\.0\.0\.1|::ffff:7f00:1).*loopback.*HOIST_ALLOWED_PRIVATE_REGISTRIES/);
        }
      });
    });

    it('refuses at submit a source outside HOIST_ALLOWED_SOURCES, and accepts one inside', async () => {
      await withSettings({ HOIST_ALLOWED_SOURCES: '*.azurecr.io,docker.io' }, async () => {
        const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:v1`, images: ['copied/outside:v1'] } }, logs);
        expect(posted.status).toBe(400);
        expect(posted.body.error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', field: 'source' });
        expect(posted.body.error.message).toContain(source.host);
        expect(posted.body.error.message).toContain('*.azurecr.io, docker.io (HOIST_ALLOWED_SOURCES)');
      });
      await withSettings({ HOIST_ALLOWED_SOURCES: `127.0.0.1` }, async () => {
        const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:v1`, images: ['copied/inside:v1'], username: 'reader', password: SOURCE_PASSWORD } }, logs);
        expect(posted.status, JSON.stringify(posted.body)).toBe(202);
        await work([posted.body.id]);
        expect((await getJob(posted.body.id)).status).toBe('succeeded');
      });
    });

    it('fails the job when the source registry sends it to a token realm the policy refuses, asking the realm nothing', async () => {
      const tokenSource = await startRegistry({ auth: 'token' });
      try {
        const pushed = await pushImage(tokenSource, 'team/token', 'v1', { layers: [100] });
        const tokenRequests = tokenSource.tokenIssuer!.requests.length;
        // The registry itself is allowed; its token realm (another loopback port) is not.
        await withSettings({ HOIST_ALLOWED_PRIVATE_REGISTRIES: `${tokenSource.host},${target.host}` }, async () => {
          const posted = await call(importsHandler, { json: { source: `${tokenSource.host}/team/token@${pushed.digest}`, images: ['copied/realm:v1'], username: 'alice', password: 'wonderland-secret' } }, logs);
          expect(posted.status, JSON.stringify(posted.body)).toBe(202);
          expect(await work([posted.body.id])).toBe(1);
          const job = await getJob(posted.body.id);
          expect(job.status).toBe('failed');
          expect(job.error.code).toBe('ADDRESS_REFUSED');
          expect(job.error.message).toMatch(/refused to connect to 127\.0\.0\.1.*loopback/);
        });
        expect(tokenSource.tokenIssuer!.requests.length).toBe(tokenRequests);
        expect(await skopeoInspectRaw(`${target.host}/copied/realm:v1`, { username: 'pusher', password: TARGET_PASSWORD }).catch(() => undefined)).toBeUndefined();
      } finally {
        await tokenSource.stop();
      }
    });
  });

  it('left no password in any status document or log line', async () => {
    const list = await call(importsHandler, { method: 'GET', path: '/api/imports?pageSize=100' }, logs);
    const everything = [JSON.stringify(list.body), ...logs].join('\n');
    expect(list.body.value.length).toBeGreaterThanOrEqual(4);
    for (const secret of [SOURCE_PASSWORD, TARGET_PASSWORD]) expect(everything).not.toContain(secret);
  });
});
