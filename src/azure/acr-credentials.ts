/**
 * Credential providers for Azure Container Registry with Entra ID:
 * - {@link AcrIdentityCredentials}: an identity's Entra token for ACR, exchanged at the
 *   registry's `/oauth2/exchange` for an ACR refresh token, answered as an identity token (auth.ts
 *   then gets access tokens per scope set with the refresh-token grant). Used for a registry only
 *   when its challenge says it is an ACR.
 * - {@link acrTokenPassword}: a password given without a username, taken as `az acr import` takes
 *   one: an Entra token (exchanged the same way), an ACR refresh token or an ACR access token.
 *
 * Refresh tokens are kept per registry and renewed before their `exp`, and at once when the
 * registry or its token service refuses one (the authenticator then passes it as `rejected`).
 */
import type { CredentialProvider, GetCredentialsOptions, RegistryCredential, TokenConnection } from '../registry/credentials.js';
import { classifyPasswordToken, DEFAULT_ACR_AUDIENCE, exchangeForAcrRefreshToken, isAcrChallenge, mayReceiveEntraToken, type AcrRefreshToken } from './acr-tokens.js';
import { AzureError } from './errors.js';
import type { EntraTokenSource } from './identity.js';

/**
 * Renew a refresh token this long before its `exp` (ACR's docs suggest about 5 minutes), or half
 * its lifetime when that is shorter, so a short-lived token is still used before it is renewed.
 */
const RENEW_BEFORE_MS = 5 * 60_000;
/**
 * auth.ts asks a provider again 10 s before the expiry it was given (here the renewal time):
 * treating a token as due from 15 s before it means that request gets a new one.
 */
const DUE_MARGIN_MS = 15_000;
/**
 * Registries whose refresh tokens are kept at once: each costs a few KiB, and only ACRs that
 * accept the identity are kept (a refused exchange is not), so this is far above real use; the
 * oldest is dropped past it.
 */
const MAX_REGISTRIES = 256;
/** The longest part of an identity library's message kept in an error: its first line, cut. */
const MAX_CAUSE_CHARS = 300;

/** Options of {@link AcrIdentityCredentials}. */
export interface AcrIdentityOptions {
  /** The provider's id (never a secret), e.g. `azure-identity`. */
  id: string;
  /** The identity in words, for errors: `the app's managed identity`, `your Azure CLI login`. */
  describe: string;
  /** Entra's resource for ACR (HOIST_ACR_AUDIENCE); default public Azure's. */
  audience?: string;
  /** How to get an identity working, for the error when none is available. */
  unavailableAdvice: string;
  /**
   * Registries besides the ACR domains (`*.azurecr.io`, `.cn`, `.us`) the identity's token may
   * go to, as `host[:port]` or `*.domain`: a custom domain, the deployment's target registry. An
   * ACR-like challenge anywhere else gets nothing. Undefined: any ACR challenge (the provider of a
   * token its caller gave for that one registry).
   */
  trustedRegistries?: readonly string[];
  now?: () => number;
}

interface Kept extends AcrRefreshToken {
  renewAt: number;
}

/** When to renew a token expiring at `expiresAt`, obtained at `now`. */
function renewalTime(now: number, expiresAt: number | undefined): number {
  if (expiresAt === undefined) return Infinity;
  return expiresAt - Math.min(RENEW_BEFORE_MS, (expiresAt - now) / 2);
}

/** A provider that can say which registries an Azure identity answered for. */
export interface IdentityCredentials extends CredentialProvider {
  /** The identity in words when it provided `registry`'s credentials; else undefined. */
  answeredFor(registry: string): string | undefined;
}

/** An identity's credentials for every ACR it meets (and nothing for other registries). */
export class AcrIdentityCredentials implements IdentityCredentials {
  readonly id: string;
  private readonly audience: string;
  private readonly now: () => number;
  /** Registry → its refresh token, or the exchange under way. */
  private readonly kept = new Map<string, Promise<Kept>>();
  /** Registries this identity answered for, so a refusal on one can name the role it lacks. */
  private readonly answered = new Set<string>();

  constructor(
    private readonly identity: EntraTokenSource,
    private readonly options: AcrIdentityOptions,
  ) {
    this.id = options.id;
    this.audience = (options.audience ?? DEFAULT_ACR_AUDIENCE).replace(/\/+$/, '');
    this.now = options.now ?? Date.now;
  }

  answeredFor(registry: string): string | undefined {
    return this.answered.has(registry) ? this.options.describe : undefined;
  }

  async getCredentials(registry: string, _scopes: readonly string[], options: GetCredentialsOptions = {}): Promise<RegistryCredential | undefined> {
    const { challenge, connection } = options;
    if (!challenge?.realm || !connection || !isAcrChallenge(registry, challenge)) return undefined;
    const { trustedRegistries } = this.options;
    if (trustedRegistries && !mayReceiveEntraToken(registry, trustedRegistries)) return undefined;
    const realm = challenge.realm;
    let kept = this.kept.get(registry);
    const current = kept && (await untilAborted(kept, options.abortSignal).catch(() => undefined));
    options.abortSignal?.throwIfAborted();
    const refused = options.rejected?.kind === 'identityToken' && options.rejected.token === current?.token;
    if (!kept || !current || refused || current.renewAt - DUE_MARGIN_MS <= this.now()) {
      // Shared by every job that meets this registry: one job giving up must not fail the others,
      // so the exchange runs without any caller's signal (its requests are few and bounded).
      const pending = this.refresh(registry, challenge.service ?? registry, realm, connection);
      this.kept.delete(registry);
      if (this.kept.size >= MAX_REGISTRIES) this.kept.delete(this.kept.keys().next().value as string);
      this.kept.set(registry, pending);
      // A failed exchange is not kept: the next request asks again.
      pending.catch(() => {
        if (this.kept.get(registry) === pending) this.kept.delete(registry);
      });
      kept = pending;
    }
    const { token, renewAt } = await untilAborted(kept, options.abortSignal);
    if (this.answered.size >= MAX_REGISTRIES && !this.answered.has(registry)) this.answered.delete(this.answered.values().next().value as string);
    this.answered.add(registry);
    return { kind: 'identityToken', token, ...(Number.isFinite(renewAt) && { expiresAt: renewAt }) };
  }

  private async refresh(registry: string, service: string, realm: string, connection: TokenConnection): Promise<Kept> {
    const entra = await this.entraToken(registry);
    const exchanged = await exchangeForAcrRefreshToken({ service, realm, entraToken: entra, connection });
    return { ...exchanged, renewAt: renewalTime(this.now(), exchanged.expiresAt) };
  }

  /** An Entra token for ACR from the identity (which caches and renews it itself). */
  private async entraToken(registry: string): Promise<string> {
    let answer;
    try {
      answer = await this.identity.getToken(`${this.audience}/.default`);
    } catch (error) {
      // Not permanent: a managed-identity endpoint can be briefly unavailable; a job's retries outlast that.
      throw new AzureError('AZURE_IDENTITY_UNAVAILABLE', `no Azure identity could authenticate to ${registry} (${this.options.describe}: ${firstLine(error)}); ${this.options.unavailableAdvice}`, false, undefined, { cause: error });
    }
    if (!answer?.token) throw new AzureError('AZURE_IDENTITY_UNAVAILABLE', `no Azure identity could authenticate to ${registry} (${this.options.describe} gave no token); ${this.options.unavailableAdvice}`);
    return answer.token;
  }
}

/** `promise`, or the signal's reason as soon as it aborts (the promise itself runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
}

/** The first line of an error's message, cut: identity libraries explain at length. */
function firstLine(error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).split('\n')[0].trim();
  return text.length > MAX_CAUSE_CHARS ? `${text.slice(0, MAX_CAUSE_CHARS)}…` : text;
}

/**
 * A provider for a password given without a username (a request's `password`, `--src-creds :TOKEN`),
 * for `registry` only. An ACR refresh token becomes the identity token and an ACR access token is
 * sent as is; an Entra token is exchanged at the registry (which must then be an ACR). It cannot
 * be renewed: when it expires, the copy fails as with any expired password.
 *
 * @throws AzureError ACR_TOKEN_UNRECOGNISED when the password is none of these tokens (checked
 *   here, before any request, so the caller learns it at once).
 */
export function acrTokenPassword(registry: string, password: string, id: string): IdentityCredentials {
  const kind = classifyPasswordToken(password);
  if (!kind) {
    throw new AzureError(
      'ACR_TOKEN_UNRECOGNISED',
      `a password without a username must be an Entra access token (az account get-access-token --resource ${DEFAULT_ACR_AUDIENCE}) or an ACR token (az acr login --expose-token); for any other password, give the username too`,
    );
  }
  const expiresAt = kind.expiresAt !== undefined ? { expiresAt: kind.expiresAt } : {};
  if (kind.kind !== 'entra') {
    const credential: RegistryCredential = kind.kind === 'acrRefresh' ? { kind: 'identityToken', token: password, ...expiresAt } : { kind: 'accessToken', token: password, ...expiresAt };
    return { id, getCredentials: (name) => Promise.resolve(name === registry ? credential : undefined), answeredFor: () => undefined };
  }
  const exchange = new AcrIdentityCredentials(
    { getToken: () => Promise.resolve({ token: password, expiresOnTimestamp: kind.expiresAt ?? Infinity }) },
    { id, describe: 'the Entra token given as the password', unavailableAdvice: 'give a valid Entra token' },
  );
  return {
    id,
    getCredentials: (name, scopes, options) => (name === registry ? exchange.getCredentials(name, scopes, options) : Promise.resolve(undefined)),
    answeredFor: (name) => exchange.answeredFor(name),
  };
}
