/**
 * skopeo (containers/image) as an independent reader of test registries.
 *
 * Tests check what Hoist wrote with a tool that shares no code with it: `skopeo inspect --raw`
 * for exact manifest bytes and `skopeo copy --all` to prove a whole image (every manifest and
 * blob, digests verified) can be pulled. Registries here are plain HTTP on loopback, hence
 * `--tls-verify=false`; `--retry-times 0` keeps failures fast and visible.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Path of the skopeo binary (Debian package `skopeo`, 1.9.3 here). */
export const SKOPEO_BINARY = process.env.HOIST_TEST_SKOPEO_BINARY ?? '/usr/bin/skopeo';

/** Credentials for skopeo's `--creds`. */
export interface SkopeoCredentials {
  username: string;
  password: string;
}

/** Thrown when skopeo exits non-zero; carries its stderr. */
export class SkopeoError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | string | null,
    readonly stderr: string,
  ) {
    // Hide the password given with --creds/--src-creds from test output.
    const shown = args.map((arg, i) => (/^--(src-)?creds$/.test(args[i - 1] ?? '') ? arg.replace(/:.*/, ':***') : arg));
    super(`skopeo ${shown.join(' ')} failed (${String(exitCode)}): ${stderr.trim()}`);
    this.name = 'SkopeoError';
  }
}

/**
 * An auth file with nothing in it, so skopeo never picks up credentials from the machine's
 * ~/.docker/config.json or containers auth.json: tests decide exactly what is sent. skopeo
 * reads an empty file as "no credentials", and /dev/null leaves no temp file behind.
 */
const EMPTY_AUTH_FILE = '/dev/null';

function run(args: string[], timeoutMs = 120_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(SKOPEO_BINARY, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
        reject(new SkopeoError(args, code, stderr.toString('utf8')));
        return;
      }
      resolve(stdout);
    });
  });
}

function credsArgs(flag: string, noCredsFlag: string, creds?: SkopeoCredentials): string[] {
  return creds ? [flag, `${creds.username}:${creds.password}`] : [noCredsFlag];
}

function dockerRef(ref: string): string {
  return ref.startsWith('docker://') ? ref : `docker://${ref}`;
}

/**
 * The exact manifest bytes a registry serves for `ref` (`127.0.0.1:PORT/repo:tag` or
 * `…/repo@sha256:…`), as `skopeo inspect --raw` prints them (it writes them unchanged).
 * For an index this is the index itself, not a platform's manifest.
 */
export async function skopeoInspectRaw(ref: string, creds?: SkopeoCredentials): Promise<Buffer> {
  return run(['inspect', '--raw', '--tls-verify=false', '--retry-times', '0', '--authfile', EMPTY_AUTH_FILE, ...credsArgs('--creds', '--no-creds', creds), dockerRef(ref)]);
}

/** Result of {@link skopeoCopyAll}. */
export interface SkopeoCopyResult {
  /** The destination directory. */
  path: string;
  /** Removes the destination. */
  cleanup(): Promise<void>;
}

/**
 * `skopeo copy --all` from the registry into a fresh temp directory (`dir:` layout by default,
 * which stores every manifest unchanged and accepts any media type; `oci:` on request, which
 * works for every fixture but converts Docker manifests to OCI, so its bytes differ).
 * Resolves when skopeo exits 0; rejects with a {@link SkopeoError} holding stderr otherwise.
 */
export async function skopeoCopyAll(ref: string, creds?: SkopeoCredentials, options: { layout?: 'dir' | 'oci' } = {}): Promise<SkopeoCopyResult> {
  const path = await mkdtemp(join(tmpdir(), 'hoist-skopeo-copy-'));
  const cleanup = () => rm(path, { recursive: true, force: true });
  const destination = options.layout === 'oci' ? `oci:${path}:copy` : `dir:${path}`;
  try {
    await run([
      'copy',
      '--all',
      '--src-tls-verify=false',
      '--retry-times',
      '0',
      '--authfile',
      EMPTY_AUTH_FILE,
      ...credsArgs('--src-creds', '--src-no-creds', creds),
      dockerRef(ref),
      destination,
    ]);
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { path, cleanup };
}
