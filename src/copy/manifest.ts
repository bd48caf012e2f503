/**
 * Reading manifests for the copy: what a manifest references (child manifests, blobs, subject),
 * checked with a schema. Only reads: the bytes pushed are always the bytes fetched.
 */
import * as v from 'valibot';
import type { Descriptor, Manifest } from '../registry/client.js';
import { VERIFIABLE_ALGORITHMS } from '../registry/digest.js';
import { isIndexType, isSchema1Type, MediaType } from '../registry/media-types.js';
import { CopyError } from './errors.js';
import { jsonObject } from './json-object.js';

const annotations = jsonObject(v.record(v.string(), v.string()));

/**
 * A size is a claim the copy must be able to check byte by byte: a whole number a double holds
 * exactly. Past 2^53-1 a count of bytes can no longer be compared with the claim.
 */
const SIZE_ACCEPTED = (issue: v.BaseIssue<unknown>) => `got ${issue.received}; expected a whole number of bytes from 0 to ${Number.MAX_SAFE_INTEGER}`;
const size = v.pipe(v.number(SIZE_ACCEPTED), v.safeInteger(SIZE_ACCEPTED), v.minValue(0, SIZE_ACCEPTED));

/** The OCI digest grammar: `algorithm:encoded`. */
const DIGEST_PATTERN = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Longer than any digest in use (sha512 is 135 characters): text past it is no digest. */
const MAX_DIGEST_LENGTH = 255;

/**
 * The longest `os.version` accepted. Real ones are short (10.0.17763.5329); the value ends up in
 * the job record, the status document and messages, which must stay bounded.
 */
export const MAX_OS_VERSION_LENGTH = 128;

const descriptor = jsonObject(v.looseObject({
  mediaType: v.string(),
  digest: v.pipe(v.string(), v.regex(DIGEST_PATTERN)),
  size,
  artifactType: v.optional(v.string()),
  annotations: v.optional(annotations),
  urls: v.optional(v.array(v.string())),
  platform: v.optional(jsonObject(v.looseObject({ os: v.string(), architecture: v.string(), variant: v.optional(v.string()), 'os.version': v.optional(v.pipe(v.string(), v.maxLength(MAX_OS_VERSION_LENGTH, (issue) => `got ${issue.received} characters; expected at most ${MAX_OS_VERSION_LENGTH}`))) }))),
}));

/** Fields of any manifest kind Hoist reads; unknown fields are kept in the bytes and ignored here. */
const manifestSchema = jsonObject(v.looseObject({
  schemaVersion: v.optional(v.pipe(v.number(), v.finite())),
  mediaType: v.optional(v.string()),
  artifactType: v.optional(v.string()),
  config: v.optional(descriptor),
  layers: v.optional(v.array(descriptor)),
  manifests: v.optional(v.array(descriptor)),
  /** The v1.1-rc artifact manifest's list of blobs. */
  blobs: v.optional(v.array(descriptor)),
  subject: v.optional(descriptor),
  annotations: v.optional(annotations),
}));

export type ParsedManifest = v.InferOutput<typeof manifestSchema>;

/** A manifest with what it references. */
export interface ManifestNode {
  manifest: Manifest;
  parsed: ParsedManifest;
  /** Child manifests (for an index). */
  children: Descriptor[];
  /** Config and layers (or an artifact's blobs). */
  blobs: Descriptor[];
  isIndex: boolean;
}

/** Parses a fetched manifest; refuses schema1 and anything that is not a manifest. */
export function readManifest(manifest: Manifest, where: string): ManifestNode {
  if (isSchema1Type(manifest.mediaType)) {
    throw new CopyError('UNSUPPORTED_MANIFEST', `${where} is a Docker schema1 manifest (${manifest.mediaType}); schema1 is deprecated and registries refuse it: re-push the image with a current docker or buildkit`, 'source');
  }
  let json: unknown;
  try {
    json = JSON.parse(manifest.bytes.toString('utf8'));
  } catch {
    throw new CopyError('UNSUPPORTED_MANIFEST', `${where} is not a JSON manifest (Content-Type ${manifest.mediaType})`, 'source');
  }
  const result = v.safeParse(manifestSchema, json);
  if (!result.success) {
    const [issue] = result.issues;
    throw new CopyError('UNSUPPORTED_MANIFEST', `${where} has an invalid manifest: ${v.getDotPath(issue) ?? 'body'}: ${issue.message}`, 'source');
  }
  const parsed = result.output;
  if (parsed.schemaVersion === 1) {
    throw new CopyError('UNSUPPORTED_MANIFEST', `${where} is a Docker schema1 manifest; registries refuse schema1: re-push the image with a current docker or buildkit`, 'source');
  }
  const isIndex = isIndexType(manifest.mediaType) || (parsed.manifests !== undefined && parsed.config === undefined);
  const blobs = isIndex ? [] : [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? []), ...(parsed.blobs ?? [])];
  if (!isIndex && blobs.length === 0 && manifest.mediaType !== MediaType.OciArtifactManifest) {
    throw new CopyError('UNSUPPORTED_MANIFEST', `${where} (${manifest.mediaType}) is neither an index nor an image manifest`, 'source');
  }
  // Every blob is verified as it is copied, which needs an algorithm Hoist can compute.
  const unverifiable = blobs.find((b) => !VERIFIABLE_ALGORITHMS.includes(b.digest.slice(0, b.digest.indexOf(':'))));
  if (unverifiable) {
    throw new CopyError('UNSUPPORTED_MANIFEST', `${where} references blob ${unverifiable.digest}, whose digest algorithm cannot be verified (${VERIFIABLE_ALGORITHMS.join(' and ')} can)`, 'source');
  }
  return { manifest, parsed, children: isIndex ? (parsed.manifests ?? []) : [], blobs, isIndex };
}

/** The descriptor an index or a referrers list uses for this manifest. */
export function descriptorOf(node: ManifestNode): Descriptor {
  const artifactType = node.parsed.artifactType ?? (node.isIndex ? undefined : node.parsed.config?.mediaType);
  return {
    mediaType: node.manifest.mediaType,
    digest: node.manifest.digest,
    size: node.manifest.bytes.length,
    ...(artifactType ? { artifactType } : {}),
    ...(node.parsed.annotations ? { annotations: node.parsed.annotations } : {}),
  };
}

/**
 * The digest of the image an index entry attests to, when the entry is a BuildKit attestation
 * manifest (provenance, SBOM): platform `unknown/unknown`, annotated
 * `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <image>`.
 */
export function attestedImage(entry: Descriptor): string | undefined {
  const annotations = entry.annotations;
  if (annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest') return undefined;
  // Only a digest names the image attested; any other text would be carried, unbounded, into
  // the job record and the status document.
  const digest = annotations['vnd.docker.reference.digest'];
  return digest !== undefined && digest.length <= MAX_DIGEST_LENGTH && DIGEST_PATTERN.test(digest) ? digest : undefined;
}
