/**
 * Runs one function invocation the way the host frames it: a fresh InvocationContext (id, function
 * name, trigger metadata, a log handler tagged with both), "Executing"/"Executed" log lines with
 * the outcome and duration, and a record of what is still running so shutdown can wait for it.
 *
 * It never logs trigger payloads: queue messages and HTTP bodies can hold credentials.
 */
import { randomUUID } from 'node:crypto';
import { InvocationContext, type TriggerMetadata } from '@azure/functions';
import type { HostLogger, LogLevel } from './logger.js';

/** What to run and how to describe it. */
export interface InvocationRequest<T> {
  functionName: string;
  /** The host's binding type, e.g. `queueTrigger`; also lands in `context.options.trigger`. */
  triggerType: 'httpTrigger' | 'queueTrigger' | 'timerTrigger' | 'eventGridTrigger';
  /** Why the function runs, for the log ("New queue message detected on 'imports'"). */
  reason: string;
  /** `context.triggerMetadata`; the host passes none for HTTP and timer triggers. */
  triggerMetadata?: TriggerMetadata;
  /** The handler call. */
  run: (context: InvocationContext) => Promise<T>;
}

/** Runs invocations and keeps count of those in flight. */
export class InvocationRunner {
  readonly #inFlight = new Set<Promise<unknown>>();

  /**
   * @param logger - where host and function logs go.
   * @param functionTimeoutInMs - host.json functionTimeout; an invocation running longer is reported,
   *   since on Azure the host would restart the worker and kill it.
   */
  constructor(
    private readonly logger: HostLogger,
    private readonly functionTimeoutInMs?: number,
  ) {}

  /** How many invocations are running now. */
  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  /** Runs the invocation; resolves with the handler's result or rejects with its error, after logging. */
  async invoke<T>(request: InvocationRequest<T>): Promise<T> {
    const invocationId = randomUUID();
    const source = `Functions.${request.functionName}`;
    const tag = `${source}[${invocationId.slice(0, 8)}]`;
    const context = new InvocationContext({
      invocationId,
      functionName: request.functionName,
      triggerMetadata: request.triggerMetadata,
      options: { trigger: { type: request.triggerType, name: request.triggerType } },
      logHandler: (level, ...args) => {
        if (level !== 'none') this.logger.log(level as LogLevel, tag, ...args);
      },
    });
    this.logger.log('information', tag, `Executing '${source}' (Reason='${request.reason}', Id=${invocationId})`);
    const started = performance.now();
    const overdue =
      this.functionTimeoutInMs === undefined
        ? undefined
        : setTimeout(() => {
            this.logger.log('error', tag, `has run longer than functionTimeout (${this.functionTimeoutInMs} ms); on Azure the host would now kill it`);
          }, this.functionTimeoutInMs).unref();
    const running = (async () => request.run(context))();
    this.#inFlight.add(running);
    try {
      const result = await running;
      this.logger.log('information', tag, `Executed '${source}' (Succeeded, Id=${invocationId}, Duration=${elapsed(started)}ms)`);
      return result;
    } catch (error) {
      this.logger.log('error', tag, `Executed '${source}' (Failed, Id=${invocationId}, Duration=${elapsed(started)}ms)`, describeError(error));
      throw error;
    } finally {
      clearTimeout(overdue);
      this.#inFlight.delete(running);
    }
  }

  /**
   * Waits until nothing is in flight or `timeoutInMs` passes, whichever is first.
   *
   * @returns how many invocations were still running when it gave up (0 when all finished).
   */
  async drain(timeoutInMs: number): Promise<number> {
    const deadline = Date.now() + timeoutInMs;
    while (this.#inFlight.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadline - Date.now());
      });
      await Promise.race([Promise.allSettled([...this.#inFlight]), timeout]);
      clearTimeout(timer);
    }
    return this.#inFlight.size;
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

/** The error's name, message and stack; the logger redacts secrets from it. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}
