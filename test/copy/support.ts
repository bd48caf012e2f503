/** Shared pieces of the copy tests: references into test registries, and the skopeo checks. */
import { forRegistry, firstOf, type CredentialProvider } from '../../src/registry/credentials.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { parseReference, type Reference } from '../../src/registry/reference.js';
import type { FixtureSummary } from '../helpers/fixtures.js';
import type { TestRegistry } from '../helpers/registry.js';
import { skopeoCopyAll, skopeoInspectRaw } from '../helpers/skopeo.js';

export function ref(registry: { host: string }, path: string): Reference {
  return parseReference(`${registry.host}/${path}`);
}

/** Credentials for every registry given (those without auth are skipped). */
export function credentialsFor(...registries: TestRegistry[]): CredentialProvider {
  return firstOf(...registries.filter((r) => r.credentials).map((r) => forRegistry(r.host, r.credentials!)));
}

/** RegistryHosts of their own, with the credentials of every registry given. */
export function hostsFor(...registries: TestRegistry[]): RegistryHosts {
  return new RegistryHosts({ credentials: credentialsFor(...registries) });
}

/** A provider answering for `alias` (a proxy) what `provider` has for `registry` (the registry behind it). */
export function aliased(provider: CredentialProvider, alias: { host: string }, registry: { host: string }): CredentialProvider {
  return { id: `${provider.id}@${alias.host}`, getCredentials: (name, scopes, options) => provider.getCredentials(name === alias.host ? registry.host : name, scopes, options) };
}

/**
 * The independent check: every manifest of the fixture reads back from the target byte for byte
 * as it was pushed to the source, and skopeo can copy the whole target image out.
 */
export async function expectIdenticalInTarget(target: TestRegistry, repository: string, tag: string, manifests: FixtureSummary['manifests']): Promise<void> {
  for (const manifest of manifests) {
    const bytes = await skopeoInspectRaw(`${target.host}/${repository}@${manifest.digest}`, target.credentials);
    expect(bytes.equals(manifest.manifestBytes), `${manifest.digest} differs`).toBe(true);
  }
  const copied = await skopeoCopyAll(`${target.host}/${repository}:${tag}`, target.credentials);
  await copied.cleanup();
}
