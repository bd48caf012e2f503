/**
 * Where Hoist's own Azure identity comes from, as @azure/identity credentials:
 * - the service: DefaultAzureCredential, which in Azure Functions is the app's managed identity
 *   (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), a user-assigned one when AZURE_CLIENT_ID names it;
 * - the CLI: the developer's own login: AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET
 *   (a service principal in CI), else `az login` (Azure CLI), else `azd auth login`. No managed
 *   identity probe: a laptop has none, and probing 169.254.169.254 costs seconds.
 *
 * @azure/identity (and MSAL under it) is loaded only when a token is first asked for: the CLI's
 * bundle leaves it out (package.json's `bundle` marks it external), so a copy that meets no ACR
 * never pays for reading it.
 */

/** A token and when it expires, as @azure/identity's TokenCredential answers. */
export interface EntraAccessToken {
  token: string;
  expiresOnTimestamp: number;
}

/** What Hoist needs of a TokenCredential (structurally one, so any @azure/identity credential fits). */
export interface EntraTokenSource {
  getToken(scopes: string | string[], options?: { abortSignal?: AbortSignal }): Promise<EntraAccessToken | null>;
}

/**
 * @azure/identity, loaded on first use. `require`, not `import()`: bin/hoist.js runs the bundle
 * as a vm.Script (for its code cache), where a dynamic import has no loader to call.
 */
function loadIdentity(): typeof import('@azure/identity') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy on purpose, see above
  return require('@azure/identity') as typeof import('@azure/identity');
}

/** A credential made when first used, so that @azure/identity is loaded only then. */
function lazy(make: (identity: typeof import('@azure/identity')) => EntraTokenSource): EntraTokenSource {
  let credential: EntraTokenSource | undefined;
  return {
    getToken(scopes, options) {
      credential ??= make(loadIdentity());
      return credential.getToken(scopes, options);
    },
  };
}

/** The service's identity: DefaultAzureCredential (AZURE_CLIENT_ID picks a user-assigned managed identity). */
export function serviceIdentity(): EntraTokenSource {
  return lazy((identity) => new identity.DefaultAzureCredential());
}

/** The CLI's identity: environment credentials, else the Azure CLI's login, else the Azure Developer CLI's. */
export function developerIdentity(): EntraTokenSource {
  return lazy((identity) => new identity.ChainedTokenCredential(new identity.EnvironmentCredential(), new identity.AzureCliCredential(), new identity.AzureDeveloperCliCredential()));
}
