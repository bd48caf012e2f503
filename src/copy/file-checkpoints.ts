/**
 * A CheckpointStore in a local directory, one JSON file per upload, so an interrupted
 * `hoist copy --resume-dir DIR` picks up where it stopped when run again.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkpointKey } from './checkpoint-key.js';
import { safeJson } from './json-object.js';
import { savedCheckpoint } from './saved-checkpoint.js';
import type { BlobCheckpoint, CheckpointStore } from './types.js';

export class FileCheckpointStore implements CheckpointStore {
  constructor(private readonly directory: string) {}

  private path(target: string, digest: string): string {
    return join(this.directory, `${checkpointKey(target, digest)}.json`);
  }

  /**
   * The saved checkpoint, or undefined when there is none or it cannot be used (saved-checkpoint.ts):
   * a file edited, truncated by a full disk, or saved for another blob. The next save replaces it.
   */
  async load(target: string, digest: string): Promise<BlobCheckpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(target, digest), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return savedCheckpoint(safeJson(text), target, digest);
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
