/**
 * Reads a JSON request body with the API's limits: 415 unless the content type is JSON, 413 over
 * 64 KiB (checked on Content-Length before reading, and on the bytes read), 400 for malformed JSON.
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
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(declared, maxBytes);
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > maxBytes) throw tooLarge(bytes.length, maxBytes);
  const text = bytes.toString('utf8');
  if (text.trim() === '') throw new RequestError('INVALID_JSON', 'the body is empty: send a JSON object such as {"source": "docker.io/library/hello-world:latest"}');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // Node's message quotes the body, which may hold a password: keep only the position.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new RequestError('INVALID_JSON', `the body is not valid JSON${position ? ` (at character ${position})` : ''}: send a JSON object`);
  }
}

function tooLarge(size: number, maxBytes: number): HttpError {
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is ${size} bytes; at most ${maxBytes} bytes (${maxBytes / 1024} KiB) are accepted`);
}
