/**
 * The HOIST_API_KEY check, made by the HTTP handlers themselves so that every host (Azure, `func
 * start`, the local host) enforces it alike. The key comes in `x-functions-key` or `?code=`, as
 * function keys do. Unset: no check here (Azure still checks its function keys at authLevel
 * `function`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { HttpError } from './http-errors.js';

/** Throws a 401 HttpError unless the request presents `expected` (when one is configured). */
export function requireApiKey(request: HttpRequest, expected: string | undefined): void {
  if (!expected) return;
  const presented = request.headers.get('x-functions-key') ?? request.query.get('code');
  if (presented === null || presented === '') {
    throw new HttpError(401, 'UNAUTHORIZED', 'this API requires a key: send it in the x-functions-key header or the code query parameter');
  }
  if (!keysMatch(presented, expected)) {
    throw new HttpError(401, 'UNAUTHORIZED', 'the key presented is not valid for this API');
  }
}

/**
 * Whether a presented key is the expected one. Compares digests in constant time, so the response
 * time says nothing about how much of a guess was right.
 */
export function keysMatch(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
