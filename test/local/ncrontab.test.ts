import { nextOccurrence, parseNcrontab } from '../../src/local/ncrontab.js';
import { parseTimerSchedule } from '../../src/local/timer-schedule.js';
import { parseTimeSpanInMs } from '../../src/functions/timespan.js';

const range = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

describe('parseNcrontab', () => {
  it.each([
    { expression: '* * * * * *', field: 'seconds', values: range(0, 59) },
    { expression: '0 */5 * * * *', field: 'minutes', values: range(0, 55, 5) },
    { expression: '*/15 * * * * *', field: 'seconds', values: [0, 15, 30, 45] },
    { expression: '0 0 9-17 * * *', field: 'hours', values: range(9, 17) },
    { expression: '0 0 9-17/4 * * *', field: 'hours', values: [9, 13, 17] },
    { expression: '0 30 9,12,18 * * *', field: 'hours', values: [9, 12, 18] },
    { expression: '5/20 * * * * *', field: 'seconds', values: [5, 25, 45] },
    { expression: '0 0 0 1,15 * *', field: 'days', values: [1, 15] },
    { expression: '0 0 0 * jan-mar *', field: 'months', values: [1, 2, 3] },
    { expression: '0 0 0 * * Mon-Fri', field: 'daysOfWeek', values: [1, 2, 3, 4, 5] },
    { expression: '0 0 0 * * sun,sat', field: 'daysOfWeek', values: [0, 6] },
    { expression: '0 0 0 * * 1,3-4', field: 'daysOfWeek', values: [1, 3, 4] },
  ] as const)('$expression gives $field $values', ({ expression, field, values }) => {
    expect([...parseNcrontab(expression)[field]].sort((a, b) => a - b)).toEqual(values);
  });

  it.each([
    ['0 */5 * * *', /needs 6/],
    ['* * * * * * *', /needs 6/],
    ['60 * * * * *', /second field "60"/],
    ['* * 24 * * *', /hour field "24"/],
    ['* * * 0 * *', /day field "0"/],
    ['* * * * 13 *', /month field "13"/],
    ['* * * * * 7', /day-of-week field "7"/],
    ['*/0 * * * * *', /positive whole step/],
    ['10-5 * * * * *', /backwards/],
    ['1/2/3 * * * * *', /more than one/],
    ['abc * * * * *', /second field "abc"/],
  ])('refuses %s', (expression, message) => {
    expect(() => parseNcrontab(expression)).toThrow(message);
  });
});

describe('nextOccurrence', () => {
  it.each([
    // Every second: the next whole second.
    ['* * * * * *', '2025-03-10T12:00:00.400Z', '2025-03-10T12:00:01.000Z'],
    ['*/1 * * * * *', '2025-03-10T12:00:00.000Z', '2025-03-10T12:00:01.000Z'],
    ['0 */5 * * * *', '2025-03-10T12:03:10.000Z', '2025-03-10T12:05:00.000Z'],
    ['0 */5 * * * *', '2025-03-10T12:55:00.000Z', '2025-03-10T13:00:00.000Z'],
    ['30 0 9 * * *', '2025-03-10T09:00:30.000Z', '2025-03-11T09:00:30.000Z'],
    // Month and year roll-over.
    ['0 0 0 1 * *', '2025-12-15T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
    // 10 March 2025 is a Monday; the next Saturday is the 15th.
    ['0 0 8 * * sat', '2025-03-10T12:00:00.000Z', '2025-03-15T08:00:00.000Z'],
    // Day-of-month AND day-of-week (NCrontab), not OR: the next Friday the 13th.
    ['0 0 0 13 * fri', '2025-03-10T00:00:00.000Z', '2025-06-13T00:00:00.000Z'],
    // 29 February only in leap years.
    ['0 0 0 29 2 *', '2025-01-01T00:00:00.000Z', '2028-02-29T00:00:00.000Z'],
  ])('%s after %s is %s', (expression, after, expected) => {
    expect(nextOccurrence(parseNcrontab(expression), new Date(after))?.toISOString()).toBe(expected);
  });

  it('returns undefined for a date that never exists', () => {
    expect(nextOccurrence(parseNcrontab('0 0 0 30 2 *'), new Date('2025-01-01T00:00:00Z'))).toBeUndefined();
  });
});

describe('parseTimerSchedule', () => {
  it('resolves %SETTING% to an NCRONTAB expression', () => {
    const schedule = parseTimerSchedule('%HOIST_RESYNC_SCHEDULE%', { HOIST_RESYNC_SCHEDULE: '0 0 * * * *' });
    expect(schedule.expression).toBe('0 0 * * * *');
    expect(schedule.next(new Date('2025-03-10T12:30:00Z'))?.toISOString()).toBe('2025-03-10T13:00:00.000Z');
  });

  it('takes a TimeSpan as a constant interval', () => {
    const schedule = parseTimerSchedule('00:05:00', {});
    expect(schedule.next(new Date('2025-03-10T12:30:10Z'))?.toISOString()).toBe('2025-03-10T12:35:10.000Z');
  });

  it('names a missing setting', () => {
    expect(() => parseTimerSchedule('%NOPE%', {})).toThrow(/NOPE/);
  });
});

describe('parseTimeSpanInMs', () => {
  it.each([
    ['00:00:05', 5000],
    ['00:10:00', 600_000],
    ['01:00', 3_600_000],
    ['1.02:00:00', 26 * 3_600_000],
    ['00:00:00.5', 500],
  ])('%s is %i ms', (text, ms) => {
    expect(parseTimeSpanInMs(text)).toBe(ms);
  });

  it.each(['5', '00:60:00', '25:00:00', 'soon'])('refuses %s', (text) => {
    expect(() => parseTimeSpanInMs(text)).toThrow(/TimeSpan/);
  });
});
