/**
 * Resume through the whole service: a 64 MiB+ layer imported with 1 MiB chunks under a 1 s time
 * budget (HOIST_TIME_BUDGET_SECONDS), so the worker runs out of time several times and re-queues
 * continuations. Loopback would finish the layer inside one budget, so the target sits behind a
 * proxy that holds each PATCH for 40 ms, as a real network path would. Every continuation must
 * pick up from the checkpoint: each byte range is sent once, in one upload session per blob.
 */
import { BIG_LAYER_SIZE, pushBigLayer, type PushedManifest } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget } from '../copy/support.js';
import { startTestAzurite, type TestAzurite, type TestHost } from '../local/support.js';
import { parseContentRange, startDelayProxy, uploadSessionOf, type DelayProxy } from './delay-proxy.js';
import { expectOrderedTimestamps, FAST_QUEUE_SETTINGS, ImportsApi, MiB, startAppHost, type ImportStatus } from './support.js';

const TARGET_PASSWORD = 'resume-target-password-1234';
const REPO = 'resumed/big';

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let proxy: DelayProxy;
let host: TestHost;
let image: PushedManifest;
let settings: Record<string, string>;

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startTestAzurite(), startRegistry(), startRegistry({ auth: 'basic', users: { pusher: TARGET_PASSWORD } })]);
  proxy = await startDelayProxy(target.url, { delayInMs: 40, methods: ['PATCH'] });
  image = await pushBigLayer(source, 'big/src', 'v1');
  settings = {
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: proxy.host,
    HOIST_TARGET_USERNAME: 'pusher',
    HOIST_TARGET_PASSWORD: TARGET_PASSWORD,
    HOIST_TIME_BUDGET_SECONDS: '1',
    HOIST_CHUNK_SIZE_BYTES: String(MiB),
    ...FAST_QUEUE_SETTINGS,
  };
  host = await startAppHost(settings);
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop(), proxy?.stop()]);
  for (const name of Object.keys(settings ?? {})) delete process.env[name];
});

describe('an import that outlives its time budget', () => {
  it('completes across several continuations, each resuming from its checkpoint', { tags: ['slow'] }, async () => {
    const api = ImportsApi.of(host);
    const accepted = await api.post({ source: `${source.host}/big/src:v1`, images: [`${REPO}:v1`] });
    expect(accepted.status).toBe(202);
    const samples: ImportStatus[] = [];
    const done = await api.waitForStatus(accepted.body.id, 'succeeded', { timeoutInMs: 90_000, onPoll: (d) => samples.push(d), logs: () => host.logs.join('\n') });

    // The status document: several continuations, one attempt (no delivery failed), all done.
    expect(done).toMatchObject({
      status: 'succeeded',
      source: { reference: `${source.host}/big/src:v1`, digest: image.digest, mediaType: image.mediaType },
      targets: [{ reference: `${proxy.host}/${REPO}:v1`, tagged: true, digest: image.digest, written: true }],
      manifests: [{ digest: image.digest, mediaType: image.mediaType, written: true }],
    });
    expect(done.continuations).toBeGreaterThanOrEqual(2);
    expect(done.attempts).toBe(1);
    const totalBytes = image.blobs.reduce((sum, b) => sum + b.size, 0);
    // The job copied every blob itself: continuations must not count earlier runs' copies as skipped.
    expect(done.progress).toMatchObject({ blobs: { total: 3, done: 3, skipped: 0, mounted: 0 }, bytes: { total: totalBytes, done: totalBytes } });
    expectOrderedTimestamps(done);
    const invocations = host.logs.filter((l) => new RegExp(`job ${done.id}: attempt \\d+, continuation \\d+`).test(l));
    expect(invocations).toHaveLength(done.continuations + 1);
    expect(host.logs.filter((l) => l.includes(`job ${done.id}: time budget used, continuation`))).toHaveLength(done.continuations);

    // Progress moved while the big layer was in flight, never backwards, across continuations.
    const running = samples.filter((s) => s.status === 'running' && s.progress.bytes.total > 0);
    const inFlight = running.map((s) => s.progress.bytes.done).filter((b) => b > 0 && b < totalBytes);
    expect(new Set(inFlight).size).toBeGreaterThanOrEqual(2);
    const seen = samples.map((s) => s.progress.bytes.done);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);

    // Bytes were never re-sent: one upload session per blob, its chunks contiguous from 0, each
    // sent exactly once, by PATCH (with its Content-Range) or, the last, with the closing PUT.
    const uploads = proxy.requests.filter((r) => (r.method === 'PATCH' || (r.method === 'PUT' && r.bodyBytes > 0)) && r.path.startsWith(`/v2/${REPO}/blobs/uploads/`));
    const sessions = new Map<string, Array<[number, number]>>();
    for (const p of uploads) {
      const session = uploadSessionOf(p.path)!;
      const ranges = sessions.get(session) ?? [];
      const next = ranges.length ? ranges[ranges.length - 1]![1] + 1 : 0;
      const range = p.method === 'PATCH' ? parseContentRange(p.contentRange) : ([next, next + p.bodyBytes - 1] as [number, number]);
      expect(range, `PATCH ${p.path} has Content-Range ${p.contentRange}`).toBeDefined();
      expect(p.bodyBytes).toBe(range![1] - range![0] + 1);
      sessions.set(session, [...ranges, range!]);
    }
    expect(sessions.size).toBe(image.blobs.length);
    const sizes = [...sessions.values()].map((ranges) => {
      let next = 0;
      for (const [start, end] of ranges) {
        expect(start).toBe(next);
        expect(end - start + 1).toBeLessThanOrEqual(MiB);
        next = end + 1;
      }
      return next;
    });
    expect(sizes.sort((a, b) => a - b)).toEqual(image.blobs.map((b) => b.size).sort((a, b) => a - b));
    const chunks = image.blobs.reduce((sum, b) => sum + Math.ceil(b.size / MiB), 0);
    expect(chunks).toBe(Math.ceil(BIG_LAYER_SIZE / MiB) + 2);
    expect(uploads).toHaveLength(chunks);
    // And the registry logged one PATCH per chunk but each blob's last.
    const registryPatches = target.accessLog().filter((e) => e.method === 'PATCH' && e.uri.startsWith(`/v2/${REPO}/blobs/uploads/`));
    expect(registryPatches).toHaveLength(chunks - image.blobs.length);
    expect(registryPatches.every((e) => e.status === 202)).toBe(true);

    // The independent check: skopeo reads the manifest back byte for byte and pulls every blob.
    await expectIdenticalInTarget(target, REPO, 'v1', [image]);
  });
});
