/**
 * An Azure Resource Manager fixture for container registry lookups:
 * `GET {resourceId}?api-version=2023-07-01` with `Authorization: Bearer <Entra token for ARM>`
 * answers the registry resource (`id`, `name`, `type`, `location`, `properties.loginServer`, …) as
 * ARM does. Failures carry ARM's error body `{"error": {"code", "message"}}`:
 * - no or bad token: 401 `AuthenticationFailed` (`InvalidAuthenticationTokenAudience` for a token
 *   of another audience), with ARM's `WWW-Authenticate: Bearer authorization_uri=…` header;
 * - a registry the caller may not read: 403 `AuthorizationFailed`;
 * - an unknown registry in a known resource group: 404 `ResourceNotFound`; an unknown resource
 *   group: 404 `ResourceGroupNotFound`;
 * - another api-version: 400 `InvalidApiVersionParameter`.
 *
 * Resource ids are matched case-insensitively, as ARM does.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ARM_AUDIENCE, type EntraTenant } from './entra-tenant.js';
import { listenOnLoopback } from './ports.js';

export const ARM_API_VERSION = '2023-07-01';

/** One registry the fixture knows. */
export interface ArmRegistry {
  /** `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerRegistry/registries/<name>` */
  resourceId: string;
  loginServer: string;
  /** Object ids allowed to read it (Reader or any role on it); others get 403. */
  readers: string[];
}

/** Options of {@link startArmFixture}. */
export interface ArmFixtureOptions {
  tenant: EntraTenant;
  registries: ArmRegistry[];
  /** The audience ARM tokens must carry. Default {@link ARM_AUDIENCE}. */
  audience?: string;
}

/** A running fixture. */
export interface ArmFixture {
  /** `http://127.0.0.1:PORT`: the value of HOIST_ARM_ENDPOINT. */
  url: string;
  host: string;
  /** Every request: path, status and the caller's object id when the token was good. */
  requests: Array<{ path: string; status: number; principal?: string }>;
  stop(): Promise<void>;
}

const RESOURCE_ID = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerRegistry\/registries\/([^/]+)$/i;

/** Builds a registry resource id. */
export function registryResourceId(subscription: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/providers/Microsoft.ContainerRegistry/registries/${name}`;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), 'x-ms-request-id': randomUUID(), ...headers });
  res.end(text);
}

/** Starts the fixture on a free loopback port. */
export async function startArmFixture(options: ArmFixtureOptions): Promise<ArmFixture> {
  const audience = options.audience ?? ARM_AUDIENCE;
  const requests: ArmFixture['requests'] = [];

  function handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://arm');
    const record: ArmFixture['requests'][number] = { path: url.pathname, status: 200 };
    requests.push(record);
    const fail = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, { error: { code, message } }, headers);
    };
    const challenge = { 'www-authenticate': `Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."` };
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer === undefined) return fail(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.", challenge);
    const verdict = options.tenant.verify(bearer, [audience]);
    if (!verdict.ok) {
      if (verdict.reason === 'audience') return fail(401, 'InvalidAuthenticationTokenAudience', "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences.", challenge);
      if (verdict.reason === 'expired') return fail(401, 'ExpiredAuthenticationToken', 'The access token expiry UTC time is earlier than current UTC time.', challenge);
      return fail(401, 'InvalidAuthenticationToken', 'The access token is invalid.', challenge);
    }
    record.principal = verdict.claims.oid;
    if (req.method !== 'GET') return fail(405, 'MethodNotAllowed', 'only GET is served by this fixture');
    if (url.searchParams.get('api-version') !== ARM_API_VERSION) {
      return fail(400, 'InvalidApiVersionParameter', `The api-version '${url.searchParams.get('api-version') ?? ''}' is invalid. The supported versions are '${ARM_API_VERSION}'.`);
    }
    const match = RESOURCE_ID.exec(url.pathname);
    if (!match) return fail(400, 'InvalidResourceType', `The resource type could not be found in the namespace for api version '${ARM_API_VERSION}'.`);
    const [, , resourceGroup, name] = match as unknown as [string, string, string, string];
    const registry = options.registries.find((r) => r.resourceId.toLowerCase() === url.pathname.toLowerCase());
    const groupKnown = options.registries.some((r) => RESOURCE_ID.exec(r.resourceId)?.[2]?.toLowerCase() === resourceGroup.toLowerCase());
    // ARM answers 403 before it says whether a resource exists to a caller without read access.
    if (!registry || !registry.readers.includes(verdict.claims.oid)) {
      if (!registry && !groupKnown) return fail(404, 'ResourceGroupNotFound', `Resource group '${resourceGroup}' could not be found.`);
      if (registry || !options.registries.some((r) => r.readers.includes(verdict.claims.oid))) {
        return fail(
          403,
          'AuthorizationFailed',
          `The client '${verdict.claims.oid}' with object id '${verdict.claims.oid}' does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/read' over scope '${url.pathname}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
        );
      }
      return fail(404, 'ResourceNotFound', `The Resource 'Microsoft.ContainerRegistry/registries/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);
    }
    sendJson(res, 200, {
      sku: { name: 'Standard', tier: 'Standard' },
      type: 'Microsoft.ContainerRegistry/registries',
      id: registry.resourceId,
      name,
      location: 'westeurope',
      tags: {},
      properties: {
        loginServer: registry.loginServer,
        creationDate: '2026-01-01T00:00:00.0000000Z',
        provisioningState: 'Succeeded',
        adminUserEnabled: false,
        publicNetworkAccess: 'Enabled',
      },
    });
  }

  const server = createServer(handle);
  const address = await listenOnLoopback(server);
  return {
    url: address.url,
    host: address.host,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
