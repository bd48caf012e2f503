import { ConcurrencyError } from '../../src/jobs/errors.js';
import { isJobId, jobIdTime, newJobId } from '../../src/jobs/job-id.js';
import { newJobRecord, type JobRecord, type JobStatus } from '../../src/jobs/job-record.js';
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { startAzurite, type TestAzurite } from './azurite.js';

let azurite: TestAzurite;
let storage: JobStorage;

beforeAll(async () => {
  azurite = await startAzurite();
  storage = await openJobStorage(azurite.connectionString, { jobsTable: 'storetests', checkpointsTable: 'storecheckpoints' });
});
afterAll(async () => {
  await azurite?.stop();
});

function job(overrides: Partial<JobRecord> = {}, at = new Date()): JobRecord {
  return {
    ...newJobRecord({
      id: newJobId(at),
      source: 'docker.io/library/hello-world:latest',
      targets: [{ reference: 'localhost:5000/hello:v1', tagged: true }],
      force: false,
      platforms: [],
      referrers: false,
      now: at,
    }),
    ...overrides,
  };
}

function manifestList(count: number): JobRecord['manifests'] {
  return Array.from({ length: count }, (_, i) => ({ digest: `sha256:${i.toString(16).padStart(64, '0')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: `linux/arch${i}`, written: true }));
}

describe('job ids', () => {
  it('sort newest first and carry their creation time', () => {
    const older = newJobId(new Date('2024-01-01T00:00:00Z'));
    const newer = newJobId(new Date('2025-01-01T00:00:00Z'));
    expect(isJobId(older) && isJobId(newer)).toBe(true);
    expect(newer < older).toBe(true);
    expect(jobIdTime(older).toISOString()).toBe('2024-01-01T00:00:00.000Z');
    expect(isJobId('../etc/passwd')).toBe(false);
  });
});

describe('JobStore', () => {
  it('round-trips a job, including large JSON columns', async () => {
    const record = job({
      sourceDigest: `sha256:${'1'.repeat(64)}`,
      manifests: Array.from({ length: 400 }, (_, i) => ({ digest: `sha256:${i.toString(16).padStart(64, '0')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: `linux/arch${i}` })),
      manifestCounts: { total: 4_501, written: 4_500 },
      error: { code: 'X', message: 'y' },
    });
    expect(JSON.stringify(record.manifests).length).toBeGreaterThan(60_000);
    const created = await storage.jobs.create(record);
    expect(created.etag).toBeTruthy();
    const read = await storage.jobs.get(record.id);
    expect(read?.value).toEqual(record);
    expect(await storage.jobs.get(newJobId())).toBeUndefined();
    expect(await storage.jobs.get('not-an-id')).toBeUndefined();
  });

  it('round-trips the flags, and leaves out the ones never set', async () => {
    const flagged = job({ force: true, referrers: true, allowNondistributableArtifacts: true, deliveryDequeueCount: 3 });
    await storage.jobs.create(flagged);
    expect((await storage.jobs.get(flagged.id))?.value).toMatchObject({ force: true, referrers: true, allowNondistributableArtifacts: true, deliveryDequeueCount: 3 });
    const plain = job();
    await storage.jobs.create(plain);
    const read = (await storage.jobs.get(plain.id))!.value;
    expect(read).toMatchObject({ force: false, referrers: false });
    expect(read).not.toHaveProperty('allowNondistributableArtifacts');
    expect(read).not.toHaveProperty('deliveryDequeueCount');
  });

  it.each(['not-an-id', "it's/not"])('answers %j, which no job id looks like, with nothing', async (id) => {
    expect(await storage.jobs.get(id)).toBeUndefined();
  });

  it('deletes a job only at the ETag it was read with, and a job already gone without error', async () => {
    const record = job();
    const { etag } = await storage.jobs.create(record);
    const newer = await storage.jobs.replace({ ...record, attempts: 1 }, etag);
    await expect(storage.jobs.delete(record.id, etag)).rejects.toBeInstanceOf(ConcurrencyError);
    expect(await storage.jobs.get(record.id)).toBeDefined();
    await storage.jobs.delete(record.id, newer);
    expect(await storage.jobs.get(record.id)).toBeUndefined();
    await expect(storage.jobs.delete(record.id, newer)).resolves.toBeUndefined();
  });

  // Azurite stores what real Azure Tables refuses; the store must refuse it first, clearly.
  it.each([
    ['an entity over 1 MiB', { manifests: manifestList(4_000) }, /job \S+ is too large for Azure Tables: \d+ bytes \(Azure Tables allows 1048576\)/],
    ['a string property over 32 Ki characters', { source: `docker.io/library/${'a'.repeat(40_000)}:v1` }, /property source holds \d+ characters \(Azure Tables allows 32768\)/],
  ])('refuses %s, which Azurite would take', async (_, overrides, message) => {
    const record = job(overrides);
    const error = await storage.jobs.create(record).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ENTITY_TOO_LARGE', message: expect.stringMatching(message) });
    expect(await storage.jobs.get(record.id)).toBeUndefined();
    // The same refusal on an update of a stored job.
    const stored = job();
    const { etag } = await storage.jobs.create(stored);
    await expect(storage.jobs.replace({ ...stored, ...overrides }, etag)).rejects.toMatchObject({ code: 'ENTITY_TOO_LARGE' });
  });

  it('is the only guard against entities over 1 MiB: Azurite takes them', async () => {
    const parts = Object.fromEntries(Array.from({ length: 22 }, (_, i) => [`part${i}`, 'x'.repeat(30_000)]));
    await storage.jobs.table.createEntity({ partitionKey: 'azurite-check', rowKey: 'over-1-mib', ...parts });
  });

  it('refuses an update with a stale ETag, and one with none', async () => {
    const record = job();
    const { etag } = await storage.jobs.create(record);
    const newEtag = await storage.jobs.replace({ ...record, attempts: 1 }, etag);
    expect(newEtag).not.toBe(etag);
    await expect(storage.jobs.replace({ ...record, attempts: 2 }, etag)).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(storage.jobs.replace({ ...record, attempts: 2 }, '')).rejects.toThrow(/unconditional/);
    expect((await storage.jobs.get(record.id))?.value.attempts).toBe(1);
  });

  it('lets exactly one of several concurrent writers with the same ETag win', async () => {
    const record = job();
    const { etag } = await storage.jobs.create(record);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => storage.jobs.replace({ ...record, attempts: i + 1 }, etag)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConcurrencyError);
  });

  it('refuses to create the same id twice', async () => {
    const record = job();
    await storage.jobs.create(record);
    // Another job under the id (the very same record is the insert's own retry: late-writes.test.ts).
    await expect(storage.jobs.create({ ...record, source: 'docker.io/library/busybox:latest' })).rejects.toBeInstanceOf(ConcurrencyError);
  });
});

describe('JobStore.list', () => {
  let jobs: JobStorage['jobs'];
  const created: JobRecord[] = [];
  const statuses: JobStatus[] = ['queued', 'running', 'succeeded', 'failed'];

  beforeAll(async () => {
    jobs = (await openJobStorage(azurite.connectionString, { jobsTable: 'listtests', checkpointsTable: 'listcheckpoints' })).jobs;
    const base = Date.parse('2025-06-01T00:00:00Z');
    for (let i = 0; i < 23; i++) {
      const record = job({ status: statuses[i % 4] }, new Date(base + i * 1000));
      created.push(record);
      await jobs.create(record);
    }
  });

  it('pages through every job, newest first', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await jobs.list({ pageSize: 5, ...(after && { after }) });
      expect(page.jobs.length).toBeLessThanOrEqual(5);
      seen.push(...page.jobs.map((j) => j.id));
      after = page.continuationToken;
      pages++;
    } while (after);
    expect(pages).toBe(5);
    expect(seen).toEqual([...created].reverse().map((j) => j.id));
  });

  it('filters by status, across pages', async () => {
    const failed = await jobs.list({ statuses: ['failed'], pageSize: 3 });
    expect(failed.jobs.map((j) => j.status)).toEqual(['failed', 'failed', 'failed']);
    const rest = await jobs.list({ statuses: ['failed'], pageSize: 3, after: failed.continuationToken! });
    expect(rest.jobs.map((j) => j.id)).toEqual(created.filter((j) => j.status === 'failed').reverse().slice(3).map((j) => j.id));
    expect(rest.continuationToken).toBeUndefined();

    const two = await jobs.list({ statuses: ['queued', 'running'], pageSize: 100 });
    expect(two.jobs).toHaveLength(created.filter((j) => j.status === 'queued' || j.status === 'running').length);
    expect(two.continuationToken).toBeUndefined();

    // No statuses named is no filter.
    expect((await jobs.list({ statuses: [], pageSize: 100 })).jobs).toHaveLength(created.length);
  });

  it('has no continuation token when the last page is exactly full', async () => {
    const all = await jobs.list({ pageSize: 23 });
    expect(all.jobs).toHaveLength(23);
    expect(all.continuationToken).toBeUndefined();
  });
});
