/**
 * Where registry credentials come from: explicit values first, then environment variables, then
 * `~/.docker/config.json` auths, as docker and skopeo users expect.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Credentials {
  username: string;
  password: string;
}

/** Looks up credentials for a registry name (as written in references, e.g. `docker.io`). */
export type CredentialSource = (registry: string) => Credentials | undefined;

/** Parses `USER:PASSWORD` (the password may itself contain ':'). */
export function parseUserPassword(value: string, field: string): Credentials {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new Error(`${field} must be USER:PASSWORD`);
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** Reads `auths` from a docker config file; a missing file means no credentials. */
export function dockerConfigCredentials(path = join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json')): CredentialSource {
  let auths: Record<string, { auth?: string; username?: string; password?: string }> = {};
  try {
    auths = (JSON.parse(readFileSync(path, 'utf8')) as { auths?: typeof auths }).auths ?? {};
  } catch {
    return () => undefined;
  }
  return (registry) => {
    const keys = registry === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry, `https://${registry}`, `http://${registry}`];
    for (const key of keys) {
      const entry = auths[key];
      if (!entry) continue;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      }
      if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    }
    return undefined;
  };
}

/** Tries each source in turn. */
export function firstOf(...sources: CredentialSource[]): CredentialSource {
  return (registry) => {
    for (const source of sources) {
      const found = source(registry);
      if (found) return found;
    }
    return undefined;
  };
}

/** Credentials for one registry only. */
export function forRegistry(registry: string, credentials: Credentials): CredentialSource {
  return (name) => (name === registry ? credentials : undefined);
}
