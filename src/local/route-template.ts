/**
 * HTTP trigger route templates, the subset of ASP.NET Core routing the Functions host accepts in
 * `route`: literal segments, parameters `{id}`, optional parameters `{id?}`, constraints
 * `{id:int}` (also `{id:int?}`), and a trailing catch-all `{*rest}`. Literals match without regard
 * to case, as in ASP.NET; parameter values arrive percent-decoded in `request.params`.
 */

type Constraint = (value: string) => boolean;

type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'parameter'; name: string; optional: boolean; constraints: Constraint[] }
  | { kind: 'catchAll'; name: string };

/** A parsed route template that can match request paths. */
export interface RouteTemplate {
  /** The template as written, without leading or trailing slashes. */
  readonly template: string;
  /**
   * Ranks templates so the most specific is tried first, as ASP.NET orders endpoints: per segment,
   * literal before constrained parameter before parameter before catch-all. Compare with
   * {@link compareRoutePrecedence}.
   */
  readonly precedence: readonly number[];
  /** The route values when `path` (relative to the route prefix, no query) matches, else undefined. */
  match(path: string): Record<string, string> | undefined;
}

const NUMBER = /^-?\d+$/;
const GUID = /^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$/i;

// The inline constraints ASP.NET Core defines that a route here can use; `regex(...)` and others
// are refused at start-up rather than ignored, so a route never matches more than it would on Azure.
const CONSTRAINTS: Record<string, (arg?: string) => Constraint> = {
  int: () => (v) => NUMBER.test(v) && Math.abs(Number(v)) <= 2 ** 31,
  long: () => (v) => NUMBER.test(v),
  bool: () => (v) => /^(true|false)$/i.test(v),
  guid: () => (v) => GUID.test(v),
  alpha: () => (v) => /^[a-z]+$/i.test(v),
  double: () => (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  decimal: () => (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  float: () => (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  minlength: (arg) => (v) => v.length >= Number(arg),
  maxlength: (arg) => (v) => v.length <= Number(arg),
  length: (arg) => {
    const [a, b] = (arg ?? '').split(',').map(Number);
    return (v) => (b === undefined ? v.length === a : v.length >= a! && v.length <= b);
  },
  min: (arg) => (v) => NUMBER.test(v) && Number(v) >= Number(arg),
  max: (arg) => (v) => NUMBER.test(v) && Number(v) <= Number(arg),
  range: (arg) => {
    const [a, b] = (arg ?? '').split(',').map(Number);
    return (v) => NUMBER.test(v) && Number(v) >= a! && Number(v) <= b!;
  },
};

/**
 * Parses a route template such as `imports/{id}` or `files/{*path}`.
 *
 * @throws Error for what the local host cannot honour exactly: unknown constraints, parameters mixed
 *   with text inside one segment, a catch-all that is not last, or a required segment after an
 *   optional one.
 */
export function parseRouteTemplate(template: string): RouteTemplate {
  const trimmed = template.replace(/^\/+|\/+$/g, '');
  const segments = trimmed === '' ? [] : trimmed.split('/').map((text, i, all) => parseSegment(text, i === all.length - 1, template));
  let sawOptional = false;
  for (const segment of segments) {
    const optional = segment.kind === 'catchAll' || (segment.kind === 'parameter' && segment.optional);
    if (sawOptional && !optional) throw new Error(`route "${template}": a required segment follows an optional one`);
    sawOptional ||= optional;
  }
  const precedence = segments.map((s) => (s.kind === 'literal' ? 1 : s.kind === 'catchAll' ? 5 : s.constraints.length > 0 ? 2 : 3));
  return { template: trimmed, precedence, match: (path) => matchSegments(segments, path) };
}

function parseSegment(text: string, isLast: boolean, template: string): Segment {
  const param = /^\{(.+)\}$/.exec(text);
  if (!param) {
    if (/[{}]/.test(text)) throw new Error(`route "${template}": segment "${text}" mixes text and a parameter, which the local host does not support`);
    return { kind: 'literal', text: text.toLowerCase() };
  }
  let body = param[1]!;
  if (body.startsWith('*')) {
    if (!isLast) throw new Error(`route "${template}": the catch-all "${text}" must be the last segment`);
    return { kind: 'catchAll', name: body.slice(1).replace(/\?$/, '') };
  }
  const optional = body.endsWith('?');
  if (optional) body = body.slice(0, -1);
  const [name = '', ...constraintTexts] = body.split(':');
  if (!/^\w+$/.test(name)) throw new Error(`route "${template}": "${text}" is not a parameter name`);
  const constraints = constraintTexts.map((c) => {
    const m = /^(\w+)(?:\((.*)\))?$/.exec(c);
    const make = m ? CONSTRAINTS[m[1]!.toLowerCase()] : undefined;
    if (!m || !make) throw new Error(`route "${template}": constraint "${c}" is not supported by the local host`);
    return make(m[2]);
  });
  return { kind: 'parameter', name, optional, constraints };
}

function matchSegments(segments: readonly Segment[], path: string): Record<string, string> | undefined {
  // A trailing slash is tolerated, as ASP.NET does; empty segments elsewhere never match.
  const trimmed = path.replace(/^\/+/, '').replace(/\/$/, '');
  const parts = trimmed === '' ? [] : trimmed.split('/');
  const values: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.kind === 'catchAll') {
      const rest = parts.slice(i);
      const decoded = decodeAll(rest);
      if (decoded === undefined) return undefined;
      if (rest.length > 0) values[segment.name] = decoded.join('/');
      return values;
    }
    const part = parts[i];
    if (part === undefined) {
      if (segment.kind === 'parameter' && segment.optional) continue;
      return undefined;
    }
    const decoded = decodeAll([part])?.[0];
    if (decoded === undefined || decoded === '') return undefined;
    if (segment.kind === 'literal') {
      if (decoded.toLowerCase() !== segment.text) return undefined;
    } else {
      if (!segment.constraints.every((accepts) => accepts(decoded))) return undefined;
      values[segment.name] = decoded;
    }
  }
  return parts.length > segments.length ? undefined : values;
}

function decodeAll(parts: readonly string[]): string[] | undefined {
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    // Malformed percent-encoding: no route matches, so the caller answers 404.
    return undefined;
  }
}

/** Orders two templates most specific first (negative when `a` should be tried before `b`). */
export function compareRoutePrecedence(a: RouteTemplate, b: RouteTemplate): number {
  const length = Math.max(a.precedence.length, b.precedence.length);
  for (let i = 0; i < length; i++) {
    // A template that ends earlier is less specific than one with more segments to match.
    const pa = a.precedence[i] ?? 6;
    const pb = b.precedence[i] ?? 6;
    if (pa !== pb) return pa - pb;
  }
  return 0;
}
