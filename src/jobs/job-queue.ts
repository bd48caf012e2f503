/**
 * Messages on the `imports` queue: only a job id and a continuation counter, never credentials.
 * The Functions host expects base64 (host.json messageEncoding) and @azure/storage-queue sends
 * text as given, so this encodes the JSON itself.
 */
import type { QueueClient } from '@azure/storage-queue';
import * as v from 'valibot';
import { isJobId } from './job-id.js';
import { boundedQueueCall } from './storage-connection.js';

/** Longest visibility delay used when backing off from a held lease. */
const MAX_DELAY_SECONDS = 600;

/**
 * How long a job message lives unread: the queue's default (7 days), stated so that a job never
 * delivered within it is known never to run (sweep-abandoned.ts).
 */
export const JOB_MESSAGE_TTL_SECONDS = 7 * 24 * 60 * 60;

export const jobMessageSchema = v.object({
  jobId: v.pipe(v.string(), v.check(isJobId, 'not a job id')),
  /** 0 for the submission's message; each continuation message adds one. */
  continuation: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});

export type JobMessage = v.InferOutput<typeof jobMessageSchema>;

/** The queue message text for a job message: base64 of its JSON. */
export function encodeJobMessage(message: JobMessage): string {
  return Buffer.from(JSON.stringify({ jobId: message.jobId, continuation: message.continuation }), 'utf8').toString('base64');
}

/**
 * Reads a message as a queue trigger delivers it: the host hands over parsed JSON, a raw runner
 * may hand over the text or its base64. Undefined when it is not a job message.
 */
export function parseJobMessage(entry: unknown): JobMessage | undefined {
  let value = entry;
  if (typeof value === 'string') value = parseText(value);
  if (Buffer.isBuffer(value)) value = parseText(value.toString('utf8'));
  const parsed = v.safeParse(jobMessageSchema, value);
  return parsed.success ? parsed.output : undefined;
}

function parseText(text: string): unknown {
  for (const candidate of [text, Buffer.from(text, 'base64').toString('utf8')]) {
    try {
      return JSON.parse(candidate);
    } catch {
      // try the next reading
    }
  }
  return undefined;
}

/** Sends job messages to the imports queue. */
export class JobQueue {
  private ready: Promise<unknown> | undefined;

  constructor(readonly queue: QueueClient) {}

  /** Sends a message, visible after `delayInSeconds` (0–600). */
  async enqueue(message: JobMessage, options: { delayInSeconds?: number } = {}): Promise<void> {
    this.ready ??= boundedQueueCall((abortSignal) => this.queue.createIfNotExists({ abortSignal })).catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    await this.ready;
    const delay = Math.min(Math.max(Math.ceil(options.delayInSeconds ?? 0), 0), MAX_DELAY_SECONDS);
    await boundedQueueCall((abortSignal) => this.queue.sendMessage(encodeJobMessage(message), { abortSignal, messageTimeToLive: JOB_MESSAGE_TTL_SECONDS, ...(delay > 0 && { visibilityTimeout: delay }) }));
  }
}
