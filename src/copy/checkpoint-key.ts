/** The key of a blob checkpoint, the same in every CheckpointStore. */
import { createHash } from 'node:crypto';

/** Fixed length and safe as a file name or a Tables RowKey, whatever the target's name holds. */
export function checkpointKey(target: string, digest: string): string {
  return createHash('sha256').update(`${target}\n${digest}`).digest('hex');
}
