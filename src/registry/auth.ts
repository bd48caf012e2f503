/**
 * Registry authentication: reading `WWW-Authenticate` challenges, Basic credentials, and the
 * Bearer token flow (Docker token spec, with the OAuth2 refresh-token grant for identity tokens)
 * used by Docker Hub, ACR, GHCR and distribution. Tokens are cached per host, credential provider
 * and scope set, and refreshed before they expire or when the registry rejects them; token
 * requests are retried under the host's retry policy, as registry requests are in transport.ts.
 */
import type { CredentialProvider, RegistryCredential, TokenConnection } from './credentials.js';
import { describeBody, RegistryError, tlsVerifyRegistryError } from './errors.js';
import { TlsVerifyError } from './tls.js';
import { AddressRefusedError } from './address-policy.js';
import type { LimitsByHost } from './host-limits.js';
import type { Connections } from './http.js';
import { ProxyError, ProxyTimeoutError } from './proxy.js';
import { backoffDelay, isRetryableNetworkError, isRetryableStatus, parseRetryAfter, sleep, type RetryPolicy } from './retry.js';

export interface Challenge {
  scheme: 'basic' | 'bearer';
  realm?: string;
  service?: string;
  /** `error="invalid_token"` or `insufficient_scope` from a Bearer challenge. */
  error?: string;
}

/** Parses the first challenge of a WWW-Authenticate header. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const scheme = match[1].toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const m of match[2].matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  }
  return { scheme, realm: params.realm, service: params.service, error: params.error };
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** The token spec's default lifetime when `expires_in` is absent. */
const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Renew this long before expiry, so a token never lapses between check and use. */
const RENEW_MARGIN_MS = 10_000;
/** Token responses are small; refuse anything larger. */
const MAX_TOKEN_RESPONSE_BYTES = 1 << 20;
/** The OAuth2 client id sent with a refresh-token grant (docker sends `docker`). */
const CLIENT_ID = 'hoist';

/** A request several callers wait on: it is aborted only once every one of them has given up. */
interface Shared<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: number;
}

/**
 * Authorization for one registry host and one credential provider. It learns the host's
 * challenge on the first 401, then attaches the right header to every later request. The
 * provider is asked when credentials are first needed, again near their expiry, and again after
 * the registry refuses what they gave.
 */
export class Authenticator {
  private challenge?: Challenge;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pendingTokens = new Map<string, Shared<CachedToken>>();
  private credential?: { value: RegistryCredential | undefined; expiresAt: number };
  private pendingCredential?: Shared<RegistryCredential | undefined>;

  constructor(
    private readonly host: string,
    /** The registry's name as references write it (`docker.io`), which providers are asked by. */
    private readonly registry: string,
    private readonly provider: CredentialProvider,
    private readonly retry: RetryPolicy,
    /** The RegistryHosts' pools: its address policy, TLS and proxy settings apply to token requests too. */
    private readonly connections: Connections,
    /** The RegistryHosts' host limits: a token service's 429 pauses every token request to it. */
    private readonly limits?: LimitsByHost,
  ) {}

  /** The Authorization header for a request needing `scopes`, or undefined before any challenge. */
  async authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    const credential = await this.credentials(scopes, signal);
    if (credential?.kind === 'accessToken') return `Bearer ${credential.token}`;
    if (this.challenge.scheme === 'basic') return basicHeader(credential);
    const key = [...new Set(scopes)].sort().join(' ');
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - RENEW_MARGIN_MS > Date.now()) return `Bearer ${cached.token}`;
    // One token request per scope set at a time, however many blobs ask at once.
    let shared = this.pendingTokens.get(key);
    if (!shared) {
      shared = share((s) => this.fetchTokenRenewing(key.split(' ').filter(Boolean), credential, s), () => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, shared);
    }
    const token = await wait(shared, signal);
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  /**
   * Records a 401's challenge and decides whether one more try can help. `sent` is the
   * Authorization the refused request carried: judging by it, not by what other requests have
   * taught this authenticator meanwhile, keeps concurrent first requests from failing each other.
   * What was refused is dropped, so the provider is asked again; a refused Basic or access token
   * is tried again only if the provider now answers something else. `renewed` says the provider
   * answered something other than what the refused request was built from (rotated credentials),
   * which is worth a further try even after a first re-authentication.
   */
  async rejected(wwwAuthenticate: string | undefined, scopes: string[], sent: string | undefined, signal?: AbortSignal): Promise<false | 'retry' | 'renewed'> {
    const challenge = parseChallenge(wwwAuthenticate);
    if (!challenge) return false;
    this.challenge = challenge;
    const previous = this.credential?.value;
    if (sent !== undefined) this.credential = undefined;
    const credential = await this.credentials(scopes, signal, sent !== undefined ? previous : undefined);
    const verdict = sent !== undefined && !sameCredential(previous, credential) ? 'renewed' : 'retry';
    if (credential?.kind === 'accessToken') return `Bearer ${credential.token}` !== sent && verdict;
    if (challenge.scheme === 'basic') {
      const header = basicHeader(credential);
      return header !== undefined && header !== sent && verdict;
    }
    const key = [...new Set(scopes)].sort().join(' ');
    if (sent === undefined || sent === `Bearer ${this.tokens.get(key)?.token}`) this.tokens.delete(key);
    return verdict;
  }

  /** The provider's answer, cached until shortly before it expires or until the registry refuses it. */
  private async credentials(scopes: string[], signal?: AbortSignal, rejected?: RegistryCredential): Promise<RegistryCredential | undefined> {
    if (this.credential && this.credential.expiresAt - RENEW_MARGIN_MS > Date.now()) return this.credential.value;
    const { realm, service } = this.challenge?.scheme === 'bearer' ? this.challenge : {};
    this.pendingCredential ??= share(
      async (s) => {
        const value = await this.provider.getCredentials(this.registry, scopes, {
          abortSignal: s,
          ...(realm !== undefined && { challenge: { realm, ...(service !== undefined && { service }) } }),
          connection: this.connection,
          ...(rejected && { rejected }),
        });
        this.credential = { value, expiresAt: value?.expiresAt ?? Infinity };
        return value;
      },
      () => (this.pendingCredential = undefined),
    );
    return wait(this.pendingCredential, signal);
  }

  /** How this host is reached, for every token request. */
  private get connection(): TokenConnection {
    return { retry: this.retry, connections: this.connections, registryHost: this.host, ...(this.limits && { limits: this.limits }) };
  }

  /**
   * {@link fetchToken}, and once more with the provider's fresher answer when the token service
   * refuses what the provider gave (an ACR refresh token revoked or expired before its `exp`).
   */
  private async fetchTokenRenewing(scopes: string[], credential: RegistryCredential | undefined, signal: AbortSignal): Promise<CachedToken> {
    try {
      return await this.fetchToken(scopes, credential, signal);
    } catch (error) {
      if (!credential || !(error instanceof RegistryError) || error.status !== 401) throw error;
      if (this.credential?.value === credential) this.credential = undefined;
      const renewed = await this.credentials(scopes, signal, credential);
      if (!renewed || sameCredential(renewed, credential)) throw error;
      return this.fetchToken(scopes, renewed, signal);
    }
  }

  /**
   * Asks the realm for a token (Docker token spec): a GET, with Basic credentials when there are
   * some, or, for an identity token, the OAuth2 refresh-token grant by POST, as docker does.
   * Throttling, server errors and dropped connections are retried under the host's retry policy.
   */
  private async fetchToken(scopes: string[], credential: RegistryCredential | undefined, signal: AbortSignal): Promise<CachedToken> {
    const { realm, service } = this.challenge ?? {};
    if (!realm) {
      throw new RegistryError({ code: 'UNAUTHORIZED', status: 401, method: 'GET', url: this.host, reference: this.host, details: [{ code: 'UNAUTHORIZED', message: 'Bearer challenge without a realm' }] });
    }
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError({ code: 'UNAUTHORIZED', status: 401, method: 'GET', url: this.host, reference: this.host, details: [{ code: 'UNAUTHORIZED', message: 'Bearer challenge with a realm that is not a URL' }] });
    }
    const realmUrl = url.origin + url.pathname;
    const headers: Record<string, string> = {};
    let method: 'GET' | 'POST' = 'GET';
    let form: Buffer | undefined;
    if (credential?.kind === 'identityToken') {
      method = 'POST';
      const body = new URLSearchParams({ grant_type: 'refresh_token', client_id: CLIENT_ID, refresh_token: credential.token });
      if (service) body.set('service', service);
      if (scopes.length > 0) body.set('scope', scopes.join(' '));
      form = Buffer.from(body.toString());
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const basic = basicHeader(credential);
      if (basic) headers.authorization = basic;
    }
    const reference = `token service for ${this.host}`;
    const response = await requestSmall({ url, method, headers, body: form, signal, reference, ...this.connection });
    if (response.statusCode !== 200) {
      throw new RegistryError({
        code: response.statusCode === 401 || response.statusCode === 403 || response.statusCode === 400 ? 'UNAUTHORIZED' : 'UNEXPECTED_RESPONSE',
        status: response.statusCode,
        method,
        url: realmUrl,
        reference,
        details: [{ code: 'TOKEN', message: `the token service refused ${scopes.join(' ') || 'the request'}` }],
      });
    }
    return parseToken(response.text, response, realmUrl, reference, method);
  }
}

/** A request to a token service (or another small JSON API) and its answer, read whole. */
export interface SmallRequest extends TokenConnection {
  url: URL;
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer;
  signal?: AbortSignal;
  /** What the request is for, in errors: `token service for myacr.azurecr.io`. */
  reference: string;
}

/**
 * Sends a small request (a token request, ACR's token exchange, an ARM lookup) the way the
 * registry's own requests go: under the host's address policy and TLS options, within the request
 * cap of the host it goes to, retried under its retry policy on dropped connections, 429 and 5xx
 * (with Retry-After; a 429 pauses every request to that host, as transport.ts does). The answer is
 * read up to 1 MiB, whatever its status, and never quoted in errors. A refused address is thrown
 * as is; a network failure that outlasts the retries becomes a RegistryError NETWORK_ERROR.
 */
export async function requestSmall(req: SmallRequest): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const headers = { 'user-agent': USER_AGENT, ...req.headers };
  const signal = req.signal ?? new AbortController().signal;
  const limits = req.limits?.for(req.url.host);
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      // The slot is held until the answer's headers arrive; the small body is read after.
      const release = limits ? await limits.acquire(signal) : undefined;
      try {
        response = await req.connections.exchange({ url: req.url, method: req.method, headers, body: req.body, signal, ...(req.registryHost !== undefined && { registryHost: req.registryHost }) });
      } finally {
        release?.();
      }
    } catch (cause) {
      // A host the address policy refuses, or a proxy refuses for good, is not a network
      // failure: its own error says why.
      if (cause instanceof AddressRefusedError || cause instanceof ProxyTimeoutError || (cause instanceof ProxyError && !cause.transient)) throw cause;
      if (cause instanceof TlsVerifyError) throw tlsVerifyRegistryError(cause, { method: req.method, url: req.url.origin + req.url.pathname, reference: req.reference });
      if (!signal.aborted && isRetryableNetworkError(cause) && attempt < req.retry.maxAttempts) {
        await sleep(backoffDelay(req.retry, attempt), signal);
        continue;
      }
      throw new RegistryError({ code: 'NETWORK_ERROR', status: 0, method: req.method, url: req.url.origin + req.url.pathname, reference: req.reference, cause });
    }
    if (isRetryableStatus(response.statusCode) && attempt < req.retry.maxAttempts) {
      await response.body.dump();
      const delay = backoffDelay(req.retry, attempt, parseRetryAfter(flatHeader(response.headers['retry-after'])));
      // A throttled token service is throttled for every job and scope: all wait, in limits.acquire.
      if (response.statusCode === 429 && limits) limits.pause(delay);
      else await sleep(delay, signal);
      continue;
    }
    return { statusCode: response.statusCode, headers: response.headers, text: await readLimited(response.body, MAX_TOKEN_RESPONSE_BYTES) };
  }
}

/** A token response's token and its expiry; errors never quote the body. */
function parseToken(text: string, response: { statusCode: number; headers: Record<string, string | string[] | undefined> }, realmUrl: string, reference: string, method: 'GET' | 'POST'): CachedToken {
  const body = tokenResponse(text);
  if (!body) {
    // JSON.parse's own message would quote the realm's answer (an HTML page, say).
    throw new RegistryError({
      code: 'UNAUTHORIZED',
      status: response.statusCode,
      method,
      url: realmUrl,
      reference,
      details: [{ code: 'TOKEN', message: `the token realm ${realmUrl} answered ${describeBody(flatHeader(response.headers['content-type']))}, not a JSON token response` }],
    });
  }
  const token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' && body.access_token ? body.access_token : undefined;
  if (!token) {
    throw new RegistryError({ code: 'UNAUTHORIZED', status: 200, method, url: realmUrl, reference, details: [{ code: 'TOKEN', message: 'token response without a token' }] });
  }
  const lifetime = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S) * 1000;
  return { token, expiresAt: Date.now() + lifetime };
}

function sameCredential(a: RegistryCredential | undefined, b: RegistryCredential | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.kind === 'basic') return b.kind === 'basic' && a.username === b.username && a.password === b.password;
  return b.kind === a.kind && b.token === a.token;
}

function basicHeader(credential: RegistryCredential | undefined): string | undefined {
  if (credential?.kind !== 'basic') return undefined;
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;
}

/** Starts `run` for callers to share; `done` runs once it settles. */
function share<T>(run: (signal: AbortSignal) => Promise<T>, done: () => void): Shared<T> {
  const controller = new AbortController();
  const promise = run(controller.signal).finally(done);
  // Waiters see the outcome; a request every waiter abandoned must not be an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, controller, waiters: 0 };
}

/**
 * Waits for a shared request, or until `signal` aborts this caller. The request itself is
 * aborted only when its last waiter gives up: one caller's abort never fails the others.
 */
async function wait<T>(shared: Shared<T>, signal: AbortSignal | undefined): Promise<T> {
  signal?.throwIfAborted();
  shared.waiters++;
  let onAbort: (() => void) | undefined;
  try {
    if (!signal) return await shared.promise;
    return await Promise.race([
      shared.promise,
      new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    shared.waiters--;
    if (shared.waiters === 0 && signal?.aborted) shared.controller.abort(signal.reason);
  }
}

function flatHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The fields of a token response (Docker token spec); undefined when the text is not a JSON object. */
function tokenResponse(text: string): { token?: unknown; access_token?: unknown; expires_in?: unknown } | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export const USER_AGENT = 'hoist/0.1';

/** Reads a body as text, at most `limit` bytes (the rest is discarded). */
export async function readLimited(body: AsyncIterable<Buffer>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    if (total < limit) chunks.push(chunk.subarray(0, limit - total));
    total += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}
