/**
 * Reading the source side of a copy: resolve the reference once, then walk the manifest graph
 * by digest (index → children → blobs), narrow it to the requested platforms, and gather
 * referrers (signatures, SBOMs, attestations) recursively.
 */
import type { Descriptor, Manifest } from '../registry/client.js';
import { sha256 } from '../registry/digest.js';
import type { Reference } from '../registry/reference.js';
import { CopyError, copyErrorFrom } from './errors.js';
import { mapLimit } from './limit.js';
import { attestedImage, readManifest, type ManifestNode } from './manifest.js';
import { formatPlatform, platformMatches } from './platform.js';
import type { SourceStore } from './store.js';
import type { Platform } from './types.js';

/** cosign's legacy tag suffixes for signatures, attestations and SBOMs of `sha256-<hex>`. */
const COSIGN_SUFFIXES = ['.sig', '.att', '.sbom'];
/** An index's children are fetched this many at a time: one round trip for a usual index, not one each. */
const CHILD_FETCHES = 8;

export interface SourceGraph {
  /** The manifest the source reference resolved to. */
  root: ManifestNode;
  /** What the targets will point at: the root, or a new index of the chosen platforms. */
  top: ManifestNode;
  /** Every manifest to copy, children before parents, each once. */
  manifests: ManifestNode[];
  /** `os/arch[/variant][:os.version]` of index children, by digest. */
  platforms: Map<string, string>;
  /** Attestation manifests of the copied index, by digest: the digest of the image each describes. */
  attestations: Map<string, string>;
  /** What a platform subset kept and dropped; undefined for a whole copy. */
  subset?: PlatformSubset;
  /** Referrer manifests by the digest of their subject, in discovery order. */
  referrers: Map<string, ManifestNode[]>;
  /** The source's own fallback-tag index for a subject, when it had one. */
  fallbackIndexes: Map<string, Manifest>;
  /** cosign-style tags (`sha256-<hex>.sig`, …) and the manifests they name. */
  cosignTags: Array<{ tag: string; node: ManifestNode }>;
}

/** A platform subset's choice, for the plan and the result. */
export interface PlatformSubset {
  platforms: string[];
  /** Attestation manifests kept, because the image they describe is kept. */
  attestationsKept: string[];
  /** Attestation manifests dropped with the images they describe. */
  attestationsDropped: string[];
}

export interface SourceGraphOptions {
  platforms?: Platform[];
  referrers?: boolean;
  signal?: AbortSignal;
}

/** Fetches a manifest and reads it, mapping failures to source-side copy errors. */
async function fetchNode(client: SourceStore, ref: Reference, signal?: AbortSignal): Promise<ManifestNode> {
  try {
    return readManifest(await client.getManifest(ref, signal), ref.toString());
  } catch (error) {
    throw copyErrorFrom(error, 'source');
  }
}

/** Resolves `ref` once and walks everything the copy will need from the source. */
export async function readSourceGraph(client: SourceStore, ref: Reference, options: SourceGraphOptions = {}): Promise<SourceGraph> {
  const root = await fetchNode(client, ref, options.signal);
  const repo = ref.withRepository(ref.repository);
  const graph: SourceGraph = { root, top: root, manifests: [], platforms: new Map(), attestations: new Map(), referrers: new Map(), fallbackIndexes: new Map(), cosignTags: [] };
  const seen = new Set<string>();

  async function walk(node: ManifestNode, children: Descriptor[]): Promise<void> {
    // Fetched together, walked in order: the graph's order does not depend on which came first.
    const wanted = [...new Set(children.map((c) => c.digest).filter((digest) => !seen.has(digest)))];
    const fetched = new Map(await mapLimit(wanted, CHILD_FETCHES, async (digest) => [digest, await fetchNode(client, repo.withDigest(digest), options.signal)] as const));
    for (const child of children) {
      if (child.platform) graph.platforms.set(child.digest, formatPlatform(child.platform));
      const attested = attestedImage(child);
      if (attested) graph.attestations.set(child.digest, attested);
      if (seen.has(child.digest)) continue;
      // Not seen now, so not seen when the children were fetched either.
      const childNode = fetched.get(child.digest)!;
      await walk(childNode, childNode.children);
    }
    if (!seen.has(node.manifest.digest)) {
      seen.add(node.manifest.digest);
      graph.manifests.push(node);
    }
  }

  if (options.platforms?.length) {
    ({ top: graph.top, subset: graph.subset } = subsetIndex(root, options.platforms, ref));
    await walk(graph.top, graph.top.children);
  } else {
    await walk(root, root.children);
  }

  if (options.referrers) {
    // Referrers of every copied manifest, and of the referrers themselves (signed SBOMs).
    for (let i = 0; i < graph.manifests.length; i++) {
      const subject = graph.manifests[i].manifest.digest;
      for (const referrer of await findReferrers(client, repo, subject, graph, options.signal)) {
        const node = await fetchNode(client, repo.withDigest(referrer.digest), options.signal);
        const list = graph.referrers.get(subject) ?? [];
        list.push(node);
        graph.referrers.set(subject, list);
        await walk(node, node.children);
      }
      for (const suffix of COSIGN_SUFFIXES) {
        const tag = `${subject.replace(':', '-')}${suffix}`;
        const head = await client.headManifest(repo.withTag(tag), options.signal).catch((e: unknown) => Promise.reject(copyErrorFrom(e, 'source')));
        if (!head) continue;
        const node = await fetchNode(client, repo.withDigest(head.digest), options.signal);
        graph.cosignTags.push({ tag, node });
        await walk(node, node.children);
      }
    }
  }
  return graph;
}

/**
 * Referrers of `subject`: the OCI referrers API where the registry has it, else the tag-schema
 * fallback (`sha256-<hex>`), whose index is kept so the target can get the same bytes.
 */
async function findReferrers(client: SourceStore, repo: Reference, subject: string, graph: SourceGraph, signal?: AbortSignal): Promise<Descriptor[]> {
  try {
    const viaApi = await client.referrers(repo, subject, signal);
    if (viaApi) return viaApi;
    const fallbackTag = repo.withTag(subject.replace(':', '-'));
    if (!(await client.headManifest(fallbackTag, signal))) return [];
    const index = await client.getManifest(fallbackTag, signal);
    graph.fallbackIndexes.set(subject, index);
    return readManifest(index, fallbackTag.toString()).children;
  } catch (error) {
    throw copyErrorFrom(error, 'source');
  }
}

/**
 * A new index listing only the children that match `platforms`, and the attestation manifests
 * of those children (BuildKit puts one beside each image, as `unknown/unknown`: dropping it would
 * lose the kept image's provenance and SBOM). It keeps every other field of the source index;
 * only its `manifests` shrink, so its digest changes.
 */
function subsetIndex(root: ManifestNode, platforms: Platform[], ref: Reference): { top: ManifestNode; subset: PlatformSubset } {
  if (!root.isIndex) {
    throw new CopyError('PLATFORM_NOT_FOUND', `${ref} is a single-platform manifest (${root.manifest.mediaType}), so --platform cannot select from it; copy it without --platform`, 'source');
  }
  const images = root.children.filter((c) => !attestedImage(c));
  const available = images.filter((c) => c.platform).map((c) => formatPlatform(c.platform!));
  const missing = platforms.filter((wanted) => !images.some((c) => platformMatches(wanted, c.platform)));
  if (missing.length) {
    throw new CopyError('PLATFORM_NOT_FOUND', `${ref} has no ${missing.map(formatPlatform).join(', ')}; available platforms: ${[...new Set(available)].join(', ') || 'none'}`, 'source');
  }
  const chosen = (c: Descriptor) => !attestedImage(c) && platforms.some((wanted) => platformMatches(wanted, c.platform));
  const kept = new Set(root.children.filter(chosen).map((c) => c.digest));
  const keeps = (c: Descriptor) => chosen(c) || kept.has(attestedImage(c) ?? '');
  const json = JSON.parse(root.manifest.bytes.toString('utf8')) as { manifests: Descriptor[] };
  json.manifests = json.manifests.filter(keeps);
  const bytes = Buffer.from(JSON.stringify(json));
  const attestations = root.children.filter((c) => attestedImage(c));
  return {
    top: readManifest({ digest: sha256(bytes), mediaType: root.manifest.mediaType, bytes }, `${ref} (platform subset)`),
    subset: {
      platforms: platforms.map(formatPlatform),
      attestationsKept: attestations.filter(keeps).map((c) => c.digest),
      attestationsDropped: attestations.filter((c) => !keeps(c)).map((c) => c.digest),
    },
  };
}
