/**
 * What a stored blob checkpoint must be for an upload to resume from it, whichever store kept it
 * (a `--resume-dir` file, a Tables row). A checkpoint is read back from outside the process, so it
 * may be truncated, edited or saved for another blob; resuming from an offset or a Location nobody
 * checked could send bytes to the wrong place. Anything that does not fit is no checkpoint: the
 * blob starts again from zero, which costs bytes but never correctness.
 */
import * as v from 'valibot';
import { jsonObject } from './json-object.js';
import type { BlobCheckpoint } from './types.js';

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));

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

/** `stored` as the checkpoint of `digest`'s upload to `target`, or undefined when it is not a usable one. */
export function savedCheckpoint(stored: unknown, target: string, digest: string): BlobCheckpoint | undefined {
  const parsed = v.safeParse(checkpointSchema, stored);
  if (!parsed.success) return undefined;
  const checkpoint = parsed.output;
  const fits = checkpoint.target === target && checkpoint.digest === digest && checkpoint.offset <= checkpoint.size;
  return fits ? checkpoint : undefined;
}
