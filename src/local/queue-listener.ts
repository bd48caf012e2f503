/**
 * Runs one storage-queue-triggered function with the Functions host's semantics:
 * - polls for `batchSize` messages, and polls again once only `newBatchThreshold` are still
 *   running, so at most batchSize + newBatchThreshold run at once per process;
 * - when a poll finds nothing, waits with randomized exponential back-off up to
 *   `maxPollingInterval`;
 * - holds each message under a renewed lease while its handler runs;
 * - success deletes the message; failure makes it visible again after `visibilityTimeout`, or, once
 *   its dequeue count reaches `maxDequeueCount`, moves the original text to `<queue>-poison`;
 *   a message that cannot be decoded goes to poison at once.
 * Several processes polling one queue share its messages, because a received message is invisible
 * to everyone else until its lease ends.
 */
import type { StorageQueueHandler } from '@azure/functions';
import type { DequeuedMessageItem, QueueClient } from '@azure/storage-queue';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FunctionDefinition } from '../functions/definition.js';
import { RandomizedExponentialBackoff } from './backoff.js';
import type { QueueTriggerOptions } from '../functions/host-config.js';
import { describeError, type InvocationRunner } from './invocation-runner.js';
import type { HostLogger } from './logger.js';
import { MessageLease } from './message-lease.js';
import { decodeQueueMessage, parseIfJson, queueTriggerMetadata } from './queue-message.js';

/** A definition with a storage queue trigger. */
export type QueueDefinition = Extract<FunctionDefinition, { trigger: { type: 'storageQueue' } }>;

/** The host receives messages with a 10-minute lease and renews it while the function runs. */
export const DEFAULT_MESSAGE_LEASE_IN_MS = 10 * 60_000;

/** The host's QueuePollingIntervals.Minimum: the first back-off step. */
export const MINIMUM_POLLING_INTERVAL_IN_MS = 100;

/** Options for {@link QueueListener}. */
export interface QueueListenerOptions {
  definition: QueueDefinition;
  queue: QueueClient;
  /** `<queue>-poison`, created on first use. */
  poisonQueue: QueueClient;
  options: QueueTriggerOptions;
  /** The receive lease; default {@link DEFAULT_MESSAGE_LEASE_IN_MS}. Tests shorten it. */
  leaseInMs?: number;
  runner: InvocationRunner;
  logger: HostLogger;
}

/** Polls one queue and runs its function for each message. */
export class QueueListener {
  readonly #processing = new Set<Promise<void>>();
  readonly #stopping = new AbortController();
  /** Resolves on stop; one promise, so waiting in a loop adds no listener per turn. */
  readonly #stopped: Promise<void>;
  readonly #backoff: RandomizedExponentialBackoff;
  readonly #leaseInMs: number;
  readonly #source: string;
  #loop: Promise<void> | undefined;
  #poisonQueueReady = false;

  constructor(private readonly config: QueueListenerOptions) {
    this.#backoff = new RandomizedExponentialBackoff(
      Math.min(MINIMUM_POLLING_INTERVAL_IN_MS, config.options.maxPollingIntervalInMs),
      config.options.maxPollingIntervalInMs,
    );
    this.#leaseInMs = config.leaseInMs ?? DEFAULT_MESSAGE_LEASE_IN_MS;
    this.#source = `Functions.${config.definition.name}`;
    this.#stopped = new Promise((resolve) => this.#stopping.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  /** Starts polling. */
  start(): void {
    this.#loop ??= this.#poll();
  }

  /**
   * Stops polling, then waits for messages being processed (handler and settlement) until
   * `deadline` (epoch ms). Messages still running then keep their lease and reappear later.
   *
   * @returns how many messages were still being processed at the deadline.
   */
  async stop(deadline: number): Promise<number> {
    this.#stopping.abort();
    await this.#loop;
    while (this.#processing.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.#processing]), sleep(Math.max(0, deadline - Date.now()), undefined, { ref: false })]);
    }
    return this.#processing.size;
  }

  /**
   * Runs the function once on `text` as a message's content, outside the queue, as the Functions
   * host's `POST /admin/functions/{name}` does with its `input`: no queue message is received,
   * leased or settled, so a failure is logged and never retried. The text is taken as it is, not
   * base64-decoded. Resolves when the invocation is over; never rejects (the runner logs a failure).
   */
  async runNow(text: string): Promise<void> {
    const { definition, runner, options } = this.config;
    await runner
      .invoke({
        functionName: definition.name,
        triggerType: 'queueTrigger',
        reason: 'Manually invoked (POST /admin/functions)',
        // The first delivery and the last: it carries the last attempt's count, so a handler that
        // gives up on a last attempt (the import worker records its job failed) does so, rather
        // than leave its work waiting for a retry that never comes.
        triggerMetadata: { queueTrigger: text, dequeueCount: options.maxDequeueCount },
        run: async (context) => {
          await (definition.handler as StorageQueueHandler)(parseIfJson(text), context);
        },
      })
      .catch(() => undefined);
  }

  async #poll(): Promise<void> {
    const { queue, options, logger } = this.config;
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      // Fetch more only once the running batch has drained to the threshold.
      while (this.#processing.size > options.newBatchThreshold && !signal.aborted) {
        await Promise.race([...this.#processing, this.#stopped]);
      }
      if (signal.aborted) break;
      let messages: DequeuedMessageItem[];
      try {
        // Not aborted on stop: a receive cut off after the service leased messages would strand
        // them for the whole lease. Anything received after stop is released below instead.
        const response = await queue.receiveMessages({
          numberOfMessages: Math.min(options.batchSize, 32),
          visibilityTimeout: Math.ceil(this.#leaseInMs / 1000),
        });
        messages = response.receivedMessageItems;
      } catch (error) {
        if (statusOf(error) === 404) {
          // The queue does not exist yet; create it rather than failing every poll.
          await queue.createIfNotExists().catch(() => undefined);
        } else {
          logger.log('warning', this.#source, `polling queue '${queue.name}' failed:`, describeError(error));
        }
        await this.#wait(this.#backoff.next());
        continue;
      }
      if (signal.aborted) {
        await Promise.all(messages.map((m) => this.#release(m.messageId, m.popReceipt, 0)));
        break;
      }
      if (messages.length === 0) {
        await this.#wait(this.#backoff.next());
        continue;
      }
      this.#backoff.reset();
      for (const message of messages) {
        const processing = this.#process(message)
          .catch((error: unknown) => logger.log('error', this.#source, `message ${message.messageId} failed in the host:`, describeError(error)))
          .finally(() => this.#processing.delete(processing));
        this.#processing.add(processing);
      }
    }
  }

  async #process(message: DequeuedMessageItem): Promise<void> {
    const { definition, queue, options, runner } = this.config;
    const lease = new MessageLease(queue, message.messageId, message.popReceipt, this.#leaseInMs, this.config.logger, this.#source);
    lease.start();
    // A process that crashed mid-message leaves counts above the maximum; the host poisons those
    // without another attempt.
    if (message.dequeueCount > options.maxDequeueCount) {
      await this.#poison(message, await lease.stop());
      return;
    }
    const decoded = decodeQueueMessage(message.messageText, options.messageEncoding);
    if (!decoded.ok) {
      this.config.logger.log('error', this.#source, `message ${message.messageId}: ${decoded.reason}`);
      await this.#poison(message, await lease.stop());
      return;
    }
    let succeeded = false;
    try {
      await runner.invoke({
        functionName: definition.name,
        triggerType: 'queueTrigger',
        reason: `New queue message detected on '${queue.name}'.`,
        triggerMetadata: queueTriggerMetadata(message, decoded.text),
        run: async (context) => {
          await (definition.handler as StorageQueueHandler)(decoded.payload, context);
        },
      });
      succeeded = true;
    } catch {
      // Logged by the runner; settled below.
    }
    const popReceipt = await lease.stop();
    if (lease.lost) return;
    if (succeeded) {
      await this.#settle(message.messageId, () => queue.deleteMessage(message.messageId, popReceipt));
    } else if (message.dequeueCount >= options.maxDequeueCount) {
      await this.#poison(message, popReceipt);
    } else {
      await this.#release(message.messageId, popReceipt, options.visibilityTimeoutInMs);
    }
  }

  /** Makes a message visible again after `delayInMs`, for its next attempt. */
  async #release(messageId: string, popReceipt: string, delayInMs: number): Promise<void> {
    await this.#settle(messageId, () => this.config.queue.updateMessage(messageId, popReceipt, undefined, Math.ceil(delayInMs / 1000)));
  }

  /** Copies the original message text to `<queue>-poison`, then deletes the original. */
  async #poison(message: DequeuedMessageItem, popReceipt: string): Promise<void> {
    const { poisonQueue, queue, options, logger } = this.config;
    logger.log(
      'warning',
      this.#source,
      `Message ${message.messageId} has reached MaxDequeueCount of ${options.maxDequeueCount} or cannot be decoded. Moving message to queue '${poisonQueue.name}'.`,
    );
    await this.#settle(message.messageId, async () => {
      if (!this.#poisonQueueReady) {
        await poisonQueue.createIfNotExists();
        this.#poisonQueueReady = true;
      }
      await poisonQueue.sendMessage(message.messageText);
      await queue.deleteMessage(message.messageId, popReceipt);
    });
  }

  /** Runs a settlement call; a failure is logged, and the message reappears when its lease ends. */
  async #settle(messageId: string, call: () => Promise<unknown>): Promise<void> {
    try {
      await call();
    } catch (error) {
      this.config.logger.log('warning', this.#source, `could not settle message ${messageId}; it will be delivered again:`, describeError(error));
    }
  }

  async #wait(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
  }
}

function statusOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'statusCode' in error ? Number(error.statusCode) : undefined;
}
