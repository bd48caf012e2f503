/**
 * A CheckpointStore in a local directory, one JSON file per upload, so an interrupted
 * `hoist copy --resume-dir DIR` picks up where it stopped when run again.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as v from 'valibot';
import { checkpointKey } from './checkpoint-key.js';
import { jsonObject, safeJson } from './json-object.js';
import type { BlobCheckpoint, CheckpointStore } from './types.js';

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
/** What a checkpoint file must hold to be resumed from; anything else is no checkpoint. */
const checkpointSchema = jsonObject(
  v.object({
    target: v.string(),
    digest: v.string(),
    size: count,
    location: v.pipe(v.string(), v.url(), v.regex(/^https?:\/\//i)),
    offset: count,
    chunkSize: v.pipe(count, v.minValue(1)),
    updatedAt: v.string(),
  }),
);

export class FileCheckpointStore implements CheckpointStore {
  constructor(private readonly directory: string) {}

  private path(target: string, digest: string): string {
    return join(this.directory, `${checkpointKey(target, digest)}.json`);
  }

  /**
   * The saved checkpoint, or undefined when there is none or it cannot be used: a file edited,
   * truncated by a full disk, or saved for another blob. The blob then starts again from zero,
   * which costs bytes but never correctness (the next save replaces the file).
   */
  async load(target: string, digest: string): Promise<BlobCheckpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(target, digest), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = v.safeParse(checkpointSchema, safeJson(text));
    if (!parsed.success) return undefined;
    const checkpoint = parsed.output;
    const fits = checkpoint.target === target && checkpoint.digest === digest && checkpoint.offset <= checkpoint.size;
    return fits ? checkpoint : undefined;
  }

  /** Writes through a temporary file and a rename, so a crash never leaves half a checkpoint. */
  async save(checkpoint: BlobCheckpoint): Promise<void> {
    await mkdir(this.directory, { recursive: true });
    const path = this.path(checkpoint.target, checkpoint.digest);
    await writeFile(`${path}.tmp`, JSON.stringify(checkpoint));
    await rename(`${path}.tmp`, path);
  }

  async remove(target: string, digest: string): Promise<void> {
    await rm(this.path(target, digest), { force: true });
  }
}
