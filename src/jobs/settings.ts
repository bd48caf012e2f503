/**
 * The app settings the import service reads, each with its default and the reason for it. Both
 * hosts put settings in `process.env` (Azure from App Settings; the local host from
 * local.settings.json `Values`, overridable by the environment). Values are checked when first
 * used, so a GET still answers when, say, the target registry is not configured.
 */
import { DEFAULT_ACR_AUDIENCE } from '../azure/acr-tokens.js';
import { DEFAULT_ARM_ENDPOINT } from '../azure/arm.js';
import type { Credentials } from '../registry/credentials.js';
import { parseHostList, type RegistryHostsOptions } from '../registry/hosts.js';
import { DEFAULT_MAX_REQUESTS_PER_HOST } from '../registry/host-limits.js';
import { ProxyConfigError, readProxyEnvironment, type ProxyEnvironment } from '../registry/proxy.js';
import { parseReference } from '../registry/reference.js';
import { withoutUserinfo } from '../registry/errors.js';
import { DEFAULT_RETRY, MAX_RETRY_ATTEMPTS } from '../registry/retry.js';
import { CaFileError, readCaFile } from '../registry/tls.js';
import { LAYOUT_PREFIX } from '../copy/layout-reference.js';
import { ConfigurationError } from './errors.js';
import { readStorageConnection, type StorageConnection } from './storage-connection.js';

/** Where the local host writes imports when no target registry is set (one OCI image layout per repository). */
export const TARGET_LAYOUTS_SETTING = 'HOIST_TARGET_LAYOUTS';
/** The queue the HTTP function feeds and the worker drains. */
export const IMPORTS_QUEUE = 'imports';
/** The app setting that holds the storage connection string (the host's own storage). */
export const STORAGE_CONNECTION_SETTING = 'AzureWebJobsStorage';

/** Leaves 2 minutes of host.json's 10-minute functionTimeout to save checkpoints and re-queue. */
export const DEFAULT_TIME_BUDGET_SECONDS = 480;
/**
 * Long enough that renewals every third of it survive a slow storage call, short enough that a
 * crashed worker's job resumes within about a minute of its message reappearing.
 */
export const DEFAULT_LEASE_SECONDS = 60;
/** Manifests per import, as `az acr import` allows ("50 manifests per imported image"). */
export const DEFAULT_MAX_MANIFESTS = 50;
export const DEFAULT_JOBS_TABLE = 'hoistjobs';
export const DEFAULT_CHECKPOINTS_TABLE = 'hoistcheckpoints';
export const DEFAULT_WATCHES_TABLE = 'hoistwatches';
/** Upstream requests in flight per registry host during a resync. */
export const DEFAULT_RESYNC_CONCURRENCY = 4;
/** A resync stops a host's work once its rate limit has this many requests or fewer left. */
export const DEFAULT_RATE_LIMIT_RESERVE = 10;

type Env = Record<string, string | undefined>;

/** HOIST_CA_FILE's certificates by path: settings are read per invocation, the file once. */
const caFiles = new Map<string, string[]>();

/** Plain decimals: `Number()` alone would also take `1e3`, `0x3c` and `Infinity`. */
const DECIMAL = /^[0-9]+(?:\.[0-9]+)?$/;
const WHOLE_NUMBER = /^[0-9]+$/;

/** Reads and checks settings from an environment (by default `process.env`). */
export class Settings {
  constructor(private readonly env: Env = process.env) {}

  private value(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  /**
   * `AzureWebJobsStorage`: the storage for the queue, jobs and checkpoints: a connection string,
   * or an identity-based connection (`AzureWebJobsStorage__accountName`, or `__queueServiceUri`
   * and `__tableServiceUri`; `__credential` and `__clientId`), as the Functions host reads it.
   */
  get storage(): StorageConnection {
    return readStorageConnection(this.env, STORAGE_CONNECTION_SETTING);
  }

  /**
   * `HOIST_TARGET_REGISTRY`: the registries imports may write to, comma-separated `host[:port]`s,
   * each at most once (az acr import's `--name`; a request picks one with `targetRegistry`). The
   * first is the default. Required for POST, except on the local host: there, unset, it is `oci:`
   * and the directory in HOIST_TARGET_LAYOUTS (which `npm start` sets), holding one OCI image
   * layout per repository.
   */
  get targetRegistries(): string[] {
    const v = this.value('HOIST_TARGET_REGISTRY');
    const layouts = this.value(TARGET_LAYOUTS_SETTING);
    if (!v && layouts) return [`${LAYOUT_PREFIX}${layouts}`];
    if (!v) throw new ConfigurationError('HOIST_TARGET_REGISTRY', 'HOIST_TARGET_REGISTRY is not set: give the target registry login server, e.g. myregistry.azurecr.io (several, comma-separated, the default first)');
    const names: string[] = [];
    for (const entry of v.split(',').map((e) => e.trim())) {
      const name = registryName(entry);
      if (name === undefined) {
        throw new ConfigurationError('HOIST_TARGET_REGISTRY', `HOIST_TARGET_REGISTRY entry "${withoutUserinfo(entry)}" is not a registry host[:port] (for example myregistry.azurecr.io or localhost:5000; several are separated by commas)`);
      }
      if (!names.includes(name)) names.push(name);
    }
    return names;
  }

  /**
   * `HOIST_ALLOWED_PRIVATE_REGISTRIES`: comma-separated `host[:port]`s the outbound address
   * policy lets through whatever their address (a registry on a private network, or loopback for
   * development). A host without a port is allowed on any port. The target registry always is.
   */
  get allowedPrivateRegistries(): string[] {
    return this.hostList('HOIST_ALLOWED_PRIVATE_REGISTRIES', false);
  }

  /**
   * `HOIST_ALLOWED_SOURCES`: comma-separated host patterns a source registry must match
   * (`docker.io`, `ghcr.io`, `*.azurecr.io`, `host:port`); unset, any source is accepted.
   */
  get allowedSources(): string[] | undefined {
    const list = this.hostList('HOIST_ALLOWED_SOURCES', true);
    return list.length > 0 ? list : undefined;
  }

  /** `HOIST_TARGET_USERNAME` + `HOIST_TARGET_PASSWORD`: both or neither. */
  get targetCredentials(): Credentials | undefined {
    const username = this.value('HOIST_TARGET_USERNAME');
    const password = this.env.HOIST_TARGET_PASSWORD;
    if (!username && !password) return undefined;
    if (!username || !password) {
      throw new ConfigurationError(
        username ? 'HOIST_TARGET_PASSWORD' : 'HOIST_TARGET_USERNAME',
        'HOIST_TARGET_USERNAME and HOIST_TARGET_PASSWORD must be set together',
      );
    }
    return { username, password };
  }

  /**
   * `HOIST_API_KEY`: when set, the HTTP functions require it in `x-functions-key` or `?code=`.
   * On Azure the host already checks function keys; leave it unset there unless you want both.
   */
  get apiKey(): string | undefined {
    return this.env.HOIST_API_KEY || undefined;
  }

  /**
   * `HOIST_SECRET_KEY`: base64 of 32 random bytes (`openssl rand -base64 32`), the AES-256-GCM key
   * for source credentials at rest. Unset: requests with credentials are refused (500,
   * CONFIGURATION_ERROR); requests without credentials work. The raw string; see secret-box.ts.
   */
  get secretKey(): string | undefined {
    return this.value('HOIST_SECRET_KEY');
  }

  /** `HOIST_TIME_BUDGET_SECONDS`: how long one worker invocation copies before it re-queues itself. */
  get timeBudgetInMs(): number {
    return this.seconds('HOIST_TIME_BUDGET_SECONDS', DEFAULT_TIME_BUDGET_SECONDS) * 1000;
  }

  /** `HOIST_JOB_LEASE_SECONDS`: a worker's hold on a job; renewed every third of it while it works. */
  get leaseDurationInMs(): number {
    return this.seconds('HOIST_JOB_LEASE_SECONDS', DEFAULT_LEASE_SECONDS) * 1000;
  }

  /** `HOIST_CHUNK_SIZE_BYTES`: the engine's chunk size for resumable uploads (engine default 4 MiB). */
  get chunkSizeInBytes(): number | undefined {
    return this.value('HOIST_CHUNK_SIZE_BYTES') === undefined ? undefined : this.integer('HOIST_CHUNK_SIZE_BYTES', 0, 1);
  }

  /** `HOIST_MAX_BLOB_BYTES`: the largest blob an import accepts, refused at planning above it (engine default 200 GiB). */
  get maxBlobBytes(): number | undefined {
    return this.value('HOIST_MAX_BLOB_BYTES') === undefined ? undefined : this.integer('HOIST_MAX_BLOB_BYTES', 0, 1);
  }

  /**
   * `HOIST_MAX_MANIFESTS`: the most manifests one import may copy (an index and its children,
   * referrers included), refused at planning above it. Default 50, as `az acr import` allows.
   */
  get maxManifests(): number {
    return this.integer('HOIST_MAX_MANIFESTS', DEFAULT_MAX_MANIFESTS, 1);
  }

  /** `HOIST_CONCURRENCY`: parallel blob transfers per job (engine default 4). */
  get concurrency(): number | undefined {
    return this.value('HOIST_CONCURRENCY') === undefined ? undefined : this.integer('HOIST_CONCURRENCY', 0, 1);
  }

  /** `HOIST_RETRY_ATTEMPTS`: attempts per request, token request and blob restart (default 5). */
  get retryAttempts(): number {
    const n = this.integer('HOIST_RETRY_ATTEMPTS', DEFAULT_RETRY.maxAttempts, 1);
    if (n > MAX_RETRY_ATTEMPTS) throw new ConfigurationError('HOIST_RETRY_ATTEMPTS', `HOIST_RETRY_ATTEMPTS "${n}" must be a whole number from 1 to ${MAX_RETRY_ATTEMPTS}`);
    return n;
  }

  /**
   * The settings of the worker's RegistryHosts: HOIST_RETRY_ATTEMPTS,
   * HOIST_INSECURE_REGISTRIES (comma-separated `host[:port]` reached over plain HTTP),
   * HOIST_HTTPS_REGISTRIES (loopback `host[:port]` reached over HTTPS), HOIST_CA_FILE (PEM CA
   * certificates trusted besides Node's) and HOIST_TLS_SKIP_VERIFY (`host[:port]` whose
   * certificates are not verified; warned about once in the log), the proxies (HTTPS_PROXY,
   * HTTP_PROXY, NO_PROXY, lower-case names first) and HOIST_MAX_REQUESTS_PER_HOST.
   */
  get registryHosts(): RegistryHostsOptions {
    const caCertificates = this.caCertificates;
    return {
      retry: { ...DEFAULT_RETRY, maxAttempts: this.retryAttempts },
      insecureRegistries: parseHostList(this.value('HOIST_INSECURE_REGISTRIES')),
      httpsRegistries: parseHostList(this.value('HOIST_HTTPS_REGISTRIES')),
      tlsSkipVerify: parseHostList(this.value('HOIST_TLS_SKIP_VERIFY')),
      ...(caCertificates && { caCertificates }),
      proxy: this.proxy,
      maxRequestsPerHost: this.integer('HOIST_MAX_REQUESTS_PER_HOST', DEFAULT_MAX_REQUESTS_PER_HOST, 1),
    };
  }

  /** The proxy settings, read as the CLI reads them from its environment. */
  private get proxy(): ProxyEnvironment {
    try {
      return readProxyEnvironment((name) => this.value(name));
    } catch (error) {
      if (error instanceof ProxyConfigError) throw new ConfigurationError(error.variable, error.message);
      throw error;
    }
  }

  /** `HOIST_CA_FILE`, read once per process and path (services.ts keys its hosts by the result). */
  private get caCertificates(): string[] | undefined {
    const file = this.value('HOIST_CA_FILE');
    if (file === undefined) return undefined;
    let certificates = caFiles.get(file);
    if (!certificates) {
      try {
        certificates = readCaFile(file, 'HOIST_CA_FILE');
      } catch (error) {
        if (error instanceof CaFileError) throw new ConfigurationError('HOIST_CA_FILE', error.message);
        throw error;
      }
      caFiles.set(file, certificates);
    }
    return certificates;
  }

  /**
   * `HOIST_ACR_AUDIENCE`: Entra's resource for ACR, whose token the app's identity exchanges at
   * a registry (default public Azure's `https://containerregistry.azure.net`; another cloud's for
   * a sovereign cloud).
   */
  get acrAudience(): string {
    return this.url('HOIST_ACR_AUDIENCE', DEFAULT_ACR_AUDIENCE);
  }

  /**
   * `HOIST_ACR_REGISTRIES`: comma-separated `host[:port]` or `*.domain` of registries, besides
   * `*.azurecr.io`/`.cn`/`.us` and the target registry, that may receive the app's Entra token
   * (an ACR custom domain). A server elsewhere that answers like an ACR gets nothing.
   */
  get acrRegistries(): string[] {
    return this.hostList('HOIST_ACR_REGISTRIES', true);
  }

  /** `HOIST_ARM_ENDPOINT`: Azure Resource Manager, which resolves registry resource ids (default `https://management.azure.com`). */
  get armEndpoint(): string {
    return this.url('HOIST_ARM_ENDPOINT', DEFAULT_ARM_ENDPOINT);
  }

  /** `HOIST_ARM_AUDIENCE`: Entra's resource for Resource Manager tokens (default: HOIST_ARM_ENDPOINT). */
  get armAudience(): string {
    return this.url('HOIST_ARM_AUDIENCE', this.armEndpoint);
  }

  /** `HOIST_JOBS_TABLE`: the table of jobs and idempotency keys (default `hoistjobs`). */
  get jobsTable(): string {
    return this.tableName('HOIST_JOBS_TABLE', DEFAULT_JOBS_TABLE);
  }

  /** `HOIST_CHECKPOINTS_TABLE`: the table of blob upload checkpoints (default `hoistcheckpoints`). */
  get checkpointsTable(): string {
    return this.tableName('HOIST_CHECKPOINTS_TABLE', DEFAULT_CHECKPOINTS_TABLE);
  }

  /** `HOIST_WATCHES_TABLE`: the table of mirroring watches and their state (default `hoistwatches`). */
  get watchesTable(): string {
    return this.tableName('HOIST_WATCHES_TABLE', DEFAULT_WATCHES_TABLE);
  }

  /** `HOIST_RESYNC_CONCURRENCY`: upstream requests in flight per registry host during a resync (default 4). */
  get resyncConcurrency(): number {
    return this.integer('HOIST_RESYNC_CONCURRENCY', DEFAULT_RESYNC_CONCURRENCY, 1);
  }

  /** `HOIST_RATE_LIMIT_RESERVE`: requests of a host's rate limit a resync leaves unused (default 10). */
  get rateLimitReserve(): number {
    return this.integer('HOIST_RATE_LIMIT_RESERVE', DEFAULT_RATE_LIMIT_RESERVE, 0);
  }

  /** A comma-separated list of `host[:port]` (or, with `wildcards`, `*.domain`), each checked. */
  private hostList(name: string, wildcards: boolean): string[] {
    const entries = (this.value(name) ?? '').split(',').map((e) => e.trim().toLowerCase()).filter(Boolean);
    for (const entry of entries) {
      const host = wildcards && entry.startsWith('*.') ? entry.slice(2) : entry;
      let valid: boolean;
      try {
        valid = parseReference(`${host}/probe`).registry.name === host;
      } catch {
        valid = false;
      }
      if (!valid) {
        throw new ConfigurationError(name, `${name} entry "${withoutUserinfo(entry)}" is not a host[:port]${wildcards ? ' or *.domain' : ''} (for example ${wildcards ? '*.azurecr.io, ' : ''}myregistry.internal:5000 or 10.0.0.5)`);
      }
    }
    return entries;
  }

  /** An http(s) URL without query or fragment, its trailing '/' removed. */
  private url(name: string, fallback: string): string {
    const v = this.value(name) ?? fallback;
    let parsed: URL | undefined;
    try {
      parsed = new URL(v);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
      throw new ConfigurationError(name, `${name} "${withoutUserinfo(v)}" is not an http(s) URL without query or credentials (for example ${fallback})`);
    }
    return v.replace(/\/+$/, '');
  }

  private tableName(name: string, fallback: string): string {
    const v = this.value(name) ?? fallback;
    if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(v)) {
      throw new ConfigurationError(name, `${name} "${v}" is not a table name: 3 to 63 letters and digits, starting with a letter`);
    }
    return v;
  }

  private seconds(name: string, fallback: number): number {
    const v = this.value(name);
    if (v === undefined) return fallback;
    const n = DECIMAL.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n) || n <= 0) throw new ConfigurationError(name, `${name} "${v}" must be a positive number of seconds, in decimal digits (e.g. 480 or 1.5)`);
    return n;
  }

  private integer(name: string, fallback: number, min: number): number {
    const v = this.value(name);
    if (v === undefined) return fallback;
    const n = WHOLE_NUMBER.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new ConfigurationError(name, `${name} "${v}" must be a whole number of at least ${min}, in decimal digits`);
    return n;
  }
}

/**
 * The registry name of a `host[:port]` as references spell it (`index.docker.io` is `docker.io`),
 * or undefined when `value` is anything else (a path, a scheme, a port out of range).
 */
export function registryName(value: string): string | undefined {
  let name: string | undefined;
  try {
    name = parseReference(`${value}/probe`).registry.name;
  } catch {
    return undefined;
  }
  return name === value || (value === 'index.docker.io' && name === 'docker.io') ? name : undefined;
}
