/**
 * Reads a JSON request body with the API's limits: 415 unless the content type is JSON, 413 over
 * 64 KiB, 400 for malformed JSON. The size is checked on Content-Length before reading and on the
 * bytes as they arrive: reading stops at the first byte past the limit, whatever the transfer
 * encoding, so a chunked body of any size costs this handler at most 64 KiB + one chunk of memory.
 * On Azure this bounds the host as well: register.ts enables HTTP streams, so the Functions host
 * forwards the body to the worker as it arrives instead of buffering it whole before the handler
 * runs (the local host streams it too, http-conversion.ts).
 */
import type { HttpRequest } from '@azure/functions';
import { RequestError } from '../jobs/errors.js';
import { HttpError } from './http-errors.js';

/** Import requests are small; anything larger is a mistake or an attack. */
export const MAX_BODY_BYTES = 64 * 1024;

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;

/** The parsed JSON body. */
export async function readJsonBody(request: HttpRequest, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const contentType = (request.headers.get('content-type') ?? '').split(';')[0].trim();
  if (!JSON_TYPE.test(contentType)) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `the body must be JSON: send Content-Type: application/json${contentType ? `, not ${contentType}` : ''}`, 'Content-Type');
  }
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes, declared);
  const text = (await readCapped(request, maxBytes)).toString('utf8');
  if (text.trim() === '') throw new RequestError('INVALID_JSON', 'the body is empty: send a JSON object such as {"source": "docker.io/library/hello-world:latest"}');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // Node's message quotes the body, which may hold a password: keep only the position.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new RequestError('INVALID_JSON', `the body is not valid JSON${position ? ` (at character ${position})` : ''}: send a JSON object`);
  }
}

/**
 * The body's bytes, read chunk by chunk; throws 413 as soon as more than `maxBytes` have arrived,
 * and cancels the stream so nothing more is read. (`request.arrayBuffer()` would buffer the whole
 * body first, however large.)
 */
async function readCapped(request: HttpRequest, maxBytes: number): Promise<Buffer> {
  if (!request.body) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, size);
    size += value.byteLength;
    if (size > maxBytes) {
      // Not awaited: a host may settle the cancel only once the connection closes.
      reader.cancel().catch(() => undefined);
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
}

function tooLarge(maxBytes: number, declared?: number): HttpError {
  const size = declared === undefined ? `more than ${maxBytes} bytes` : `${declared} bytes`;
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is ${size}; at most ${maxBytes} bytes (${maxBytes / 1024} KiB) are accepted`);
}
