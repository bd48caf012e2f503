/**
 * OCI image layout references, `oci:DIR[:TAG]`, as skopeo spells them (containers/image's
 * `oci:path[:reference]`, the path ending at the first ':' after any Windows drive). Parsed into an ordinary Reference
 * whose registry is a LayoutRegistry and whose repository is empty, so the engine names, groups
 * and reports layouts as it does repositories.
 */
import { resolve } from 'node:path';
import { InvalidReferenceError, parseReference, Reference, Registry, TAG, type ParseOptions } from '../registry/reference.js';

/** The transport prefix of a layout reference. */
export const LAYOUT_PREFIX = 'oci:';

/** An OCI image layout directory standing where a registry does in a Reference. */
export class LayoutRegistry extends Registry {
  /** @param dir the directory as written (shown back to the user), resolved against the working directory when used. */
  constructor(readonly dir: string) {
    super(`${LAYOUT_PREFIX}${dir}`);
  }

  /** The directory's absolute path. */
  get path(): string {
    return resolve(this.dir);
  }
}

/** Whether `ref` names an OCI image layout rather than a registry repository. */
export function isLayoutReference(ref: Reference): ref is Reference & { registry: LayoutRegistry } {
  return ref.registry instanceof LayoutRegistry;
}

/**
 * Parses `oci:DIR[:TAG]`. Without a tag the reference names the layout's only manifest as a
 * source, and is refused as a target (a layout entry needs a name to be found again).
 */
export function parseLayoutReference(input: string): Reference {
  if (!input.startsWith(LAYOUT_PREFIX)) throw new InvalidReferenceError(input, `an OCI layout reference starts with "${LAYOUT_PREFIX}"`);
  const rest = input.slice(LAYOUT_PREFIX.length);
  // A Windows drive's ':' belongs to the path (`oci:C:\images:v1`), as containers/image reads it on Windows.
  const colon = rest.indexOf(':', /^[A-Za-z]:[\\/]/.test(rest) ? 2 : 0);
  const dir = colon === -1 ? rest : rest.slice(0, colon);
  const tag = colon === -1 ? undefined : rest.slice(colon + 1);
  if (dir === '') throw new InvalidReferenceError(input, 'the layout directory is empty: write oci:DIR[:TAG], for example oci:./images:v1');
  if (tag !== undefined && !TAG.test(tag)) {
    throw new InvalidReferenceError(input, `tag "${tag}" is not valid: after oci:DIR: give up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-' (the directory cannot contain ':')`);
  }
  return new Reference(new LayoutRegistry(dir), '', tag);
}

/** Parses a copy's source or target: `oci:DIR[:TAG]` for an OCI layout, else a registry reference. */
export function parseStoreReference(input: string, options: ParseOptions = {}): Reference {
  return input.startsWith(LAYOUT_PREFIX) ? parseLayoutReference(input) : parseReference(input, options);
}
