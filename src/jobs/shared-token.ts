/**
 * One token cache for every storage client of a connection. Each table and queue client has its
 * own bearer-token policy, which asks the credential for a token when it has none: a cold service
 * opening the jobs, checkpoints and watches tables at once asked the identity endpoint three
 * times, since MSAL's cache does not join requests in flight. This credential asks once per scope
 * set, shares the answer (and a request in flight) with every client, and asks again only when
 * the token nears its end.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';

/**
 * A shared token is handed out until this long before it expires: more than the two minutes
 * before expiry at which the SDKs' policies start renewing, so a policy is never handed a token
 * it would at once ask to renew.
 */
export const SHARED_TOKEN_RENEW_BEFORE_MS = 5 * 60 * 1000;

interface Entry {
  token?: AccessToken;
  pending?: Promise<AccessToken | null>;
}

/** Wraps a credential so that the clients given it share its tokens and its requests in flight. */
export class SharedTokenCredential implements TokenCredential {
  private readonly entries = new Map<string, Entry>();

  /** @param now the clock tokens are judged by (tests inject one) */
  constructor(
    private readonly credential: TokenCredential,
    private readonly now: () => number = Date.now,
  ) {}

  async getToken(scopes: string | string[], options: GetTokenOptions = {}): Promise<AccessToken | null> {
    // A claims challenge (or a proof-of-possession token) asks for a token of its own, not a shared one.
    if (options.claims !== undefined || options.proofOfPossessionOptions !== undefined) return this.credential.getToken(scopes, options);
    const key = JSON.stringify([[scopes].flat().sort(), options.tenantId ?? '', options.enableCae === true]);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = {};
      this.entries.set(key, entry);
    }
    if (entry.token && this.now() < renewAt(entry.token)) return entry.token;
    let request = entry.pending;
    if (!request) {
      // Asked without the caller's abort signal: other callers wait for the same answer.
      const asked = this.credential.getToken(scopes, { ...options, abortSignal: undefined });
      request = asked;
      const current = entry;
      current.pending = asked;
      asked.then(
        (token) => {
          if (current.pending === asked) current.pending = undefined;
          if (token) current.token = token;
        },
        () => {
          if (current.pending === asked) current.pending = undefined;
        },
      );
    }
    return untilAborted(request, options.abortSignal);
  }
}

function renewAt(token: AccessToken): number {
  return Math.min(token.refreshAfterTimestamp ?? Infinity, token.expiresOnTimestamp - SHARED_TOKEN_RENEW_BEFORE_MS);
}

/** The shared answer, or the caller's own abort, whichever comes first. */
function untilAborted<T>(answer: Promise<T>, signal: GetTokenOptions['abortSignal']): Promise<T> {
  if (!signal) return answer;
  if (signal.aborted) return Promise.reject(abortError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort);
    answer.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function abortError(): Error {
  return Object.assign(new Error('the token request was aborted'), { name: 'AbortError' });
}
