/**
 * Where the service may connect, from its settings: the outbound address policy (trusting the
 * target registry and HOIST_ALLOWED_PRIVATE_REGISTRIES), and HOIST_ALLOWED_SOURCES. At submit the
 * source host is known, so a source the rules refuse is refused there, before a job exists;
 * whatever only the copy meets (a token realm, a redirect, a layer URL) is refused in the job.
 */
import { AddressRefusedError, createAddressPolicy, type AddressPolicy, type Resolver } from '../registry/address-policy.js';
import { LAYOUT_PREFIX } from '../copy/layout-reference.js';
import { matchesRegistryPattern, Registry } from '../registry/reference.js';
import type { RegistryHosts } from '../registry/hosts.js';
import { RequestError } from './errors.js';

/**
 * The address policy of a deployment. Every `targetRegistries` entry (HOIST_TARGET_REGISTRY) and
 * `allowedPrivateRegistries` are trusted: the operator chose them.
 */
export function serviceAddressPolicy(targetRegistries: readonly string[], allowedPrivateRegistries: readonly string[], resolve?: Resolver): AddressPolicy {
  const trusted = [...allowedPrivateRegistries];
  // Local OCI layouts (the local host's target when no registry is set) are no host to trust.
  for (const target of targetRegistries) if (!target.startsWith(LAYOUT_PREFIX)) trusted.push(target, new Registry(target).apiHost);
  return createAddressPolicy({ trustedHosts: trusted, ...(resolve && { resolve }) });
}

/**
 * Refuses, with a RequestError on `source`, a source registry outside HOIST_ALLOWED_SOURCES or
 * one the address policy refuses now. A name that does not resolve at submit is left to the job.
 */
export async function checkSource(registry: Registry, rules: { allowedSources?: readonly string[]; hosts: RegistryHosts }): Promise<void> {
  const { allowedSources } = rules;
  const addressPolicy = rules.hosts.addressPolicy;
  if (allowedSources && !allowedSources.some((p) => matchesRegistryPattern(registry.name, p))) {
    throw new RequestError(
      'SOURCE_NOT_ALLOWED',
      `the source registry ${registry.name} is not one this service imports from: the accepted sources are ${allowedSources.join(', ')} (HOIST_ALLOWED_SOURCES)`,
      'source',
    );
  }
  if (!addressPolicy) return;
  // The scheme (so the default port) is the hosts' to say: plain HTTP for loopback and listed hosts.
  const url = new URL(rules.hosts.host(registry).baseUrl);
  try {
    await addressPolicy.check(url.hostname, Number(url.port || (url.protocol === 'https:' ? 443 : 80)));
  } catch (error) {
    if (error instanceof AddressRefusedError) throw new RequestError('ADDRESS_REFUSED', `the source registry ${registry.name} is refused: ${error.message}`, 'source');
    // Not resolvable now: the job tries, and reports what it finds.
  }
}
