/**
 * Turns a checked import request into the engine's references: the source (qualified by
 * `registry` when given) and the targets in the deployment's registry, with az acr import's
 * default target when none is listed. Also the stored form of a target and back.
 */
import { LAYOUT_PREFIX, parseLayoutReference, parseStoreReference } from '../copy/layout-reference.js';
import { parseReference, type Reference } from '../registry/reference.js';
import { RequestError } from './errors.js';
import type { ImportRequest } from './import-request.js';

export interface ResolvedImport {
  source: Reference;
  /** Tagged targets carry a tag; untagged (manifest-only) targets carry neither tag nor digest. */
  targets: Reference[];
}

/** A target as stored in a job: its reference string and whether it is tagged. */
export interface StoredTarget {
  /** `registry/repo:tag` for a tagged target, `registry/repo` for an untagged one. */
  reference: string;
  tagged: boolean;
}

/**
 * Resolves the source and targets. With neither `images` nor `untaggedRepositories`, the target is
 * the source's repo:tag, or for a digest-only source an untagged copy into the source's repository
 * (as az acr import does). Throws RequestError when a name becomes invalid in the target registry
 * (for example too long).
 */
export function resolveImport(request: ImportRequest, targetRegistry: string): ResolvedImport {
  const source = request.registry !== undefined ? parseReference(`${request.registry}/${request.source}`) : parseReference(request.source, { requireRegistry: true });
  const targets: Reference[] = [];
  const parseTarget = (name: string, field: string): Reference => {
    try {
      return targetReference(targetRegistry, name);
    } catch (error) {
      throw new RequestError('INVALID_REFERENCE', `"${field}" is not valid in the target registry ${targetRegistry}: ${(error as Error).message}`, field);
    }
  };
  request.images.forEach((image, i) => targets.push(parseTarget(image, `images[${i}]`)));
  request.untaggedRepositories.forEach((repository, i) => {
    const ref = parseTarget(repository, `untaggedRepositories[${i}]`);
    targets.push(ref.withRepository(ref.repository));
  });
  if (targets.length === 0) {
    const base = parseTarget(source.repository, 'source');
    targets.push(source.tag ? base.withTag(source.tag) : base.withRepository(base.repository));
  }
  const seen = new Set<string>();
  return { source, targets: targets.filter((t) => !seen.has(t.toString()) && seen.add(t.toString())) };
}

/**
 * `repo[:tag]` in a target registry of the settings: a registry `host[:port]`, or `oci:DIR`, the
 * local host's layouts. Throws InvalidReferenceError for a name the target cannot hold.
 */
export function targetReference(targetRegistry: string, name: string): Reference {
  return targetRegistry.startsWith(LAYOUT_PREFIX) ? layoutTarget(targetRegistry.slice(LAYOUT_PREFIX.length), name) : parseReference(`${targetRegistry}/${name}`);
}

/**
 * `repo[:tag]` as a target in the layouts under `root`: the layout `root/repo`, the tag its
 * ref name (what `skopeo inspect oci:root/repo:tag` reads). The name is checked as a registry's
 * would be, so a name valid here is valid when the layout is copied on to a registry.
 */
function layoutTarget(root: string, name: string): Reference {
  const ref = parseReference(`localhost/${name}`);
  return parseLayoutReference(`${LAYOUT_PREFIX}${root}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}`);
}

/** The stored form of a target reference. */
export function storeTarget(target: Reference): StoredTarget {
  return { reference: target.toString(), tagged: target.tag !== undefined };
}

/** The reference back from its stored form (an untagged target gets no `:latest`). */
export function loadTarget(stored: StoredTarget): Reference {
  const ref = parseStoreReference(stored.reference);
  return stored.tagged ? ref : ref.withRepository(ref.repository);
}
