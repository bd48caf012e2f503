/**
 * Runs one timer-triggered function on its schedule, as the host's timer listener does: the next
 * occurrence is computed after the previous run finishes (occurrences missed while a run was still
 * going are skipped, not queued up), `runOnStartup` fires once at start, and the handler receives
 * `{isPastDue, schedule, scheduleStatus}`.
 *
 * With a {@link TimerMonitor} (shared storage), several local hosts behave like one scaled-out app:
 * each occurrence runs on one instance only, and an occurrence missed while every instance was down
 * runs at the next start with `isPastDue: true`.
 */
import type { Timer } from '@azure/functions';
import type { FunctionDefinition } from '../functions/definition.js';
import type { InvocationRunner } from './invocation-runner.js';
import type { HostLogger } from './logger.js';
import type { TimerSchedule } from './timer-schedule.js';

/** A definition with a timer trigger. */
export type TimerDefinition = Extract<FunctionDefinition, { trigger: { type: 'timer' } }>;

/** Shared schedule status: which occurrence ran last, so instances agree on who runs the next. */
export interface TimerMonitor {
  /** The stored status for a function, if any instance has recorded one. */
  read(functionName: string): Promise<{ last: Date; next?: Date } | undefined>;
  /**
   * Records `occurrence` as run, unless some instance already did; true when this caller won and
   * should run it.
   */
  claim(functionName: string, occurrence: Date, next: Date | undefined): Promise<boolean>;
}

/** Options for {@link TimerScheduler}. */
export interface TimerSchedulerOptions {
  definition: TimerDefinition;
  schedule: TimerSchedule;
  runner: InvocationRunner;
  logger: HostLogger;
  monitor?: TimerMonitor;
  /**
   * The time, in epoch ms; default `Date.now`. The schedule, past-due checks and the times the
   * handler sees follow it, so a test can start a host "later" without waiting.
   */
  now?: () => number;
}

// .NET's DateTime.MinValue, which the host reports as `last` before a timer has ever run.
const NEVER = '0001-01-01T00:00:00.000Z';

// An occurrence only just due is probably being run by another instance this moment (the host
// avoids the race with a singleton lock); one well past due was missed.
const PAST_DUE_TOLERANCE_IN_MS = 1000;

// setTimeout's longest delay (about 24.8 days); yearly schedules wait in several hops.
const MAX_TIMEOUT_IN_MS = 2 ** 31 - 1;

/** Fires one timer function on its schedule. */
export class TimerScheduler {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #last: Date | undefined;
  readonly #source: string;
  readonly #now: () => number;

  constructor(private readonly options: TimerSchedulerOptions) {
    this.#source = `Functions.${options.definition.name}`;
    this.#now = options.now ?? Date.now;
  }

  /** Starts the schedule: past-due and startup runs first, then each occurrence in turn. */
  async start(): Promise<void> {
    const { definition, schedule, monitor, logger } = this.options;
    const now = new Date(this.#now());
    const status = await monitor?.read(definition.name).catch((error: unknown) => {
      logger.log('warning', this.#source, 'could not read the timer status; past-due runs are skipped:', String(error));
      return undefined;
    });
    this.#last = status?.last;
    logger.log('information', this.#source, `timer schedule '${schedule.expression}', next ${schedule.next(now)?.toISOString() ?? 'never'}`);
    if (status?.next && status.next.getTime() < now.getTime() - PAST_DUE_TOLERANCE_IN_MS) {
      // Every instance was down when this occurrence came due.
      await this.#fire(status.next, true, true);
    } else if (definition.trigger.runOnStartup) {
      await this.#fire(now, false, false);
    }
    this.#scheduleAfter(new Date(this.#now()));
  }

  /**
   * Runs the function once now, outside the schedule, as the Functions host's
   * `POST /admin/functions/{name}` does: no claim, and the schedule goes on as before.
   */
  runNow(): Promise<void> {
    return this.#fire(new Date(this.#now()), false, false);
  }

  /** Stops scheduling; a run already going finishes (the host's runner tracks it). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #scheduleAfter(after: Date): void {
    if (this.#stopped) return;
    const next = this.options.schedule.next(after);
    if (!next) {
      this.options.logger.log('warning', this.#source, 'the schedule has no further occurrences');
      return;
    }
    const wait = () => {
      const remaining = next.getTime() - this.#now();
      if (remaining > 0) {
        this.#timer = setTimeout(wait, Math.min(remaining, MAX_TIMEOUT_IN_MS));
        return;
      }
      void this.#fire(next, false, true).then(() => this.#scheduleAfter(new Date(Math.max(this.#now(), next.getTime()))));
    };
    wait();
  }

  /**
   * Runs one occurrence. Scheduled and past-due occurrences `needsClaim`: with a monitor they run
   * only if this instance claims them; a runOnStartup run belongs to this instance alone.
   */
  async #fire(occurrence: Date, isPastDue: boolean, needsClaim: boolean): Promise<void> {
    if (this.#stopped) return;
    const { definition, schedule, monitor, runner, logger } = this.options;
    const next = schedule.next(new Date(Math.max(this.#now(), occurrence.getTime())));
    if (needsClaim && monitor) {
      const won = await monitor.claim(definition.name, occurrence, next).catch((error: unknown) => {
        logger.log('warning', this.#source, `could not claim the ${occurrence.toISOString()} run; skipping it:`, String(error));
        return false;
      });
      if (!won) return;
    }
    const timer: Timer = {
      isPastDue,
      schedule: { adjustForDST: false },
      scheduleStatus: {
        last: this.#last?.toISOString() ?? NEVER,
        next: next?.toISOString() ?? NEVER,
        lastUpdated: new Date(this.#now()).toISOString(),
      },
    };
    this.#last = occurrence;
    try {
      await runner.invoke({
        functionName: definition.name,
        triggerType: 'timerTrigger',
        reason: isPastDue ? 'Timer fired after its scheduled time (past due)' : `Timer fired at ${new Date(this.#now()).toISOString()}`,
        run: async (context) => {
          await definition.handler(timer, context);
        },
      });
    } catch {
      // Logged by the runner. The host does not retry a failed timer run; the next occurrence comes.
    }
  }
}
