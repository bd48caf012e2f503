/**
 * The current transfer rate of a job, measured from the progress the worker records: bytes done
 * over the last RATE_WINDOW_MS, from at most MAX_SAMPLES samples. It says nothing until it has
 * seen bytes move over at least MIN_RATE_SPAN_MS, so a first burst (a small blob, a chunk that
 * landed just after the plan) is never extrapolated into a rate the copy cannot keep.
 */

/** How far back the rate looks: long enough to smooth chunk-sized steps, short enough to be current. */
export const RATE_WINDOW_MS = 30_000;
/** The shortest span a rate is computed over. */
export const MIN_RATE_SPAN_MS = 3_000;
/** Samples kept: progress is recorded about once a second, so the window needs about 30. */
const MAX_SAMPLES = 64;

/** The rate as a job records it. */
export interface MeasuredRate {
  bytesPerSecond: number;
  /** When it was measured (ISO 8601): a status document shows it only while it is recent. */
  measuredAt: string;
}

/** Bytes done over time, for one run of a job whose byte total does not change. */
export class TransferRate {
  private samples: Array<{ at: number; bytes: number }> = [];
  private total = -1;

  /**
   * Records that `bytesDone` of `bytesTotal` were done at `at` (ms since epoch). A new total (a
   * new plan) starts the measurement over: bytes counted by a plan were not transferred.
   */
  record(at: number, bytesDone: number, bytesTotal: number): void {
    if (bytesTotal !== this.total) {
      this.samples = [];
      this.total = bytesTotal;
    }
    const last = this.samples[this.samples.length - 1];
    if (last && at <= last.at) {
      // Same instant (or a clock step back): the newest count stands for it.
      last.bytes = Math.max(last.bytes, bytesDone);
      return;
    }
    this.samples.push({ at, bytes: bytesDone });
    while (this.samples.length > MAX_SAMPLES || (this.samples.length > 2 && at - this.samples[1]!.at >= RATE_WINDOW_MS)) this.samples.shift();
  }

  /** The rate over the window ending at the last sample, or undefined while too little was seen. */
  current(): MeasuredRate | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < MIN_RATE_SPAN_MS) return undefined;
    const bytes = Math.max(last.bytes - first.bytes, 0);
    return { bytesPerSecond: Math.round((bytes * 1000) / (last.at - first.at)), measuredAt: new Date(last.at).toISOString() };
  }
}
