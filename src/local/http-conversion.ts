/**
 * Converts between Node's HTTP server objects and the @azure/functions HttpRequest / HttpResponse
 * the handlers take and return. Request bodies are streamed, not buffered, so a handler that caps
 * its body (413 over 64 KiB) reads only what it needs, as on Azure, where register.ts enables the
 * Functions host's HTTP streams.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { HttpRequest, HttpResponse, type Cookie, type HttpRequestInit, type HttpResponseInit } from '@azure/functions';
import { errorBody, JSON_CONTENT_TYPE } from '../functions/http-errors.js';

/**
 * Wraps an incoming Node request as a Functions HttpRequest with its route `params`.
 *
 * @param url - the absolute request URL (http://localhost:PORT/api/...).
 */
export function toHttpRequest(req: IncomingMessage, url: URL, params: Record<string, string>): HttpRequest {
  const headers = new Headers();
  // rawHeaders keeps repeated headers (two Accept lines, say) that `req.headers` would merge.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const nativeRequest = new Request(url, {
    method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    // Required by fetch for a streamed body.
    duplex: 'half',
  } as RequestInit);
  // `nativeRequest` is how the package's own streaming path (createStreamRequest in
  // @azure/functions 4.16 src/http/HttpRequest.ts) builds a request around a live body; the public
  // init type only offers whole-body strings and bytes. The HTTP tests fail if a release drops it.
  const init = { nativeRequest, params } as HttpRequestInit & { nativeRequest: Request };
  return new HttpRequest(init);
}

/**
 * Writes a handler's result to the Node response: an HttpResponse, a plain HttpResponseInit
 * (`{status, jsonBody, headers, cookies}`), or nothing, which answers 204 with no body.
 */
export async function writeHttpResponse(res: ServerResponse, result: unknown): Promise<void> {
  if (result === undefined || result === null) {
    res.writeHead(204).end();
    return;
  }
  if (typeof result !== 'object') {
    throw new TypeError('an HTTP handler must return an HttpResponse or an object with status, body, jsonBody, headers, cookies');
  }
  const response = result instanceof HttpResponse ? result : new HttpResponse(result as HttpResponseInit);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) {
    if (name !== 'set-cookie') headers[name] = value;
  }
  const cookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, headers);
  if (response.body) {
    await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), res);
  } else {
    res.end();
  }
}

/**
 * Answers with the API's one error shape, `{"error": {"code", "message", "field"}}`: the host's
 * own answers (no such route, no key, a webhook refusal) read like the handlers' errors.
 */
export function writeError(res: ServerResponse, status: number, code: string, message: string, options: { field?: string; headers?: Record<string, string> } = {}): void {
  res.writeHead(status, { ...options.headers, 'content-type': JSON_CONTENT_TYPE }).end(JSON.stringify(errorBody(code, message, options.field)));
}

/** A Set-Cookie value for a Functions Cookie (RFC 6265 section 4.1). */
export function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.secure) parts.push('Secure');
  if (cookie.httpOnly) parts.push('HttpOnly');
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join('; ');
}
