/**
 * Credentials from the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
 * as docker reads them: `credHelpers[registry]` first, then `credsStore`, then `auths` (`auth`,
 * `username`/`password`, or `identitytoken`, an OAuth2 refresh token). A helper is run as
 * `docker-credential-NAME get`, with the registry on stdin, as docker does.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import type { CredentialProvider, RegistryCredential } from './credentials.js';

/** A config larger than this is not a Docker config; refusing it keeps memory bounded. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** A helper's answer is one small JSON object. */
const MAX_HELPER_OUTPUT_BYTES = 64 * 1024;
/** docker waits on helpers without limit; a hung keychain prompt must not hang a copy for ever. */
export const DEFAULT_HELPER_TIMEOUT_MS = 30_000;
/** What docker's helpers print when they hold nothing for the registry (docker-credential-helpers' errCredentialsNotFound). */
const NOT_FOUND = 'credentials not found in native keychain';
/** The username with which a helper says its Secret is an identity token (docker's tokenUsername). */
const TOKEN_USERNAME = '<token>';

const AuthEntry = v.object({
  auth: v.optional(v.string()),
  username: v.optional(v.string()),
  password: v.optional(v.string()),
  identitytoken: v.optional(v.string()),
});
const DockerConfig = v.object({
  auths: v.optional(v.record(v.string(), AuthEntry), {}),
  credsStore: v.optional(v.string()),
  credHelpers: v.optional(v.record(v.string(), v.string()), {}),
});
type DockerConfig = v.InferOutput<typeof DockerConfig>;

const HelperAnswer = v.object({ Username: v.optional(v.string(), ''), Secret: v.string() });

/** A credential helper that is missing, failed, hung or answered nonsense. Never quotes what it printed. */
export class CredentialHelperError extends Error {
  override readonly name = 'CredentialHelperError';
  readonly code = 'CREDENTIAL_HELPER';
}

/** Options of {@link dockerConfigCredentials}. */
export interface DockerConfigOptions {
  /** The config file; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  path?: string;
  /** How long a credential helper may take. Default {@link DEFAULT_HELPER_TIMEOUT_MS}. */
  helperTimeoutInMs?: number;
  /** The environment helpers run with (and find on PATH). Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** The default location of the Docker config. */
export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/**
 * A provider reading the Docker config once, now. A missing file means no credentials; a file
 * that is not a Docker config is an error naming it.
 */
export function dockerConfigCredentials(options: DockerConfigOptions = {}): CredentialProvider {
  const env = options.env ?? process.env;
  const path = options.path ?? defaultDockerConfigPath(env);
  const config = readConfig(path);
  const timeoutInMs = options.helperTimeoutInMs ?? DEFAULT_HELPER_TIMEOUT_MS;
  return {
    id: `docker-config:${path}`,
    async getCredentials(registry, _scopes, opts) {
      if (!config) return undefined;
      const keys = registry === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry, `https://${registry}`, `http://${registry}`];
      const helper = keys.map((k) => config.credHelpers[k]).find((h) => h !== undefined) ?? config.credsStore;
      if (helper) {
        // docker asks helpers by the server address it logged in with: Docker Hub's v1 URL, else the host.
        const found = await runHelper(helper, keys[0], { timeoutInMs, env, signal: opts?.abortSignal });
        if (found) return found;
      }
      for (const key of keys) {
        const entry = config.auths[key];
        const found = entry && fromAuthEntry(entry);
        if (found) return found;
      }
      return undefined;
    },
  };
}

function readConfig(path: string): DockerConfig | undefined {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_CONFIG_BYTES) throw new CredentialHelperError(`the Docker config ${path} is over ${MAX_CONFIG_BYTES} bytes; a Docker config is far smaller`);
    text = bytes.toString('utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message would quote the file, which holds secrets.
    throw new CredentialHelperError(`the Docker config ${path} is not JSON: fix it or point DOCKER_CONFIG at another directory`);
  }
  const result = v.safeParse(DockerConfig, parsed);
  if (!result.success) {
    const field = v.getDotPath(result.issues[0]) ?? '(top level)';
    throw new CredentialHelperError(`the Docker config ${path} is not valid at "${field}": auths must map registries to {auth, username, password, identitytoken} strings, credsStore be a helper name, credHelpers map registries to helper names`);
  }
  return result.output;
}

function fromAuthEntry(entry: v.InferOutput<typeof AuthEntry>): RegistryCredential | undefined {
  if (entry.identitytoken) return { kind: 'identityToken', token: entry.identitytoken };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { kind: 'basic', username: entry.username, password: entry.password };
  return undefined;
}

/** Runs `docker-credential-NAME get` for `server`; undefined when the helper holds nothing for it. */
export async function runHelper(name: string, server: string, options: { timeoutInMs: number; env: NodeJS.ProcessEnv; signal?: AbortSignal }): Promise<RegistryCredential | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new CredentialHelperError(`credential helper name "${name}" is not valid: give the NAME of a docker-credential-NAME program`);
  const program = `docker-credential-${name}`;
  const { exitCode, stdout } = await new Promise<{ exitCode: number | null; stdout: string }>((resolve, reject) => {
    // Not spawn's own `timeout`: its timer outlives a helper that failed to start, holding the
    // process open for the whole timeout.
    const child = spawn(program, ['get'], { env: options.env, stdio: ['pipe', 'pipe', 'ignore'], signal: options.signal });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill();
    }, options.timeoutInMs);
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_HELPER_OUTPUT_BYTES) chunks.push(chunk);
      else child.kill();
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ENOENT') reject(new CredentialHelperError(`credential helper ${program} (from the Docker config) is not on PATH: install it, or remove it from credsStore/credHelpers`));
      else if (error.name === 'AbortError') reject(error);
      else reject(new CredentialHelperError(`credential helper ${program} could not run (${error.code ?? error.name})`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new CredentialHelperError(`credential helper ${program} did not answer for ${server} within ${options.timeoutInMs} ms`));
      else if (size > MAX_HELPER_OUTPUT_BYTES) reject(new CredentialHelperError(`credential helper ${program} printed over ${MAX_HELPER_OUTPUT_BYTES} bytes`));
      else if (signal && !options.signal?.aborted) reject(new CredentialHelperError(`credential helper ${program} was killed by ${signal}`));
      else resolve({ exitCode: code, stdout: Buffer.concat(chunks).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(server);
  });
  if (exitCode !== 0) {
    if (stdout.trim() === NOT_FOUND) return undefined;
    // Its output is not quoted: a failing helper may print anything, secrets included.
    throw new CredentialHelperError(`credential helper ${program} failed for ${server} (exit code ${exitCode})`);
  }
  let answer;
  try {
    answer = v.parse(HelperAnswer, JSON.parse(stdout));
  } catch {
    throw new CredentialHelperError(`credential helper ${program} answered for ${server} with something other than {"Username", "Secret"} JSON`);
  }
  if (answer.Username === TOKEN_USERNAME) return { kind: 'identityToken', token: answer.Secret };
  return { kind: 'basic', username: answer.Username, password: answer.Secret };
}
