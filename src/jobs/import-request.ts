/**
 * The body of `POST /api/imports`: its valibot schema (modelled on `az acr import` and ARM
 * importImage), and validation that turns every problem into a RequestError naming the field, what
 * was wrong and what is accepted.
 */
import * as v from 'valibot';
import { classifyPasswordToken } from '../azure/acr-tokens.js';
import { looksLikeResourceId, parseRegistryResourceId } from '../azure/arm.js';
import { jsonObject } from '../copy/json-object.js';
import { formatPlatform, parsePlatform } from '../copy/platform.js';
import { withoutUserinfo } from '../registry/errors.js';
import { InvalidReferenceError, parseReference } from '../registry/reference.js';
import { RequestError, type RequestErrorCode } from './errors.js';
import { registryName } from './settings.js';

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
  registry: 'the source registry login server, such as myregistry.azurecr.io or localhost:5000, or its Azure resource ID, /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.ContainerRegistry/registries/<name>',
  targetRegistry: 'one of the target registries this service writes to (HOIST_TARGET_REGISTRY), such as myregistry.azurecr.io; the first one when left out',
  images: `a list of up to ${MAX_TARGETS} target "repo:tag" strings in the target registry, such as ["hello-world:v1"]`,
  untaggedRepositories: `a list of up to ${MAX_TARGETS} target repository names, such as ["hello-world"]`,
  username: 'the source registry user name, a string',
  password: 'the source registry password or token, a string; alone, an Entra access token or an ACR token',
  force: 'true or false',
  platforms: `a list of up to ${MAX_PLATFORMS} "os/arch[/variant]" strings, such as ["linux/amd64", "linux/arm/v7"]`,
  referrers: 'true or false',
  allowNondistributableArtifacts: 'true (copy non-distributable layers, from their URLs when the source lacks them) or false (leave them referenced by URL)',
};

const reference = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_REFERENCE_LENGTH));

/** A list of at most `max` items; a longer one fails on its length alone, before any item is read. */
function list<TItem extends v.GenericSchema<string>>(item: TItem, max: number) {
  return v.pipe(v.array(v.unknown()), v.maxLength(max), v.array(item));
}

const fields = {
  source: reference,
  registry: v.optional(reference),
  targetRegistry: v.optional(reference),
  images: v.optional(list(reference, MAX_TARGETS)),
  untaggedRepositories: v.optional(list(reference, MAX_TARGETS)),
  username: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_USERNAME_LENGTH))),
  password: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_PASSWORD_LENGTH))),
  force: v.optional(v.boolean()),
  platforms: v.optional(list(v.pipe(v.string(), v.minLength(1), v.maxLength(128)), MAX_PLATFORMS)),
  referrers: v.optional(v.boolean()),
  allowNondistributableArtifacts: v.optional(v.boolean()),
};

/** The request body. Unknown fields are rejected. */
export const importRequestSchema = jsonObject(v.strictObject(fields));

/** The body as sent (after the schema's type checks). */
export type ImportRequestBody = v.InferOutput<typeof importRequestSchema>;

/** A checked request with defaults applied; the canonical form stored, hashed and resolved. */
export interface ImportRequest {
  source: string;
  registry?: string;
  /**
   * The target registry's name as given (normalised), checked against the configured list at
   * submit. Present only when given, so the fingerprint of every other request stays what it was.
   */
  targetRegistry?: string;
  images: string[];
  untaggedRepositories: string[];
  username?: string;
  password?: string;
  force: boolean;
  /** Normalised `os/arch[/variant]`; empty means every platform. */
  platforms: string[];
  referrers: boolean;
  /**
   * Copy non-distributable layers too, from their URLs when the source registry lacks them
   * (each URL and redirect under the outbound address policy). Present only when true, so the
   * fingerprint of every other request stays what it was.
   */
  allowNondistributableArtifacts?: true;
}

type Problem = { code: RequestErrorCode; message: string; field?: string };

/**
 * Validates a parsed JSON body. Throws a RequestError for the first problem (with every problem
 * in `details`); returns the request with defaults applied and duplicates removed.
 */
export function parseImportRequest(body: unknown): ImportRequest {
  const parsed = v.safeParse(importRequestSchema, body);
  if (!parsed.success) throw toRequestError(parsed.issues.flatMap((issue) => describeIssue(issue, body)));
  const problems: Problem[] = [];
  const request = checkSemantics(parsed.output, problems);
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
function fieldName(path: ReadonlyArray<unknown>): string {
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

function describeIssue(issue: v.InferIssue<typeof importRequestSchema>, body: unknown): Problem[] {
  if (issue.path === undefined) {
    return [{ code: 'INVALID_JSON', message: `the body must be a JSON object, not ${jsonType(body)}; see ${Object.keys(ACCEPTS).join(', ')}` }];
  }
  const path = issue.path.map((item) => item.key);
  const field = fieldName(path);
  const accepts = ACCEPTS[String(path[0])] ?? '';
  if (issue.type === 'strict_object' && issue.expected === 'never') {
    // valibot names only the first unknown field; each is a mistake worth naming.
    return Object.keys(body as object).filter((key) => !Object.hasOwn(fields, key)).map((key) => ({
      code: 'UNKNOWN_FIELD' as const,
      field: key,
      message: `unknown field "${key}": the accepted fields are ${Object.keys(ACCEPTS).join(', ')}`,
    }));
  }
  if (issue.kind === 'schema') {
    // The wrong type, or (no input) a field left out.
    if (issue.input === undefined) {
      return [{ code: 'MISSING_FIELD', field, message: `"${field}" is required: give ${accepts}` }];
    }
    const expected = path.length > 1 ? `a ${issue.expected}` : accepts;
    return [{ code: 'INVALID_FIELD', field, message: `"${field}" is ${jsonType(issue.input)}; expected ${expected}` }];
  }
  switch (issue.type) {
    case 'min_length':
      return [{ code: 'INVALID_FIELD', field, message: `"${field}" is empty; expected ${accepts}` }];
    case 'max_length': {
      if (Array.isArray(issue.input)) {
        const isTargets = field === 'images' || field === 'untaggedRepositories';
        return [{
          code: isTargets ? 'TOO_MANY_TARGETS' : 'INVALID_FIELD',
          field,
          message: `"${field}" has ${issue.input.length} entries, more than the ${String(issue.requirement)} accepted${isTargets ? ' per import: split it into several imports' : ''}`,
        }];
      }
      return [{ code: 'INVALID_FIELD', field, message: `"${field}" is longer than ${String(issue.requirement)} characters; expected ${accepts}` }];
    }
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
    if (looksLikeResourceId(body.registry)) {
      // Resolved to its login server at submit (submit-import.ts); here only its form is checked.
      if (!parseRegistryResourceId(body.registry)) add('INVALID_FIELD', 'registry', `"registry" "${body.registry}" is not a container registry resource ID: give ${ACCEPTS.registry}`);
      else checkRepository(body.source, add);
    } else {
      registry = checkRegistry(body.registry, 'registry', add);
    }
  }
  const targetRegistry = body.targetRegistry === undefined ? undefined : checkRegistry(body.targetRegistry, 'targetRegistry', add);

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

  if (body.password !== undefined && body.username === undefined && !classifyPasswordToken(body.password)) {
    add('INCOMPLETE_CREDENTIALS', 'password', '"password" is given without "username", and is neither an Entra access token nor an ACR token: give "username" too (for an ACR token, 00000000-0000-0000-0000-000000000000)');
  }
  if (body.username !== undefined && body.password === undefined) {
    add('INCOMPLETE_CREDENTIALS', 'username', '"username" is given without "password": give both, or neither for anonymous pulls');
  }

  return {
    source: body.source,
    ...(body.registry !== undefined && { registry: body.registry }),
    ...(targetRegistry !== undefined && { targetRegistry }),
    images,
    untaggedRepositories: untagged,
    ...(body.username !== undefined && { username: body.username }),
    ...(body.password !== undefined && { password: body.password }),
    force: body.force ?? false,
    platforms: dedupe(platforms),
    referrers: body.referrers ?? false,
    ...(body.allowNondistributableArtifacts === true && { allowNondistributableArtifacts: true as const }),
  };
}

/** A source given as repo[:tag|@digest] of a registry known only later (a resource ID). */
function checkRepository(source: string, add: (code: RequestErrorCode, field: string, message: string) => void): void {
  const first = source.split('/')[0];
  if (source.includes('/') && looksLikeHost(first)) {
    add('INVALID_REFERENCE', 'source', `"source" starts with the registry host "${first}", but "registry" is given: with "registry", "source" is repo[:tag|@digest]`);
    return;
  }
  try {
    parseReference(`${PROBE_REGISTRY}/${source}`);
  } catch (error) {
    add('INVALID_REFERENCE', 'source', `"source": ${reason(error)}`);
  }
}

function checkRegistry(value: string, field: 'registry' | 'targetRegistry', add: (code: RequestErrorCode, field: string, message: string) => void): string | undefined {
  if (value.includes('/')) {
    add('INVALID_REFERENCE', field, `"${field}" "${withoutUserinfo(value)}" contains '/': give ${ACCEPTS[field]}`);
    return undefined;
  }
  const name = registryName(value);
  if (name === undefined) add('INVALID_REFERENCE', field, `"${field}" "${withoutUserinfo(value)}" is not a registry host[:port]: give ${ACCEPTS[field]}`);
  return name;
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}
