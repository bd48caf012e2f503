/**
 * The body of `PUT /api/watches/{name}`: its valibot schema and the checks that turn every problem
 * into a RequestError naming the field, what was wrong and what is accepted (as import-request.ts
 * does for imports).
 */
import * as v from 'valibot';
import { jsonObject } from '../copy/json-object.js';
import { formatPlatform, parsePlatform } from '../copy/platform.js';
import { RequestError, type RequestErrorCode } from '../jobs/errors.js';
import { MAX_PLATFORMS } from '../jobs/import-request.js';
import { parseReference } from '../registry/reference.js';
import { patternProblem, rangeProblem, type TagSelection } from './tag-filter.js';

/** Patterns per list. */
export const MAX_PATTERNS = 20;
/** The largest `latest`. */
export const MAX_LATEST = 1000;
/** Watch names: what a URL path segment and a table RowKey both take without escaping. */
const WATCH_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const ACCEPTS: Record<string, string> = {
  source: 'an upstream repository such as docker.io/library/nginx, or repository:tag for a single tag',
  target: 'a repository in the target registry, without its host, such as mirror/nginx (default: the source path)',
  tags: `an object with "include" and "exclude" (lists of up to ${MAX_PATTERNS} regexes, anchored), "semver" (a range such as ">=1.2.0 <2") and "latest" (1 to ${MAX_LATEST})`,
  platforms: `a list of up to ${MAX_PLATFORMS} "os/arch[/variant]" strings`,
  referrers: 'true or false',
  username: 'the source registry user name, a string',
  password: 'the source registry password or token, a string',
  enabled: 'true or false',
};

const text = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const list = <T extends v.GenericSchema<string>>(item: T, max: number) => v.pipe(v.array(v.unknown()), v.maxLength(max), v.array(item));

const tagFields = {
  include: v.optional(list(v.string(), MAX_PATTERNS)),
  exclude: v.optional(list(v.string(), MAX_PATTERNS)),
  semver: v.optional(text(256)),
  latest: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(MAX_LATEST))),
};

const fields = {
  source: text(512),
  target: v.optional(text(512)),
  tags: v.optional(jsonObject(v.strictObject(tagFields))),
  platforms: v.optional(list(text(128), MAX_PLATFORMS)),
  referrers: v.optional(v.boolean()),
  username: v.optional(text(1024)),
  password: v.optional(text(16_384)),
  enabled: v.optional(v.boolean()),
};

const watchRequestSchema = jsonObject(v.strictObject(fields));

/** A checked watch request with defaults applied. */
export interface WatchRequest {
  /** `registry/repository` upstream. */
  source: string;
  /** Set for a single-tag watch (`source` given as repo:tag). */
  sourceTag?: string;
  /** The repository in the target registry. */
  target: string;
  tags: TagSelection;
  platforms: string[];
  referrers: boolean;
  username?: string;
  password?: string;
  enabled: boolean;
}

type Problem = { code: RequestErrorCode; message: string; field?: string };

/** Throws a RequestError (404-worthy names are the caller's) unless `name` can name a watch. */
export function checkWatchName(name: string): void {
  if (!WATCH_NAME.test(name)) {
    throw new RequestError('INVALID_FIELD', `watch name "${name.slice(0, 80)}" is not valid: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit`, 'name');
  }
}

/** Validates a parsed body. Throws RequestError for the first problem, with all of them in `details`. */
export function parseWatchRequest(body: unknown): WatchRequest {
  const parsed = v.safeParse(watchRequestSchema, body);
  if (!parsed.success) throw toRequestError(parsed.issues.flatMap((issue) => describeIssue(issue, body)));
  const problems: Problem[] = [];
  const add = (code: RequestErrorCode, field: string, message: string) => problems.push({ code, field, message });
  const input = parsed.output;

  let source = '';
  let sourceTag: string | undefined;
  let repository = '';
  try {
    const ref = parseReference(input.source, { requireRegistry: true });
    if (ref.digest) add('INVALID_REFERENCE', 'source', `"source" has a digest: a watch follows tags; give ${ACCEPTS.source}`);
    // parseReference fills in `latest`; only a tag the caller wrote makes a single-tag watch.
    const written = input.source.lastIndexOf(':') > input.source.lastIndexOf('/');
    sourceTag = written ? ref.tag : undefined;
    source = ref.name;
    repository = ref.repository;
  } catch (error) {
    add('INVALID_REFERENCE', 'source', `"source": ${(error as Error).message}`);
  }

  const target = input.target ?? repository;
  if (input.target !== undefined) {
    const first = input.target.split('/')[0]!;
    if (input.target.includes(':') || input.target.includes('@')) {
      add('INVALID_REFERENCE', 'target', `"target" has a tag or digest: give ${ACCEPTS.target}`);
    } else if (input.target.includes('/') && (first.includes('.') || first === 'localhost')) {
      add('INVALID_REFERENCE', 'target', `"target" starts with a registry host "${first}": give ${ACCEPTS.target}`);
    } else {
      try {
        parseReference(`target.invalid/${input.target}`);
      } catch (error) {
        add('INVALID_REFERENCE', 'target', `"target": ${(error as Error).message}`);
      }
    }
  }

  const tags: TagSelection = { include: dedupe(input.tags?.include ?? []), exclude: dedupe(input.tags?.exclude ?? []) };
  for (const listName of ['include', 'exclude'] as const) {
    (input.tags?.[listName] ?? []).forEach((pattern, i) => {
      const problem = patternProblem(pattern);
      if (problem) add('INVALID_FIELD', `tags.${listName}[${i}]`, `"tags.${listName}[${i}]" ${problem}`);
    });
  }
  if (input.tags?.semver !== undefined) {
    const problem = rangeProblem(input.tags.semver);
    if (problem) add('INVALID_FIELD', 'tags.semver', `"tags.semver" "${input.tags.semver}" ${problem}`);
    tags.semver = input.tags.semver;
  }
  if (input.tags?.latest !== undefined) tags.latest = input.tags.latest;
  if (sourceTag !== undefined && input.tags !== undefined) {
    add('INVALID_FIELD', 'tags', `"tags" is given but "source" names the single tag "${sourceTag}": drop one of them`);
  }

  const platforms: string[] = [];
  (input.platforms ?? []).forEach((platform, i) => {
    try {
      platforms.push(formatPlatform(parsePlatform(platform)));
    } catch (error) {
      add('INVALID_PLATFORM', `platforms[${i}]`, `"platforms[${i}]": ${(error as Error).message}`);
    }
  });

  if ((input.username === undefined) !== (input.password === undefined)) {
    const given = input.username === undefined ? 'password' : 'username';
    add('INCOMPLETE_CREDENTIALS', given, `"${given}" is given without "${given === 'username' ? 'password' : 'username'}": give both, or neither for anonymous pulls`);
  }
  if (problems.length > 0) throw toRequestError(problems);

  return {
    source,
    ...(sourceTag !== undefined && { sourceTag }),
    target,
    tags,
    platforms: dedupe(platforms),
    referrers: input.referrers ?? false,
    ...(input.username !== undefined && { username: input.username }),
    ...(input.password !== undefined && { password: input.password }),
    enabled: input.enabled ?? true,
  };
}

function toRequestError(problems: Problem[]): RequestError {
  const sorted = [...problems].sort((a, b) => Number(b.code === 'UNKNOWN_FIELD') - Number(a.code === 'UNKNOWN_FIELD'));
  const [first] = sorted;
  return new RequestError(first!.code, first!.message, first!.field, sorted.length > 1 ? sorted : []);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function describeIssue(issue: v.InferIssue<typeof watchRequestSchema>, body: unknown): Problem[] {
  if (issue.path === undefined) {
    return [{ code: 'INVALID_JSON', message: `the body must be a JSON object, not ${jsonType(body)}; see ${Object.keys(ACCEPTS).join(', ')}` }];
  }
  const path = issue.path.map((item) => item.key);
  const field = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
  const accepts = ACCEPTS[String(path[0])] ?? '';
  if (issue.type === 'strict_object' && issue.expected === 'never') {
    // valibot names only the first unknown field; name each, in the body or in "tags".
    const inTags = path.length > 1;
    const known = inTags ? tagFields : fields;
    const object = (inTags ? (body as { tags: object }).tags : body) as object;
    return Object.keys(object).filter((key) => !Object.hasOwn(known, key)).map((key) => ({
      code: 'UNKNOWN_FIELD' as const,
      field: inTags ? `tags.${key}` : key,
      message: `unknown field "${inTags ? `tags.${key}` : key}": the accepted fields are ${Object.keys(known).map((k) => (inTags ? `tags.${k}` : k)).join(', ')}`,
    }));
  }
  if (issue.kind === 'schema' && issue.input === undefined) {
    return [{ code: 'MISSING_FIELD', field, message: `"${field}" is required: give ${accepts}` }];
  }
  return [{ code: 'INVALID_FIELD', field, message: `"${field}" is ${issue.kind === 'schema' ? jsonType(issue.input) : `not acceptable (${issue.message})`}; expected ${accepts}` }];
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}
