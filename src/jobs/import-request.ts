/**
 * The body of `POST /api/imports`: its zod schema (modelled on `az acr import` and ARM
 * importImage), and validation that turns every problem into a RequestError naming the field, what
 * was wrong and what is accepted.
 */
import { z } from 'zod';
import { formatPlatform, parsePlatform } from '../copy/platform.js';
import { InvalidReferenceError, parseReference } from '../registry/reference.js';
import { RequestError, type RequestErrorCode } from './errors.js';

/** At most this many targets (images + untaggedRepositories) per import. */
export const MAX_TARGETS = 50;
/** At most this many platforms in a subset. */
export const MAX_PLATFORMS = 50;
/** A reference is at most 255 characters of name, a 128-character tag and a sha512 digest. */
const MAX_REFERENCE_LENGTH = 512;
/** Entra access tokens used as passwords run to a few KiB. */
const MAX_PASSWORD_LENGTH = 16_384;
const MAX_USERNAME_LENGTH = 1_024;

/** What each field accepts, quoted in every error about it. */
const ACCEPTS: Record<string, string> = {
  source: 'a fully qualified image reference such as docker.io/library/hello-world:latest, or repo[:tag|@digest] when "registry" is given',
  registry: 'the source registry login server, such as myregistry.azurecr.io or localhost:5000',
  images: `a list of up to ${MAX_TARGETS} target "repo:tag" strings in the target registry, such as ["hello-world:v1"]`,
  untaggedRepositories: `a list of up to ${MAX_TARGETS} target repository names, such as ["hello-world"]`,
  username: 'the source registry user name, a string',
  password: 'the source registry password or token, a string',
  force: 'true or false',
  platforms: `a list of up to ${MAX_PLATFORMS} "os/arch[/variant]" strings, such as ["linux/amd64", "linux/arm/v7"]`,
  referrers: 'true or false',
};

const reference = z.string().min(1).max(MAX_REFERENCE_LENGTH);

/** The request body. Unknown fields are rejected. */
export const importRequestSchema = z.strictObject({
  source: reference,
  registry: reference.optional(),
  images: z.array(reference).max(MAX_TARGETS).optional(),
  untaggedRepositories: z.array(reference).max(MAX_TARGETS).optional(),
  username: z.string().min(1).max(MAX_USERNAME_LENGTH).optional(),
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH).optional(),
  force: z.boolean().optional(),
  platforms: z.array(z.string().min(1).max(128)).max(MAX_PLATFORMS).optional(),
  referrers: z.boolean().optional(),
});

/** The body as sent (after the schema's type checks). */
export type ImportRequestBody = z.infer<typeof importRequestSchema>;

/** A checked request with defaults applied; the canonical form stored, hashed and resolved. */
export interface ImportRequest {
  source: string;
  registry?: string;
  images: string[];
  untaggedRepositories: string[];
  username?: string;
  password?: string;
  force: boolean;
  /** Normalised `os/arch[/variant]`; empty means every platform. */
  platforms: string[];
  referrers: boolean;
}

type Problem = { code: RequestErrorCode; message: string; field?: string };

/**
 * Validates a parsed JSON body. Throws a RequestError for the first problem (with every problem
 * in `details`); returns the request with defaults applied and duplicates removed.
 */
export function parseImportRequest(body: unknown): ImportRequest {
  const parsed = importRequestSchema.safeParse(body);
  if (!parsed.success) throw toRequestError(parsed.error.issues.flatMap((issue) => describeIssue(issue, body)));
  const problems: Problem[] = [];
  const request = checkSemantics(parsed.data, problems);
  if (problems.length > 0) throw toRequestError(problems);
  return request;
}

function toRequestError(problems: Problem[]): RequestError {
  // Unknown fields first: they usually explain the rest (a misspelt field is also "missing").
  const rank = (p: Problem) => (p.code === 'UNKNOWN_FIELD' ? 0 : p.code === 'INVALID_JSON' ? 0 : 1);
  const sorted = [...problems].sort((a, b) => rank(a) - rank(b));
  const [first] = sorted;
  return new RequestError(first.code, first.message, first.field, sorted.length > 1 ? sorted : []);
}

/** `images[2]` from `['images', 2]`. */
function fieldName(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function describeIssue(issue: z.core.$ZodIssue, body: unknown): Problem[] {
  const field = fieldName(issue.path);
  const accepts = ACCEPTS[String(issue.path[0])] ?? '';
  if (issue.path.length === 0 && issue.code === 'invalid_type') {
    return [{ code: 'INVALID_JSON', message: `the body must be a JSON object, not ${jsonType(body)}; see ${Object.keys(ACCEPTS).join(', ')}` }];
  }
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        code: 'UNKNOWN_FIELD' as const,
        field: fieldName([...issue.path, key]),
        message: `unknown field "${fieldName([...issue.path, key])}": the accepted fields are ${Object.keys(ACCEPTS).join(', ')}`,
      }));
    case 'invalid_type': {
      const value = valueAt(body, issue.path);
      if (value === undefined) {
        return [{ code: 'MISSING_FIELD', field, message: `"${field}" is required: give ${accepts}` }];
      }
      const expected = issue.path.length > 1 ? `a ${issue.expected}` : accepts;
      return [{ code: 'INVALID_FIELD', field, message: `"${field}" is ${jsonType(value)}; expected ${expected}` }];
    }
    case 'too_small':
      return [{ code: 'INVALID_FIELD', field, message: `"${field}" is empty; expected ${accepts}` }];
    case 'too_big': {
      if (issue.origin === 'array') {
        const isTargets = field === 'images' || field === 'untaggedRepositories';
        return [{
          code: isTargets ? 'TOO_MANY_TARGETS' : 'INVALID_FIELD',
          field,
          message: `"${field}" has ${(valueAt(body, issue.path) as unknown[]).length} entries, more than the ${String(issue.maximum)} accepted${isTargets ? ' per import: split it into several imports' : ''}`,
        }];
      }
      return [{ code: 'INVALID_FIELD', field, message: `"${field}" is longer than ${String(issue.maximum)} characters; expected ${accepts}` }];
    }
    default:
      return [{ code: 'INVALID_FIELD', field, message: `"${field}": ${issue.message}; expected ${accepts}` }];
  }
}

/** Placeholder target registry used to check target names before the real one is known. */
const PROBE_REGISTRY = 'target.invalid';

/** A first path component that docker would read as a registry host. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component !== component.toLowerCase();
}

function reason(error: unknown): string {
  if (error instanceof InvalidReferenceError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

function checkSemantics(body: ImportRequestBody, problems: Problem[]): ImportRequest {
  const add = (code: RequestErrorCode, field: string, message: string) => problems.push({ code, field, message });

  let registry: string | undefined;
  if (body.registry !== undefined) {
    if (body.registry.startsWith('/subscriptions/')) {
      add('INVALID_FIELD', 'registry', `"registry" is an Azure resource ID, which is not supported yet; give ${ACCEPTS.registry}`);
    } else {
      registry = checkRegistry(body.registry, add);
    }
  }

  if (registry !== undefined || body.registry === undefined) {
    const first = body.source.split('/')[0];
    if (registry !== undefined && body.source.includes('/') && looksLikeHost(first)) {
      add('INVALID_REFERENCE', 'source', `"source" starts with the registry host "${first}", but "registry" is given: with "registry", "source" is repo[:tag|@digest]`);
    } else {
      try {
        if (registry !== undefined) parseReference(`${registry}/${body.source}`);
        else parseReference(body.source, { requireRegistry: true });
      } catch (error) {
        add('INVALID_REFERENCE', 'source', `"source": ${reason(error)}`);
      }
    }
  }

  const images = dedupe(body.images ?? []);
  (body.images ?? []).forEach((image, i) => {
    const field = `images[${i}]`;
    const first = image.split('/')[0];
    if (image.includes('/') && looksLikeHost(first)) {
      add('INVALID_REFERENCE', field, `"${field}" starts with a registry host "${first}": images are repo:tag inside the target registry, without its host`);
      return;
    }
    try {
      const ref = parseReference(`${PROBE_REGISTRY}/${image}`);
      if (ref.digest) add('INVALID_REFERENCE', field, `"${field}" has a digest: images are repo:tag; to copy without a tag, list the repository in "untaggedRepositories"`);
    } catch (error) {
      add('INVALID_REFERENCE', field, `"${field}": ${reason(error)}`);
    }
  });

  const untagged = dedupe(body.untaggedRepositories ?? []);
  (body.untaggedRepositories ?? []).forEach((repository, i) => {
    const field = `untaggedRepositories[${i}]`;
    if (repository.includes(':') || repository.includes('@')) {
      add('INVALID_REFERENCE', field, `"${field}" has a tag or digest: untagged repositories are repository names only, such as "hello-world"`);
      return;
    }
    const first = repository.split('/')[0];
    if (repository.includes('/') && looksLikeHost(first)) {
      add('INVALID_REFERENCE', field, `"${field}" starts with a registry host "${first}": give the repository inside the target registry, without its host`);
      return;
    }
    try {
      parseReference(`${PROBE_REGISTRY}/${repository}`);
    } catch (error) {
      add('INVALID_REFERENCE', field, `"${field}": ${reason(error)}`);
    }
  });

  if (images.length + untagged.length > MAX_TARGETS) {
    add('TOO_MANY_TARGETS', 'images', `${images.length + untagged.length} targets requested in "images" and "untaggedRepositories"; at most ${MAX_TARGETS} are accepted per import: split it into several imports`);
  }

  const platforms: string[] = [];
  (body.platforms ?? []).forEach((platform, i) => {
    try {
      platforms.push(formatPlatform(parsePlatform(platform)));
    } catch (error) {
      add('INVALID_PLATFORM', `platforms[${i}]`, `"platforms[${i}]": ${reason(error)}`);
    }
  });

  if (body.password !== undefined && body.username === undefined) {
    add('INCOMPLETE_CREDENTIALS', 'password', '"password" is given without "username": give both (for an ACR token as the password, the username is 00000000-0000-0000-0000-000000000000)');
  }
  if (body.username !== undefined && body.password === undefined) {
    add('INCOMPLETE_CREDENTIALS', 'username', '"username" is given without "password": give both, or neither for anonymous pulls');
  }

  return {
    source: body.source,
    ...(body.registry !== undefined && { registry: body.registry }),
    images,
    untaggedRepositories: untagged,
    ...(body.username !== undefined && { username: body.username }),
    ...(body.password !== undefined && { password: body.password }),
    force: body.force ?? false,
    platforms: dedupe(platforms),
    referrers: body.referrers ?? false,
  };
}

function checkRegistry(value: string, add: (code: RequestErrorCode, field: string, message: string) => void): string | undefined {
  if (value.includes('/')) {
    add('INVALID_REFERENCE', 'registry', `"registry" "${value}" contains '/': give ${ACCEPTS.registry}`);
    return undefined;
  }
  try {
    const name = parseReference(`${value}/probe`).registry.name;
    if (name === value || (value === 'index.docker.io' && name === 'docker.io')) return name;
  } catch {
    // fall through to the message below
  }
  add('INVALID_REFERENCE', 'registry', `"registry" "${value}" is not a registry host[:port]: give ${ACCEPTS.registry}`);
  return undefined;
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}
