/**
 * `hoist copy --resume-dir DIR`'s checkpoints: one JSON file per upload, written atomically, and
 * read back only when it is whole and belongs to the blob asked for. Anything else (a file edited,
 * truncated, or saved for another blob) is no checkpoint: the blob starts from zero.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointKey } from '../../src/copy/checkpoint-key.js';
import { FileCheckpointStore } from '../../src/copy/file-checkpoints.js';
import type { BlobCheckpoint } from '../../src/copy/types.js';

const digest = `sha256:${'a'.repeat(64)}`;
const saved: BlobCheckpoint = { target: '127.0.0.1:5000/app', digest, size: 100, location: 'http://127.0.0.1:5000/v2/app/blobs/uploads/u?_state=s', offset: 40, chunkSize: 20, updatedAt: '2026-12-01T00:00:00.000Z' };
let dir: string;
let store: FileCheckpointStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoist-checkpoints-'));
  store = new FileCheckpointStore(join(dir, 'resume', 'copy'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const file = () => join(dir, 'resume', 'copy', `${checkpointKey(saved.target, digest)}.json`);

describe('FileCheckpointStore', () => {
  it('saves a checkpoint atomically, in directories it creates, and loads it back', async () => {
    await store.save(saved);

    expect(await readdir(join(dir, 'resume', 'copy'))).toEqual([`${checkpointKey(saved.target, digest)}.json`]);
    expect(await store.load(saved.target, digest)).toEqual(saved);
    expect(await store.load(saved.target, `sha256:${'b'.repeat(64)}`)).toBeUndefined();
    expect(await store.load('127.0.0.1:5000/other', digest)).toBeUndefined();
  });

  it('removes a checkpoint, and removing one that is not there is no error', async () => {
    await store.save(saved);
    await store.remove(saved.target, digest);
    expect(await store.load(saved.target, digest)).toBeUndefined();
    await expect(store.remove(saved.target, digest)).resolves.toBeUndefined();
  });

  it.each([
    ['truncated JSON', JSON.stringify(saved).slice(0, 30)],
    ['an array', '[]'],
    ['null', 'null'],
    ['a string offset', JSON.stringify({ ...saved, offset: '40' })],
    ['a negative size', JSON.stringify({ ...saved, size: -1 })],
    ['an offset past the size', JSON.stringify({ ...saved, offset: 101 })],
    ['a fractional offset', JSON.stringify({ ...saved, offset: 40.5 })],
    ['a zero chunk size', JSON.stringify({ ...saved, chunkSize: 0 })],
    ['a location that is no URL', JSON.stringify({ ...saved, location: 'uploads/u' })],
    ['a location that is not http(s)', JSON.stringify({ ...saved, location: 'file:///etc/passwd' })],
    ['a location that only mentions http', JSON.stringify({ ...saved, location: 'file:///tmp/http://x' })],
    ['no location', JSON.stringify({ ...saved, location: undefined })],
    ['another blob', JSON.stringify({ ...saved, digest: `sha256:${'b'.repeat(64)}` })],
    ['another target', JSON.stringify({ ...saved, target: '127.0.0.1:5000/other' })],
  ])('reads a file holding %s as no checkpoint', async (_what, text) => {
    await mkdir(join(dir, 'resume', 'copy'), { recursive: true });
    await writeFile(file(), text);

    expect(await store.load(saved.target, digest)).toBeUndefined();
  });

  it('accepts an offset equal to the size (every byte sent, the session still open)', async () => {
    await store.save({ ...saved, offset: 100 });
    expect(await store.load(saved.target, digest)).toMatchObject({ offset: 100 });
  });

  it('fails on a file it cannot read for another reason than its absence', async () => {
    await mkdir(file(), { recursive: true });

    await expect(store.load(saved.target, digest)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});
