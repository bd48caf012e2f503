/**
 * A minimal Docker registry token service (the "realm" of `auth.token`), for tests.
 *
 * It implements what clients of a token-auth registry rely on:
 *  - `GET /token?service=…&scope=…&scope=…` with optional HTTP Basic credentials
 *    (docker, containers/image, crane, regclient), and
 *  - `POST /token` with an OAuth2 password grant form (some clients prefer it), or a
 *    refresh-token grant for an identity token (docker's `identitytoken`),
 * and answers `{token, access_token, expires_in, issued_at}`.
 *
 * Tokens are ES256 JWTs whose header carries the signing certificate in `x5c`. docker-registry
 * 2.8 accepts a token when that certificate chains to its `rootcertbundle`; the certificate
 * here is self-signed and is itself the bundle. Node cannot create X.509 certificates, so the
 * P-256 key and the certificate come from the `openssl` CLI.
 *
 * Grants are deliberately simple: a known user gets every action it asks for on every
 * repository, an anonymous caller gets a token with an empty access list (the registry then
 * answers 401 insufficient_scope), and a wrong password gets 401 from the issuer itself.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** distribution 2.8 accepts `exp`/`nbf` this many seconds either side of its clock. */
export const REGISTRY_CLOCK_LEEWAY_SECONDS = 60;

/** One access entry of a token, as in the `access` claim. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** A parsed `scope` value such as `repository:team/app:pull,push`. */
export interface ParsedScope {
  type: string;
  name: string;
  actions: string[];
}

/** What the issuer recorded about one request to its token endpoint. */
export interface TokenRequestRecord {
  method: 'GET' | 'POST';
  /** Every scope asked for, one entry per scope (multiple `scope` params and space-separated ones are split). */
  scope: string[];
  /** The authenticated user, or the `account` parameter when the caller was anonymous. */
  account?: string;
  /** Whether valid credentials came with the request. */
  authenticated: boolean;
  service?: string;
  /** The HTTP status the issuer answered. */
  status: number;
}

/** Claims of the JWTs this issuer signs. */
export interface TokenClaims {
  iss: string;
  sub: string;
  /** A string, not an array: distribution 2.8 rejects an array `aud`. */
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: AccessEntry[];
}

/** Options of {@link startTokenIssuer}. */
export interface TokenIssuerOptions {
  /** username → password. Default `{alice: 'wonderland-secret'}`. */
  users?: Record<string, string>;
  /** Lifetime announced in `expires_in` and written to `exp`. Default 300. */
  ttlSeconds?: number;
  /** Expected `service` (and the `aud` claim). Default `hoist-test-registry`. */
  service?: string;
  /** The `iss` claim; the registry's `auth.token.issuer` must match. Default `hoist-test-issuer`. */
  issuer?: string;
  /**
   * When true, `exp` is set {@link REGISTRY_CLOCK_LEEWAY_SECONDS} earlier than `iat + ttlSeconds`,
   * so that docker-registry (which tolerates 60 s of clock skew) really starts rejecting the token
   * with `error="invalid_token"` after `ttlSeconds`. Use with a small `ttlSeconds` to test genuine
   * expiry against the real registry; it is timing-based, so prefer the proxy's `expireToken`
   * behaviour for deterministic tests.
   */
  exactExpiry?: boolean;
  /** Leave `expires_in` out of the response (clients must then assume 60 s). */
  omitExpiresIn?: boolean;
  /**
   * Overrides the grant policy: the actions to grant for one requested scope.
   * `account` is undefined for anonymous callers. Default: see {@link defaultGrant}.
   */
  grant?: (account: string | undefined, scope: ParsedScope) => string[];
  /** Identity (refresh) tokens accepted by the refresh-token grant: token → user. Default none. */
  refreshTokens?: Record<string, string>;
}

/** A token request held by {@link TokenIssuer.holdNext}. */
export interface HeldRequest {
  /** Settles when the held request has arrived. */
  arrived: Promise<void>;
  /** Lets it be answered. */
  release(): void;
}

/** A running token issuer. */
export interface TokenIssuer {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** The token endpoint (`${url}/token`), i.e. the registry's `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM file of the self-signed signing certificate: the registry's `rootcertbundle`. */
  certPath: string;
  /** Every request to the token endpoint, in order. */
  requests: TokenRequestRecord[];
  /** Decoded claims of every token issued, in order. */
  issued: TokenClaims[];
  /**
   * Marks every token issued so far as revoked. The registry cannot be told (it only checks
   * signature and time), so this has an effect only through a proxy using
   * `rejectRevokedTokens(issuer)` from `proxy.ts`, which answers those tokens with the registry's
   * own `invalid_token` challenge. Tokens issued afterwards are valid.
   */
  revokeAll(): void;
  /** True when `token` was issued before the last {@link TokenIssuer.revokeAll}. */
  isRevoked(token: string): boolean;
  /** Answers the next `times` token requests with `status` (and Retry-After, if given), as a token service in trouble. */
  failNext(status: number, times?: number, retryAfterSeconds?: number): void;
  /** Holds the next token request until released, so a test can act while it is in flight. */
  holdNext(): HeldRequest;
  stop(): Promise<void>;
}

/** Default users of the harness (also used by `startRegistry`). */
export const DEFAULT_USERS: Readonly<Record<string, string>> = { alice: 'wonderland-secret' };

/**
 * Default grant: anonymous callers get nothing; known users get what they asked for.
 * Unknown scope types (e.g. `registry:catalog:*`) are granted to users too, so catalog
 * requests work when a test wants them.
 */
export function defaultGrant(account: string | undefined, scope: ParsedScope): string[] {
  return account === undefined ? [] : scope.actions;
}

/**
 * Parses `type:name:actions`. The name may itself contain ':' in exotic clients
 * (`repository:host:5000/x:pull`), so type is up to the first ':' and actions after the last.
 */
export function parseScope(scope: string): ParsedScope | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

/** Decodes (without verifying) the payload of a JWT. */
export function decodeJwt(token: string): TokenClaims {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as TokenClaims;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** Generates a P-256 key and a self-signed certificate for it with the openssl CLI. */
async function makeSigningMaterial(directory: string, commonName: string): Promise<{ key: KeyObject; certPath: string; x5c: string }> {
  const keyPath = join(directory, 'signing-key.pem');
  const certPath = join(directory, 'signing-cert.pem');
  await execFileAsync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
  await execFileAsync('openssl', ['req', '-new', '-x509', '-key', keyPath, '-out', certPath, '-days', '3650', '-sha256', '-subj', `/CN=${commonName}`]);
  const key = createPrivateKey(await readFile(keyPath));
  const certificate = new X509Certificate(await readFile(certPath));
  // x5c holds standard base64 (not base64url) of the DER certificate (RFC 7515 §4.1.6).
  return { key, certPath, x5c: certificate.raw.toString('base64') };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Starts a token issuer on 127.0.0.1 (a free port).
 *
 * Pass its `realm`, `service`, `issuer` and `certPath` to the registry's `auth.token` section
 * (`startRegistry({auth: 'token'})` does this for you).
 */
export async function startTokenIssuer(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const users = options.users ?? DEFAULT_USERS;
  const ttlSeconds = options.ttlSeconds ?? 300;
  const service = options.service ?? 'hoist-test-registry';
  const issuerName = options.issuer ?? 'hoist-test-issuer';
  const grant = options.grant ?? defaultGrant;
  const directory = await mkdtemp(join(tmpdir(), 'hoist-token-issuer-'));
  const { key, certPath, x5c } = await makeSigningMaterial(directory, issuerName);

  const requests: TokenRequestRecord[] = [];
  const issued: TokenClaims[] = [];
  const revoked = new Set<string>();
  const failures: Array<{ status: number; retryAfterSeconds?: number }> = [];
  const holds: Array<{ arrive: () => void; released: Promise<void> }> = [];

  function signToken(account: string | undefined, scopes: string[]): { token: string; claims: TokenClaims } {
    const now = Math.floor(Date.now() / 1000);
    const access: AccessEntry[] = [];
    for (const raw of scopes) {
      const parsed = parseScope(raw);
      if (!parsed) continue;
      const actions = grant(account, parsed);
      if (actions.length === 0) continue;
      // Merge repeated scopes for one resource (e.g. pull then push on the same repository).
      const existing = access.find((a) => a.type === parsed.type && a.name === parsed.name);
      if (existing) existing.actions = [...new Set([...existing.actions, ...actions])];
      else access.push({ type: parsed.type, name: parsed.name, actions: [...new Set(actions)] });
    }
    const exp = now + ttlSeconds - (options.exactExpiry ? REGISTRY_CLOCK_LEEWAY_SECONDS : 0);
    const claims: TokenClaims = {
      iss: issuerName,
      sub: account ?? '',
      aud: service,
      exp,
      // nbf must not be after exp for other verifiers; distribution only checks each bound.
      nbf: Math.min(now, exp),
      iat: now,
      jti: randomUUID(),
      access,
    };
    const header = { alg: 'ES256', typ: 'JWT', x5c: [x5c] };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    // JWS ES256 wants the raw r||s signature (IEEE P1363), not Node's default DER.
    const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
    issued.push(claims);
    return { token: `${signingInput}.${base64url(signature)}`, claims };
  }

  function answerToken(res: ServerResponse, account: string | undefined, scopes: string[]): void {
    const { token, claims } = signToken(account, scopes);
    const body: Record<string, unknown> = {
      token,
      access_token: token,
      issued_at: new Date(claims.iat * 1000).toISOString(),
    };
    if (!options.omitExpiresIn) body.expires_in = ttlSeconds;
    sendJson(res, 200, body);
  }

  /** Checks Basic credentials; undefined = none given, null = wrong, string = user. */
  function basicUser(req: IncomingMessage): string | undefined | null {
    const header = req.headers.authorization;
    if (!header) return undefined;
    const match = /^Basic\s+(.+)$/i.exec(header);
    if (!match?.[1]) return null;
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const user = decoded.slice(0, colon);
    return Object.prototype.hasOwnProperty.call(users, user) && users[user] === decoded.slice(colon + 1) ? user : null;
  }

  function splitScopes(values: string[]): string[] {
    // OAuth2 allows several scopes in one parameter separated by spaces; Docker clients
    // usually repeat the parameter instead. Accept both.
    return values.flatMap((v) => v.split(' ')).filter((s) => s !== '');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/token') {
      sendJson(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'only /token exists' }] });
      return;
    }
    const hold = holds.shift();
    if (hold) {
      hold.arrive();
      await hold.released;
    }
    const failure = failures.shift();
    if (failure) {
      requests.push({ method: req.method === 'POST' ? 'POST' : 'GET', scope: [], authenticated: false, status: failure.status });
      sendJson(res, failure.status, { errors: [{ code: 'UNAVAILABLE', message: 'injected by the test issuer' }] }, failure.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(failure.retryAfterSeconds) });
      return;
    }
    if (req.method === 'GET') {
      const scopes = splitScopes(url.searchParams.getAll('scope'));
      const serviceParam = url.searchParams.get('service') ?? undefined;
      const user = basicUser(req);
      const record: TokenRequestRecord = {
        method: 'GET',
        scope: scopes,
        account: user ?? url.searchParams.get('account') ?? undefined,
        authenticated: typeof user === 'string',
        service: serviceParam,
        status: 200,
      };
      requests.push(record);
      if (user === null) {
        record.status = 401;
        sendJson(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }, { 'WWW-Authenticate': `Basic realm="${issuerName}"` });
        return;
      }
      answerToken(res, user, scopes);
      return;
    }
    if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const scopes = splitScopes(form.getAll('scope'));
      const username = form.get('username') ?? undefined;
      const record: TokenRequestRecord = {
        method: 'POST',
        scope: scopes,
        account: username,
        authenticated: false,
        service: form.get('service') ?? undefined,
        status: 200,
      };
      requests.push(record);
      if (form.get('grant_type') === 'refresh_token') {
        const refreshToken = form.get('refresh_token') ?? '';
        const user = Object.prototype.hasOwnProperty.call(options.refreshTokens ?? {}, refreshToken) ? options.refreshTokens![refreshToken] : undefined;
        record.account = user;
        if (user === undefined) {
          record.status = 401;
          sendJson(res, 401, { error: 'invalid_grant' });
          return;
        }
        record.authenticated = true;
        answerToken(res, user, scopes);
        return;
      }
      if (form.get('grant_type') !== 'password') {
        record.status = 400;
        sendJson(res, 400, { error: 'unsupported_grant_type' });
        return;
      }
      if (username === undefined || !Object.prototype.hasOwnProperty.call(users, username) || users[username] !== form.get('password')) {
        record.status = 401;
        sendJson(res, 401, { error: 'invalid_grant' });
        return;
      }
      record.authenticated = true;
      answerToken(res, username, scopes);
      return;
    }
    sendJson(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(error) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    realm: `${url}/token`,
    service,
    issuer: issuerName,
    certPath,
    requests,
    issued,
    failNext(status, times = 1, retryAfterSeconds) {
      for (let i = 0; i < times; i++) failures.push({ status, ...(retryAfterSeconds !== undefined && { retryAfterSeconds }) });
    },
    holdNext() {
      let arrive!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((resolve) => (arrive = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      holds.push({ arrive, released });
      return { arrived, release };
    },
    revokeAll() {
      for (const claims of issued) revoked.add(claims.jti);
    },
    isRevoked(token: string) {
      try {
        return revoked.has(decodeJwt(token).jti);
      } catch {
        return false;
      }
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(directory, { recursive: true, force: true });
    },
  };
}
