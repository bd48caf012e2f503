/**
 * Parses durations written the way host.json and timer schedules write them: .NET TimeSpan text
 * (`hh:mm:ss`, `d.hh:mm:ss`, `hh:mm:ss.fffffff`, or `hh:mm`).
 */

const TIME_SPAN = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$/;

/**
 * Converts a TimeSpan string such as `00:05:00` into milliseconds.
 *
 * @throws Error naming the text when it is not a TimeSpan, or when hours, minutes or seconds are out
 *   of range (the host refuses `00:60:00` too).
 */
export function parseTimeSpanInMs(text: string): number {
  const match = TIME_SPAN.exec(text.trim());
  if (!match) {
    throw new Error(`"${text}" is not a TimeSpan: expected hh:mm:ss or d.hh:mm:ss`);
  }
  const [, days = '0', hours = '0', minutes = '0', seconds = '0', fraction = ''] = match;
  const h = Number(hours);
  const m = Number(minutes);
  const s = Number(seconds);
  if (h > 23 || m > 59 || s > 59) {
    throw new Error(`"${text}" is not a TimeSpan: hours must be 0-23, minutes and seconds 0-59`);
  }
  // The fraction is in units of its own length (".5" is half a second), as .NET reads it.
  const fractionMs = fraction ? Math.round(Number(`0.${fraction}`) * 1000) : 0;
  return ((Number(days) * 24 + h) * 60 + m) * 60_000 + s * 1000 + fractionMs;
}

/** Tells whether `text` looks like a TimeSpan rather than, say, an NCRONTAB expression. */
export function isTimeSpan(text: string): boolean {
  return TIME_SPAN.test(text.trim());
}
