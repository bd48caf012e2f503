/**
 * `hoist copy` flags, read with node's parseArgs and checked into a CopyRequest and CopyOptions.
 * Every bad flag gets an error naming it, what was wrong and what is accepted.
 */
import { parseArgs } from 'node:util';
import { parsePlatform } from '../copy/platform.js';
import type { CopyOptions, CopyRequest } from '../copy/types.js';
import { firstOf, forRegistry, parseUserPassword, type CredentialProvider, type Credentials } from '../registry/credentials.js';
import { dockerConfigCredentials } from '../registry/docker-config.js';
import { parseHostList, RegistryHosts } from '../registry/hosts.js';
import { InvalidReferenceError } from '../registry/reference.js';
import { isLayoutReference, parseStoreReference } from '../copy/layout-reference.js';
import { defaultStores } from '../copy/stores.js';
import { DEFAULT_RETRY, MAX_RETRY_ATTEMPTS } from '../registry/retry.js';
import { CaFileError, readCaFile } from '../registry/tls.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CopyCommand {
  request: CopyRequest;
  options: CopyOptions;
  resumeDir?: string;
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

/** `HOIST_MAX_BLOB_BYTES`: the largest blob a copy accepts (the engine's default when unset). */
function maxBlobBytesFromEnv(): number | undefined {
  const value = process.env.HOIST_MAX_BLOB_BYTES?.trim();
  if (!value) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`HOIST_MAX_BLOB_BYTES "${value}" is not valid: give a whole number of bytes from 1 to ${Number.MAX_SAFE_INTEGER}, or leave it unset for 200 GiB`);
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

function credentialsFrom(flag: string | undefined, flagName: string, userVar: string, passVar: string): Credentials | undefined {
  if (flag !== undefined) {
    try {
      return parseUserPassword(flag, flagName);
    } catch {
      throw new UsageError(`${flagName} is not valid: give USER:PASSWORD`);
    }
  }
  const username = process.env[userVar];
  const password = process.env[passVar];
  if (username && password) return { username, password };
  if (username || password) throw new UsageError(`set both ${userVar} and ${passVar}, or neither`);
  return undefined;
}

/** Parses `hoist copy` arguments (after the word `copy`). */
export function parseCopyArgs(args: string[]): CopyCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        force: { type: 'boolean' },
        platform: { type: 'string', multiple: true },
        referrers: { type: 'boolean' },
        'allow-nondistributable-artifacts': { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        'src-creds': { type: 'string' },
        'dest-creds': { type: 'string' },
        'retry-times': { type: 'string' },
        'ca-file': { type: 'string' },
        'src-tls-verify': { type: 'string' },
        'dest-tls-verify': { type: 'string' },
        concurrency: { type: 'string' },
        'chunk-size': { type: 'string' },
        'resume-dir': { type: 'string' },
        // Read by main before parsing, so that usage errors are reported as JSON too.
        json: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 2) throw new UsageError(`copy needs exactly two references, SRC and DST; got ${positionals.length}`);
  let source, target;
  try {
    source = parseStoreReference(positionals[0]);
    target = parseStoreReference(positionals[1]);
    if (isLayoutReference(target) && !target.tag) throw new UsageError(`target ${target}: name the image in the layout, as oci:DIR:TAG`);
  } catch (error) {
    if (error instanceof InvalidReferenceError) throw new UsageError(error.message);
    throw error;
  }
  const platforms = (values.platform ?? []).map((p) => {
    try {
      return parsePlatform(p);
    } catch (error) {
      throw new UsageError(`--platform: ${(error as Error).message}`);
    }
  });

  const src = credentialsFrom(values['src-creds'], '--src-creds', 'HOIST_SRC_USERNAME', 'HOIST_SRC_PASSWORD');
  const dest = credentialsFrom(values['dest-creds'], '--dest-creds', 'HOIST_DEST_USERNAME', 'HOIST_DEST_PASSWORD');
  const providers: CredentialProvider[] = [];
  // When both sides are one registry, the target's credentials (which must push) come first.
  if (dest) providers.push(forRegistry(target.registry.name, dest, 'dest-creds'));
  if (src) providers.push(forRegistry(source.registry.name, src, 'src-creds'));
  providers.push(dockerConfigCredentials());
  const hosts = new RegistryHosts({
    credentials: firstOf(...providers),
    retry: { ...DEFAULT_RETRY, maxAttempts: retryAttempts(values['retry-times']) },
    insecureRegistries: parseHostList(process.env.HOIST_INSECURE_REGISTRIES),
    httpsRegistries: parseHostList(process.env.HOIST_HTTPS_REGISTRIES),
    caCertificates: caCertificates(values['ca-file']),
    tlsSkipVerify: [
      ...parseHostList(process.env.HOIST_TLS_SKIP_VERIFY),
      ...(tlsVerify(values['src-tls-verify'], '--src-tls-verify') ? [] : [source.registry.apiHost]),
      ...(tlsVerify(values['dest-tls-verify'], '--dest-tls-verify') ? [] : [target.registry.apiHost]),
    ],
    warn: (message) => process.stderr.write(`hoist: warning: ${message}\n`),
  });

  const chunkSize = values['chunk-size'] !== undefined ? parseSize(values['chunk-size'], '--chunk-size') : undefined;
  const resumeDir = values['resume-dir'];
  const maxBlobBytes = maxBlobBytesFromEnv();
  return {
    request: {
      source,
      targets: [target],
      force: values.force ?? false,
      platforms,
      referrers: values.referrers ?? false,
      dryRun: values['dry-run'] ?? false,
      allowNondistributableArtifacts: values['allow-nondistributable-artifacts'] ?? false,
    },
    options: {
      hosts,
      stores: defaultStores(hosts),
      concurrency: values.concurrency !== undefined ? parseCount(values.concurrency, '--concurrency', 64) : undefined,
      uploadMode: chunkSize !== undefined || resumeDir !== undefined ? 'chunked' : 'monolithic',
      chunkSizeInBytes: chunkSize,
      ...(maxBlobBytes !== undefined && { maxBlobBytes }),
    },
    resumeDir,
  };
}
