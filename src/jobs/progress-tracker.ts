/**
 * Folds the engine's ProgressEvents into a job's progress (blobs and bytes, moving while a large
 * blob is in flight) and what the job learns on the way (the resolved source digest).
 */
import type { CopyResult, ExternalBlob, ProgressEvent } from '../copy/types.js';
import type { JobProgress } from './job-record.js';
import { TransferRate } from './transfer-rate.js';

/**
 * External layers recorded on a job, and URLs kept of each, and their length: the job is one
 * table entity (a JSON property holds 64 KiB), and a manifest may list any number of either.
 */
const MAX_RECORDED_EXTERNAL_BLOBS = 20;
const MAX_RECORDED_URLS = 2;
const MAX_RECORDED_URL_LENGTH = 512;

export class ProgressTracker {
  /** Non-distributable layers left referenced by URL, as the job records them (bounded). */
  readonly external: ExternalBlob[] = [];
  /** The source digest and media type, once resolved. */
  resolved: { digest: string; mediaType: string } | undefined;
  private planned = false;
  private blobsTotal = 0;
  private bytesTotal = 0;
  /** Blobs and bytes the target had when the plan was made (including those of earlier invocations). */
  private presentBlobs = 0;
  private presentBytes = 0;
  private copied = 0;
  private mounted = 0;
  private skippedEvents = 0;
  private finishedBytes = 0;
  private readonly inFlight = new Map<string, number>();
  private changed = false;
  /** The last progress reported, below which no later report goes. */
  private reported: JobProgress;
  private readonly rate = new TransferRate();

  /**
   * @param initial the job's progress so far: reported until this invocation has a plan.
   * @param now the clock the transfer rate is measured with.
   */
  constructor(
    private readonly initial: JobProgress,
    private readonly now: () => number = Date.now,
  ) {
    this.reported = structuredClone(initial);
  }

  /** Whether anything changed since the last `takeChanged()`. */
  takeChanged(): boolean {
    const changed = this.changed;
    this.changed = false;
    return changed;
  }

  apply(event: ProgressEvent): void {
    if (event.type === 'manifest' || event.type === 'tag') return;
    this.changed = true;
    switch (event.type) {
      case 'resolved':
        this.resolved = { digest: event.digest, mediaType: event.mediaType };
        break;
      case 'plan':
        this.planned = true;
        this.blobsTotal = event.blobs;
        this.bytesTotal = event.bytesTotal;
        this.presentBlobs = event.blobsPresent;
        this.presentBytes = Math.max(event.bytesTotal - event.bytesToMove, 0);
        break;
      case 'blob-external':
        if (this.external.length < MAX_RECORDED_EXTERNAL_BLOBS && !this.external.some((b) => b.digest === event.digest)) {
          const urls = event.urls.slice(0, MAX_RECORDED_URLS).map((u) => u.slice(0, MAX_RECORDED_URL_LENGTH));
          this.external.push({ digest: event.digest, size: event.size, mediaType: event.mediaType, urls });
        }
        break;
      case 'blob-start':
        this.inFlight.set(key(event.target, event.digest), event.offset);
        break;
      case 'blob-progress':
        this.inFlight.set(key(event.target, event.digest), event.bytesDone);
        break;
      case 'blob-done':
        this.inFlight.delete(key(event.target, event.digest));
        if (event.outcome === 'copied') this.copied++;
        else if (event.outcome === 'mounted') this.mounted++;
        else this.skippedEvents++;
        // A skipped blob was usually counted as present in the plan; count its bytes only beyond those.
        if (event.outcome !== 'skipped' || this.skippedEvents > this.presentBlobs) this.finishedBytes += event.size;
        break;
    }
  }

  /**
   * The progress now, never below what was reported before: a continuation's plan counts the
   * blobs in flight only once their uploads start again, and a blob the registry made restart
   * from zero (distribution 2.8 after a cut chunk) sends again bytes already counted.
   */
  snapshot(): JobProgress {
    const now = this.current();
    const floor = this.reported;
    if (floor.bytes.total === now.bytes.total && floor.blobs.total === now.blobs.total) {
      now.bytes.done = Math.max(now.bytes.done, floor.bytes.done);
      now.blobs.done = Math.max(now.blobs.done, floor.blobs.done);
    }
    if (this.planned) {
      // Measured on what this invocation reports, once its plan counted what was there before.
      this.rate.record(this.now(), now.bytes.done, now.bytes.total);
      const rate = this.rate.current();
      if (rate) now.rate = rate;
      else delete now.rate;
    }
    this.reported = structuredClone(now);
    return now;
  }

  private current(): JobProgress {
    if (!this.planned) return structuredClone(this.initial);
    const present = Math.max(this.skippedEvents, this.presentBlobs);
    const { skipped, mounted } = this.counts(present, this.mounted);
    let inFlightBytes = 0;
    for (const bytes of this.inFlight.values()) inFlightBytes += bytes;
    return {
      blobs: {
        total: this.blobsTotal,
        done: Math.min(this.copied + this.mounted + present, this.blobsTotal),
        skipped: Math.min(skipped, this.blobsTotal),
        mounted,
      },
      bytes: { total: this.bytesTotal, done: Math.min(this.presentBytes + this.finishedBytes + inFlightBytes, this.bytesTotal) },
    };
  }

  /**
   * Skipped and mounted counts for the whole job. A continuation finds the blobs earlier runs of
   * this job copied already in place: they are not "skipped", so the first run's count stands.
   */
  private counts(presentNow: number, mountedNow: number): { skipped: number; mounted: number } {
    const earlier = this.initial.blobs.total > 0 ? this.initial.blobs : undefined;
    return { skipped: earlier ? earlier.skipped : presentNow, mounted: (earlier?.mounted ?? 0) + mountedNow };
  }

  /** The final progress of a completed copy. */
  complete(result: CopyResult): JobProgress {
    const { skipped, mounted } = this.counts(result.blobs.skipped, result.blobs.mounted);
    return {
      blobs: { total: result.blobs.total, done: result.blobs.total, skipped, mounted },
      bytes: { total: result.bytes.total, done: result.bytes.total },
    };
  }
}

function key(target: string, digest: string): string {
  return `${target} ${digest}`;
}
