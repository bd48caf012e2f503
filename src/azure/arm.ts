/**
 * Container registries by Azure resource id: parsing
 * `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerRegistry/registries/<name>`
 * and resolving it to the registry's login server through Azure Resource Manager
 * (`GET {armEndpoint}{resourceId}?api-version=2023-07-01` with an ARM token, reading
 * `properties.loginServer`, never assuming `<name>.azurecr.io`). The lookup goes through the
 * caller's retry policy, address policy and TLS settings, as registry requests do.
 */
import { requestSmall } from '../registry/auth.js';
import type { TokenConnection } from '../registry/credentials.js';
import { InvalidReferenceError, parseReference } from '../registry/reference.js';
import { AzureError } from './errors.js';
import type { EntraTokenSource } from './identity.js';

/** The ARM api-version of the registry lookup. */
export const ARM_API_VERSION = '2023-07-01';
/** Public Azure's Resource Manager (HOIST_ARM_ENDPOINT's default). */
export const DEFAULT_ARM_ENDPOINT = 'https://management.azure.com';

/** Subscription ids are GUIDs; resource group names 1–90 characters of letters, digits, `._-()`; registry names 5–50 alphanumerics. */
const RESOURCE_ID = /^\/subscriptions\/([0-9a-fA-F-]{1,64})\/resourceGroups\/([\w.()-]{1,90})\/providers\/Microsoft\.ContainerRegistry\/registries\/([a-zA-Z0-9]{1,50})$/i;

/** The parts of a registry resource id. */
export interface RegistryResourceId {
  subscription: string;
  resourceGroup: string;
  name: string;
}

/** Whether `value` is meant as a resource id (it starts like one), well-formed or not. */
export function looksLikeResourceId(value: string): boolean {
  return value.toLowerCase().startsWith('/subscriptions/');
}

/** Parses a container registry resource id; undefined when it is not one. */
export function parseRegistryResourceId(value: string): RegistryResourceId | undefined {
  const match = RESOURCE_ID.exec(value);
  return match ? { subscription: match[1], resourceGroup: match[2], name: match[3] } : undefined;
}

/** Options of {@link resolveRegistryResourceId}. */
export interface ResolveOptions {
  identity: EntraTokenSource;
  /** HOIST_ARM_ENDPOINT. Default {@link DEFAULT_ARM_ENDPOINT}. */
  armEndpoint?: string;
  /** Entra's resource for ARM (HOIST_ARM_AUDIENCE). Default: the endpoint. */
  armAudience?: string;
  connection: TokenConnection;
  signal?: AbortSignal;
}

/**
 * The login server of a registry given by resource id.
 *
 * @throws AzureError REGISTRY_RESOURCE_NOT_FOUND (404), REGISTRY_RESOURCE_FORBIDDEN (403),
 *   AZURE_IDENTITY_UNAVAILABLE (no ARM token), ARM_ERROR (anything else, or an answer without a
 *   usable login server); RegistryError NETWORK_ERROR when ARM cannot be reached.
 */
export async function resolveRegistryResourceId(resourceId: string, options: ResolveOptions): Promise<string> {
  const endpoint = (options.armEndpoint ?? DEFAULT_ARM_ENDPOINT).replace(/\/+$/, '');
  const audience = (options.armAudience ?? endpoint).replace(/\/+$/, '');
  let token;
  try {
    token = await options.identity.getToken(`${audience}/.default`, options.signal ? { abortSignal: options.signal } : {});
  } catch (error) {
    options.signal?.throwIfAborted();
    throw new AzureError('AZURE_IDENTITY_UNAVAILABLE', `no Azure identity could get a Resource Manager token to look up ${resourceId}: give the app a managed identity (AZURE_CLIENT_ID for a user-assigned one), or give "registry" as the login server`, true, undefined, { cause: error });
  }
  if (!token?.token) throw new AzureError('AZURE_IDENTITY_UNAVAILABLE', `no Azure identity could get a Resource Manager token to look up ${resourceId}`);
  const url = new URL(`${endpoint}${resourceId}`);
  url.searchParams.set('api-version', ARM_API_VERSION);
  const response = await requestSmall({ url, method: 'GET', headers: { authorization: `Bearer ${token.token}`, accept: 'application/json' }, signal: options.signal, reference: `Resource Manager lookup of ${resourceId}`, ...options.connection });
  const error = armErrorCode(response.text);
  if (response.statusCode === 404) {
    throw new AzureError('REGISTRY_RESOURCE_NOT_FOUND', `no container registry has the resource id ${resourceId}${error ? ` (${error})` : ''}: check the subscription, resource group and registry name, or give "registry" as the login server`);
  }
  if (response.statusCode === 403) {
    throw new AzureError('REGISTRY_RESOURCE_FORBIDDEN', `the app's identity may not read ${resourceId}${error ? ` (${error})` : ''}: assign it a role on the registry (Reader, or AcrPull, which also lets it pull), or give "registry" as the login server`);
  }
  if (response.statusCode !== 200) {
    throw new AzureError('ARM_ERROR', `Resource Manager answered HTTP ${response.statusCode}${error ? ` (${error})` : ''} to the lookup of ${resourceId}`, response.statusCode < 500 && response.statusCode !== 429);
  }
  const loginServer = loginServerOf(response.text);
  if (loginServer === undefined) throw new AzureError('ARM_ERROR', `Resource Manager's answer for ${resourceId} has no usable properties.loginServer`);
  return loginServer;
}

/** `properties.loginServer` when it is a registry host[:port] (it becomes part of references). */
function loginServerOf(text: string): string | undefined {
  let value: unknown;
  try {
    value = (JSON.parse(text) as { properties?: { loginServer?: unknown } } | null)?.properties?.loginServer;
  } catch {
    return undefined;
  }
  if (typeof value !== 'string' || value.includes('/')) return undefined;
  try {
    return parseReference(`${value}/probe`).registry.name === value ? value : undefined;
  } catch (error) {
    if (error instanceof InvalidReferenceError) return undefined;
    throw error;
  }
}

/** ARM's error code (`{"error": {"code"}}`), when it looks like one: never its message, which is ARM's text. */
function armErrorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' && /^[A-Za-z][A-Za-z0-9_.]{0,63}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}
