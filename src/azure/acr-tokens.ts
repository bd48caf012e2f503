/**
 * ACR's token service, as Azure/acr docs/AAD-OAuth.md publishes it: how an ACR is recognised (by
 * its challenge), the exchange of an Entra token for an ACR refresh token at
 * `POST https://<registry>/oauth2/exchange`, and telling apart the tokens a user may give as a
 * password (an Entra access token, an ACR refresh token, an ACR access token). The refresh token
 * then goes to auth.ts as an identity token, whose refresh-token grant gets an access token per
 * scope set from `/oauth2/token`.
 */
import { requestSmall } from '../registry/auth.js';
import type { TokenConnection } from '../registry/credentials.js';
import { RegistryError } from '../registry/errors.js';
import { isLoopback, matchesRegistryPattern } from '../registry/reference.js';
import { AzureError } from './errors.js';

/** Entra's resource for ACR's data plane in public Azure (the scope is `<audience>/.default`). */
export const DEFAULT_ACR_AUDIENCE = 'https://containerregistry.azure.net';
/** The `iss` of the tokens ACR's token service signs. */
const ACR_ISSUER = 'Azure Container Registry';
/** A JWT longer than this is not one anybody issues; its payload is not read. */
const MAX_JWT_LENGTH = 16_384;

/**
 * Whether a Bearer challenge is ACR's: its realm is `/oauth2/token` on the registry itself
 * (`https://myacr.azurecr.io/oauth2/token` for `myacr.azurecr.io`; http only for a registry
 * reached over http). A name ending in `.azurecr.io` is not enough: a proxy or a mirror may carry
 * one, and a registry with a custom domain has another.
 */
export function isAcrChallenge(registry: string, challenge: { realm?: string } | undefined): boolean {
  if (!challenge?.realm) return false;
  let realm: URL;
  try {
    realm = new URL(challenge.realm);
  } catch {
    return false;
  }
  // An Entra token never crosses a network in clear: plain http only to this machine.
  const secure = realm.protocol === 'https:' || (realm.protocol === 'http:' && isLoopback(realm.host));
  return secure && realm.host.toLowerCase() === registry.toLowerCase() && realm.pathname === '/oauth2/token' && realm.search === '';
}

/**
 * The login-server domains of Azure Container Registry in public Azure, Azure China and Azure
 * US Government: registries there are Microsoft's, so an identity's token may go to them.
 */
export const ACR_DOMAINS: readonly string[] = ['*.azurecr.io', '*.azurecr.cn', '*.azurecr.us'];

/**
 * Whether an identity's Entra token may be sent to `registry`. An ACR Entra token is good at
 * every registry of its audience, so a server that merely answers like an ACR (any source a
 * caller names can) must never get it: only the ACR domains, the `trusted` patterns
 * (`host[:port]`, `*.domain`: a custom domain, the target registry) do.
 */
export function mayReceiveEntraToken(registry: string, trusted: readonly string[]): boolean {
  return [...ACR_DOMAINS, ...trusted].some((pattern) => matchesRegistryPattern(registry, pattern.toLowerCase()));
}

/** The claims Hoist reads from a JWT; anything may be missing. */
export interface TokenClaims {
  aud?: unknown;
  iss?: unknown;
  tid?: unknown;
  exp?: unknown;
  grant_type?: unknown;
  access?: unknown;
}

/** The payload of a JWT, unverified (the registry verifies it); undefined when it is not one. */
export function jwtClaims(token: string): TokenClaims | undefined {
  if (token.length > MAX_JWT_LENGTH) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** A token's `exp` in ms since the epoch, when it has a sensible one. */
export function expiryOf(claims: TokenClaims | undefined): number | undefined {
  return typeof claims?.exp === 'number' && Number.isFinite(claims.exp) && claims.exp > 0 ? claims.exp * 1000 : undefined;
}

/** What a password given without a username is. */
export type PasswordToken =
  | { kind: 'entra'; expiresAt?: number }
  | { kind: 'acrRefresh'; expiresAt?: number }
  | { kind: 'acrAccess'; expiresAt?: number };

/**
 * Tells which token a password without a username is, as `az acr import` accepts one: an ACR
 * refresh or access token (issued by `Azure Container Registry`, told apart by `grant_type` or an
 * `access` claim), or else an Entra access token (issued by `sts.windows.net` or
 * `login.microsoftonline.com` and its sovereign twins, with a `tid`). Undefined for anything else.
 */
export function classifyPasswordToken(password: string): PasswordToken | undefined {
  const claims = jwtClaims(password);
  if (!claims) return undefined;
  const expiresAt = expiryOf(claims);
  if (claims.iss === ACR_ISSUER) {
    if (claims.grant_type === 'refresh_token') return { kind: 'acrRefresh', ...(expiresAt !== undefined && { expiresAt }) };
    if (claims.grant_type === 'access_token' || Array.isArray(claims.access)) return { kind: 'acrAccess', ...(expiresAt !== undefined && { expiresAt }) };
    return undefined;
  }
  if (typeof claims.tid === 'string' && typeof claims.iss === 'string' && /^https:\/\/(sts\.|login\.)[^/]+\//.test(claims.iss)) {
    return { kind: 'entra', ...(expiresAt !== undefined && { expiresAt }) };
  }
  return undefined;
}

/** Options of {@link exchangeForAcrRefreshToken}. */
export interface ExchangeOptions {
  /** The registry's login server (the challenge's service when it names one). */
  service: string;
  /** The challenge's realm; the exchange endpoint is `/oauth2/exchange` beside it. */
  realm: string;
  entraToken: string;
  connection: TokenConnection;
  signal?: AbortSignal;
}

/** An ACR refresh token and when it expires (ms since the epoch, from its `exp`). */
export interface AcrRefreshToken {
  token: string;
  expiresAt?: number;
}

/**
 * Exchanges an Entra access token for an ACR refresh token: `POST /oauth2/exchange` with
 * `grant_type=access_token&service=…&tenant=…&access_token=…`, through the registry host's
 * retry policy, address policy and TLS settings. The tenant is the token's own `tid`.
 *
 * @throws AzureError ACR_EXCHANGE_REFUSED when the registry refuses the token (400, 401, 403);
 *   RegistryError for a registry in trouble.
 */
export async function exchangeForAcrRefreshToken(options: ExchangeOptions): Promise<AcrRefreshToken> {
  const url = new URL('/oauth2/exchange', options.realm);
  const form = new URLSearchParams({ grant_type: 'access_token', service: options.service, access_token: options.entraToken });
  const tenant = jwtClaims(options.entraToken)?.tid;
  if (typeof tenant === 'string') form.set('tenant', tenant);
  const reference = `token exchange of ${options.service}`;
  const response = await requestSmall({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: Buffer.from(form.toString()),
    signal: options.signal,
    reference,
    ...options.connection,
  });
  if (response.statusCode === 400 || response.statusCode === 401 || response.statusCode === 403) {
    throw new AzureError(
      'ACR_EXCHANGE_REFUSED',
      `the registry ${options.service} refused the Entra token at /oauth2/exchange (HTTP ${response.statusCode}): the identity must belong to the registry's tenant, the registry must allow Entra authentication, and the token must be for ${DEFAULT_ACR_AUDIENCE} (or its cloud's equivalent)`,
    );
  }
  const token = response.statusCode === 200 ? refreshTokenOf(response.text) : undefined;
  if (token === undefined) {
    throw new RegistryError({
      code: response.statusCode === 200 ? 'UNEXPECTED_RESPONSE' : response.statusCode >= 500 ? 'SERVER_ERROR' : 'UNEXPECTED_RESPONSE',
      status: response.statusCode,
      method: 'POST',
      url: url.origin + url.pathname,
      reference,
      details: [{ code: 'TOKEN', message: response.statusCode === 200 ? 'the exchange answered no refresh_token' : `the exchange answered HTTP ${response.statusCode}` }],
    });
  }
  const expiresAt = expiryOf(jwtClaims(token));
  return { token, ...(expiresAt !== undefined && { expiresAt }) };
}

function refreshTokenOf(text: string): string | undefined {
  try {
    const body: unknown = JSON.parse(text);
    const token = typeof body === 'object' && body !== null ? (body as { refresh_token?: unknown }).refresh_token : undefined;
    return typeof token === 'string' && token !== '' ? token : undefined;
  } catch {
    return undefined;
  }
}
