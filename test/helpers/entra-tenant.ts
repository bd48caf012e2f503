/**
 * A test Entra ID tenant: the token authority behind the managed-identity, ACR and ARM fixtures.
 * It signs access tokens shaped like Entra's v1 tokens (what managed identity and `az account
 * get-access-token` hand out: `aud` is the resource asked for, `iss`
 * `https://sts.windows.net/<tid>/`, `tid`, `oid`, `appid`, `iat`/`nbf`/`exp`), and verifies them
 * for the fixtures that receive them. RS256 with a key made per tenant: nothing outside a test
 * process ever trusts it.
 */
import { createPublicKey, generateKeyPairSync, randomUUID, sign, verify, type KeyObject } from 'node:crypto';

/** Entra's resource for ACR's data plane (the scope is `${ACR_AUDIENCE}/.default`). */
export const ACR_AUDIENCE = 'https://containerregistry.azure.net';
/** Public Azure's Resource Manager resource. */
export const ARM_AUDIENCE = 'https://management.azure.com';

/** The claims of a token this tenant signs. */
export interface EntraClaims {
  aud: string;
  iss: string;
  tid: string;
  oid: string;
  sub: string;
  appid: string;
  iat: number;
  nbf: number;
  exp: number;
  uti: string;
  ver: '1.0';
}

/** Why {@link EntraTenant.verify} refused a token. */
export type EntraRefusal = 'malformed' | 'signature' | 'audience' | 'expired' | 'tenant';

/** A running test tenant. */
export interface EntraTenant {
  /** The tenant id (`tid`). */
  tenantId: string;
  /** `https://sts.windows.net/<tid>/`, the `iss` of its v1 tokens. */
  issuer: string;
  /**
   * Signs a token for `principal` (the `oid`, also `sub`) and `audience`, valid for
   * `ttlSeconds` (default 3600). `tenantId` overrides `tid` (a token from another tenant).
   */
  issue(options: { principal: string; audience: string; ttlSeconds?: number; clientId?: string; tenantId?: string }): { token: string; claims: EntraClaims };
  /**
   * Checks a token's signature, audience (one of `audiences`, with or without a trailing '/', as
   * Entra writes either), expiry and tenant; answers its claims or why it was refused.
   */
  verify(token: string, audiences: readonly string[], now?: number): { ok: true; claims: EntraClaims } | { ok: false; reason: EntraRefusal };
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** Makes a tenant with a fresh RSA key. */
export function createEntraTenant(tenantId: string = randomUUID()): EntraTenant {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKey: KeyObject = createPublicKey(privateKey);
  const issuer = `https://sts.windows.net/${tenantId}/`;
  const kid = randomUUID();

  return {
    tenantId,
    issuer,
    issue({ principal, audience, ttlSeconds = 3600, clientId = principal, tenantId: tid = tenantId }) {
      const now = Math.floor(Date.now() / 1000);
      const claims: EntraClaims = {
        aud: audience,
        iss: `https://sts.windows.net/${tid}/`,
        tid,
        oid: principal,
        sub: principal,
        appid: clientId,
        iat: now,
        nbf: now,
        exp: now + ttlSeconds,
        uti: randomUUID(),
        ver: '1.0',
      };
      const header = { typ: 'JWT', alg: 'RS256', kid };
      const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
      return { token: `${input}.${base64url(sign('sha256', Buffer.from(input), privateKey))}`, claims };
    },
    verify(token, audiences, now = Date.now() / 1000) {
      const parts = token.split('.');
      if (parts.length !== 3) return { ok: false, reason: 'malformed' };
      const [header, payload, signature] = parts as [string, string, string];
      if (!verify('sha256', Buffer.from(`${header}.${payload}`), publicKey, Buffer.from(signature, 'base64url'))) return { ok: false, reason: 'signature' };
      let claims: EntraClaims;
      try {
        claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as EntraClaims;
      } catch {
        return { ok: false, reason: 'malformed' };
      }
      const audience = String(claims.aud).replace(/\/$/, '');
      if (!audiences.some((a) => a.replace(/\/$/, '') === audience)) return { ok: false, reason: 'audience' };
      if (!(claims.exp > now)) return { ok: false, reason: 'expired' };
      if (claims.tid !== tenantId || claims.iss !== issuer) return { ok: false, reason: 'tenant' };
      return { ok: true, claims };
    },
  };
}
