/**
 * Starts real registries (Debian's docker-registry 2.8.2, i.e. CNCF distribution) on loopback.
 *
 * Tests copy images between these registries, so they exercise Hoist against the real protocol
 * implementation rather than a mock. Each registry gets its own temp storage directory, a fixed
 * `http.secret` (so upload sessions survive a restart, which the resume tests need) and one of
 * three auth modes: none, htpasswd (Basic) or token (Bearer, with `token-issuer.ts`).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import bcrypt from 'bcryptjs';
import { freePort } from './ports.js';
import { killAndWait, spawnTracked } from './processes.js';
import { DEFAULT_USERS, startTokenIssuer, type TokenIssuer, type TokenIssuerOptions } from './token-issuer.js';

/**
 * The setting that lets the import service reach registries on loopback, where every test
 * registry listens: the service's outbound address policy refuses loopback otherwise.
 */
export const ALLOW_LOOPBACK_REGISTRIES: Readonly<Record<string, string>> = { HOIST_ALLOWED_PRIVATE_REGISTRIES: '127.0.0.1,localhost,[::1]' };

/** Path of the registry binary (Debian package `docker-registry`). */
export const REGISTRY_BINARY = process.env.HOIST_TEST_REGISTRY_BINARY ?? '/usr/bin/docker-registry';

/** Authentication mode of a test registry. */
export type RegistryAuth = 'none' | 'basic' | 'token';

/** Username and password accepted by a test registry (or its token issuer). */
export interface Credentials {
  username: string;
  password: string;
}

/** Options of {@link startRegistry}. */
export interface StartRegistryOptions {
  /** Default 'none'. */
  auth?: RegistryAuth;
  /** username → password for 'basic' and 'token'. Default `{alice: 'wonderland-secret'}`. */
  users?: Record<string, string>;
  /** Token lifetime for 'token' (see `TokenIssuerOptions.ttlSeconds`). */
  tokenTtlSeconds?: number;
  /** Further token issuer options for 'token' (exactExpiry, grant, …). */
  tokenIssuer?: Omit<TokenIssuerOptions, 'users' | 'ttlSeconds'>;
  /**
   * The realm the registry announces for 'token', given its issuer once started: a fault proxy in
   * front of the issuer, say. Default the issuer's own realm.
   */
  tokenRealm?: (issuer: TokenIssuer) => string | Promise<string>;
  /** Fixed port; default: a free one. */
  port?: number;
  /** Storage directory to use (and keep on stop); default: a new temp directory, removed on stop. */
  rootDirectory?: string;
  /** Extra top-level config sections merged over the generated config (e.g. `validation`). */
  extraConfig?: Record<string, unknown>;
  /** Serve TLS with this certificate and key (PEM file paths): `http.tls`, and `url` is https. */
  tls?: { certificate: string; key: string };
}

/** One request as recorded by the registry's access log. */
export interface RegistryAccessLogEntry {
  method: string;
  /** Request URI as received (path and query). */
  uri: string;
  status: number;
  /** Response bytes written. */
  bytes: number;
}

/** A running test registry. */
export interface TestRegistry {
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  /** `http://127.0.0.1:PORT` (`https://` when started with `tls`). */
  url: string;
  port: number;
  auth: RegistryAuth;
  /** The storage directory. */
  rootDirectory: string;
  /** Path of the generated config file. */
  configPath: string;
  /**
   * Every line the registry printed on stdout/stderr, across restarts. Each request produces
   * a logrus line (`msg="response completed" … http.request.method=GET … http.request.uri=/v2/
   * … http.response.status=200`) and an Apache combined-log line
   * (`127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"`); {@link TestRegistry.accessLog}
   * parses the latter.
   */
  logLines: string[];
  /** Credentials of the first user for 'basic'/'token'; undefined for 'none'. */
  credentials?: Credentials;
  /** All users for 'basic'/'token'. */
  users: Record<string, string>;
  /** The token issuer for 'token'. */
  tokenIssuer?: TokenIssuer;
  /** The requests the registry logged so far, parsed from {@link TestRegistry.logLines}. */
  accessLog(): RegistryAccessLogEntry[];
  /** Kills the registry (and its token issuer), waits for exit, removes a temp root directory. */
  stop(): Promise<void>;
  /**
   * Stops the registry process and starts it again on the same port, directory and config;
   * the token issuer keeps running. Upload sessions survive because `http.secret` is fixed.
   */
  restart(): Promise<void>;
}

/** The fixed `http.secret`: upload `_state` HMACs must verify across restarts. */
const HTTP_SECRET = 'hoist-test-fixed-http-secret';

/** Matches the combined-log line distribution writes for every request. */
const ACCESS_LOG_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+)/;

/** Parses distribution's access-log lines out of captured output. */
export function parseAccessLog(lines: readonly string[]): RegistryAccessLogEntry[] {
  const entries: RegistryAccessLogEntry[] = [];
  for (const line of lines) {
    // The logrus "response completed" lines also contain quotes; they start with `time=`.
    if (line.startsWith('time=')) continue;
    const match = ACCESS_LOG_LINE.exec(line);
    if (!match) continue;
    entries.push({ method: match[1] ?? '', uri: match[2] ?? '', status: Number(match[3]), bytes: Number(match[4]) });
  }
  return entries;
}

/**
 * Waits until the registry has logged every request made so far: sends a marker request and
 * polls until it shows up in the access log (the log arrives on the registry's stdout a little
 * after the response). Returns the log up to, not including, the marker.
 */
export async function settledAccessLog(registry: TestRegistry): Promise<ReturnType<TestRegistry['accessLog']>> {
  const marker = `hoist-log-marker-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  await (await fetch(`${registry.url}/v2/?${marker}`)).arrayBuffer();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const log = registry.accessLog();
    const at = log.findIndex((r) => r.uri.includes(marker));
    if (at !== -1) return log.slice(0, at);
    if (Date.now() > deadline) throw new Error(`marker request ${marker} never appeared in the access log of ${registry.host}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The Basic Authorization header for `credentials`. */
export function basicHeader(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** Polls `GET /v2/` until the registry answers 200 or 401, or the process dies. */
async function waitUntilReady(url: string, child: ChildProcess, logLines: string[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new RegistryStartError(`docker-registry exited (${child.exitCode ?? child.signalCode}) before it was ready`, logLines);
    }
    try {
      const status = await probe(`${url}/v2/`);
      if (status === 200 || status === 401) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new RegistryStartError(`docker-registry at ${url} not ready after ${timeoutMs} ms`, logLines);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The status of a GET, over http or https. The readiness probe only asks whether the registry
 * listens, so it does not verify a test certificate (what is tested is the client's verification).
 */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { rejectUnauthorized: false, timeout: 1000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy(new Error('no answer')));
    request.on('error', reject);
    request.end();
  });
}

/** Thrown when the registry does not come up; carries its output. */
export class RegistryStartError extends Error {
  constructor(
    message: string,
    readonly logLines: readonly string[],
  ) {
    super(`${message}\n${logLines.slice(-20).join('\n')}`);
    this.name = 'RegistryStartError';
  }
}

/**
 * Starts docker-registry on 127.0.0.1 and resolves once `GET /v2/` answers.
 *
 * @example
 * const reg = await startRegistry({ auth: 'token' });
 * try { … `${reg.host}/team/app:1.0` … } finally { await reg.stop(); }
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = options.auth ?? 'none';
  const users = options.users ?? { ...DEFAULT_USERS };
  const workDirectory = await mkdtemp(join(tmpdir(), 'hoist-registry-'));
  const rootDirectory = options.rootDirectory ?? join(workDirectory, 'storage');
  const configPath = join(workDirectory, 'config.yml');

  let tokenIssuer: TokenIssuer | undefined;
  const authConfig: Record<string, unknown> = {};
  if (auth === 'basic') {
    // bcrypt only: distribution's htpasswd reader rejects other hash kinds. Cost 5 keeps
    // both hashing here and verification on every request cheap.
    const htpasswdPath = join(workDirectory, 'htpasswd');
    const lines = Object.entries(users).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 5)}`);
    await writeFile(htpasswdPath, `${lines.join('\n')}\n`);
    authConfig.htpasswd = { realm: 'hoist-test-basic-realm', path: htpasswdPath };
  } else if (auth === 'token') {
    tokenIssuer = await startTokenIssuer({ ...options.tokenIssuer, users, ttlSeconds: options.tokenTtlSeconds });
    authConfig.token = {
      realm: options.tokenRealm ? await options.tokenRealm(tokenIssuer) : tokenIssuer.realm,
      service: tokenIssuer.service,
      issuer: tokenIssuer.issuer,
      rootcertbundle: tokenIssuer.certPath,
    };
  }

  const logLines: string[] = [];
  let port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;

  async function writeConfig(): Promise<void> {
    const config: Record<string, unknown> = {
      version: 0.1,
      // info level + access log: every request is logged with method, URI and status.
      log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: rootDirectory },
        delete: { enabled: true },
        // Never purge uploads behind a test's back (resume tests keep sessions open).
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: HTTP_SECRET, ...(options.tls && { tls: options.tls }) },
      ...(auth === 'none' ? {} : { auth: authConfig }),
      ...options.extraConfig,
    };
    // YAML is a superset of JSON, so the registry's YAML parser reads this as is.
    await writeFile(configPath, JSON.stringify(config, null, 2));
  }

  async function launch(): Promise<void> {
    const proc = spawnTracked(REGISTRY_BINARY, ['serve', configPath], {}, [workDirectory]);
    child = proc;
    const spawnError = new Promise<never>((_, reject) => proc.once('error', (error) => reject(error)));
    spawnError.catch(() => undefined);
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => logLines.push(line));
    }
    await Promise.race([waitUntilReady(`${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`, proc, logLines), spawnError]);
  }

  async function stopProcess(): Promise<void> {
    if (child) await killAndWait(child);
    child = undefined;
  }

  // A free port can be taken between freePort() and the registry's bind: retry on a new port
  // unless the caller asked for a specific one.
  for (let attempt = 0; ; attempt++) {
    await writeConfig();
    try {
      await launch();
      break;
    } catch (error) {
      await stopProcess();
      const portTaken = error instanceof RegistryStartError && error.logLines.some((l) => l.includes('address already in use'));
      if (!portTaken || options.port !== undefined || attempt >= 3) {
        await tokenIssuer?.stop();
        await rm(workDirectory, { recursive: true, force: true });
        throw error;
      }
      port = await freePort();
    }
  }

  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const [firstUser] = Object.entries(users);
  const credentials = auth !== 'none' && firstUser ? { username: firstUser[0], password: firstUser[1] } : undefined;
  let stopped = false;

  return {
    host: `127.0.0.1:${port}`,
    url,
    port,
    auth,
    rootDirectory,
    configPath,
    logLines,
    credentials,
    users,
    tokenIssuer,
    accessLog: () => parseAccessLog(logLines),
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess();
      await tokenIssuer?.stop();
      // The work directory holds config and htpasswd; storage lives inside it unless given.
      // A caller-supplied rootDirectory is outside it and is kept.
      await rm(workDirectory, { recursive: true, force: true });
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop()');
      await stopProcess();
      await launch();
    },
  };
}

/** The `Authorization` header value for Basic auth, for tests that talk to a registry directly. */
export function basicAuthorization(credentials: Credentials): string {
  return basicHeader(credentials);
}
