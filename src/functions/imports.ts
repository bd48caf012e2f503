/**
 * The `imports` HTTP function, after Azure's REST conventions for long-running operations:
 * - `POST /api/imports`: validate, record and queue an import; 202 with its status document and
 *   where to poll it (`Operation-Location`, `Location`, absolute) and how often (`Retry-After`).
 * - `GET /api/imports/{id}`: one job's status document.
 * - `DELETE /api/imports/{id}`: cancel it (cancel-import.ts).
 * - `GET /api/imports?status=…&pageSize=…&continuationToken=…`: recent jobs, newest first, with an
 *   absolute `nextLink`.
 * Every other method gets 405 from the handler itself, with `Allow` (the function takes every
 * method for that reason: Azure's host would answer an unlisted one 404, with no body).
 * Parses input, calls src/jobs, maps errors to responses; nothing else.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { cancelImport } from '../jobs/cancel-import.js';
import { JobNotFoundError, RequestError } from '../jobs/errors.js';
import { isJobId } from '../jobs/job-id.js';
import { JOB_STATUSES, type JobStatus } from '../jobs/job-record.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../jobs/job-store.js';
import { toStatusDocument, type ImportStatus } from '../jobs/status-document.js';
import { submitImport } from '../jobs/submit-import.js';
import { jobEvent } from '../jobs/job-events.js';
import { requireApiKey } from './api-key.js';
import type { FunctionDefinition } from './definition.js';
import { HttpError, JSON_CONTENT_TYPE, responseForError } from './http-errors.js';
import { readJsonBody } from './json-body.js';
import { currentSettings, jobStorage, submitDeps } from './services.js';
import { logJobEvent } from './telemetry.js';

/** The route prefix the host adds (host.json `extensions.http.routePrefix`, default `api`). */
const ROUTE_PREFIX = '/api';

/**
 * Seconds a caller should wait between polls of a job: its worker records progress at most once a
 * second, so polling faster only re-reads the same document.
 */
export const POLL_RETRY_AFTER_SECONDS = 2;

/** A page of `GET /api/imports`. */
export interface ImportList {
  value: ImportStatus[];
  /** Pass as `continuationToken` for the next page; absent on the last. */
  continuationToken?: string;
  /** The next page's absolute URL (the same query, with the continuationToken). */
  nextLink?: string;
}

/** Handles every method and route of the `imports` function. */
export async function importsHandler(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const settings = currentSettings();
    requireApiKey(request, settings.apiKey);
    const id = request.params.id;
    if (request.method === 'POST' && id === undefined) return await postImport(request, context);
    if (request.method === 'GET') return id === undefined ? await listImports(request) : await getImport(id);
    if (request.method === 'DELETE' && id !== undefined) return await deleteImport(request, id, context);
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${request.method} is not supported here: POST or GET /api/imports, GET or DELETE /api/imports/{id}`, undefined, {
      allow: id === undefined ? 'GET, POST' : 'GET, DELETE',
    });
  } catch (error) {
    const response = responseForError(error);
    if (!response) throw error;
    if (response.status !== undefined && response.status >= 500) context.error(`imports: ${(error as Error).message}`);
    return response;
  }
}

async function postImport(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const body = await readJsonBody(request);
  const idempotencyKey = request.headers.get('idempotency-key') ?? undefined;
  const { job, replayed } = await submitImport(body, idempotencyKey === undefined ? {} : { idempotencyKey }, await submitDeps());
  const line = `imports: ${replayed ? 'replayed' : 'queued'} job ${job.id} (${job.source} -> ${job.targets.length} target${job.targets.length === 1 ? '' : 's'})`;
  if (replayed) context.log(line);
  else logJobEvent(context, 'info', line, jobEvent(job, 'queued', 'queued', Date.now()));
  return {
    status: 202,
    jsonBody: toStatusDocument(job),
    headers: { 'content-type': JSON_CONTENT_TYPE, ...pollHeaders(request, job.id), ...(replayed && { 'idempotent-replayed': 'true' }) },
  };
}

/**
 * Where and when to poll a job, as Azure's long-running operations say it: `Operation-Location`
 * (the status monitor) and `Location` (the same document here), absolute on the URL the caller
 * used, and `Retry-After` in seconds. Never with the caller's `?code=`: the key stays theirs.
 */
function pollHeaders(request: HttpRequest, id: string): Record<string, string> {
  const monitor = new URL(`${ROUTE_PREFIX}/imports/${id}`, request.url).toString();
  return { 'operation-location': monitor, location: monitor, 'retry-after': String(POLL_RETRY_AFTER_SECONDS) };
}

async function getImport(id: string): Promise<HttpResponseInit> {
  if (!isJobId(id)) throw new JobNotFoundError(id);
  const storage = await jobStorage();
  const job = await storage.jobs.get(id);
  if (!job) throw new JobNotFoundError(id);
  return { status: 200, jsonBody: toStatusDocument(job.value), headers: { 'content-type': JSON_CONTENT_TYPE } };
}

/**
 * Cancels a job: 200 with the canceled document when nothing runs it (or it was canceled
 * already), 202 with where to poll while its worker stops it, 409 once it succeeded or failed.
 */
async function deleteImport(request: HttpRequest, id: string, context: InvocationContext): Promise<HttpResponseInit> {
  if (!isJobId(id)) throw new JobNotFoundError(id);
  const storage = await jobStorage();
  const { job, outcome, already } = await cancelImport(id, { jobs: storage.jobs, checkpoints: storage.checkpoints });
  const line = `imports: job ${id} ${outcome === 'canceled' ? 'canceled' : 'asked to stop'}`;
  // A job nobody ran ends here: its `queued` went out as telemetry, so its end does too (once).
  if (outcome === 'canceled' && !already) logJobEvent(context, 'info', line, jobEvent(job, 'canceled', 'canceled', Date.now()));
  else context.log(line);
  if (outcome === 'canceled') return { status: 200, jsonBody: toStatusDocument(job), headers: { 'content-type': JSON_CONTENT_TYPE } };
  return { status: 202, jsonBody: toStatusDocument(job), headers: { 'content-type': JSON_CONTENT_TYPE, ...pollHeaders(request, id) } };
}

async function listImports(request: HttpRequest): Promise<HttpResponseInit> {
  refuseRepeatedParameters(request.query);
  const statuses = parseStatuses(request.query.get('status'));
  const pageSize = parsePageSize(request.query.get('pageSize'));
  const after = request.query.get('continuationToken') ?? undefined;
  if (after !== undefined && !isJobId(after)) {
    throw new RequestError('INVALID_QUERY', '"continuationToken" is not one this API issued: pass the continuationToken of the previous page unchanged', 'continuationToken');
  }
  const storage = await jobStorage();
  const page = await storage.jobs.list({ pageSize, ...(statuses && { statuses }), ...(after !== undefined && { after }) });
  const body: ImportList = { value: page.jobs.map(toStatusDocument) };
  if (page.continuationToken !== undefined) {
    body.continuationToken = page.continuationToken;
    const query = new URLSearchParams();
    if (statuses) query.set('status', statuses.join(','));
    query.set('pageSize', String(pageSize));
    query.set('continuationToken', page.continuationToken);
    body.nextLink = new URL(`${ROUTE_PREFIX}/imports?${query.toString()}`, request.url).toString();
  }
  return { status: 200, jsonBody: body, headers: { 'content-type': JSON_CONTENT_TYPE } };
}

function parseStatuses(value: string | null): JobStatus[] | undefined {
  if (value === null || value === '') return undefined;
  const statuses = value.split(',').map((s) => s.trim());
  for (const status of statuses) {
    if (!(JOB_STATUSES as readonly string[]).includes(status)) {
      throw new RequestError('INVALID_QUERY', `"status" has "${status}": give one or more of ${JOB_STATUSES.join(', ')}, separated by commas`, 'status');
    }
  }
  return [...new Set(statuses)] as JobStatus[];
}

/**
 * Refuses a query parameter given more than once: `pageSize=1&pageSize=100` has no one meaning,
 * and silently taking the first would hide the caller's mistake.
 */
function refuseRepeatedParameters(query: URLSearchParams): void {
  for (const name of new Set(query.keys())) {
    const count = query.getAll(name).length;
    if (count > 1) {
      throw new RequestError('INVALID_QUERY', `"${name}" is given ${count} times: give it once (several statuses go in one "status", separated by commas)`, name);
    }
  }
}

/** Plain decimal digits only: `Number()` would also take `1e2`, `0x10`, ` 5` and `5.0`. */
const DECIMAL = /^[0-9]{1,6}$/;

function parsePageSize(value: string | null): number {
  if (value === null || value === '') return DEFAULT_PAGE_SIZE;
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new RequestError('INVALID_QUERY', `"pageSize" is "${value}": give a whole number from 1 to ${MAX_PAGE_SIZE} in plain decimal digits`, 'pageSize');
  }
  return n;
}

/** The definition both hosts register. */
export const importsFunction: FunctionDefinition = {
  name: 'imports',
  trigger: { type: 'http', methods: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], route: 'imports/{id?}', authLevel: 'function' },
  handler: importsHandler,
};
