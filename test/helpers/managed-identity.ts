/**
 * A managed-identity endpoint fixture, as Azure Functions and App Service provide one: the
 * platform sets `IDENTITY_ENDPOINT` (an http URL on loopback, e.g. `http://127.0.0.1:41741/msi/token`)
 * and `IDENTITY_HEADER`, and a token is
 * `GET {IDENTITY_ENDPOINT}?resource=<resource>&api-version=2019-08-01[&client_id=<id>]` with the
 * header `X-IDENTITY-HEADER: {IDENTITY_HEADER}`. The answer is
 * `{access_token, expires_on, resource, token_type, client_id}` with `expires_on` in epoch seconds
 * as a string, as App Service writes it; failures are `{statusCode, message, correlationId}`.
 *
 * @azure/identity's ManagedIdentityCredential (through MSAL's AppService source, which reads both
 * variables, sends exactly this GET over plain http and adds `client_id` for a user-assigned
 * identity) gets its tokens here: the real library, not a stub. Note that MSAL picks its source
 * and keeps its token cache per process, so a test file uses one endpoint, set in the environment
 * before the first token is asked for.
 *
 * The tokens come from an {@link EntraTenant}, so the ACR and ARM fixtures can verify them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { EntraClaims, EntraTenant } from './entra-tenant.js';
import { listenOnLoopback } from './ports.js';

/** The only api-version App Service's endpoint speaks in this shape. */
export const APP_SERVICE_API_VERSION = '2019-08-01';

/** Options of {@link startManagedIdentityEndpoint}. */
export interface ManagedIdentityOptions {
  tenant: EntraTenant;
  /** The system-assigned identity's object id; none when undefined (only user-assigned ones). */
  systemAssigned?: string;
  /** User-assigned identities: client id → object id. */
  userAssigned?: Record<string, string>;
  /** Lifetime of each token. Default 3600 s (MSAL refreshes a token 5 minutes before it expires). */
  ttlSeconds?: number;
}

/** One request the endpoint answered. */
export interface ManagedIdentityRequest {
  resource: string | null;
  apiVersion: string | null;
  clientId: string | null;
  /** Whether the secret header matched. */
  headerOk: boolean;
  status: number;
}

/** A running endpoint. */
export interface ManagedIdentityEndpoint {
  /** `http://127.0.0.1:PORT/msi/token`: the value of IDENTITY_ENDPOINT. */
  endpoint: string;
  /** The value of IDENTITY_HEADER. */
  header: string;
  /** `{IDENTITY_ENDPOINT, IDENTITY_HEADER}`, for process.env or a child's environment. */
  environment: Record<string, string>;
  requests: ManagedIdentityRequest[];
  /** Every token issued, with its claims, in order. */
  issued: Array<{ token: string; claims: EntraClaims }>;
  /** Answers the next `times` requests with `status` (a platform endpoint in trouble). */
  failNext(status: number, times?: number): void;
  stop(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Starts the endpoint on a free loopback port. */
export async function startManagedIdentityEndpoint(options: ManagedIdentityOptions): Promise<ManagedIdentityEndpoint> {
  const secret = randomBytes(16).toString('hex');
  const requests: ManagedIdentityRequest[] = [];
  const issued: Array<{ token: string; claims: EntraClaims }> = [];
  const failures: number[] = [];

  function refuse(res: ServerResponse, record: ManagedIdentityRequest, status: number, message: string): void {
    record.status = status;
    sendJson(res, status, { statusCode: status, message, correlationId: randomUUID() });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: ManagedIdentityRequest = {
      resource: url.searchParams.get('resource'),
      apiVersion: url.searchParams.get('api-version'),
      clientId: url.searchParams.get('client_id'),
      headerOk: req.headers['x-identity-header'] === secret,
      status: 200,
    };
    requests.push(record);
    if (url.pathname !== '/msi/token' || req.method !== 'GET') return refuse(res, record, 404, 'not found');
    const failure = failures.shift();
    if (failure !== undefined) return refuse(res, record, failure, 'injected by the test endpoint');
    if (!record.headerOk) return refuse(res, record, 401, 'the X-IDENTITY-HEADER header is missing or wrong');
    if (record.apiVersion !== APP_SERVICE_API_VERSION) return refuse(res, record, 400, `api-version must be ${APP_SERVICE_API_VERSION}`);
    if (!record.resource) return refuse(res, record, 400, 'the resource parameter is required');
    let principal: string | undefined;
    if (record.clientId !== null) {
      principal = options.userAssigned?.[record.clientId];
      if (principal === undefined) return refuse(res, record, 400, 'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.');
    } else {
      principal = options.systemAssigned;
      if (principal === undefined) return refuse(res, record, 400, 'Unable to load the proper Managed Identity.');
    }
    const minted = options.tenant.issue({ principal, audience: record.resource, ttlSeconds: options.ttlSeconds ?? 3600, clientId: record.clientId ?? principal });
    issued.push(minted);
    sendJson(res, 200, {
      access_token: minted.token,
      expires_on: String(minted.claims.exp),
      resource: record.resource,
      token_type: 'Bearer',
      client_id: minted.claims.appid,
    });
  }

  const server = createServer(handle);
  const address = await listenOnLoopback(server);
  const endpoint = `${address.url}/msi/token`;
  return {
    endpoint,
    header: secret,
    environment: { IDENTITY_ENDPOINT: endpoint, IDENTITY_HEADER: secret },
    requests,
    issued,
    failNext(status, times = 1) {
      for (let i = 0; i < times; i++) failures.push(status);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
