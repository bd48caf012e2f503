/**
 * Table writes whose try was cut (after STORAGE_TRY_TIMEOUT_MS) but that the service still
 * applied, against a real Azurite: frozen with SIGSTOP, the kernel takes the request, the try is
 * cut, and once Azurite goes on (SIGCONT) it applies the write it had received. The SDK's retry of
 * that write then meets it: 409 EntityAlreadyExists for an insert, 412 for a replace on the ETag
 * read before. The stores must take their own write for what it is.
 *
 * The order is made, not timed: a policy on the client under test resumes Azurite when the first
 * try fails and lets the retry go only once the late write can be read (through another client).
 */
import { createHash } from 'node:crypto';
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { checkpointKey } from '../../src/copy/checkpoint-key.js';
import type { BlobCheckpoint } from '../../src/copy/types.js';
import { TableCheckpoints } from '../../src/jobs/checkpoint-store.js';
import { ConcurrencyError } from '../../src/jobs/errors.js';
import { IdempotencyStore } from '../../src/jobs/idempotency-store.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import { JOB_PARTITION, JobStore } from '../../src/jobs/job-store.js';
import { storageClients } from '../../src/jobs/storage-connection.js';
import { openTable } from '../../src/jobs/tables.js';
import { startAzurite, type TestAzurite } from '../helpers/azurite.js';

let azurite: TestAzurite;
/** The client under test, and an independent one that watches the same table. */
let table: TableClient;
let observer: TableClient;

beforeAll(async () => {
  azurite = await startAzurite();
  table = await openTable(storageClients(azurite.connectionString), 'latewrites');
  observer = await openTable(storageClients(azurite.connectionString), 'latewrites');
});
afterAll(async () => {
  azurite?.resume();
  await azurite?.stop();
});

function job(): JobRecord {
  return newJobRecord({ id: newJobId(), source: 'docker.io/library/hello-world:latest', targets: [{ reference: 'localhost:5000/hello:v1', tagged: true }], force: false, platforms: [], referrers: false });
}

/**
 * Runs `write` with Azurite frozen, so that its first try is cut; then lets Azurite apply that
 * try, and the SDK's retry go only once `landed` sees it in the table.
 */
async function landingLate<T>(write: () => Promise<T>, landed: (entity: TableEntityResult<Record<string, unknown>> | undefined) => boolean, where: { partitionKey: string; rowKey: string }): Promise<T> {
  let cut = false;
  const policy: PipelinePolicy = {
    name: 'landLate',
    async sendRequest(request, next) {
      if (cut || request.method === 'GET') return next(request);
      try {
        return await next(request);
      } catch (error) {
        cut = true;
        azurite.resume();
        for (;;) {
          const entity = await observer.getEntity<Record<string, unknown>>(where.partitionKey, where.rowKey).catch(() => undefined);
          if (landed(entity)) break;
        }
        throw error;
      }
    },
  };
  table.pipeline.addPolicy(policy, { afterPhase: 'Retry' });
  try {
    azurite.pause();
    return await write();
  } finally {
    azurite.resume();
    table.pipeline.removePolicy({ name: 'landLate' });
    expect(cut).toBe(true);
  }
}

describe('a write whose cut try lands late', () => {
  it('a job insert meets its own write and succeeds, with the stored ETag', async () => {
    const jobs = new JobStore(table);
    const record = job();
    const created = await landingLate(() => jobs.create(record), (entity) => entity !== undefined, { partitionKey: JOB_PARTITION, rowKey: record.id });
    const stored = await jobs.get(record.id);
    expect(stored?.value).toEqual(record);
    expect(created.etag).toBe(stored?.etag);
    // The ETag is the real one: an update on it goes through.
    await expect(jobs.replace({ ...record, status: 'running' }, created.etag)).resolves.toBeTruthy();
  });

  it('a job replace meets its own write and succeeds, with the stored ETag', async () => {
    const jobs = new JobStore(table);
    const record = job();
    const { etag } = await jobs.create(record);
    const running: JobRecord = { ...record, status: 'running', leaseOwner: 'worker-1', updatedAt: new Date(Date.parse(record.updatedAt) + 1).toISOString() };
    const newEtag = await landingLate(() => jobs.replace(running, etag), (entity) => entity?.status === 'running', { partitionKey: JOB_PARTITION, rowKey: record.id });
    const stored = await jobs.get(record.id);
    expect(stored?.value).toEqual(running);
    expect(newEtag).toBe(stored?.etag);
  });

  it('an Idempotency-Key claim meets its own write and holds the key', async () => {
    const keys = new IdempotencyStore(table);
    const claim = { jobId: newJobId(), fingerprint: 'f'.repeat(64), createdAt: new Date().toISOString() };
    const key = `late-${claim.jobId}`;
    // The store's row for a key: partition `idempotency`, RowKey the key's SHA-256 (idempotency-store.ts).
    const row = { partitionKey: 'idempotency', rowKey: createHash('sha256').update(key, 'utf8').digest('hex') };
    const claimed = await landingLate(() => keys.claim(key, claim), (entity) => entity !== undefined, row);
    expect(claimed).toBe(true);
    expect((await keys.get(key))?.value).toEqual(claim);
    // Another request with the key is still refused.
    expect(await keys.claim(key, { ...claim, jobId: newJobId() })).toBe(false);
  });

  it('a blob checkpoint save meets its own write, inserted and then replaced, and the upload goes on', async () => {
    const store = new TableCheckpoints(table).forJob(newJobId());
    const MiB = 1024 * 1024;
    // A size past 2^31, stored as a typed Edm.Double (checkpoint-store.ts), as a big layer's is.
    const at = (offset: number): BlobCheckpoint => ({
      target: 'localhost:5000/big',
      digest: `sha256:${'d'.repeat(64)}`,
      size: 3 * 2 ** 31,
      location: 'http://localhost:5000/v2/big/blobs/uploads/session?_state=s',
      offset,
      chunkSize: 8 * MiB,
      updatedAt: new Date(Date.UTC(2026, 10, 30) + offset / MiB).toISOString(),
    });
    const { target, digest } = at(0);
    const row = { partitionKey: store.jobId, rowKey: checkpointKey(target, digest) };
    expect(await store.load(target, digest)).toBeUndefined();
    await landingLate(() => store.save(at(8 * MiB)), (entity) => entity !== undefined, row);
    await landingLate(() => store.save(at(16 * MiB)), (entity) => Number(entity?.offset) === 16 * MiB, row);
    // The ETag kept is the stored one: the next chunk's save goes through.
    await store.save(at(24 * MiB));
    expect(await new TableCheckpoints(table).forJob(store.jobId).load(target, digest)).toEqual(at(24 * MiB));
  });

  it('a rival’s insert of the same row still conflicts', async () => {
    const jobs = new JobStore(table);
    const record = job();
    await jobs.create(record);
    await expect(jobs.create({ ...record, source: 'docker.io/library/busybox:latest' })).rejects.toBeInstanceOf(ConcurrencyError);
    const rival = await jobs.get(record.id);
    await expect(jobs.replace({ ...record, status: 'running' }, rival!.etag)).resolves.toBeTruthy();
    await expect(jobs.replace({ ...record, status: 'failed' }, rival!.etag)).rejects.toBeInstanceOf(ConcurrencyError);
  });
});
