/**
 * Where a blob may already live on one target registry, so an upload can become a
 * cross-repository mount. Hints come from the source (same registry) and from what copies using
 * the same RegistryHosts have seen on the target; a wrong hint costs one declined POST, which then
 * serves as the upload session.
 */
import type { Reference } from './reference.js';

/** Bounded, so a long-running worker's memory stays flat. */
export const MAX_MOUNT_HINTS = 50_000;

/** The mount hints of one registry host (RegistryHost.mountHints). */
export class MountHints {
  /** digest → the repository last seen holding it, oldest first. */
  private readonly seen = new Map<string, string>();

  constructor(private readonly maxHints = MAX_MOUNT_HINTS) {}

  /** Records that `repo` holds `digest`. */
  remember(repo: Reference, digest: string): void {
    this.seen.delete(digest);
    this.seen.set(digest, repo.repository);
    if (this.seen.size > this.maxHints) this.seen.delete(this.seen.keys().next().value as string);
  }

  /** Repositories of the target's registry to try mounting `digest` from, best first. */
  candidates(source: Reference, target: Reference, digest: string): string[] {
    const candidates: string[] = [];
    if (source.registry.apiHost === target.registry.apiHost && source.repository !== target.repository) candidates.push(source.repository);
    const hinted = this.seen.get(digest);
    if (hinted && hinted !== target.repository && !candidates.includes(hinted)) candidates.push(hinted);
    return candidates;
  }
}
