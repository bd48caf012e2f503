/**
 * Calling the HTTP handlers directly, as the hosts do: build an HttpRequest and an
 * InvocationContext whose logs are captured; `callChecked` also holds the answer to the OpenAPI
 * document.
 */
import { spawn } from 'node:child_process';
import { HttpRequest, HttpResponse, InvocationContext, type HttpHandler, type HttpResponseInit } from '@azure/functions';
import { checkAgainstOpenApi } from '../e2e/openapi-check.js';

export interface CallOptions {
  method?: string;
  /** Path and query after the host, e.g. `/api/imports?status=failed`. */
  path?: string;
  body?: string | Uint8Array;
  json?: unknown;
  headers?: Record<string, string>;
  params?: Record<string, string>;
}

export interface Called {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Record<string, string>;
}

export function context(logs: string[] = [], functionName = 'imports'): InvocationContext {
  return new InvocationContext({
    invocationId: `test-${Math.random().toString(36).slice(2)}`,
    functionName,
    triggerMetadata: { dequeueCount: 1 },
    logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`),
  });
}

export async function call(handler: HttpHandler, options: CallOptions, logs: string[] = []): Promise<Called> {
  return toCalled((await invoke(handler, options, logs)).response);
}

/**
 * `call`, with the answer checked against the OpenAPI document (test/e2e/openapi-check.ts) as a
 * host would send it: converted by @azure/functions' HttpResponse, as the local host's
 * writeHttpResponse does. Throws, naming what differs, for an answer the document lacks.
 */
export async function callChecked(handler: HttpHandler, options: CallOptions, logs: string[] = []): Promise<Called> {
  const { request, response } = await invoke(handler, options, logs);
  const wire = new HttpResponse(response);
  const text = await wire.text();
  const json = (wire.headers.get('content-type') ?? '').includes('json') && text !== '';
  checkAgainstOpenApi({ method: request.method, url: request.url, status: wire.status, headers: wire.headers, body: json ? JSON.parse(text) : text, text });
  return toCalled(response);
}

async function invoke(handler: HttpHandler, options: CallOptions, logs: string[]): Promise<{ request: HttpRequest; response: HttpResponseInit }> {
  const headers = { ...(options.json !== undefined && { 'content-type': 'application/json' }), ...options.headers };
  const body = options.json !== undefined ? { string: JSON.stringify(options.json) } : typeof options.body === 'string' ? { string: options.body } : options.body ? { bytes: options.body } : undefined;
  const request = new HttpRequest({
    method: options.method ?? (options.json !== undefined || options.body !== undefined ? 'POST' : 'GET'),
    url: `http://localhost:7071${options.path ?? '/api/imports'}`,
    headers,
    ...(body && { body }),
    ...(options.params && { params: options.params }),
  });
  return { request, response: (await handler(request, context(logs))) as HttpResponseInit };
}

function toCalled(response: HttpResponseInit): Called {
  const outHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries((response.headers ?? {}) as Record<string, string>)) outHeaders[k.toLowerCase()] = v;
  return { status: response.status ?? 200, body: response.jsonBody, headers: outHeaders };
}

/**
 * Runs `script` in a child Node process (as the Functions runtime runs the app) until it prints
 * `ready`, then sends it SIGTERM; resolves with its exit code and everything it printed.
 */
export async function runUntilSigterm(script: string, cwd: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['-e', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await expect.poll(() => out, { timeout: 20_000 }).toContain('ready');
  child.kill('SIGTERM');
  return { code: await exited, out };
}
