/**
 * Running the built `hoist` CLI (bin/hoist.js → the bundle dist/hoist-cli.js) as a child process, the
 * way users run it: a clean environment (temp HOME and DOCKER_CONFIG, so the machine's docker
 * config is never read, and no inherited HOIST_* variables), captured stdout/stderr, exit code.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rawRequest } from '../helpers/fixtures.js';

export const PROJECT_ROOT = resolve(__dirname, '../..');
const BIN = join(PROJECT_ROOT, 'bin/hoist.js');
const BUNDLE = join(PROJECT_ROOT, 'dist/hoist-cli.js');

/** Fails early, with the fix, when the CLI was not compiled. */
export function requireBuild(): void {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` before these tests`);
}

export interface HoistRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for "never printed" checks. */
  all: string;
}

/** A temp HOME with an empty `.docker` directory used as DOCKER_CONFIG. */
export interface TempHome {
  home: string;
  dockerConfig: string;
  cleanup(): Promise<void>;
}

export async function tempHome(): Promise<TempHome> {
  const home = await mkdtemp(join(tmpdir(), 'hoist-cli-home-'));
  const dockerConfig = join(home, '.docker');
  await mkdir(dockerConfig);
  return { home, dockerConfig, cleanup: () => rm(home, { recursive: true, force: true }) };
}

/** The whole environment a CLI run sees: nothing of the parent's but PATH. */
export function cliEnv(home: TempHome, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home.home, DOCKER_CONFIG: home.dockerConfig, TMPDIR: tmpdir(), ...extra };
}

/** Runs `node bin/hoist.js …args` and resolves with its exit code and output (never rejects on a non-zero exit). */
export function runHoist(args: string[], home: TempHome, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<HoistRun> {
  return runProcess(process.execPath, [BIN, ...args], cliEnv(home, env), timeoutMs);
}

export function runProcess(command: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<HoistRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, all: `${stdout}\n${stderr}` });
    });
  });
}

/** Whether util-linux `script` is there to give the CLI a pseudo-terminal. */
export function hasScript(): boolean {
  const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 && /util-linux/.test(probe.stdout);
}

/** Single-quotes a word for `sh -c`. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Command line of the CLI for `script -c`. */
export function hoistCommandLine(args: string[]): string {
  return [process.execPath, BIN, ...args].map(shellQuote).join(' ');
}

const MANIFEST_ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json';

/** Status of a manifest HEAD (404 when the tag or digest is absent). */
export async function manifestStatus(registry: { url: string }, repository: string, reference: string, authorization?: string): Promise<number> {
  const res = await rawRequest(`${registry.url}/v2/${repository}/manifests/${reference}`, {
    method: 'HEAD',
    headers: {
      accept: MANIFEST_ACCEPT,
      ...(authorization ? { authorization } : {}),
    },
  });
  return res.status;
}

/** The digest a tag or digest resolves to on a registry (Docker-Content-Digest of a manifest HEAD), or undefined when absent. */
export async function manifestDigest(registry: { url: string }, repository: string, reference: string): Promise<string | undefined> {
  const res = await rawRequest(`${registry.url}/v2/${repository}/manifests/${reference}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  const digest = res.headers['docker-content-digest'];
  return res.status === 200 && typeof digest === 'string' ? digest : undefined;
}
