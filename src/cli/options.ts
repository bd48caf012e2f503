/**
 * `hoist` flags (read from the table in flags.ts) checked into what each command runs with: a
 * CopyRequest and CopyOptions for copy, a reference and RegistryHosts for the read commands.
 * Every bad flag gets an error naming it, what was wrong and what is accepted.
 */
import { AcrIdentityCredentials, acrTokenPassword, type IdentityCredentials } from '../azure/acr-credentials.js';
import { classifyPasswordToken } from '../azure/acr-tokens.js';
import { explainAcrRefusal } from '../azure/errors.js';
import { developerIdentity } from '../azure/identity.js';
import { parsePlatform } from '../copy/platform.js';
import type { CopyOptions, CopyRequest } from '../copy/types.js';
import { firstOf, forRegistry, parseUserPassword, type CredentialProvider, type Credentials } from '../registry/credentials.js';
import { dockerConfigCredentials } from '../registry/docker-config.js';
import { parseHostList, RegistryHosts } from '../registry/hosts.js';
import { DEFAULT_MAX_REQUESTS_PER_HOST } from '../registry/host-limits.js';
import { ProxyConfigError, readProxyEnvironment, type ProxyEnvironment } from '../registry/proxy.js';
import { InvalidReferenceError, parseReference, type Reference } from '../registry/reference.js';
import { isLayoutReference, parseStoreReference } from '../copy/layout-reference.js';
import { defaultStores } from '../copy/stores.js';
import { DEFAULT_RETRY, MAX_RETRY_ATTEMPTS } from '../registry/retry.js';
import { CaFileError, readCaFile } from '../registry/tls.js';
import { parseFlags, UsageError, type CommandName, type ParsedFlags } from './flags.js';

export { UsageError } from './flags.js';

/** How results are printed: `--format text` (the default) or `--format json` (alias `--json`). */
export type OutputFormat = 'text' | 'json';

/** `hoist copy`, parsed: what to copy, how, and how to print it. */
export interface CopyCommand {
  request: CopyRequest;
  options: CopyOptions;
  format: OutputFormat;
  /** `--all` was given: skopeo's flag for what is the default here. */
  all: boolean;
  resumeDir?: string;
  /** Names the role the developer's Azure identity lacks when a side refused it. */
  explain(error: unknown): unknown;
}

/** `hoist inspect`, `digest` or `tags`: one reference, read with these hosts. */
export interface ReadCommand {
  reference: Reference;
  hosts: RegistryHosts;
  format: OutputFormat;
  /** `inspect --raw`: the exact bytes. */
  raw: boolean;
}

const SIZE = /^(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$/i;
const MULTIPLIERS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

function parseSize(value: string, flag: string): number {
  const m = SIZE.exec(value.trim());
  const bytes = m ? Number(m[1]) * MULTIPLIERS[m[2].toLowerCase()] : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024) throw new UsageError(`${flag} "${value}" is not valid: give a size of at least 1024 bytes, e.g. 4194304 or 4MiB`);
  return bytes;
}

function parseCount(value: string, flag: string, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) throw new UsageError(`${flag} "${value}" is not valid: give a whole number from 1 to ${max}`);
  return n;
}

/**
 * A setting that holds a whole number of at least 1, or undefined when unset.
 * @param unsetMeans what leaving it unset gives, for the error message
 */
function countFromEnv(name: string, unsetMeans: string): number | undefined {
  const value = process.env[name]?.trim();
  if (!value) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${name} "${value}" is not valid: give a whole number of at least 1, or leave it unset for ${unsetMeans}`);
  }
  return n;
}

/** `--retry-times`, else `HOIST_RETRY_ATTEMPTS`: attempts per request, token request and blob restart. */
function retryAttempts(flag: string | undefined): number {
  if (flag !== undefined) return parseCount(flag, '--retry-times', MAX_RETRY_ATTEMPTS);
  const value = process.env.HOIST_RETRY_ATTEMPTS?.trim();
  if (!value) return DEFAULT_RETRY.maxAttempts;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_RETRY_ATTEMPTS) throw new UsageError(`HOIST_RETRY_ATTEMPTS "${value}" is not valid: give a whole number from 1 to ${MAX_RETRY_ATTEMPTS}, or leave it unset for ${DEFAULT_RETRY.maxAttempts}`);
  return n;
}

/** HTTPS_PROXY, HTTP_PROXY and NO_PROXY (lower-case names first, as curl reads them). */
function proxyEnvironment(): ProxyEnvironment {
  try {
    return readProxyEnvironment((name) => process.env[name]);
  } catch (error) {
    if (error instanceof ProxyConfigError) throw new UsageError(error.message);
    throw error;
  }
}

/** `--ca-file`, else `HOIST_CA_FILE`: extra CA certificates, or none. */
function caCertificates(flag: string | undefined): string[] | undefined {
  const [file, source] = flag !== undefined ? [flag, '--ca-file'] : [process.env.HOIST_CA_FILE?.trim(), 'HOIST_CA_FILE'];
  if (!file) return undefined;
  try {
    return readCaFile(file, source);
  } catch (error) {
    if (error instanceof CaFileError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * `--src-tls-verify` / `--dest-tls-verify`, skopeo's names and form (`=false`): whether that
 * side's certificate is verified. Default true.
 */
function tlsVerify(flag: string | undefined, name: string): boolean {
  if (flag === undefined || flag === 'true') return true;
  if (flag === 'false') return false;
  throw new UsageError(`${name} "${flag}" is not valid: give ${name}=true or ${name}=false`);
}

/**
 * Credentials from a flag or the environment. A password alone (`--src-creds :TOKEN`, or only the
 * PASSWORD variable) is taken when it is an Entra or ACR token, as `az acr import` takes one; its
 * username is then empty.
 */
function credentialsFrom(flag: string | undefined, flagName: string, userVar: string, passVar: string): Credentials | undefined {
  if (flag !== undefined) {
    if (flag.startsWith(':') && classifyPasswordToken(flag.slice(1))) return { username: '', password: flag.slice(1) };
    try {
      return parseUserPassword(flag, flagName);
    } catch {
      throw new UsageError(`${flagName} is not valid: give USER:PASSWORD`);
    }
  }
  const username = process.env[userVar];
  const password = process.env[passVar];
  if (username && password) return { username, password };
  if (!username && password && classifyPasswordToken(password)) return { username: '', password };
  if (username || password) throw new UsageError(`set both ${userVar} and ${passVar}, or neither`);
  return undefined;
}

/** skopeo's transport for registries: `docker://REF` is REF. */
const DOCKER_TRANSPORT = 'docker://';
/** skopeo transports that are not registries, refused by name rather than misread as a host. */
const OTHER_TRANSPORTS = /^(docker-archive|docker-daemon|containers-storage|dir|oci-archive|ostree|sif):(?!\d)/;

/** Parses a reference as written on the command line: `[docker://]REF`, or an OCI image layout, `oci:DIR[:TAG]`. */
export function parseCliReference(input: string): Reference {
  const transport = OTHER_TRANSPORTS.exec(input)?.[1];
  if (transport) throw new UsageError(`invalid reference "${input}": the ${transport}: transport is not supported; give a registry reference, REF or docker://REF, or an OCI layout, oci:DIR[:TAG]`);
  try {
    return input.startsWith(DOCKER_TRANSPORT) ? parseReference(input.slice(DOCKER_TRANSPORT.length)) : parseStoreReference(input);
  } catch (error) {
    if (error instanceof InvalidReferenceError) throw new UsageError(input.startsWith(DOCKER_TRANSPORT) ? error.message.replace(/^invalid reference "/, `invalid reference "${DOCKER_TRANSPORT}`) : error.message);
    throw error;
  }
}

/** Typed reads of parsed flag values. */
function stringFlag(flags: ParsedFlags, name: string): string | undefined {
  const value = flags.values[name];
  return typeof value === 'string' ? value : undefined;
}
function booleanFlag(flags: ParsedFlags, name: string): boolean {
  return flags.values[name] === true;
}
function listFlag(flags: ParsedFlags, name: string): string[] {
  const value = flags.values[name];
  return Array.isArray(value) ? value : [];
}

/** `--format json|text`, with `--json` as its alias. */
function outputFormat(flags: ParsedFlags): OutputFormat {
  const format = stringFlag(flags, 'format');
  if (format !== undefined && format !== 'json' && format !== 'text') throw new UsageError(`--format "${format}" is not valid: give --format json or --format text`);
  if (booleanFlag(flags, 'json') && format === 'text') throw new UsageError('--json and --format text contradict each other: give one of them');
  return booleanFlag(flags, 'json') ? 'json' : (format ?? 'text');
}

/**
 * Whether the arguments ask for JSON output, read before parsing so that even a usage error is
 * reported as JSON: `--json`, `--format json` or `--format=json`.
 */
export function wantsJson(args: string[]): boolean {
  return args.some((arg, i) => arg === '--json' || arg === '--format=json' || (arg === '--format' && args[i + 1] === 'json'));
}

/** Credentials for some registries, and where they came from. */
interface RegistryCredentials {
  registries: string[];
  credentials: Credentials | undefined;
  id: string;
}

/**
 * The RegistryHosts of one command: credentials (the given ones first, then the Docker config),
 * the retry policy, TLS settings and the hosts reached over plain HTTP or HTTPS.
 */
/** The RegistryHosts of a command, and which Azure login answered for a registry (for errors). */
interface CliHosts {
  hosts: RegistryHosts;
  answeredFor(registry: string): string | undefined;
}

/**
 * How a command reaches registries: the flags' and environment's credentials (a password alone is
 * an Entra or ACR token), then the Docker config, then, for an Azure Container Registry nothing
 * above covers, the developer's own Azure login, as az acr import uses it.
 */
function registryHosts(flags: ParsedFlags, credentials: RegistryCredentials[], skipVerify: string[]): CliHosts {
  const tokens: IdentityCredentials[] = [];
  const providers: CredentialProvider[] = credentials.flatMap(({ registries, credentials: found, id }) => {
    if (!found) return [];
    return [...new Set(registries)].map((registry): CredentialProvider => {
      if (found.username) return forRegistry(registry, found, id);
      const token = acrTokenPassword(registry, found.password, `${id}:token`);
      tokens.push(token);
      return token;
    });
  });
  providers.push(dockerConfigCredentials());
  const identity = new AcrIdentityCredentials(developerIdentity(), {
    id: 'azure-login',
    describe: 'your Azure login',
    audience: process.env.HOIST_ACR_AUDIENCE?.trim() || undefined,
    // Only ACR domains, and what HOIST_ACR_REGISTRIES adds, get the login's token: never a server that only answers like an ACR.
    trustedRegistries: parseHostList(process.env.HOIST_ACR_REGISTRIES),
    unavailableAdvice: 'run az login (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET), or give the credentials flags',
  });
  providers.push(identity);
  const hosts = new RegistryHosts({
    credentials: firstOf(...providers),
    retry: { ...DEFAULT_RETRY, maxAttempts: retryAttempts(stringFlag(flags, 'retry-times')) },
    insecureRegistries: parseHostList(process.env.HOIST_INSECURE_REGISTRIES),
    httpsRegistries: parseHostList(process.env.HOIST_HTTPS_REGISTRIES),
    caCertificates: caCertificates(stringFlag(flags, 'ca-file')),
    tlsSkipVerify: [...parseHostList(process.env.HOIST_TLS_SKIP_VERIFY), ...skipVerify],
    warn: (message) => process.stderr.write(`hoist: warning: ${message}\n`),
    proxy: proxyEnvironment(),
    maxRequestsPerHost: countFromEnv('HOIST_MAX_REQUESTS_PER_HOST', String(DEFAULT_MAX_REQUESTS_PER_HOST)) ?? DEFAULT_MAX_REQUESTS_PER_HOST,
  });
  return { hosts, answeredFor: (registry) => tokens.map((t) => t.answeredFor(registry)).find(Boolean) ?? identity.answeredFor(registry) };
}

/** Parses `hoist copy` arguments (after the word `copy`). */
export function parseCopyArgs(args: string[]): CopyCommand {
  const flags = parseFlags('copy', args);
  const { positionals } = flags;
  if (positionals.length < 2) throw new UsageError(`copy needs a source and at least one target, SRC DST [DST...]; got ${positionals.length} reference(s)`);
  const source = parseCliReference(positionals[0]);
  const targets = positionals.slice(1).map(parseCliReference);
  const twice = targets.find((t, i) => targets.findIndex((u) => u.toString() === t.toString()) !== i);
  if (twice) throw new UsageError(`target ${twice} is given twice: give each target once`);
  const untagged = targets.find((t) => isLayoutReference(t) && !t.tag);
  if (untagged) throw new UsageError(`target ${untagged}: name the image in the layout, as oci:DIR:TAG`);
  const platforms = listFlag(flags, 'platform').map((p) => {
    try {
      return parsePlatform(p);
    } catch (error) {
      throw new UsageError(`--platform: ${(error as Error).message}`);
    }
  });
  if (booleanFlag(flags, 'all')) {
    if (platforms.length) throw new UsageError('--all and --platform contradict each other: --all copies every platform (the default), --platform only those named; give one of them');
  }

  const targetRegistries = targets.map((t) => t.registry.name);
  // When a source and a target share a registry, the target's credentials (which must push) come first.
  const { hosts, answeredFor } = registryHosts(
    flags,
    [
      { registries: targetRegistries, credentials: credentialsFrom(stringFlag(flags, 'dest-creds'), '--dest-creds', 'HOIST_DEST_USERNAME', 'HOIST_DEST_PASSWORD'), id: 'dest-creds' },
      { registries: [source.registry.name], credentials: credentialsFrom(stringFlag(flags, 'src-creds'), '--src-creds', 'HOIST_SRC_USERNAME', 'HOIST_SRC_PASSWORD'), id: 'src-creds' },
    ],
    [
      ...(tlsVerify(stringFlag(flags, 'src-tls-verify'), '--src-tls-verify') ? [] : [source.registry.apiHost]),
      ...(tlsVerify(stringFlag(flags, 'dest-tls-verify'), '--dest-tls-verify') ? [] : targets.map((t) => t.registry.apiHost)),
    ],
  );

  const chunkSizeFlag = stringFlag(flags, 'chunk-size');
  const concurrencyFlag = stringFlag(flags, 'concurrency');
  const chunkSize = chunkSizeFlag !== undefined ? parseSize(chunkSizeFlag, '--chunk-size') : undefined;
  const resumeDir = stringFlag(flags, 'resume-dir');
  const maxBlobBytes = countFromEnv('HOIST_MAX_BLOB_BYTES', '200 GiB');
  // No limit unless asked, as skopeo: the service's 50 (az acr import's) is a server's guard, and
  // the person at this terminal chose the image. Setting it checks a copy as the service would.
  const maxManifests = countFromEnv('HOIST_MAX_MANIFESTS', 'no limit');
  return {
    request: {
      source,
      targets,
      force: booleanFlag(flags, 'force'),
      platforms,
      referrers: booleanFlag(flags, 'referrers'),
      dryRun: booleanFlag(flags, 'dry-run'),
      allowNondistributableArtifacts: booleanFlag(flags, 'allow-nondistributable-artifacts'),
    },
    options: {
      hosts,
      stores: defaultStores(hosts),
      concurrency: concurrencyFlag !== undefined ? parseCount(concurrencyFlag, '--concurrency', 64) : undefined,
      uploadMode: chunkSize !== undefined || resumeDir !== undefined ? 'chunked' : 'monolithic',
      chunkSizeInBytes: chunkSize,
      ...(maxBlobBytes !== undefined && { maxBlobBytes }),
      ...(maxManifests !== undefined && { maxManifests }),
    },
    format: outputFormat(flags),
    all: booleanFlag(flags, 'all'),
    resumeDir,
    // The refusing host is read from the error; without one, of several targets, one the Azure login answered for.
    explain: (error) => explainAcrRefusal(error, { source: source.registry.name, target: (targets.find((t) => answeredFor(t.registry.name)) ?? targets[0]).registry.name }, answeredFor),
  };
}

/** Parses the arguments of `hoist inspect REF`, `hoist digest REF` or `hoist tags REPO`. */
export function parseReadArgs(command: Extract<CommandName, 'inspect' | 'digest' | 'tags'>, args: string[]): ReadCommand {
  const flags = parseFlags(command, args);
  const what = command === 'tags' ? 'REPO' : 'REF';
  if (flags.positionals.length !== 1) throw new UsageError(`${command} needs exactly one reference, ${what}; got ${flags.positionals.length}`);
  const [input] = flags.positionals;
  const reference = parseCliReference(input);
  // A tag or digest after the last '/': the tag list is the repository's, so either is a mistake.
  if (command === 'tags' && (input.includes('@') || input.lastIndexOf(':') > input.lastIndexOf('/'))) {
    throw new UsageError(`tags takes a repository, not "${input}": drop the tag or digest, e.g. ${reference.name}`);
  }
  const { hosts } = registryHosts(
    flags,
    [{ registries: [reference.registry.name], credentials: credentialsFrom(stringFlag(flags, 'creds'), '--creds', 'HOIST_SRC_USERNAME', 'HOIST_SRC_PASSWORD'), id: 'creds' }],
    tlsVerify(stringFlag(flags, 'tls-verify'), '--tls-verify') ? [] : [reference.registry.apiHost],
  );
  return { reference, hosts, format: outputFormat(flags), raw: booleanFlag(flags, 'raw') };
}
