/**
 * Registry authentication: reading `WWW-Authenticate` challenges, Basic credentials, and the
 * Bearer token flow (Docker token spec) used by Docker Hub, ACR, GHCR and distribution. Tokens
 * are cached per host and scope set, and refreshed before they expire or when the registry
 * rejects them.
 */
import type { Credentials } from './credentials.js';
import { describeBody, RegistryError } from './errors.js';
import { AddressRefusedError, type AddressPolicy } from './address-policy.js';
import { exchange } from './http.js';

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

/**
 * Authorization for one registry host. It learns the host's challenge on the first 401, then
 * attaches the right header to every later request.
 */
export class Authenticator {
  private challenge?: Challenge;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly host: string,
    private readonly credentials?: Credentials,
    private readonly policy?: AddressPolicy,
  ) {}

  /** The Authorization header for a request needing `scopes`, or undefined before any challenge. */
  async authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === 'basic') return this.basic();
    const key = [...new Set(scopes)].sort().join(' ');
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - RENEW_MARGIN_MS > Date.now()) return `Bearer ${cached.token}`;
    // One token request per scope set at a time, however many blobs ask at once.
    let inFlight = this.pending.get(key);
    if (!inFlight) {
      inFlight = this.fetchToken(key.split(' ').filter(Boolean), signal).finally(() => this.pending.delete(key));
      this.pending.set(key, inFlight);
    }
    const token = await inFlight;
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  /**
   * Records a 401's challenge and decides whether one more try can help. `sent` is the
   * Authorization the refused request carried: judging by it, not by what other requests have
   * taught this authenticator meanwhile, keeps concurrent first requests from failing each other.
   * Refused Basic credentials are final; a refused token is dropped so a fresh one is fetched.
   */
  rejected(wwwAuthenticate: string | undefined, scopes: string[], sent: string | undefined): boolean {
    const challenge = parseChallenge(wwwAuthenticate);
    if (!challenge) return false;
    this.challenge = challenge;
    if (challenge.scheme === 'basic') return this.credentials !== undefined && sent !== this.basic();
    const key = [...new Set(scopes)].sort().join(' ');
    if (sent === undefined || sent === `Bearer ${this.tokens.get(key)?.token}`) this.tokens.delete(key);
    return true;
  }

  private basic(): string | undefined {
    if (!this.credentials) return undefined;
    return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
  }

  private async fetchToken(scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
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
    if (service) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { 'user-agent': USER_AGENT };
    const basic = this.basic();
    if (basic) headers.authorization = basic;
    let response;
    try {
      response = await exchange({ url, method: 'GET', headers, signal, policy: this.policy });
    } catch (cause) {
      // A realm the address policy refuses is not a network failure: its own error says why.
      if (cause instanceof AddressRefusedError) throw cause;
      throw new RegistryError({ code: 'NETWORK_ERROR', status: 0, method: 'GET', url: realmUrl, reference: `token service ${url.host}`, cause });
    }
    const text = await readLimited(response.body, MAX_TOKEN_RESPONSE_BYTES);
    if (response.statusCode !== 200) {
      throw new RegistryError({
        code: response.statusCode === 401 || response.statusCode === 403 ? 'UNAUTHORIZED' : 'UNEXPECTED_RESPONSE',
        status: response.statusCode,
        method: 'GET',
        url: realmUrl,
        reference: `token service for ${this.host}`,
        details: [{ code: 'TOKEN', message: `the token service refused ${scopes.join(' ') || 'the request'}` }],
      });
    }
    const body = tokenResponse(text);
    if (!body) {
      // JSON.parse's own message would quote the realm's answer (an HTML page, say).
      throw new RegistryError({
        code: 'UNAUTHORIZED',
        status: response.statusCode,
        method: 'GET',
        url: realmUrl,
        reference: `token service for ${this.host}`,
        details: [{ code: 'TOKEN', message: `the token realm ${realmUrl} answered ${describeBody(flatHeader(response.headers['content-type']))}, not a JSON token response` }],
      });
    }
    const token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' && body.access_token ? body.access_token : undefined;
    if (!token) {
      throw new RegistryError({ code: 'UNAUTHORIZED', status: 200, method: 'GET', url: realmUrl, reference: `token service for ${this.host}`, details: [{ code: 'TOKEN', message: 'token response without a token' }] });
    }
    const lifetime = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S) * 1000;
    return { token, expiresAt: Date.now() + lifetime };
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
