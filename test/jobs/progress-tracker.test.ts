/**
 * A job's progress never goes backwards: not when a continuation plans again (the blob in flight
 * counts only once its upload restarts), and not when a blob's upload starts over from zero.
 * The events are the engine's, in the order a continuation emits them.
 */
import type { ProgressEvent } from '../../src/copy/types.js';
import { ProgressTracker } from '../../src/jobs/progress-tracker.js';

const MIB = 1024 * 1024;
const LAYER = { digest: `sha256:${'a'.repeat(64)}`, size: 16 * MIB, target: 'localhost:5000/app' };
const CONFIG = 1000;
const TOTAL = LAYER.size + CONFIG;

describe('ProgressTracker', () => {
  it('resumes a continuation from the bytes already reported, through its plan and the blob restart', () => {
    // The earlier invocation stopped with the config copied and 8 MiB of the layer sent.
    const tracker = new ProgressTracker({ blobs: { total: 2, done: 1, skipped: 0, mounted: 0 }, bytes: { total: TOTAL, done: CONFIG + 8 * MIB } });
    const seen: number[] = [tracker.snapshot().bytes.done];
    const events: ProgressEvent[] = [
      { type: 'plan', manifests: 1, blobs: 2, bytesTotal: TOTAL, bytesToMove: LAYER.size, blobsPresent: 1, blobsExternal: 0 },
      // The registry could not say where the upload stood: the layer starts over.
      { type: 'blob-start', ...LAYER, offset: 0 },
      { type: 'blob-progress', ...LAYER, bytesDone: 4 * MIB },
      { type: 'blob-progress', ...LAYER, bytesDone: 12 * MIB },
      { type: 'blob-done', ...LAYER, outcome: 'copied' },
    ];
    for (const event of events) {
      tracker.apply(event);
      seen.push(tracker.snapshot().bytes.done);
    }
    expect(seen).toEqual([CONFIG + 8 * MIB, CONFIG + 8 * MIB, CONFIG + 8 * MIB, CONFIG + 8 * MIB, CONFIG + 12 * MIB, TOTAL]);
  });
});
