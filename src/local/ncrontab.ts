/**
 * NCRONTAB with seconds, the schedule language of Azure Functions timer triggers:
 * `{second} {minute} {hour} {day} {month} {day-of-week}`, evaluated in UTC (the host's default
 * time zone). Each field takes `*`, numbers, ranges `a-b`, steps `*\/n`, `a-b/n` or `a/n`, and
 * comma lists of those; months and days of the week also take three-letter English names.
 *
 * Semantics follow the NCrontab library the host uses, which differ from Vixie cron in one place:
 * when both day-of-month and day-of-week are restricted, a time must match BOTH (NCrontab checks
 * the day of week after choosing the day), not either.
 */

/** A parsed NCRONTAB expression: the allowed values of each field. */
export interface CronSchedule {
  /** The expression as written. */
  readonly expression: string;
  readonly seconds: ReadonlySet<number>;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly days: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  /** 0 = Sunday … 6 = Saturday, as .NET's DayOfWeek. */
  readonly daysOfWeek: ReadonlySet<number>;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day-of-week', min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/**
 * Parses a six-field NCRONTAB expression.
 *
 * @throws Error naming the field and the part it could not read.
 */
export function parseNcrontab(expression: string): CronSchedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 6) {
    // Five-field cron is the commonest mistake: the host needs the seconds field too.
    throw new Error(
      `"${expression}" has ${parts.length} fields; NCRONTAB needs 6: {second} {minute} {hour} {day} {month} {day-of-week}`,
    );
  }
  const sets = parts.map((part, i) => parseField(part, FIELDS[i]!, expression));
  return {
    expression,
    seconds: sets[0]!,
    minutes: sets[1]!,
    hours: sets[2]!,
    days: sets[3]!,
    months: sets[4]!,
    daysOfWeek: sets[5]!,
  };
}

function parseField(text: string, spec: FieldSpec, expression: string): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    const fail = (why: string): never => {
      throw new Error(`"${expression}": ${spec.name} field "${item}" ${why}`);
    };
    const [rangeText = '', stepText, extra] = item.split('/');
    if (extra !== undefined) fail('has more than one "/"');
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) fail('needs a positive whole step after "/"');
      step = Number(stepText);
    }
    let from: number;
    let to: number;
    if (rangeText === '*') {
      from = spec.min;
      to = spec.max;
    } else if (rangeText.includes('-')) {
      const [a = '', b = ''] = rangeText.split('-');
      from = parseValue(a, spec) ?? fail(`has "${a}", not a ${spec.name} (${spec.min}-${spec.max})`);
      to = parseValue(b, spec) ?? fail(`has "${b}", not a ${spec.name} (${spec.min}-${spec.max})`);
      if (from > to) fail('is a range that runs backwards');
    } else {
      from = parseValue(rangeText, spec) ?? fail(`is not a ${spec.name} (${spec.min}-${spec.max})`);
      // "a/n" means "from a to the end, every n", as NCrontab reads it.
      to = stepText === undefined ? from : spec.max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

function parseValue(text: string, spec: FieldSpec): number | undefined {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n >= spec.min && n <= spec.max ? n : undefined;
  }
  const index = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  return index < 0 ? undefined : index + spec.min;
}

// Enough to find any date a valid expression can produce (29 February recurs within 8 years).
const SEARCH_LIMIT_YEARS = 10;

/**
 * The first time strictly after `after` that matches the schedule, at whole-second precision, or
 * `undefined` when none exists (e.g. `0 0 0 30 2 *`, 30 February).
 */
export function nextOccurrence(schedule: CronSchedule, after: Date): Date | undefined {
  // Work on whole seconds: the next candidate is the first full second after `after`.
  const t = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
  const limit = Date.UTC(t.getUTCFullYear() + SEARCH_LIMIT_YEARS, 0, 1);
  // Each step moves to the start of the next unit that could match, so the loop runs at most a
  // few hundred times per year searched.
  while (t.getTime() < limit) {
    if (!schedule.months.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0, 0);
    } else if (!schedule.days.has(t.getUTCDate()) || !schedule.daysOfWeek.has(t.getUTCDay())) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0, 0);
    } else if (!schedule.hours.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
    } else if (!schedule.minutes.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
    } else if (!schedule.seconds.has(t.getUTCSeconds())) {
      t.setUTCSeconds(t.getUTCSeconds() + 1, 0);
    } else {
      return t;
    }
  }
  return undefined;
}
