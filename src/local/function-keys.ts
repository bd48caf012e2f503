/**
 * Function key checks, as Azure applies them: a key arrives in the `x-functions-key` header or the
 * `code` query parameter; HTTP functions at authLevel `function` or `admin` need it, and so do the
 * runtime's webhooks (Event Grid). Locally there is one key, `HOIST_API_KEY`; with it unset,
 * nothing is enforced, as under `func start`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { keysMatch } from '../functions/api-key.js';

/** The app setting holding the key the local host requires. */
export const API_KEY_SETTING = 'HOIST_API_KEY';

/** The key a request presents, header first, or undefined. */
export function presentedKey(headers: IncomingHttpHeaders, url: URL): string | undefined {
  const header = headers['x-functions-key'];
  const value = Array.isArray(header) ? header[0] : header;
  return value ?? url.searchParams.get('code') ?? undefined;
}

/**
 * Tells whether a request may proceed: always when no key is configured, otherwise only when it
 * presents exactly that key (compared as the handlers compare it).
 */
export function isAuthorized(expectedKey: string | undefined, headers: IncomingHttpHeaders, url: URL): boolean {
  if (!expectedKey) return true;
  const key = presentedKey(headers, url);
  return key !== undefined && keysMatch(key, expectedKey);
}
