/**
 * The referrers tag schema on a target without the referrers API: tag `sha256-<hex>` holds an
 * OCI index of the subject's referrers. Hoist merges into it, adding entries and never dropping
 * any, so referrers pushed by others survive.
 */
import type { Descriptor, Manifest } from '../registry/client.js';
import { sha256 } from '../registry/digest.js';
import { MediaType } from '../registry/media-types.js';
import type { Reference } from '../registry/reference.js';
import { descriptorOf, type ManifestNode } from './manifest.js';
import type { TargetStore } from './store.js';

/**
 * The fallback index to write, or undefined when `current` already lists every referrer. With no
 * index on the target yet, the source's own fallback index is reused byte for byte when it lists
 * exactly these referrers.
 */
export function mergeFallbackIndex(current: Manifest | undefined, referrers: ManifestNode[], sourceIndex: Manifest | undefined): Manifest | undefined {
  const wanted = referrers.map(descriptorOf);
  if (!current) {
    if (sourceIndex && sameDigests(listed(sourceIndex), wanted)) return sourceIndex;
    return indexOf({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: wanted });
  }
  const json = JSON.parse(current.bytes.toString('utf8')) as { manifests?: Descriptor[] };
  const have = new Set((json.manifests ?? []).map((d) => d.digest));
  const missing = wanted.filter((d) => !have.has(d.digest));
  if (missing.length === 0) return undefined;
  json.manifests = [...(json.manifests ?? []), ...missing];
  return indexOf(json);
}

/**
 * Whether the target keeps `subject`'s referrers itself (it serves the referrers API). Asked only
 * when this copy pushed none of them (all were there already) and so never saw the OCI-Subject
 * answer that says so: a copy run again must not add a fallback tag to such a registry.
 */
export async function targetHasReferrersApi(client: TargetStore, repository: Reference, subject: string): Promise<boolean> {
  return (await client.referrers(repository, subject)) !== undefined;
}

function listed(index: Manifest): Descriptor[] {
  return (JSON.parse(index.bytes.toString('utf8')) as { manifests?: Descriptor[] }).manifests ?? [];
}

function sameDigests(a: Descriptor[], b: Descriptor[]): boolean {
  const set = new Set(a.map((d) => d.digest));
  return a.length === b.length && b.every((d) => set.has(d.digest));
}

function indexOf(json: unknown): Manifest {
  const bytes = Buffer.from(JSON.stringify(json));
  return { digest: sha256(bytes), mediaType: MediaType.OciIndex, bytes };
}
