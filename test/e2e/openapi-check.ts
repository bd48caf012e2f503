/**
 * Checks an HTTP answer against the API's OpenAPI document (src/functions/openapi.json): its path
 * and method must be described, its status listed for that operation, its content type and body
 * valid against the response's schema (JSON Schema 2020-12, with ajv and ajv-formats), and every
 * header the response marks required present. The document's schemas refuse properties they do
 * not name, so a field the document does not describe fails too. A path the document lacks may
 * only be the host's own 404, in the error shape. Every e2e HTTP call goes through this
 * (support.ts `ImportsApi.request`).
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { OPENAPI_DOCUMENT } from '../../src/functions/openapi.js';

const DOCUMENT_ID = 'urn:hoist:openapi';

type Json = Record<string, unknown>;

interface Operation {
  responses: Record<string, Json>;
}

interface PathEntry {
  template: string;
  /** The path item's JSON pointer, for schema references into it. */
  pointer: string;
  pattern: RegExp;
  item: Record<string, unknown>;
}

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
// The OpenAPI keywords around the schemas are not JSON Schema: ajv is told to leave them be, so
// strict mode still catches a typo inside a schema.
ajv.addVocabulary(['openapi', 'jsonSchemaDialect', 'info', 'servers', 'security', 'tags', 'paths', 'components', 'webhooks']);
// OpenAPI 3.1's own schema keywords (Schema Object): annotations, no assertion.
ajv.addKeyword({ keyword: 'discriminator' });
ajv.addKeyword({ keyword: 'example' });
ajv.addSchema({ ...OPENAPI_DOCUMENT, $id: DOCUMENT_ID });

const validators = new Map<string, ValidateFunction>();

/** The validator of the schema at a JSON pointer into the document. */
function validatorAt(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (!validate) {
    validate = ajv.compile({ $ref: `${DOCUMENT_ID}#${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}

const escape = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

function pathEntries(): PathEntry[] {
  const defaultBase = ((OPENAPI_DOCUMENT.servers as Array<{ url: string }> | undefined)?.[0]?.url ?? '').replace(/\/$/, '');
  return Object.entries(OPENAPI_DOCUMENT.paths as Record<string, Record<string, unknown>>).map(([template, item]) => {
    const base = ((item.servers as Array<{ url: string }> | undefined)?.[0]?.url ?? defaultBase).replace(/\/$/, '');
    const regex = (base + template)
      .split(/(\{[^}]+\})/)
      .map((part) => (part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    return { template, pointer: `/paths/${escape(template)}`, pattern: new RegExp(`^${regex}/?$`, 'i'), item };
  });
}

const PATHS = pathEntries();

/** A response object, following a `$ref` to components/responses; with its pointer. */
function resolveResponse(response: Json, pointer: string): { response: Json; pointer: string } {
  const ref = response.$ref;
  if (typeof ref !== 'string') return { response, pointer };
  const name = ref.replace('#/components/responses/', '');
  const resolved = (OPENAPI_DOCUMENT.components as { responses: Record<string, Json> }).responses[name];
  if (!resolved) throw new Error(`openapi.json: ${pointer} refers to ${ref}, which is not there`);
  return { response: resolved, pointer: `/components/responses/${escape(name)}` };
}

/** One answer as the client received it. */
export interface CheckedAnswer {
  method: string;
  /** The absolute request URL. */
  url: string;
  status: number;
  headers: Headers;
  /** The parsed JSON body, or the text when it is not JSON. */
  body: unknown;
  /** The body's text as received. */
  text: string;
}

/**
 * Throws, naming what differs, when the answer is not one the OpenAPI document describes.
 */
export function checkAgainstOpenApi(answer: CheckedAnswer): void {
  const { pathname } = new URL(answer.url);
  const where = `${answer.method} ${pathname} → ${answer.status}`;
  const entry = PATHS.find((p) => p.pattern.test(pathname));
  if (!entry) {
    // Only the host's own answer for a route that does not exist.
    if (answer.status !== 404) throw new Error(`${where}: the OpenAPI document describes no such path`);
    checkBody(answer, '/components/schemas/Error', where);
    return;
  }
  const method = answer.method.toLowerCase();
  const operation = entry.item[method] as Operation | undefined;
  if (!operation) throw new Error(`${where}: the OpenAPI document has no ${answer.method} for ${entry.template}`);
  const operationPointer = `${entry.pointer}/${method}`;
  const listed = operation.responses[String(answer.status)] ?? operation.responses.default;
  if (!listed) throw new Error(`${where}: status ${answer.status} is not among the responses of ${answer.method} ${entry.template} (${Object.keys(operation.responses).join(', ')})`);
  const { response, pointer } = resolveResponse(listed, `${operationPointer}/responses/${answer.status}`);
  for (const [name, header] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
    if (header.required === true && !answer.headers.has(name)) throw new Error(`${where}: the required header ${name} is missing`);
  }
  const content = response.content as Record<string, unknown> | undefined;
  if (!content) {
    if (answer.text !== '') throw new Error(`${where}: the document describes no body, but one came: ${answer.text.slice(0, 200)}`);
    return;
  }
  const type = (answer.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (!(type in content)) throw new Error(`${where}: content type "${type}" is not among ${Object.keys(content).join(', ')}`);
  checkBody(answer, `${pointer}/content/${escape(type)}/schema`, where);
}

function checkBody(answer: CheckedAnswer, schemaPointer: string, where: string): void {
  const validate = validatorAt(schemaPointer);
  if (validate(answer.body)) return;
  const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? ''}${e.params && 'additionalProperty' in e.params ? ` "${String(e.params.additionalProperty)}"` : ''}`);
  throw new Error(`${where}: the body does not match the OpenAPI document (${schemaPointer}):\n  ${problems.join('\n  ')}\n${answer.text.slice(0, 500)}`);
}
