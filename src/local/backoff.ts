/**
 * The randomized exponential back-off the queue listener uses between empty polls, shaped like the
 * WebJobs SDK's RandomizedExponentialBackoffStrategy: start near a minimum, roughly double on each
 * empty poll with ±20 % jitter (so several instances do not poll in lock-step), never exceed the
 * maximum, and drop back to the minimum as soon as a poll finds work.
 */

/** Delays between polls of an idle queue. */
export class RandomizedExponentialBackoff {
  #attempt = 0;

  /**
   * @param minimumInMs - the first delay; the host uses 100 ms.
   * @param maximumInMs - the cap: host.json `extensions.queues.maxPollingInterval`.
   * @param random - a source of numbers in [0, 1), replaceable for tests.
   */
  constructor(
    readonly minimumInMs: number,
    readonly maximumInMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay to wait after one more empty poll. */
  next(): number {
    const jitter = 0.8 + 0.4 * this.random();
    // 2^attempt grows without bound; cap the exponent so the arithmetic stays finite.
    const growth = 2 ** Math.min(this.#attempt, 30) - 1;
    this.#attempt += 1;
    return Math.min(this.maximumInMs, Math.round(this.minimumInMs + this.minimumInMs * growth * jitter));
  }

  /** Starts again from the minimum, after a poll that found messages. */
  reset(): void {
    this.#attempt = 0;
  }
}
