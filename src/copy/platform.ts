/** Platform strings (`os/arch[/variant]`) and matching them against index entries. */
import type { Platform } from './types.js';

/**
 * One part of a platform specifier: containerd's grammar (lowercase letters, digits, '_' and '-'),
 * with dots allowed between them for variants such as `v8.2`; so never `.`, `..` or an empty part.
 */
const PART = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** Parses `os/arch[/variant]`; throws a message naming the accepted form. */
export function parsePlatform(value: string): Platform {
  const parts = value.split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PART.test(p))) {
    throw new Error(
      `platform "${value}" is not valid: use os/arch or os/arch/variant, lowercase, e.g. linux/arm64 or linux/arm/v7 (each part letters, digits, '_' or '-', with dots only between them)`,
    );
  }
  const [os, architecture, variant] = parts;
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/**
 * Whether an index entry's platform satisfies a requested one. A request without a variant
 * matches every variant; one with a variant must match it exactly.
 */
export function platformMatches(wanted: Platform, entry: Platform | undefined): boolean {
  if (!entry) return false;
  if (wanted.os !== entry.os || wanted.architecture !== entry.architecture) return false;
  return wanted.variant === undefined || wanted.variant === entry.variant;
}
