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

  it('measures the rate over recent progress once bytes moved for 3 s, with the injected clock', () => {
    let now = Date.parse('2026-01-01T00:00:00.000Z');
    const tracker = new ProgressTracker({ blobs: { total: 0, done: 0, skipped: 0, mounted: 0 }, bytes: { total: 0, done: 0 } }, () => now);
    // Before the plan: nothing to measure.
    expect(tracker.snapshot()).not.toHaveProperty('rate');
    // The plan counts the config as already there: not transferred, so not part of the rate.
    tracker.apply({ type: 'plan', manifests: 1, blobs: 2, bytesTotal: TOTAL, bytesToMove: LAYER.size, blobsPresent: 1, blobsExternal: 0 });
    tracker.apply({ type: 'blob-start', ...LAYER, offset: 0 });
    expect(tracker.snapshot()).not.toHaveProperty('rate');
    for (let second = 1; second <= 2; second++) {
      now += 1000;
      tracker.apply({ type: 'blob-progress', ...LAYER, bytesDone: second * MIB });
      expect(tracker.snapshot(), `after ${second} s`).not.toHaveProperty('rate');
    }
    now += 1000;
    tracker.apply({ type: 'blob-progress', ...LAYER, bytesDone: 3 * MIB });
    expect(tracker.snapshot().rate).toEqual({ bytesPerSecond: MIB, measuredAt: '2026-01-01T00:00:03.000Z' });
    // Slower now: after 35 s at 0.25 MiB/s the 30 s window holds only the slow part.
    for (let second = 1; second <= 35; second++) {
      now += 1000;
      tracker.apply({ type: 'blob-progress', ...LAYER, bytesDone: 3 * MIB + (second * MIB) / 4 });
      tracker.snapshot();
    }
    expect(tracker.snapshot().rate).toEqual({ bytesPerSecond: MIB / 4, measuredAt: '2026-01-01T00:00:38.000Z' });
  });
});
