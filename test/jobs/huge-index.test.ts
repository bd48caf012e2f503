/**
 * A completed copy is never failed by bookkeeping: a 4,500-child index, pushed to a real
 * registry here, imported through the worker path (runImport, real engine, Azurite). The job
 * record must fit real Azure Tables (job-store.ts checks the limits Azurite does not).
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { copy } from '../../src/copy/index.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { MAX_LISTED_MANIFESTS, newJobRecord } from '../../src/jobs/job-record.js';
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { runImport } from '../../src/jobs/run-import.js';
import { toStatusDocument } from '../../src/jobs/status-document.js';
import { mapLimit } from '../../src/copy/limit.js';
import { FixtureClient, MEDIA_TYPES, sha256Digest } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startAzurite, type TestAzurite } from './azurite.js';

const CHILDREN = 4_500;

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let storage: JobStorage;

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startAzurite(), startRegistry(), startRegistry()]);
  storage = await openJobStorage(azurite.connectionString);
  await storage.queue.queue.createIfNotExists();
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
});

/**
 * An index of `count` image manifests that share one config and one layer and differ by an
 * annotation: as many manifests as wanted for the price of two blobs. Children go by digest,
 * 16 at a time.
 */
async function pushWideIndex(repository: string, tag: string, count: number): Promise<{ digest: string; children: string[] }> {
  const client = new FixtureClient(source);
  const config = await client.pushBlob(repository, { data: Buffer.from('{"architecture":"amd64","os":"linux"}') });
  const layer = await client.pushBlob(repository, { data: Buffer.from('one shared layer') });
  const descriptors = await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      const bytes = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociManifest,
          config: { mediaType: MEDIA_TYPES.ociConfig, ...config },
          layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, ...layer }],
          annotations: { 'org.example.child': String(i) },
        }),
      );
      const digest = await client.putManifest(repository, sha256Digest(bytes), bytes, MEDIA_TYPES.ociManifest);
      return { mediaType: MEDIA_TYPES.ociManifest, digest, size: bytes.length, platform: { os: 'linux', architecture: `arch${i}` } };
    },
  );
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: descriptors }));
  const digest = await client.putManifest(repository, tag, index, MEDIA_TYPES.ociIndex);
  return { digest, children: descriptors.map((d) => d.digest) };
}

// Cost: about 2 minutes on 2 busy cores: 35 s to push 4,500 manifests, 75 s for the copy to read
// and write them one by one.
describe('stress: a 4,500-child index', () => {
  it('imports through the worker to success, with counts and the first manifests in the status document', async () => {
    const index = await pushWideIndex('wide/index', 'v1', CHILDREN);
    const record = newJobRecord({ id: newJobId(), source: `${source.host}/wide/index:v1`, targets: [{ reference: `${target.host}/wide/copy:v1`, tagged: true }], force: false, platforms: [], referrers: false });
    await storage.jobs.create(record);
    const logs: string[] = [];
    const outcome = await runImport(
      { message: { jobId: record.id, continuation: 0 }, dequeueCount: 1, invocationId: 'wide' },
      {
        jobs: storage.jobs,
        checkpoints: storage.checkpoints,
        queue: storage.queue,
        hosts: new RegistryHosts(),
        copy,
        timeBudgetInMs: 600_000,
        leaseDurationInMs: 60_000,
        maxDequeueCount: 5,
        // Far past the service's default of 50 (HOIST_MAX_MANIFESTS): the index and every child.
        maxManifests: CHILDREN + 1,
        log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) },
      },
    );
    expect(outcome, logs.join('\n')).toBe('succeeded');

    const doc = toStatusDocument((await storage.jobs.get(record.id))!.value);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets[0]).toMatchObject({ digest: index.digest, written: true });
    expect(doc.manifestCounts).toEqual({ total: CHILDREN + 1, written: CHILDREN + 1 });
    expect(doc.manifests).toHaveLength(MAX_LISTED_MANIFESTS);
    // The first ones, in the order the copy wrote them: children first.
    expect(doc.manifests.map((m) => m.digest)).toEqual(index.children.slice(0, MAX_LISTED_MANIFESTS));
    expect(doc.manifests[0]).toMatchObject({ mediaType: MEDIA_TYPES.ociManifest, platform: 'linux/arch0', written: true });
    const copied = await new FixtureClient(target).getManifest('wide/copy', 'v1');
    expect(sha256Digest(copied.bytes)).toBe(index.digest);
  }, 600_000);
});
