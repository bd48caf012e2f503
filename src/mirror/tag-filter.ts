/**
 * Which upstream tags a watch follows: anchored `include`/`exclude` regexes, an optional semver
 * range and an optional `latest` N. Regexes come from API callers and run in V8's backtracking
 * engine, so each is checked with recheck (a ReDoS checker) before it is accepted: exponential
 * patterns are refused, and polynomial ones above MAX_POLYNOMIAL_DEGREE too. Tags are at most 128
 * characters (the distribution grammar), which is what keeps an accepted quadratic or cubic
 * pattern cheap.
 */
import { checkSync } from 'recheck';
import semver from 'semver';

/** Patterns whose worst case grows faster than n^3 over a 128-character tag are refused. */
export const MAX_POLYNOMIAL_DEGREE = 3;
/** The longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 256;
/** How long recheck may look at one pattern; a pattern it cannot decide in time is refused. */
const CHECK_TIMEOUT_MS = 2_000;

/** A tag selection as stored in a watch. */
export interface TagSelection {
  include: string[];
  exclude: string[];
  /** A semver range (`>=1.2.0 <2`); tags that are not semver never match it. */
  semver?: string;
  /** Keep only the newest N of what matched. */
  latest?: number;
}

/** A pattern as a watch applies it: anchored at both ends, so `1\.27` does not match `11.27.3`. */
export function anchored(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'u');
}

/**
 * Why a pattern is refused, or undefined when it is acceptable: a syntax error, or a worst case
 * (catastrophic backtracking) that recheck finds.
 */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_PATTERN_LENGTH) return `is longer than ${MAX_PATTERN_LENGTH} characters`;
  let source: string;
  try {
    source = anchored(pattern).source;
  } catch (error) {
    return `is not a valid regular expression (${(error as Error).message.replace(/^Invalid regular expression: /, '')})`;
  }
  const result = checkSync(source, 'u', { timeout: CHECK_TIMEOUT_MS });
  if (result.status === 'safe') return undefined;
  if (result.status === 'vulnerable') {
    const { complexity } = result;
    if (complexity.type === 'polynomial' && complexity.degree <= MAX_POLYNOMIAL_DEGREE) return undefined;
    return `could backtrack catastrophically (${complexity.summary} worst case): rewrite it without nested or overlapping repetition such as (a+)+ or (a|a)*`;
  }
  return 'could not be shown safe from catastrophic backtracking in time: simplify it';
}

/** Why a semver range is refused, or undefined when it parses. */
export function rangeProblem(range: string): string | undefined {
  return semver.validRange(range) === null ? 'is not a semver range such as ">=1.2.0 <2" or "^1.27"' : undefined;
}

/**
 * The tags of `tags` the selection picks, newest first when `latest` is given and every match
 * reads as semver (a leading `v` allowed). Otherwise every match is returned with `byCreation`
 * set: "newest" is then the image's creation time, which only the caller can fetch.
 */
export function selectTags(tags: readonly string[], selection: TagSelection): { tags: string[]; byCreation: boolean } {
  const include = selection.include.map(anchored);
  const exclude = selection.exclude.map(anchored);
  let picked = tags.filter(
    (tag) => (include.length === 0 || include.some((re) => re.test(tag))) && !exclude.some((re) => re.test(tag)),
  );
  if (selection.semver !== undefined) {
    const range = selection.semver;
    picked = picked.filter((tag) => {
      const version = semver.parse(tag, { loose: true });
      return version !== null && semver.satisfies(version, range, { includePrerelease: false });
    });
  }
  if (selection.latest === undefined) return { tags: picked, byCreation: false };
  const versions = picked.map((tag) => semver.parse(tag, { loose: true }));
  if (!versions.every((version) => version !== null)) return { tags: picked, byCreation: true };
  const ordered = picked.map((tag, i) => ({ tag, version: versions[i]! })).sort((a, b) => semver.rcompare(a.version, b.version)).map((e) => e.tag);
  return { tags: ordered.slice(0, selection.latest), byCreation: false };
}

/**
 * Orders tags naturally: runs of digits compare as numbers (`build-9` before `build-10`,
 * `nightly-20261129` before `nightly-20261130`), everything else by code point. Build numbers and
 * dates in tags then sort by recency, whatever order the registry lists them in (distribution
 * lists a repository's tags in no fixed order when asked for a page size).
 */
export function compareTagsNaturally(a: string, b: string): number {
  const runs = /\d+|\D+/g;
  const left = a.match(runs) ?? [];
  const right = b.match(runs) ?? [];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const x = left[i]!;
    const y = right[i]!;
    if (x === y) continue;
    if (isDigits(x) && isDigits(y)) {
      // As numbers without parsing (tags may hold more digits than a double keeps): shorter once
      // leading zeros are gone is smaller; of equal length, lexical order is numeric order.
      const [p, q] = [x.replace(/^0+/, ''), y.replace(/^0+/, '')];
      if (p.length !== q.length) return p.length - q.length;
      if (p !== q) return p < q ? -1 : 1;
      continue; // equal values, different zero padding: decided by what follows, else below
    }
    return x < y ? -1 : 1;
  }
  if (left.length !== right.length) return left.length - right.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

function isDigits(run: string): boolean {
  return run.charCodeAt(0) >= 48 && run.charCodeAt(0) <= 57;
}

/**
 * The last `count` of `tags` in natural order: where a selection is cut, the same tags every run
 * (a registry's listing order is not fixed), and the newest build numbers and dates.
 */
export function lastInNaturalOrder(tags: readonly string[], count: number): string[] {
  return [...tags].sort(compareTagsNaturally).slice(-count);
}
