/**
 * A job's source credentials: sealed into the job at submission, opened by the worker, and
 * combined with the deployment's target credentials into the job's CredentialProvider.
 */
import { acrTokenPassword, type IdentityCredentials } from '../azure/acr-credentials.js';
import { firstOf, type CredentialProvider, type Credentials } from '../registry/credentials.js';
import { ConfigurationError } from './errors.js';
import type { SecretBox } from './secret-box.js';

/** Seals credentials for one job. Throws ConfigurationError when HOIST_SECRET_KEY is not set. */
export function sealCredentials(box: SecretBox | undefined, jobId: string, credentials: Credentials): string {
  if (!box) {
    throw new ConfigurationError(
      'HOIST_SECRET_KEY',
      'this deployment cannot accept source credentials: HOIST_SECRET_KEY is not set, or is not base64 of 32 random bytes (e.g. from `openssl rand -base64 32`; the host reports which when it starts); import public images without "username"/"password", or ask the operator to set it',
    );
  }
  return box.seal(JSON.stringify({ username: credentials.username, password: credentials.password }), jobId);
}

/** Opens a job's sealed credentials. Throws ConfigurationError (no key) or SecretError (wrong key, altered). */
export function openCredentials(box: SecretBox | undefined, jobId: string, sealed: string): Credentials {
  if (!box) {
    throw new ConfigurationError('HOIST_SECRET_KEY', `job ${jobId} has source credentials but HOIST_SECRET_KEY is not set or not valid: restore the key the job was submitted under`);
  }
  const { username, password } = JSON.parse(box.open(sealed, jobId)) as Credentials;
  return { username, password };
}

export interface JobCredentials {
  /**
   * Names this provider, never a secret: transports and their tokens are kept per provider id,
   * so each job (and each use of it) gets its own, e.g. `job:<id>`.
   */
  id: string;
  sourceRegistry: string;
  /** A password without a username is a token (azure/acr-credentials.ts `acrTokenPassword`). */
  source?: Credentials;
  targetRegistry: string;
  target?: Credentials;
  /** The app's Azure identity, for any ACR the credentials above leave without. */
  identity?: IdentityCredentials;
}

/** A job's credentials, and which registries an Azure identity answered for. */
export interface JobCredentialProvider extends CredentialProvider {
  /** The Azure identity in words when one provided `registry`'s credentials (for explainAcrRefusal). */
  answeredFor(registry: string): string | undefined;
}

/**
 * Credentials by registry for one job. When source and target are the same registry, the
 * deployment's target credentials win: they must push, and a registry's push rights include pull.
 * A source password without a username is taken as an Entra or ACR token; an ACR that none of
 * these cover gets the app's identity (target with no HOIST_TARGET_USERNAME, source with no
 * credentials), as az acr import does.
 */
export function jobCredentials(c: JobCredentials): JobCredentialProvider {
  const sourceBasic = c.source?.username ? c.source : undefined;
  const basic: CredentialProvider = {
    id: c.id,
    getCredentials(registry) {
      const found = registry === c.targetRegistry && c.target ? c.target : registry === c.sourceRegistry && sourceBasic ? sourceBasic : undefined;
      return Promise.resolve(found && { kind: 'basic', username: found.username, password: found.password });
    },
  };
  const token = c.source && !c.source.username ? acrTokenPassword(c.sourceRegistry, c.source.password, `${c.id}:token`) : undefined;
  const chain = firstOf(basic, ...(token ? [token] : []), ...(c.identity ? [c.identity] : []));
  return {
    // The job's id alone: the identity's refresh tokens are its own, shared by every job.
    id: c.id,
    getCredentials: (registry, scopes, options) => chain.getCredentials(registry, scopes, options),
    answeredFor: (registry) => token?.answeredFor(registry) ?? c.identity?.answeredFor(registry),
  };
}

/** Replaces every occurrence of the given secrets in `text`, for messages and logs. */
export function redact(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 4) out = out.split(secret).join('[REDACTED]');
  }
  return out;
}
