/**
 * An Azure Container Registry protocol fixture: ACR's token service (Azure/acr docs/AAD-OAuth.md)
 * in front of a real token-auth distribution registry. No ACR runs on these machines; this is the
 * published protocol, not a mock of Hoist's expectations.
 *
 * What a client sees, as on `<name>.azurecr.io`:
 * - `/v2/…` is the registry, whose 401 challenge is ACR's:
 *   `Bearer realm="http://HOST/oauth2/token",service="HOST"` (HOST is the fixture's
 *   `127.0.0.1:PORT`; http, since it is loopback);
 * - `POST /oauth2/exchange`, form `grant_type=access_token&service=HOST&tenant=<tid>&access_token=<Entra token>`
 *   → `{"refresh_token": <JWT>}`. The Entra token is checked: signature (the {@link EntraTenant}),
 *   audience (`https://containerregistry.azure.net`, or ARM's unless `armAudienceDisabled`, as a
 *   registry's `azureADAuthenticationAsArmPolicy` decides), expiry and tenant (the `tenant` field,
 *   when sent, must be the token's);
 * - `POST /oauth2/token`, form `grant_type=refresh_token&service=HOST&scope=…&refresh_token=<ACR refresh token>`
 *   → `{"access_token": <JWT>}` (ACR sends no `expires_in`); `scope` may repeat or be
 *   space-separated;
 * - `GET /oauth2/token?service=HOST&scope=…` with Basic `00000000-0000-0000-0000-000000000000:<refresh token>`
 *   (the null GUID says the password is an ACR token, as `docker login` with one sends it), or the
 *   admin user's Basic credentials when `adminUser` is set.
 *
 * Grants follow the role table (principal object id → AcrPull / AcrPush, on the registry or one
 * repository): a token carries the intersection of what was asked and what the roles allow
 * (partial grants are not errors, per the token spec); the registry then answers 401
 * `insufficient_scope` for what is missing. The access tokens themselves are signed by the
 * registry's own test token issuer (token-issuer.ts), so the real registry verifies them.
 *
 * Test hooks: `expireTokens()` makes every refresh and access token issued so far expired (the
 * token service refuses such refresh tokens; the registry front answers such access tokens with
 * `error="invalid_token"`, as a registry does for an expired token), so a test can make a token
 * lapse mid-copy at a chosen request instead of waiting for a clock; `onRequest` sees each
 * request before it is answered.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { ACR_AUDIENCE, ARM_AUDIENCE, type EntraTenant } from './entra-tenant.js';
import { listenOnLoopback } from './ports.js';
import { forwardedHeaders, relayedHeaders } from './proxy.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { parseScope } from './token-issuer.js';

/** The username that marks the password as an ACR refresh token (Azure/acr AAD-OAuth.md). */
export const ACR_NULL_GUID = '00000000-0000-0000-0000-000000000000';

/** A role assignment of the fixture's role table. */
export interface AcrRoleAssignment {
  /** The principal's object id (`oid` of its Entra tokens). */
  principal: string;
  /** AcrPull grants pull; AcrPush grants pull and push. */
  role: 'AcrPull' | 'AcrPush';
  /** One repository; the whole registry when undefined. */
  repository?: string;
}

/** Options of {@link startAcrFixture}. */
export interface AcrFixtureOptions {
  tenant: EntraTenant;
  roles?: AcrRoleAssignment[];
  /** Lifetime of ACR refresh tokens. Default 3 hours (ACR's). */
  refreshTokenTtlSeconds?: number;
  /** Lifetime of access tokens (the registry's issuer). Default 300 s. */
  accessTokenTtlSeconds?: number;
  /** Refuse ARM-audience Entra tokens at the exchange (the registry policy that disables them). */
  armAudienceDisabled?: boolean;
  /** An admin user (Basic at `/oauth2/token`), granted everything. */
  adminUser?: { username: string; password: string };
}

/** What the fixture recorded about one token-service request. */
export interface AcrTokenRequest {
  endpoint: 'exchange' | 'token';
  method: string;
  grantType?: string;
  service?: string;
  tenant?: string;
  /** The principal the request authenticated as (the Entra `oid`, or the admin user). */
  principal?: string;
  /** Scopes asked for (token requests). */
  scopes: string[];
  /** Scopes granted, with the actions the roles allowed (token requests). */
  granted: string[];
  status: number;
  /** Why it was refused, when it was. */
  refusal?: string;
}

/** A running fixture. */
export interface AcrFixture {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`: the login server, for image references. */
  host: string;
  /** The challenge's realm, `http://127.0.0.1:PORT/oauth2/token`. */
  realm: string;
  /** The registry behind it (push fixtures to it directly with `adminCredentials`). */
  registry: TestRegistry;
  /** Basic credentials of the registry behind the fixture (its own issuer), for seeding it directly. */
  adminCredentials: { username: string; password: string };
  requests: AcrTokenRequest[];
  /** Every refresh and access token issued, in order (to check none leaks into output). */
  issuedTokens: string[];
  /** The role table, mutable by tests. */
  roles: AcrRoleAssignment[];
  expireTokens(): void;
  onRequest(listener: (method: string, path: string) => void): void;
  stop(): Promise<void>;
}

interface RefreshClaims {
  jti: string;
  sub: string;
  nbf: number;
  exp: number;
  iat: number;
  iss: string;
  aud: string;
  version: string;
  grant_type: 'refresh_token';
  tenant: string;
  permissions: { actions: string[]; notActions: string[] };
  roles: string[];
}

/** Form bodies of the token service are small; refuse a larger one. */
const MAX_FORM_BYTES = 64 * 1024;
const INTERNAL_USER = 'acr-fixture';

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length <= MAX_FORM_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(length <= MAX_FORM_BYTES ? new URLSearchParams(Buffer.concat(chunks).toString('utf8')) : undefined));
    req.on('error', reject);
  });
}

function splitScopes(values: string[]): string[] {
  return values.flatMap((v) => v.split(' ')).filter((s) => s !== '');
}

/** Starts the fixture (and its registry) on free loopback ports. */
export async function startAcrFixture(options: AcrFixtureOptions): Promise<AcrFixture> {
  const internalPassword = randomBytes(16).toString('hex');
  const registry = await startRegistry({ auth: 'token', users: { [INTERNAL_USER]: internalPassword }, tokenTtlSeconds: options.accessTokenTtlSeconds ?? 300 });
  const issuer = registry.tokenIssuer!;
  const upstream = new URL(registry.url);
  const agent = new Agent({ keepAlive: true });
  const signingKey = randomBytes(32);
  const roles = [...(options.roles ?? [])];
  const requests: AcrTokenRequest[] = [];
  const issuedTokens: string[] = [];
  /** Tokens issued before the last expireTokens(). */
  const expired = new Set<string>();
  const listeners: Array<(method: string, path: string) => void> = [];
  let origin = '';
  let host = '';

  const refreshTtl = options.refreshTokenTtlSeconds ?? 3 * 3600;
  const audiences = options.armAudienceDisabled ? [ACR_AUDIENCE] : [ACR_AUDIENCE, ARM_AUDIENCE, 'https://management.core.windows.net'];

  function signRefreshToken(claims: RefreshClaims): string {
    const input = `${base64url(JSON.stringify({ typ: 'JWT', alg: 'HS256' }))}.${base64url(JSON.stringify(claims))}`;
    return `${input}.${createHmac('sha256', signingKey).update(input).digest('base64url')}`;
  }

  function readRefreshToken(token: string): RefreshClaims | string {
    const parts = token.split('.');
    if (parts.length !== 3) return 'not a JWT';
    const expected = createHmac('sha256', signingKey).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2]!, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'not a refresh token of this registry';
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as RefreshClaims;
    if (claims.aud !== host) return 'a refresh token of another registry';
    if (claims.exp <= Date.now() / 1000 || expired.has(token)) return 'the refresh token has expired';
    return claims;
  }

  /** The actions the role table allows `principal` on `scope`. */
  function allowed(principal: string, type: string, name: string, actions: string[]): string[] {
    if (principal === options.adminUser?.username) return actions;
    if (type !== 'repository') return [];
    const granted = new Set<string>();
    for (const assignment of roles) {
      if (assignment.principal !== principal) continue;
      if (assignment.repository !== undefined && assignment.repository !== name) continue;
      granted.add('pull');
      if (assignment.role === 'AcrPush') granted.add('push');
    }
    return actions.filter((a) => granted.has(a));
  }

  /** An access token for the granted part of `scopes`, from the registry's own issuer. */
  async function accessToken(principal: string, scopes: string[], record: AcrTokenRequest): Promise<string> {
    const url = new URL(issuer.realm);
    url.searchParams.set('service', issuer.service);
    for (const raw of scopes) {
      const scope = parseScope(raw);
      if (!scope) continue;
      const actions = allowed(principal, scope.type, scope.name, scope.actions);
      if (actions.length === 0) continue;
      const granted = `${scope.type}:${scope.name}:${actions.join(',')}`;
      record.granted.push(granted);
      url.searchParams.append('scope', granted);
    }
    const response = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${INTERNAL_USER}:${internalPassword}`).toString('base64')}` } });
    const body = (await response.json()) as { access_token: string };
    issuedTokens.push(body.access_token);
    return body.access_token;
  }

  function refuse(res: ServerResponse, record: AcrTokenRequest, status: number, code: string, message: string): void {
    record.status = status;
    record.refusal = message;
    sendJson(res, status, { errors: [{ code, message }] });
  }

  async function exchange(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const record: AcrTokenRequest = { endpoint: 'exchange', method: req.method ?? '', scopes: [], granted: [], status: 200 };
    requests.push(record);
    if (!form) return refuse(res, record, 400, 'BAD_REQUEST', 'the form is too large');
    record.grantType = form.get('grant_type') ?? undefined;
    record.service = form.get('service') ?? undefined;
    record.tenant = form.get('tenant') ?? undefined;
    if (record.grantType !== 'access_token') return refuse(res, record, 400, 'UNSUPPORTED', 'grant_type must be access_token');
    if (record.service !== host) return refuse(res, record, 400, 'BAD_REQUEST', `service must be ${host}`);
    const verdict = options.tenant.verify(form.get('access_token') ?? '', audiences);
    if (!verdict.ok) return refuse(res, record, 401, 'UNAUTHORIZED', `the Entra token was refused: ${verdict.reason}`);
    if (record.tenant !== undefined && record.tenant !== verdict.claims.tid) return refuse(res, record, 401, 'UNAUTHORIZED', 'the tenant does not match the token');
    record.principal = verdict.claims.oid;
    const now = Math.floor(Date.now() / 1000);
    const token = signRefreshToken({
      jti: randomUUID(),
      sub: verdict.claims.oid,
      nbf: now,
      exp: now + refreshTtl,
      iat: now,
      iss: 'Azure Container Registry',
      aud: host,
      version: '1.0',
      grant_type: 'refresh_token',
      tenant: verdict.claims.tid,
      permissions: { actions: ['*'], notActions: [] },
      roles: [],
    });
    issuedTokens.push(token);
    sendJson(res, 200, { refresh_token: token });
  }

  async function token(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const record: AcrTokenRequest = { endpoint: 'token', method: req.method ?? '', scopes: [], granted: [], status: 200 };
    requests.push(record);
    let principal: string;
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (!form) return refuse(res, record, 400, 'BAD_REQUEST', 'the form is too large');
      record.grantType = form.get('grant_type') ?? undefined;
      record.service = form.get('service') ?? undefined;
      record.scopes = splitScopes(form.getAll('scope'));
      if (record.grantType !== 'refresh_token') return refuse(res, record, 400, 'UNSUPPORTED', 'grant_type must be refresh_token');
      const claims = readRefreshToken(form.get('refresh_token') ?? '');
      if (typeof claims === 'string') return refuse(res, record, 401, 'UNAUTHORIZED', claims);
      principal = claims.sub;
    } else if (req.method === 'GET') {
      req.resume();
      record.service = url.searchParams.get('service') ?? undefined;
      record.scopes = splitScopes(url.searchParams.getAll('scope'));
      const match = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!match) return refuse(res, record, 401, 'UNAUTHORIZED', 'authentication required');
      const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
      if (username === ACR_NULL_GUID) {
        const claims = readRefreshToken(password);
        if (typeof claims === 'string') return refuse(res, record, 401, 'UNAUTHORIZED', claims);
        principal = claims.sub;
      } else if (options.adminUser && username === options.adminUser.username && password === options.adminUser.password) {
        principal = username;
      } else {
        return refuse(res, record, 401, 'UNAUTHORIZED', 'invalid username or password');
      }
    } else {
      return refuse(res, record, 405, 'UNSUPPORTED', 'method not allowed');
    }
    if (record.service !== host) return refuse(res, record, 400, 'BAD_REQUEST', `service must be ${host}`);
    record.principal = principal;
    sendJson(res, 200, { access_token: await accessToken(principal, record.scopes, record) });
  }

  /** The registry's challenge, as ACR words it: its own token service, its own name. */
  function acrChallenge(header: string): string {
    const scope = /scope="([^"]*)"/.exec(header)?.[1];
    const error = /error="([^"]*)"/.exec(header)?.[1];
    return `Bearer realm="${origin}/oauth2/token",service="${host}"${scope !== undefined ? `,scope="${scope}"` : ''}${error !== undefined ? `,error="${error}"` : ''}`;
  }

  function relay(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && expired.has(bearer)) {
      req.resume();
      sendJson(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': `Bearer realm="${origin}/oauth2/token",service="${host}",error="invalid_token"` });
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const upstreamReq = httpRequest(new URL(req.url ?? '/', upstream), { method: req.method, headers: forwardedHeaders(req.headers, upstream.host), agent }, (upstreamRes) => {
        const headers = relayedHeaders(upstreamRes.rawHeaders, upstream.origin, origin);
        for (let i = 0; i + 1 < headers.length; i += 2) {
          if (headers[i]!.toLowerCase() === 'www-authenticate') headers[i + 1] = acrChallenge(headers[i + 1]!);
        }
        res.writeHead(upstreamRes.statusCode ?? 502, headers);
        upstreamRes.pipe(res);
        upstreamRes.on('end', resolve);
        upstreamRes.on('error', reject);
      });
      upstreamReq.on('error', reject);
      req.pipe(upstreamReq);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fixture');
    for (const listener of listeners) listener(req.method ?? '', url.pathname);
    if (url.pathname === '/oauth2/exchange') {
      if (req.method !== 'POST') return sendJson(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] });
      return exchange(req, res);
    }
    if (url.pathname === '/oauth2/token') return token(req, res, url);
    if (url.pathname === '/v2' || url.pathname.startsWith('/v2/')) return relay(req, res);
    req.resume();
    sendJson(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 502, { errors: [{ code: 'UNAVAILABLE', message: 'the fixture could not reach its registry' }] });
      else res.destroy();
    });
  });
  const address = await listenOnLoopback(server);
  origin = address.url;
  host = address.host;

  return {
    url: origin,
    host,
    realm: `${origin}/oauth2/token`,
    registry,
    adminCredentials: { username: INTERNAL_USER, password: internalPassword },
    requests,
    issuedTokens,
    roles,
    expireTokens() {
      for (const token of issuedTokens) expired.add(token);
    },
    onRequest(listener) {
      listeners.push(listener);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
      await registry.stop();
    },
  };
}
