/**
 * A job's source credentials: sealed into the job at submission, opened by the worker, and
 * combined with the deployment's target credentials into the job's CredentialProvider.
 */
import type { CredentialProvider, Credentials } from '../registry/credentials.js';
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
  source?: Credentials;
  targetRegistry: string;
  target?: Credentials;
}

/**
 * Credentials by registry for one job. When source and target are the same registry, the
 * deployment's target credentials win: they must push, and a registry's push rights include pull.
 */
export function jobCredentials(c: JobCredentials): CredentialProvider {
  return {
    id: c.id,
    getCredentials(registry) {
      const found = registry === c.targetRegistry && c.target ? c.target : registry === c.sourceRegistry && c.source ? c.source : undefined;
      return Promise.resolve(found && { kind: 'basic', username: found.username, password: found.password });
    },
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
