/**
 * Where a blob may already live on a target registry, so an upload can become a cross-repository
 * mount. Hints come from the source (same registry) and from what this process has seen on each
 * target; a wrong hint costs one declined POST, which then serves as the upload session.
 */
import type { Reference } from '../registry/reference.js';

/** Bounded, so a long-running worker's memory stays flat. */
const MAX_HINTS = 50_000;
const seen = new Map<string, string>();

function key(registryHost: string, digest: string): string {
  return `${registryHost}\n${digest}`;
}

/** Records that `repo` holds `digest`. */
export function rememberBlob(repo: Reference, digest: string): void {
  const k = key(repo.registry.apiHost, digest);
  seen.delete(k);
  seen.set(k, repo.repository);
  if (seen.size > MAX_HINTS) seen.delete(seen.keys().next().value as string);
}

/** Repositories of the target's registry to try mounting `digest` from, best first. */
export function mountCandidates(source: Reference, target: Reference, digest: string): string[] {
  const candidates: string[] = [];
  if (source.registry.apiHost === target.registry.apiHost && source.repository !== target.repository) candidates.push(source.repository);
  const hinted = seen.get(key(target.registry.apiHost, digest));
  if (hinted && hinted !== target.repository && !candidates.includes(hinted)) candidates.push(hinted);
  return candidates;
}
