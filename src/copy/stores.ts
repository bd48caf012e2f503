/**
 * The stores a copy uses unless told otherwise: an OCI image layout for `oci:DIR` references
 * (one OciLayout per directory per copy) and a registry, reached through `hosts`, for the rest.
 */
import type { RegistryHosts } from '../registry/hosts.js';
import { isLayoutReference, type LayoutRegistry } from './layout-reference.js';
import { OciLayout } from './layout-store.js';
import { registryStores } from './registry-store.js';
import type { Stores } from './store.js';

/** Layouts on disk and registries through `hosts`, chosen by each reference. */
export function defaultStores(hosts: RegistryHosts): Stores {
  const registries = registryStores(hosts);
  const layouts = new Map<string, OciLayout>();
  const layout = (registry: LayoutRegistry): OciLayout => {
    let store = layouts.get(registry.path);
    if (!store) {
      store = new OciLayout(registry);
      layouts.set(registry.path, store);
    }
    return store;
  };
  return {
    source: (ref) => (isLayoutReference(ref) ? layout(ref.registry) : registries.source(ref)),
    target: (ref) => (isLayoutReference(ref) ? layout(ref.registry) : registries.target(ref)),
  };
}
