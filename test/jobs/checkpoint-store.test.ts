import { checkpointKey } from '../../src/copy/checkpoint-key.js';
import type { BlobCheckpoint } from '../../src/copy/types.js';
import { ConcurrencyError } from '../../src/jobs/errors.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { useJobStorage } from './azurite.js';

const env = useJobStorage();

const DIGEST = `sha256:${'b'.repeat(64)}`;
const TARGET = 'localhost:5000/big/layer';

function checkpoint(offset: number): BlobCheckpoint {
  return { target: TARGET, digest: DIGEST, size: 5 * 2 ** 30, location: 'http://localhost:5000/v2/big/layer/blobs/uploads/abc?_state=xyz', offset, chunkSize: 4 * 2 ** 20, updatedAt: '2025-06-01T00:00:00.000Z' };
}

/** Two processes on one job's checkpoint: the first saved it at offset 1, and the second has read it since. */
async function twoWriters() {
  const jobId = newJobId();
  const first = env.storage.checkpoints.forJob(jobId);
  const second = env.storage.checkpoints.forJob(jobId);
  await first.save(checkpoint(1));
  await second.load(TARGET, DIGEST);
  return { jobId, first, second };
}

/** The checkpoint as another process reads it now. */
const readBack = (jobId: string) => env.storage.checkpoints.forJob(jobId).load(TARGET, DIGEST);

describe('table checkpoints', () => {
  it('save, load and remove one blob\'s checkpoint, past 2^31 bytes', async () => {
    const jobId = newJobId();
    const store = env.storage.checkpoints.forJob(jobId);
    expect(await store.load(TARGET, DIGEST)).toBeUndefined();
    await store.save(checkpoint(4 * 2 ** 20));
    await store.save(checkpoint(3 * 2 ** 30));
    // Another process (the next invocation) reads it back.
    const resumed = env.storage.checkpoints.forJob(jobId);
    expect(await resumed.load(TARGET, DIGEST)).toEqual(checkpoint(3 * 2 ** 30));
    expect(await resumed.load(TARGET, `sha256:${'c'.repeat(64)}`)).toBeUndefined();
    await resumed.save(checkpoint(3 * 2 ** 30 + 4 * 2 ** 20));
    await resumed.remove(TARGET, DIGEST);
    expect(await readBack(jobId)).toBeUndefined();
    await resumed.remove(TARGET, DIGEST);
  });

  it.each<[string, Record<string, unknown>]>([
    ['an offset past the size', { offset: { value: 6 * 2 ** 30, type: 'Double' } }],
    ['a negative offset', { offset: { value: -1, type: 'Double' } }],
    ['a fractional offset', { offset: { value: 1.5, type: 'Double' } }],
    ['an offset that is text', { offset: '40' }],
    ['no location', { location: undefined }],
    ['a location that is not http(s)', { location: 'file:///etc/passwd' }],
    ['a zero chunk size', { chunkSize: 0 }],
    ['another blob', { digest: `sha256:${'c'.repeat(64)}` }],
  ])('reads a row holding %s as no checkpoint, and replaces it on the next save', async (_what, change) => {
    const jobId = newJobId();
    const saved = checkpoint(4 * 2 ** 20);
    const row = { ...saved, size: { value: saved.size, type: 'Double' }, offset: { value: saved.offset, type: 'Double' }, ...change };
    await env.storage.checkpoints.table.createEntity({ partitionKey: jobId, rowKey: checkpointKey(TARGET, DIGEST), ...Object.fromEntries(Object.entries(row).filter(([, value]) => value !== undefined)) });
    const store = env.storage.checkpoints.forJob(jobId);
    expect(await store.load(TARGET, DIGEST)).toBeUndefined();
    await store.save(checkpoint(8 * 2 ** 20));
    expect(await readBack(jobId)).toEqual(checkpoint(8 * 2 ** 20));
  });

  it('refuses to remove a checkpoint someone else changed since it was read, and takes one already gone as removed', async () => {
    const { jobId, first, second } = await twoWriters();
    await first.save(checkpoint(2));
    await expect(second.remove(TARGET, DIGEST)).rejects.toBeInstanceOf(ConcurrencyError);
    expect((await readBack(jobId))?.offset).toBe(2);

    const third = env.storage.checkpoints.forJob(jobId);
    await third.load(TARGET, DIGEST);
    await first.remove(TARGET, DIGEST);
    await expect(third.remove(TARGET, DIGEST)).resolves.toBeUndefined();
  });

  it('refuses a save over another process\'s save made since this one\'s last', async () => {
    const { jobId, first, second } = await twoWriters();
    await second.save(checkpoint(2));
    await expect(first.save(checkpoint(3))).rejects.toBeInstanceOf(ConcurrencyError);
    await second.save(checkpoint(4));
    expect((await readBack(jobId))?.offset).toBe(4);
  });

  it('refuses to write over a checkpoint someone else removed since it was read', async () => {
    const { jobId, first, second } = await twoWriters();
    await second.remove(TARGET, DIGEST);
    await expect(first.save(checkpoint(2))).rejects.toBeInstanceOf(ConcurrencyError);
    expect(await readBack(jobId)).toBeUndefined();
  });

  it('learns where a row stands before its first save, when it never loaded it', async () => {
    const jobId = newJobId();
    await env.storage.checkpoints.forJob(jobId).save(checkpoint(1));
    await env.storage.checkpoints.forJob(jobId).save(checkpoint(2));
    expect((await readBack(jobId))?.offset).toBe(2);
  });

  it('keeps jobs apart', async () => {
    const a = env.storage.checkpoints.forJob(newJobId());
    const b = env.storage.checkpoints.forJob(newJobId());
    await a.save(checkpoint(1));
    expect(await b.load(TARGET, DIGEST)).toBeUndefined();
  });

  it('refuses a write over a checkpoint someone else changed since it was read', async () => {
    const { jobId, first, second } = await twoWriters();
    await first.save(checkpoint(2));
    await expect(second.save(checkpoint(3))).rejects.toBeInstanceOf(ConcurrencyError);
    expect((await readBack(jobId))?.offset).toBe(2);
    // Two processes both starting the same blob, each in an upload session of its own: only one
    // creates the row. (A row holding exactly what a save wrote is taken for that save's own
    // late write: tables.ts.)
    const other = newJobId();
    const x = env.storage.checkpoints.forJob(other);
    const y = env.storage.checkpoints.forJob(other);
    await x.load(TARGET, DIGEST);
    await y.load(TARGET, DIGEST);
    await x.save(checkpoint(1));
    await expect(y.save({ ...checkpoint(1), location: 'http://localhost:5000/v2/big/layer/blobs/uploads/def?_state=uvw' })).rejects.toBeInstanceOf(ConcurrencyError);
    expect((await env.storage.checkpoints.forJob(other).load(TARGET, DIGEST))?.location).toBe(checkpoint(1).location);
  });

  it('removes every checkpoint of a job when it ends', async () => {
    const jobId = newJobId();
    const store = env.storage.checkpoints.forJob(jobId);
    for (let i = 0; i < 5; i++) await store.save({ ...checkpoint(i), digest: `sha256:${String(i).repeat(64)}` });
    const keep = env.storage.checkpoints.forJob(newJobId());
    await keep.save(checkpoint(7));
    await env.storage.checkpoints.removeJob(jobId);
    for (let i = 0; i < 5; i++) expect(await env.storage.checkpoints.forJob(jobId).load(TARGET, `sha256:${String(i).repeat(64)}`)).toBeUndefined();
    expect((await env.storage.checkpoints.forJob(keep.jobId).load(TARGET, DIGEST))?.offset).toBe(7);
  });
});
