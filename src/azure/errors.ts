/**
 * The Azure error family: what went wrong between Hoist, Entra ID, ACR's token service and ARM,
 * each with a stable code and a sentence on what to do. Callers match on `code`. Messages never
 * quote a token, nor the body of an answer.
 */
import { CopyError, type Side } from '../copy/errors.js';
import { RegistryError } from '../registry/errors.js';

export type AzureErrorCode =
  /** No Azure identity could give a token (no managed identity, not logged in with `az login`). */
  | 'AZURE_IDENTITY_UNAVAILABLE'
  /** ACR's `/oauth2/exchange` refused the Entra token (wrong tenant, Entra auth disabled, expired). */
  | 'ACR_EXCHANGE_REFUSED'
  /** The identity was authenticated but lacks a role on the registry. */
  | 'ACR_ROLE_MISSING'
  /** A password without a username that is neither an Entra token nor an ACR token. */
  | 'ACR_TOKEN_UNRECOGNISED'
  /** ARM has no registry with that resource id. */
  | 'REGISTRY_RESOURCE_NOT_FOUND'
  /** The identity may not read the registry resource in ARM. */
  | 'REGISTRY_RESOURCE_FORBIDDEN'
  /** ARM failed otherwise (refused the token, answered something unexpected). */
  | 'ARM_ERROR';

/** A failure talking to Entra ID, ACR's token service or ARM. */
export class AzureError extends Error {
  override readonly name = 'AzureError';
  constructor(
    readonly code: AzureErrorCode,
    message: string,
    /** Retrying cannot help (the default): a role, a tenant or a resource id is not fixed by waiting. */
    readonly permanent = true,
    /** Which side of a copy it concerns, when known. */
    readonly side?: Side,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The role each side needs, as `az role assignment create --role` names it. */
const ROLES: Record<Side, string> = {
  source: 'AcrPull',
  target: 'AcrPush (or Container Registry Data Importer and Data Reader)',
};

/**
 * A copy refused on a side whose registry an Azure identity authenticated to, explained: the
 * token exchange worked, so the identity is known to the registry, and what is missing is a role.
 * Any other error is returned as is.
 *
 * @param registries the copy's source and target registry names
 * @param answered for a registry name, the identity that provided its credentials in words (e.g.
 *   `the app's managed identity`), or undefined when no Azure identity did
 */
export function explainAcrRefusal(error: unknown, registries: Record<Side, string>, answered: (registry: string) => string | undefined): unknown {
  if (!(error instanceof CopyError) || error.code !== 'AUTH_FAILED' || !error.side) return error;
  // The host that refused, when the error says: of several targets (the CLI's), another one than
  // the ACR the identity answered for may be the one that refused, and needs no Azure role.
  const registry = refusingHost(error.cause) ?? registries[error.side];
  const who = answered(registry);
  if (who === undefined) return error;
  const action = error.side === 'source' ? 'pull from' : 'push to';
  return new AzureError(
    'ACR_ROLE_MISSING',
    `${who} was accepted by the ${error.side} registry ${registry} but may not ${action} it: assign it the ${ROLES[error.side]} role on the registry (or on the repository), then retry`,
    true,
    error.side,
    { cause: error },
  );
}

/** The host[:port] of the URL a RegistryError was answered on, when it has one (an ACR's realm is on its own host). */
function refusingHost(cause: unknown): string | undefined {
  if (!(cause instanceof RegistryError)) return undefined;
  try {
    const url = new URL(cause.url);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.host : undefined;
  } catch {
    return undefined;
  }
}
