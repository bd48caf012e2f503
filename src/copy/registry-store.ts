/**
 * The registry as a copy's source and target: the RegistryClient read as a SourceStore, and a
 * TargetStore whose blob push is blob-transfer.ts (mounts, chunked and resumable uploads,
 * checkpoints) with the host's mount hints.
 */
import type { Descriptor, Manifest, ManifestHead } from '../registry/client.js';
import { RegistryClient } from '../registry/client.js';
import type { RegistryHosts } from '../registry/hosts.js';
import type { Reference } from '../registry/reference.js';
import { transferBlob } from './blob-transfer.js';
import type { BlobPush, Stores, TargetStore } from './store.js';
import type { BlobOutcome } from './types.js';

/** A registry repository written through the distribution API. */
export class RegistryTarget implements TargetStore {
  constructor(readonly client: RegistryClient) {}

  headBlob(ref: Reference, digest: string, signal?: AbortSignal): Promise<number | undefined> {
    return this.client.headBlob(ref, digest, signal);
  }

  headManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestHead | undefined> {
    return this.client.headManifest(ref, signal);
  }

  getManifest(ref: Reference, signal?: AbortSignal): Promise<Manifest> {
    return this.client.getManifest(ref, signal);
  }

  putManifest(ref: Reference, manifest: Manifest, signal?: AbortSignal): Promise<{ subjectProcessed: boolean }> {
    return this.client.putManifest(ref, manifest, signal);
  }

  referrers(ref: Reference, digest: string, signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    return this.client.referrers(ref, digest, signal);
  }

  noteHeld(ref: Reference, digest: string): void {
    this.client.host.mountHints.remember(ref, digest);
  }

  /**
   * Mounts the blob when this registry holds it in a repository it knows of (the source's, when
   * the source is this registry, or one named by `mountFrom`), else uploads it.
   */
  async pushBlob(push: BlobPush, blob: Descriptor): Promise<BlobOutcome | 'paused'> {
    const { mountHints } = this.client.host;
    // The last holder is the likeliest to have finished: remembered last, it is tried first.
    for (const repository of push.mountFrom ?? []) mountHints.remember(push.targetRef.withRepository(repository), blob.digest);
    const outcome = await transferBlob({ ...push, target: this.client, mountFrom: mountHints.candidates(push.sourceRef, push.targetRef, blob.digest) }, blob);
    if (outcome !== 'paused') mountHints.remember(push.targetRef, blob.digest);
    return outcome;
  }
}

/** Stores for registries reached as `hosts` configures them: the client itself is the source. */
export function registryStores(hosts: RegistryHosts): Stores {
  return {
    source: (ref) => RegistryClient.for(ref.registry, hosts),
    target: (ref) => new RegistryTarget(RegistryClient.for(ref.registry, hosts)),
  };
}
