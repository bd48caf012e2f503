/**
 * Registry credentials as asynchronous providers: asked for a registry and the scopes a request
 * needs, they answer Basic credentials, an identity (refresh) token or a registry access token,
 * with when it expires. The authenticator asks again after a 401 or near the expiry, so rotating
 * credentials (Entra tokens, a credential helper's short-lived ones) need no restart.
 *
 * The providers here are the static ones (flags, HOIST_SRC_* / HOIST_DEST_*, a job's opened
 * credentials); docker-config.ts reads the Docker config and runs credential helpers.
 */
import type { LimitsByHost } from './host-limits.js';
import type { Connections } from './http.js';
import type { RetryPolicy } from './retry.js';

/** A username and password, as flags, environment variables and sealed job credentials hold them. */
export interface Credentials {
  username: string;
  password: string;
}

/**
 * What a provider answers:
 * - `basic`: a username and password, sent as Basic or to the token realm;
 * - `identityToken`: an OAuth2 refresh token (docker's `identitytoken`), exchanged at the realm
 *   with the refresh-token grant;
 * - `accessToken`: a registry access token, sent as is as `Bearer`.
 *
 * `expiresAt` (ms since the epoch) makes the authenticator ask again shortly before it; without
 * it the answer holds until the registry refuses it.
 */
export type RegistryCredential =
  | { kind: 'basic'; username: string; password: string; expiresAt?: number }
  | { kind: 'identityToken'; token: string; expiresAt?: number }
  | { kind: 'accessToken'; token: string; expiresAt?: number };

/** Options of {@link CredentialProvider.getCredentials}. */
export interface GetCredentialsOptions {
  abortSignal?: AbortSignal;
  /**
   * The registry's Bearer challenge (its token realm and service), which tells what kind of
   * registry asks: ACR names `https://<registry>/oauth2/token`. Undefined for a Basic challenge.
   */
  challenge?: { realm?: string; service?: string };
  /**
   * How the registry's host is reached (retry policy, address policy, TLS), for a provider that
   * must talk to the registry's token service itself (ACR's `/oauth2/exchange`) with
   * `requestSmall` (auth.ts).
   */
  connection?: TokenConnection;
  /**
   * What the provider answered before and the registry or its token service refused (an expired
   * or revoked token): answer something fresher if there is anything.
   */
  rejected?: RegistryCredential;
}

/** The connection settings of one registry host, for requests to its token service. */
export interface TokenConnection {
  retry: RetryPolicy;
  /** The host's pools: its address policy, TLS and proxy settings. */
  connections: Connections;
  /** The request caps and 429 pauses of every host, the token service's included. Default none. */
  limits?: LimitsByHost;
  /** The registry host whose token service this is: its TLS skip-verify covers the service too. */
  registryHost?: string;
}

/** Where a registry's credentials come from. */
export interface CredentialProvider {
  /**
   * Names the provider, never a secret (`flags`, `job:<id>`, `docker-config:<path>`): transports
   * and their token caches are keyed by host and this, so two providers never share a token.
   */
  readonly id: string;
  /**
   * Credentials for `registry` (the name references use, e.g. `docker.io`) and the token `scopes`
   * the request needs; undefined for anonymous access.
   */
  getCredentials(registry: string, scopes: readonly string[], options?: GetCredentialsOptions): Promise<RegistryCredential | undefined>;
}

/** Parses `USER:PASSWORD` (the password may itself contain ':'). */
export function parseUserPassword(value: string, field: string): Credentials {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new Error(`${field} must be USER:PASSWORD`);
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** Basic credentials for one registry only; `id` names where they came from. */
export function forRegistry(registry: string, credentials: Credentials, id = `static:${registry}`): CredentialProvider {
  return {
    id,
    getCredentials: (name) => Promise.resolve(name === registry ? { kind: 'basic', username: credentials.username, password: credentials.password } : undefined),
  };
}

/** Tries each provider in turn; the first answer wins. */
export function firstOf(...providers: CredentialProvider[]): CredentialProvider {
  return {
    id: providers.map((p) => p.id).join('+') || 'anonymous',
    async getCredentials(registry, scopes, options) {
      for (const provider of providers) {
        const found = await provider.getCredentials(registry, scopes, options);
        if (found) return found;
      }
      return undefined;
    },
  };
}

/** No credentials for any registry. */
export const anonymous: CredentialProvider = { id: 'anonymous', getCredentials: () => Promise.resolve(undefined) };
