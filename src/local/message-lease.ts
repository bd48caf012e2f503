/**
 * Keeps a received queue message invisible to other consumers while its handler runs, as the host
 * does: messages are received with a lease (visibility timeout) and the lease is renewed at half
 * its length. If the process dies, renewals stop and the message reappears when the lease ends.
 */
import type { QueueClient } from '@azure/storage-queue';
import { describeError } from './invocation-runner.js';
import type { HostLogger } from './logger.js';

/** The lease on one received message. Every renewal changes the pop receipt; this tracks it. */
export class MessageLease {
  #popReceipt: string;
  #timer: NodeJS.Timeout | undefined;
  #renewal: Promise<void> | undefined;
  #lost = false;

  /**
   * @param leaseInMs - the visibility timeout the message was received with; renewals extend it by
   *   the same amount (whole seconds, the storage API's unit).
   */
  constructor(
    private readonly queue: QueueClient,
    readonly messageId: string,
    popReceipt: string,
    private readonly leaseInMs: number,
    private readonly logger: HostLogger,
    private readonly source: string,
  ) {
    this.#popReceipt = popReceipt;
  }

  /** True once a renewal failed: another consumer may now hold the message, so do not settle it. */
  get lost(): boolean {
    return this.#lost;
  }

  /** Starts renewing at half the lease length. */
  start(): void {
    // Unref'd: a renewal timer alone must not keep a finished process alive.
    this.#timer = setInterval(() => this.#renew(), Math.max(500, this.leaseInMs / 2)).unref();
  }

  /** Stops renewing and returns the current pop receipt, once any renewal under way has finished. */
  async stop(): Promise<string> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#renewal;
    return this.#popReceipt;
  }

  #renew(): void {
    if (this.#renewal || this.#lost) return;
    const seconds = Math.ceil(this.leaseInMs / 1000);
    this.#renewal = this.queue
      .updateMessage(this.messageId, this.#popReceipt, undefined, seconds)
      .then((response) => {
        if (response.popReceipt) this.#popReceipt = response.popReceipt;
      })
      .catch((error: unknown) => {
        this.#lost = true;
        clearInterval(this.#timer);
        this.logger.log('warning', this.source, `could not renew the lease on message ${this.messageId}; it may be delivered again:`, describeError(error));
      })
      .finally(() => {
        this.#renewal = undefined;
      });
  }
}
