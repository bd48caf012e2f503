/**
 * Platform strings (`os/arch[/variant][:os.version]`) and matching them against index entries.
 * Windows images of one architecture differ only by `os.version` (10.0.17763.5329 for ltsc2019,
 * 10.0.20348.2227 for ltsc2022), so it is part of the string, in crane's syntax, when an entry has it.
 */
import type { Platform } from './types.js';

/**
 * One part of a platform specifier: containerd's grammar (lowercase letters, digits, '_' and '-'),
 * with dots allowed between them for variants such as `v8.2`; so never `.`, `..` or an empty part.
 */
const PART = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** A Windows `os.version` such as 10.0.17763.5329: the same shape, upper case allowed. */
const OS_VERSION = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/** An index entry's `platform`, as the image spec spells it. */
export interface DescriptorPlatform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

/** Parses `os/arch[/variant][:os.version]`; throws a message naming the accepted form. */
export function parsePlatform(value: string): Platform {
  const colon = value.indexOf(':');
  const osVersion = colon === -1 ? undefined : value.slice(colon + 1);
  const parts = (colon === -1 ? value : value.slice(0, colon)).split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PART.test(p)) || (osVersion !== undefined && !OS_VERSION.test(osVersion))) {
    throw new Error(`platform "${value}" is not valid: use os/arch or os/arch/variant, lowercase, and :os.version after it to pick a Windows version, e.g. linux/arm64, linux/arm/v7 or windows/amd64:10.0.17763.5329 (each part letters, digits, '_' or '-', with dots only between them)`);
  }
  const [os, architecture, variant] = parts;
  return { os, architecture, ...(variant && { variant }), ...(osVersion !== undefined && { osVersion }) };
}

/** `os/arch[/variant][:os.version]` of a requested platform or of an index entry. */
export function formatPlatform(platform: Platform | DescriptorPlatform): string {
  const osVersion = 'osVersion' in platform ? platform.osVersion : (platform as DescriptorPlatform)['os.version'];
  const base = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
  return osVersion ? `${base}:${osVersion}` : base;
}

/**
 * Whether an index entry's platform satisfies a requested one. A request without a variant
 * matches every variant, and one without an os.version every os.version; given, each must match
 * exactly.
 */
export function platformMatches(wanted: Platform, entry: DescriptorPlatform | undefined): boolean {
  if (!entry) return false;
  if (wanted.os !== entry.os || wanted.architecture !== entry.architecture) return false;
  if (wanted.osVersion !== undefined && wanted.osVersion !== entry['os.version']) return false;
  return wanted.variant === undefined || wanted.variant === entry.variant;
}
