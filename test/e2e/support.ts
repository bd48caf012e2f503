/**
 * Shared pieces of the end-to-end tests: the app's real function definitions run by the local
 * host (in this process, or as `node …/main.js`), a small client for its HTTP API, polling a job
 * until it ends, and reading the storage queues.
 */
import { ALLOW_LOOPBACK_REGISTRIES } from '../helpers/registry.js';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { definitions } from '../../src/functions/definitions.js';
import type { ImportList } from '../../src/functions/imports.js';
import type { ImportStatus } from '../../src/jobs/status-document.js';
import type { AppSettings } from '../../src/local/settings.js';
import { startTestHost, type TestHost } from '../local/support.js';
import { checkAgainstOpenApi } from './openapi-check.js';

export { definitions };
export type { ImportStatus, ImportList };

export const MiB = 1024 * 1024;

/**
 * Host settings that keep queue round trips short, given the way an app setting overrides
 * host.json (`AzureFunctionsJobHost__…`): poll at most every 250 ms, retry a failed message at once.
 */
export const FAST_QUEUE_SETTINGS: Record<string, string> = {
  AzureFunctionsJobHost__extensions__queues__maxPollingInterval: '00:00:00.250',
  AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:00',
};

/**
 * Puts settings into process.env, where the handlers read them (as under `func start` and `npm
 * start`), and starts the local host in this process with the same settings, on a free port.
 * host.json is read from the project with the settings' overrides applied, as `npm start` does.
 */
export async function startAppHost(given: AppSettings, options: { definitions?: typeof definitions; messageLeaseInMs?: number } = {}): Promise<TestHost> {
  const settings = { ...ALLOW_LOOPBACK_REGISTRIES, ...given };
  Object.assign(process.env, settings);
  return startTestHost({
    definitions: options.definitions ?? definitions,
    settings,
    ...(options.messageLeaseInMs !== undefined && { messageLeaseInMs: options.messageLeaseInMs }),
  });
}

/** An HTTP response, JSON body parsed when there is one. */
export interface ApiResponse<T = any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  status: number;
  headers: Headers;
  body: T;
}

/** A client for the import API of a host at `baseUrl` (`http://127.0.0.1:PORT`). */
export class ImportsApi {
  constructor(
    readonly baseUrl: string,
    private readonly key?: string,
  ) {}

  /** For a host (whose `url` says localhost), the same port on 127.0.0.1. */
  static of(host: { port: number }, key?: string): ImportsApi {
    return new ImportsApi(`http://127.0.0.1:${host.port}`, key);
  }

  /** `json` is sent as application/json; `body` as given, with the content type in `headers`. */
  async request<T = any>(method: string, path: string, options: { json?: unknown; body?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse<T>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const headers: Record<string, string> = { ...(this.key !== undefined && { 'x-functions-key': this.key }), ...options.headers };
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const sent = options.json !== undefined ? JSON.stringify(options.json) : options.body;
    // An absolute URL (a nextLink, an Operation-Location) is used as given.
    const response = await fetch(/^https?:\/\//.test(path) ? path : `${this.baseUrl}${path}`, {
      method,
      headers,
      ...(sent !== undefined && { body: sent }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    let body: unknown = text;
    if ((response.headers.get('content-type') ?? '').includes('json') && text) body = JSON.parse(text);
    // Every answer an e2e test sees is one the OpenAPI document describes, or the suite fails.
    checkAgainstOpenApi({ method, url: response.url, status: response.status, headers: response.headers, body, text });
    return { status: response.status, headers: response.headers, body: body as T };
  }

  post(json: unknown, headers?: Record<string, string>): Promise<ApiResponse<ImportStatus>> {
    return this.request('POST', '/api/imports', { json, ...(headers && { headers }) });
  }

  /** `DELETE /api/imports/{id}`: cancel. */
  cancel(id: string): Promise<ApiResponse<ImportStatus>> {
    return this.request('DELETE', `/api/imports/${id}`);
  }

  async get(id: string): Promise<ImportStatus> {
    const response = await this.request<ImportStatus>('GET', `/api/imports/${id}`);
    if (response.status !== 200) throw new Error(`GET /api/imports/${id}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body;
  }

  list(query = ''): Promise<ApiResponse<ImportList>> {
    return this.request('GET', `/api/imports${query}`);
  }

  /**
   * Polls GET every 100 ms until the job's status is `status` and returns the document; throws
   * with the document when the job ends otherwise, or after `timeoutInMs`. `onPoll` sees every
   * document (to sample progress).
   */
  async waitForStatus(id: string, status: 'succeeded' | 'failed' | 'canceled', options: { timeoutInMs?: number; onPoll?: (doc: ImportStatus) => void; logs?: () => string } = {}): Promise<ImportStatus> {
    const deadline = Date.now() + (options.timeoutInMs ?? 60_000);
    for (;;) {
      const doc = await this.get(id);
      options.onPoll?.(doc);
      if (doc.status === status) return doc;
      const ended = doc.status === 'succeeded' || doc.status === 'failed' || doc.status === 'canceled';
      if (ended || Date.now() > deadline) {
        const why = ended ? `ended ${doc.status}` : `still ${doc.status} after ${options.timeoutInMs ?? 60_000} ms`;
        throw new Error(`job ${id} ${why}, expected ${status}:\n${JSON.stringify(doc, null, 2)}\n${options.logs?.().split('\n').slice(-40).join('\n') ?? ''}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The job message text the app writes to `imports`: base64 of `{"jobId","continuation"}`. */
export function jobMessageText(jobId: string, continuation = 0): string {
  return Buffer.from(JSON.stringify({ jobId, continuation }), 'utf8').toString('base64');
}

/** The app's queues on a storage account. */
export function appQueues(connectionString: string): { imports: QueueClient; poison: QueueClient } {
  const service = QueueServiceClient.fromConnectionString(connectionString);
  return { imports: service.getQueueClient('imports'), poison: service.getQueueClient('imports-poison') };
}

/** Every visible message of a queue, without taking them (peek sees at most 32). */
export async function peekAll(queue: QueueClient): Promise<Array<{ text: string; decoded: string }>> {
  if (!(await queue.exists())) return [];
  const { peekedMessageItems } = await queue.peekMessages({ numberOfMessages: 32 });
  return peekedMessageItems.map((m) => ({ text: m.messageText, decoded: Buffer.from(m.messageText, 'base64').toString('utf8') }));
}

/** Messages in a queue, invisible (leased or delayed) ones included. */
export async function messageCount(queue: QueueClient): Promise<number> {
  if (!(await queue.exists())) return 0;
  return (await queue.getProperties()).approximateMessagesCount ?? 0;
}

/** Timestamps of a finished job's status document, in the order they must come. */
export function expectOrderedTimestamps(doc: ImportStatus): void {
  const created = Date.parse(doc.createdAt);
  const started = Date.parse(doc.startedAt ?? '');
  const completed = Date.parse(doc.completedAt ?? '');
  const updated = Date.parse(doc.updatedAt);
  for (const t of [created, started, completed, updated]) expect(Number.isFinite(t)).toBe(true);
  expect(started).toBeGreaterThanOrEqual(created);
  expect(completed).toBeGreaterThanOrEqual(started);
  expect(updated).toBeGreaterThanOrEqual(completed);
}
