/**
 * Cancel through the whole service (`DELETE /api/imports/{id}`), with real registries, Azurite
 * and the local host: a queued job never starts; a running one stops at the chunk boundary after
 * its worker learns of the cancel, and writes no tag; a finished one answers 409. The target sits
 * behind a delay proxy that can hold a PATCH, so the test decides where the copy stands.
 */
import { odata, TableClient } from '@azure/data-tables';
import { DEFAULT_JOBS_TABLE } from '../../src/jobs/settings.js';
import { LOCK_PARTITION } from '../../src/jobs/write-locks.js';
import { pushBigLayer, pushImage } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startTestAzurite, waitFor, type TestAzurite, type TestHost } from '../local/support.js';
import { startDelayProxy, type DelayProxy } from './delay-proxy.js';
import { appQueues, definitions, FAST_QUEUE_SETTINGS, ImportsApi, messageCount, MiB, startAppHost } from './support.js';

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let proxy: DelayProxy;
let settings: Record<string, string>;
const hosts: TestHost[] = [];

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startTestAzurite(), startRegistry(), startRegistry()]);
  proxy = await startDelayProxy(target.url, { delayInMs: 0, methods: ['PATCH'] });
  await Promise.all([pushBigLayer(source, 'big/src', 'v1'), pushImage(source, 'small/src', 'v1', { layers: [100] })]);
  settings = { AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: proxy.host, HOIST_CHUNK_SIZE_BYTES: String(MiB), ...FAST_QUEUE_SETTINGS };
});

afterAll(async () => {
  for (const host of hosts) await host.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop(), proxy?.stop()]);
  for (const name of Object.keys(settings ?? {})) delete process.env[name];
});

async function startHost(options: { worker: boolean }): Promise<TestHost> {
  const host = await startAppHost(settings, { definitions: options.worker ? definitions : definitions.filter((d) => d.trigger.type !== 'storageQueue') });
  hosts.push(host);
  return host;
}

/** The target's answer to a HEAD of `repository:tag` (404: no such tag). */
async function targetTagStatus(repository: string, tag: string): Promise<number> {
  const response = await fetch(`${target.url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return response.status;
}

/** The write-lock rows (tag and blob locks) in the jobs table. */
async function lockRows(): Promise<string[]> {
  const table = TableClient.fromConnectionString(azurite.connectionString, DEFAULT_JOBS_TABLE, { allowInsecureConnection: true });
  const rows: string[] = [];
  for await (const row of table.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${LOCK_PARTITION}` } })) rows.push(row.rowKey!);
  return rows;
}

describe('DELETE /api/imports/{id}', () => {
  it('cancels a queued job, which then never starts', async () => {
    const api = ImportsApi.of(await startHost({ worker: false }));
    const accepted = await api.post({ source: `${source.host}/small/src:v1`, images: ['canceled/queued:v1'] });
    expect(accepted.status).toBe(202);
    const canceled = await api.cancel(accepted.body.id);
    expect(canceled.status).toBe(200);
    expect(canceled.body).toMatchObject({ id: accepted.body.id, status: 'canceled', cancelRequestedAt: expect.any(String), completedAt: expect.any(String), attempts: 0 });
    // Again: still canceled, nothing else.
    expect((await api.cancel(accepted.body.id)).body).toEqual(canceled.body);

    // A worker now receives the job's message, finds it canceled and drops the message.
    const worker = await startHost({ worker: true });
    const { imports } = appQueues(azurite.connectionString);
    await waitFor(() => worker.logs.some((l) => l.includes(`job ${accepted.body.id}: already canceled`)), 30_000, 'the worker to drop the canceled job');
    await waitFor(async () => (await messageCount(imports)) === 0, 30_000, 'the imports queue to empty');
    const after = await api.get(accepted.body.id);
    expect(after).toEqual(canceled.body);
    expect(after).not.toHaveProperty('startedAt');
    expect(await targetTagStatus('canceled/queued', 'v1')).toBe(404);
  });

  it('stops a running job at the chunk boundary after its worker learns of the cancel, and writes no tag', async () => {
    const api = ImportsApi.of(await startHost({ worker: true }));
    const accepted = await api.post({ source: `${source.host}/big/src:v1`, images: ['canceled/running:v1'] });
    expect(accepted.status).toBe(202);
    // The first chunk of the big layer is held at the proxy: the job is running, mid-blob.
    const first = await proxy.holdNext();
    const running = await api.get(accepted.body.id);
    expect(running.status).toBe('running');

    const asked = await api.cancel(accepted.body.id);
    expect(asked.status).toBe(202);
    expect(asked.headers.get('operation-location')).toBe(`${api.baseUrl}/api/imports/${accepted.body.id}`);
    expect(asked.body).toMatchObject({ status: 'running', cancelRequestedAt: expect.any(String) });
    expect(asked.body).not.toHaveProperty('completedAt');

    // The first chunk lands; the second is held until the worker has written the job since the
    // cancel: that write met the cancel's ETag, so the worker knows.
    const second = proxy.holdNext();
    first.release();
    const held = await second;
    await waitFor(async () => Date.parse((await api.get(accepted.body.id)).updatedAt) > Date.parse(asked.body.updatedAt), 30_000, 'the worker to write the job after the cancel');
    held.release();

    const done = await api.waitForStatus(accepted.body.id, 'canceled', { timeoutInMs: 60_000 });
    expect(done.completedAt).toEqual(expect.any(String));
    expect(done.percentComplete).toBeLessThan(100);
    expect(done.progress.bytes.done).toBeLessThan(done.progress.bytes.total);
    // Exactly the two chunks, each whole: it stopped at the boundary after the second.
    const patches = proxy.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith('/v2/canceled/running/blobs/uploads/'));
    expect(patches.map((p) => p.bodyBytes)).toEqual([MiB, MiB]);
    expect(patches.every((p) => p.forwarded && p.status === 202)).toBe(true);
    expect(await targetTagStatus('canceled/running', 'v1')).toBe(404);
    // No lock is kept for a continuation that will never come: another job's upload of the blob
    // does not wait for it to expire.
    expect(await lockRows()).toEqual([]);
    // No continuation: the message is gone, and nothing picks the job up again.
    const { imports } = appQueues(azurite.connectionString);
    await waitFor(async () => (await messageCount(imports)) === 0, 30_000, 'the imports queue to empty');
    expect((await api.get(accepted.body.id)).status).toBe('canceled');
  });

  it('shows percentComplete, the measured rate and an ETA while the job runs', { tags: ['slow'] }, async () => {
    // 300 ms per 1 MiB chunk: the 64 MiB layer takes about 20 s, and the rate shows after 3 s.
    proxy.delayInMs = 300;
    try {
      const api = ImportsApi.of(await startHost({ worker: true }));
      const accepted = await api.post({ source: `${source.host}/big/src:v1`, images: ['canceled/measured:v1'] });
      expect(accepted.status).toBe(202);
      const measured = await waitFor(async () => {
        const doc = await api.get(accepted.body.id);
        if (doc.status !== 'queued' && doc.status !== 'running') throw new Error(`the job ended ${doc.status} before a rate showed`);
        return doc.progress.bytesPerSecond !== undefined && doc;
      }, 60_000, 'a status document with a rate');
      expect(measured.progress.bytesPerSecond).toBeGreaterThan(0);
      // Never a burst extrapolated: over the 3 s or more a rate needs, chunks 300 ms apart land at
      // most 11 times (plus the small blobs' few KiB).
      expect(measured.progress.bytesPerSecond).toBeLessThanOrEqual(Math.ceil((11 * MiB + 64 * 1024) / 3));
      expect(measured.percentComplete).toBeGreaterThan(0);
      expect(measured.percentComplete).toBeLessThan(100);
      const left = measured.progress.bytes.total - measured.progress.bytes.done;
      expect(Date.parse(measured.progress.estimatedCompletionAt!)).toBeGreaterThan(Date.parse(measured.updatedAt) + (left / measured.progress.bytesPerSecond!) * 1000 - 2000);
      expect((await api.cancel(accepted.body.id)).status).toBe(202);
      const done = await api.waitForStatus(accepted.body.id, 'canceled', { timeoutInMs: 60_000 });
      expect(done.progress).not.toHaveProperty('bytesPerSecond');
      expect(done.progress).not.toHaveProperty('estimatedCompletionAt');
    } finally {
      proxy.delayInMs = 0;
    }
  });

  it('answers 409 JOB_FINISHED for a job that succeeded, and 404 for an unknown one', async () => {
    const api = ImportsApi.of(await startHost({ worker: true }));
    const accepted = await api.post({ source: `${source.host}/small/src:v1`, images: ['canceled/finished:v1'] });
    await api.waitForStatus(accepted.body.id, 'succeeded');
    const refused = await api.cancel(accepted.body.id);
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'JOB_FINISHED', field: 'id', message: expect.stringMatching(/already succeeded at .*: only a queued or running job can be canceled/) });
    expect(await targetTagStatus('canceled/finished', 'v1')).toBe(200);
    const unknown = await api.cancel('0000000000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'id' });
  });
});
