/**
 * The `watches` HTTP function (issue 10): `PUT /api/watches/{name}` creates or replaces a watch,
 * `GET /api/watches` lists them, `GET /api/watches/{name}` shows one with its tracked tags, last
 * and next run, `DELETE /api/watches/{name}` removes one. Parses input, calls src/mirror, maps
 * errors to responses; nothing else.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { describeWatch, saveWatch, toWatchDocument } from '../mirror/watches.js';
import { WatchPreconditionError, type WatchCondition } from '../mirror/watch-store.js';
import { checkWatchName } from '../mirror/watch-request.js';
import { requireApiKey } from './api-key.js';
import type { FunctionDefinition } from './definition.js';
import { errorResponse, HttpError, responseForError } from './http-errors.js';
import { readJsonBody } from './json-body.js';
import { currentSettings, jobStorage, registryHosts, secretBox, watchStore } from './services.js';

const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' };

/** Handles every method and route of the `watches` function. */
export async function watchesHandler(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const settings = currentSettings();
    requireApiKey(request, settings.apiKey);
    const name = request.params.name;
    if (name === undefined) {
      if (request.method === 'GET') return await listWatches();
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${request.method} is not supported on /api/watches: GET lists watches; PUT, GET and DELETE take /api/watches/{name}`, undefined, { allow: 'GET' });
    }
    checkWatchName(name);
    if (request.method === 'PUT') return await putWatch(name, request, context);
    if (request.method === 'GET') return await getWatch(name);
    if (request.method === 'DELETE') return await deleteWatch(name, request, context);
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${request.method} is not supported on /api/watches/{name}: PUT, GET or DELETE`, undefined, { allow: 'GET, PUT, DELETE' });
  } catch (error) {
    if (error instanceof WatchPreconditionError) return errorResponse(412, error.code, error.message, error.header);
    const response = responseForError(error);
    if (!response) throw error;
    if (response.status !== undefined && response.status >= 500) context.error(`watches: ${(error as Error).message}`);
    return response;
  }
}

/** Longest If-Match accepted (a Tables ETag is about 60 characters). */
const MAX_ETAG_LENGTH = 256;

/** The request's preconditions: If-Match (an ETag GET returned, or `*`), and If-None-Match (only `*`, on PUT). */
function readCondition(request: HttpRequest, method: 'PUT' | 'DELETE'): WatchCondition {
  const ifMatch = request.headers.get('if-match') ?? undefined;
  const ifNoneMatch = request.headers.get('if-none-match') ?? undefined;
  if (ifMatch !== undefined && (ifMatch.length === 0 || ifMatch.length > MAX_ETAG_LENGTH)) {
    throw new HttpError(400, 'INVALID_HEADER', `If-Match must be an ETag that GET /api/watches/{name} returned, or *, of 1 to ${MAX_ETAG_LENGTH} characters`, 'If-Match');
  }
  if (ifNoneMatch !== undefined && (method !== 'PUT' || ifNoneMatch.trim() !== '*')) {
    throw new HttpError(400, 'INVALID_HEADER', 'If-None-Match is accepted only as * on PUT (create the watch only if it does not exist)', 'If-None-Match');
  }
  if (ifMatch !== undefined && ifNoneMatch !== undefined) throw new HttpError(400, 'INVALID_HEADER', 'give If-Match (replace that version) or If-None-Match: * (create only), not both', 'If-None-Match');
  return { ...(ifMatch !== undefined && { ifMatch }), ...(ifNoneMatch !== undefined && { ifNoneMatch: '*' }) };
}

async function putWatch(name: string, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const condition = readCondition(request, 'PUT');
  const body = await readJsonBody(request);
  const settings = currentSettings();
  const box = secretBox(settings);
  const allowedSources = settings.allowedSources;
  const { created, watch, etag } = await saveWatch(
    name,
    body,
    {
      store: await watchStore(settings),
      targetRegistry: settings.targetRegistries[0]!,
      hosts: registryHosts(settings),
      ...(allowedSources && { allowedSources }),
      ...(box && { secretBox: box }),
    },
    condition,
  );
  context.log(`watches: ${created ? 'created' : 'replaced'} watch ${name} (${watch.source} -> ${watch.target})`);
  return { status: created ? 201 : 200, jsonBody: watch, headers: { ...JSON_TYPE, etag, ...(created && { location: `/api/watches/${name}` }) } };
}

async function getWatch(name: string): Promise<HttpResponseInit> {
  const store = await watchStore();
  const watch = await store.get(name);
  if (!watch) throw notFound(name);
  const document = await describeWatch(watch.value, store, (await jobStorage()).jobs);
  return { status: 200, jsonBody: document, headers: { ...JSON_TYPE, etag: watch.etag } };
}

async function listWatches(): Promise<HttpResponseInit> {
  const store = await watchStore();
  const watches = await store.list();
  return { status: 200, jsonBody: { value: watches.map(toWatchDocument) }, headers: JSON_TYPE };
}

async function deleteWatch(name: string, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const { ifMatch } = readCondition(request, 'DELETE');
  const store = await watchStore();
  if (!(await store.delete(name, ifMatch))) throw notFound(name);
  context.log(`watches: deleted watch ${name}`);
  return { status: 204 };
}

function notFound(name: string): HttpError {
  return new HttpError(404, 'WATCH_NOT_FOUND', `there is no watch named "${name}": GET /api/watches lists them`, 'name');
}

/** The definition both hosts register. */
export const watchesFunction: FunctionDefinition = {
  name: 'watches',
  trigger: { type: 'http', methods: ['GET', 'PUT', 'DELETE'], route: 'watches/{name?}', authLevel: 'function' },
  handler: watchesHandler,
};
