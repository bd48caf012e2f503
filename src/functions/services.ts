/**
 * What the handlers need, built from the app settings in `process.env` when first asked for: the
 * settings, the job storage (opened once per connection string and table names) and the copy
 * engine. Tests swap the engine with `setEngine`.
 */
import { AcrIdentityCredentials } from '../azure/acr-credentials.js';
import { resolveRegistryResourceId } from '../azure/arm.js';
import { serviceIdentity, type EntraTokenSource } from '../azure/identity.js';
import { copy, findExistingTags, resolveDigest } from '../copy/index.js';
import type { AddressPolicy } from '../registry/address-policy.js';
import { ConfigurationError } from '../jobs/errors.js';
import { openJobStorage, type JobStorage } from '../jobs/job-storage.js';
import { serviceAddressPolicy } from '../jobs/outbound-policy.js';
import { SecretBox } from '../jobs/secret-box.js';
import { Settings } from '../jobs/settings.js';
import type { SubmitImportDeps } from '../jobs/submit-import.js';
import { RegistryHosts } from '../registry/hosts.js';
import { storageClients, type StorageClients } from '../jobs/storage-connection.js';
import { openTable } from '../jobs/tables.js';
import { WatchStore } from '../mirror/watch-store.js';
import { DEFAULT_RETRY } from '../registry/retry.js';

/** The engine entry points the functions call. */
export interface Engine {
  copy: typeof copy;
  findExistingTags: typeof findExistingTags;
  resolveDigest: typeof resolveDigest;
}

const defaultEngine: Engine = { copy, findExistingTags, resolveDigest };
let engine: Engine = defaultEngine;
/** Per storage connection: its clients' one credential, which the job storage and the watch store share. */
const connections = new Map<string, StorageClients>();
const storages = new Map<string, Promise<JobStorage>>();
const watchStores = new Map<string, Promise<WatchStore>>();
const addressPolicies = new Map<string, AddressPolicy>();
/** Per address policy (itself one per setting), then per host setting. */
const hostsBySettings = new Map<AddressPolicy, Map<string, RegistryHosts>>();

/** The app's Azure identity (DefaultAzureCredential), made when first asked for; it caches its Entra tokens. */
let entraIdentity: EntraTokenSource | undefined;
/** Per HOIST_ACR_AUDIENCE and trusted registries: the identity's ACR refresh tokens, shared by every job. */
const acrIdentities = new Map<string, AcrIdentityCredentials>();

/** The settings as they are now (read on every invocation; cheap). */
export function currentSettings(): Settings {
  return new Settings(process.env);
}

/**
 * The storage clients of the settings' connection: made once per connection, so an
 * identity-based one has one credential, one token cache and one token for the job tables, the
 * imports queue and the watch table.
 */
function connectionClients(settings: Settings): StorageClients {
  const connection = settings.storage;
  const key = JSON.stringify(connection);
  let clients = connections.get(key);
  if (!clients) {
    clients = storageClients(connection);
    connections.set(key, clients);
  }
  return clients;
}

/** The job storage for the current settings, opened (tables created) on first use, on the connection's shared clients. */
export function jobStorage(settings: Settings = currentSettings()): Promise<JobStorage> {
  const jobsTable = settings.jobsTable;
  const checkpointsTable = settings.checkpointsTable;
  const key = JSON.stringify([settings.storage, jobsTable, checkpointsTable]);
  let storage = storages.get(key);
  if (!storage) {
    storage = openJobStorage(connectionClients(settings), { jobsTable, checkpointsTable });
    // A failed open (storage not up yet) is retried by the next invocation rather than cached.
    storage.catch(() => storages.delete(key));
    storages.set(key, storage);
  }
  return storage;
}

/**
 * What submitImport needs from the app settings: the job storage, target registry and
 * credentials, hosts, secret box and the engine's checks. The imports API and the mirroring
 * functions (whose syncs are ordinary imports) share it.
 */
export async function submitDeps(settings: Settings = currentSettings()): Promise<SubmitImportDeps> {
  const storage = await jobStorage(settings);
  const targetCredentials = settings.targetCredentials;
  const box = secretBox(settings);
  const allowedSources = settings.allowedSources;
  return {
    jobs: storage.jobs,
    idempotency: storage.idempotency,
    queue: storage.queue,
    targetRegistries: settings.targetRegistries,
    ...(targetCredentials && { targetCredentials }),
    hosts: registryHosts(settings),
    identity: azureIdentity(settings),
    resolveRegistry: registryResolver(settings),
    ...(box && { secretBox: box }),
    findExistingTags: currentEngine().findExistingTags,
    resolveDigest: currentEngine().resolveDigest,
    sourceCheckHosts: sourceCheckHosts(settings),
    ...(allowedSources && { allowedSources }),
  };
}

/** The watch store for the current settings, its table created on first use, on the job storage's clients. */
export function watchStore(settings: Settings = currentSettings()): Promise<WatchStore> {
  const key = JSON.stringify([settings.storage, settings.watchesTable]);
  let store = watchStores.get(key);
  if (!store) {
    store = openTable(connectionClients(settings), settings.watchesTable).then((table) => new WatchStore(table));
    store.catch(() => watchStores.delete(key));
    watchStores.set(key, store);
  }
  return store;
}

/**
 * The RegistryHosts of the app settings (HOIST_RETRY_ATTEMPTS, HOIST_INSECURE_REGISTRIES, the TLS
 * settings HOIST_HTTPS_REGISTRIES, HOIST_CA_FILE and HOIST_TLS_SKIP_VERIFY, the proxies
 * HTTPS_PROXY, HTTP_PROXY and NO_PROXY, HOIST_MAX_REQUESTS_PER_HOST, and the outbound address
 * policy): one per distinct setting, so what the hosts learn (quirks, mount hints, 429 pauses)
 * and their connection pools serve later invocations, and a changed setting takes effect at once.
 */
export function registryHosts(settings: Settings = currentSettings()): RegistryHosts {
  return hostsFor(settings, settings.registryHosts);
}

/**
 * The hosts for the source check made at submit: the same settings, one attempt per request. The
 * caller is waiting, and a source that does not answer at once is the worker's to retry.
 */
export function sourceCheckHosts(settings: Settings = currentSettings()): RegistryHosts {
  const options = settings.registryHosts;
  return hostsFor(settings, { ...options, retry: { ...(options.retry ?? DEFAULT_RETRY), maxAttempts: 1 } });
}

function hostsFor(settings: Settings, options: Settings['registryHosts']): RegistryHosts {
  const policy = addressPolicy(settings);
  let byPolicy = hostsBySettings.get(policy);
  if (!byPolicy) {
    byPolicy = new Map<string, RegistryHosts>();
    hostsBySettings.set(policy, byPolicy);
  }
  const key = JSON.stringify(options);
  let hosts = byPolicy.get(key);
  if (!hosts) {
    hosts = new RegistryHosts({ ...options, addressPolicy: policy });
    byPolicy.set(key, hosts);
  }
  return hosts;
}

/**
 * The box for HOIST_SECRET_KEY, or undefined when it is not set or malformed. A malformed key is
 * reported once, when the host starts ({@link secretKeyProblem}); here it only makes the requests
 * that need a key fail (500 CONFIGURATION_ERROR), instead of every request.
 */
export function secretBox(settings: Settings = currentSettings()): SecretBox | undefined {
  try {
    return SecretBox.fromSetting(settings.secretKey);
  } catch (error) {
    if (error instanceof ConfigurationError) return undefined;
    throw error;
  }
}

/** What is wrong with HOIST_SECRET_KEY, for the host to report once at start; undefined when it is usable or unset. */
export function secretKeyProblem(settings: Settings = currentSettings()): string | undefined {
  try {
    SecretBox.fromSetting(settings.secretKey);
    return undefined;
  } catch (error) {
    if (error instanceof ConfigurationError) return `${error.message}; until it is fixed, imports with credentials are refused`;
    throw error;
  }
}

/**
 * HOIST_TARGET_REGISTRY's registries when it is set and valid, else none (POST reports it): the
 * address policy then trusts no target, and the worker gives the target credentials to no registry.
 */
export function configuredTargets(settings: Settings): string[] {
  try {
    return settings.targetRegistries;
  } catch (error) {
    if (error instanceof ConfigurationError) return [];
    throw error;
  }
}

/**
 * The outbound address policy for the current settings: the same object while they stay the
 * same, since each policy has its own connection pools. Throws ConfigurationError for a
 * malformed HOIST_ALLOWED_PRIVATE_REGISTRIES. An unset or malformed HOIST_TARGET_REGISTRY trusts
 * no target (POST reports it on its own).
 */
function addressPolicy(settings: Settings = currentSettings()): AddressPolicy {
  const allowed = settings.allowedPrivateRegistries;
  const targets = configuredTargets(settings);
  const key = JSON.stringify([targets, allowed]);
  let policy = addressPolicies.get(key);
  if (!policy) {
    policy = serviceAddressPolicy(targets, allowed);
    addressPolicies.set(key, policy);
  }
  return policy;
}

/**
 * The app's Azure identity as a credential provider for ACRs (HOIST_ACR_AUDIENCE): the target
 * when HOIST_TARGET_USERNAME is not set, and sources given without credentials.
 */
export function azureIdentity(settings: Settings = currentSettings()): AcrIdentityCredentials {
  const audience = settings.acrAudience;
  const trustedRegistries = [...settings.acrRegistries, ...configuredTargets(settings)];
  const key = JSON.stringify([audience, trustedRegistries]);
  let identity = acrIdentities.get(key);
  if (!identity) {
    entraIdentity ??= serviceIdentity();
    identity = new AcrIdentityCredentials(entraIdentity, {
      id: 'azure-identity',
      describe: "the app's Azure identity",
      audience,
      trustedRegistries,
      unavailableAdvice: 'give the Function App a managed identity (AZURE_CLIENT_ID names a user-assigned one), set HOIST_TARGET_USERNAME and HOIST_TARGET_PASSWORD for the target, or give the source "username" and "password"',
    });
    acrIdentities.set(key, identity);
  }
  return identity;
}

/**
 * Resolves a registry resource ID to its login server through ARM (HOIST_ARM_ENDPOINT, with a
 * token for HOIST_ARM_AUDIENCE from the app's identity), under the same retry, address policy
 * and TLS settings as registry requests.
 */
export function registryResolver(settings: Settings = currentSettings()): (resourceId: string, signal?: AbortSignal) => Promise<string> {
  const hosts = registryHosts(settings);
  return (resourceId, signal) => {
    entraIdentity ??= serviceIdentity();
    // Read here, not when the request arrives: a malformed ARM setting fails only imports by resource ID.
    return resolveRegistryResourceId(resourceId, {
      identity: entraIdentity,
      armEndpoint: settings.armEndpoint,
      armAudience: settings.armAudience,
      connection: { retry: hosts.retry, connections: hosts.connections, limits: hosts.limits },
      signal,
    });
  };
}

/** The copy engine in use. */
export function currentEngine(): Engine {
  return engine;
}

/** Replaces engine entry points (tests); call with no argument to restore the real engine. */
export function setEngine(replacement?: Partial<Engine>): void {
  engine = { ...defaultEngine, ...replacement };
}
