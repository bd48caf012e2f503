/**
 * A timer trigger's schedule as the host reads it: an NCRONTAB expression, a constant TimeSpan
 * interval (`00:05:00`), either possibly named indirectly through an app setting (`%SETTING%`).
 */
import { nextOccurrence, parseNcrontab } from './ncrontab.js';
import { resolveSettingReferences, type AppSettings } from './settings.js';
import { isTimeSpan, parseTimeSpanInMs } from '../functions/timespan.js';

/** When a timer fires next. */
export interface TimerSchedule {
  /** The schedule after `%SETTING%` resolution, for logs. */
  readonly expression: string;
  /** The first occurrence strictly after `after`, or undefined when the schedule never fires again. */
  next(after: Date): Date | undefined;
}

/**
 * Reads a timer schedule, resolving `%SETTING%` references from `settings` first.
 *
 * @throws Error when a referenced setting is missing or the schedule is neither NCRONTAB nor a
 *   TimeSpan, so a typo stops the host at start-up rather than silently never firing.
 */
export function parseTimerSchedule(schedule: string, settings: AppSettings): TimerSchedule {
  const expression = resolveSettingReferences(schedule, settings).trim();
  if (isTimeSpan(expression)) {
    const intervalInMs = parseTimeSpanInMs(expression);
    if (intervalInMs <= 0) throw new Error(`timer schedule "${expression}" must be a positive interval`);
    // A constant schedule counts from the previous occurrence, like the host's ConstantSchedule.
    return { expression, next: (after) => new Date(after.getTime() + intervalInMs) };
  }
  const cron = parseNcrontab(expression);
  return { expression, next: (after) => nextOccurrence(cron, after) };
}
