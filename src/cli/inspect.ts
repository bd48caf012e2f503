/**
 * The read commands: `hoist inspect` (a summary of a manifest or index, or its exact bytes),
 * `hoist digest` and `hoist tags`. They read through the copy's own source walk and registry
 * client, so what they show is what a copy would see.
 */
import { CopyError, readSourceGraph } from '../copy/index.js';
import { copyErrorFrom } from '../copy/errors.js';
import type { ManifestNode } from '../copy/manifest.js';
import { RegistryClient } from '../registry/client.js';
import { cleanMessage } from '../registry/errors.js';
import type { ReadCommand } from './options.js';
import { formatBytes } from './progress.js';

/** One manifest of an inspected graph. */
export interface InspectedManifest {
  digest: string;
  mediaType: string;
  /** Bytes of the manifest itself. */
  size: number;
  artifactType?: string;
  /** `os/arch[/variant][:os.version]` of an index child. */
  platform?: string;
  /** For an attestation manifest: the digest of the image it describes. */
  attestationFor?: string;
  /** Its layers (an artifact's blobs), config excluded. */
  layers: { count: number; bytes: number };
}

/** A referrer (signature, SBOM, attestation) and what it refers to. */
export interface InspectedReferrer {
  digest: string;
  mediaType: string;
  artifactType?: string;
  subject: string;
  /** For a cosign-style signature, attestation or SBOM: the tag (`sha256-<hex>.sig`) that names it. */
  tag?: string;
}

/** What `hoist inspect --format json` prints. */
export interface InspectSummary {
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  /** Platforms of an index's children, in index order. */
  platforms: string[];
  /** The index's children (attestations among them), or the manifest itself. */
  manifests: InspectedManifest[];
  /** Every blob the graph references, each once: configs and layers. */
  blobs: { count: number; bytes: number };
  /** Referrers found through the referrers API or the fallback tag, recursively. */
  referrers: InspectedReferrer[];
}

/** `hoist inspect REF`: the graph the reference names, as a summary. */
export async function inspect(command: ReadCommand): Promise<InspectSummary> {
  const client = RegistryClient.for(command.reference.registry, command.hosts);
  const graph = await readSourceGraph(client, command.reference, { referrers: true });
  const root = graph.root;
  // Referrers and cosign tags are walked into graph.manifests too: kept apart from the image here.
  const referrerDigests = new Set([...[...graph.referrers.values()].flat(), ...graph.cosignTags.map((c) => c.node)].map((n) => n.manifest.digest));
  const described = root.isIndex ? graph.manifests.filter((n) => n !== root && !referrerDigests.has(n.manifest.digest)) : [root];
  const blobs = new Map(graph.manifests.filter((n) => !referrerDigests.has(n.manifest.digest)).flatMap((n) => n.blobs.map((b) => [b.digest, b.size] as const)));
  return {
    reference: command.reference.toString(),
    digest: root.manifest.digest,
    mediaType: root.manifest.mediaType,
    size: root.manifest.bytes.length,
    ...(root.parsed.artifactType && { artifactType: root.parsed.artifactType }),
    platforms: described.flatMap((n) => {
      const platform = graph.platforms.get(n.manifest.digest);
      return platform && !graph.attestations.has(n.manifest.digest) ? [platform] : [];
    }),
    manifests: described.map((node) => {
      const layers = node.parsed.layers ?? node.parsed.blobs ?? [];
      const platform = graph.platforms.get(node.manifest.digest);
      const attestationFor = graph.attestations.get(node.manifest.digest);
      const artifactType = node.parsed.artifactType;
      return {
        digest: node.manifest.digest,
        mediaType: node.manifest.mediaType,
        size: node.manifest.bytes.length,
        ...(artifactType && { artifactType }),
        ...(platform && { platform }),
        ...(attestationFor && { attestationFor }),
        layers: { count: layers.length, bytes: layers.reduce((sum, l) => sum + l.size, 0) },
      };
    }),
    blobs: { count: blobs.size, bytes: [...blobs.values()].reduce((sum, size) => sum + size, 0) },
    referrers: [
      ...[...graph.referrers].flatMap(([subject, nodes]) => nodes.map((n) => referrer(n, subject))),
      ...graph.cosignTags.map(({ tag, node }) => ({ ...referrer(node, cosignSubject(tag)), tag })),
    ],
  };
}

function referrer(node: ManifestNode, subject: string): InspectedReferrer {
  const artifactType = node.parsed.artifactType ?? node.parsed.config?.mediaType;
  return { digest: node.manifest.digest, mediaType: node.manifest.mediaType, ...(artifactType && { artifactType }), subject };
}

/** The digest a cosign tag names: `sha256-<hex>.sig` is about `sha256:<hex>`. */
function cosignSubject(tag: string): string {
  return tag.replace('-', ':').replace(/\.[a-z]+$/, '');
}

/** The summary as text: one fact per line, then the manifests and referrers, indented. */
export function formatInspect(summary: InspectSummary): string {
  const lines = [
    summary.reference,
    `  digest      ${summary.digest}`,
    `  media type  ${cleanMessage(summary.mediaType)}`,
    `  size        ${formatBytes(summary.size)}`,
  ];
  if (summary.artifactType) lines.push(`  artifact    ${cleanMessage(summary.artifactType)}`);
  if (summary.platforms.length) lines.push(`  platforms   ${summary.platforms.map(cleanMessage).join(', ')}`);
  lines.push(`  blobs       ${summary.blobs.count}, ${formatBytes(summary.blobs.bytes)} in all`);
  lines.push('  manifests:');
  for (const m of summary.manifests) {
    const what = m.attestationFor ? `attestation of ${m.attestationFor}` : cleanMessage(m.platform ?? m.artifactType ?? m.mediaType);
    lines.push(`    ${m.digest} ${what}: ${m.layers.count} layer(s), ${formatBytes(m.layers.bytes)}`);
  }
  lines.push(summary.referrers.length ? '  referrers:' : '  referrers:  none');
  for (const r of summary.referrers) lines.push(`    ${r.digest} ${cleanMessage(r.artifactType ?? r.mediaType)} (refers to ${r.subject}${r.tag ? `, tag ${r.tag}` : ''})`);
  return lines.join('\n');
}

/** `hoist inspect --raw REF`: the manifest or index exactly as the registry serves it. */
export async function rawManifest(command: ReadCommand): Promise<Buffer> {
  const client = RegistryClient.for(command.reference.registry, command.hosts);
  try {
    return (await client.getManifest(command.reference)).bytes;
  } catch (error) {
    throw copyErrorFrom(error, 'source');
  }
}

/** `hoist digest REF`: the digest a reference names now, by one HEAD (as crane digest). */
export async function manifestDigest(command: ReadCommand): Promise<{ reference: string; digest: string; mediaType: string; size: number }> {
  const client = RegistryClient.for(command.reference.registry, command.hosts);
  let head;
  try {
    head = await client.headManifest(command.reference);
  } catch (error) {
    throw copyErrorFrom(error, 'source');
  }
  if (!head) throw new CopyError('SOURCE_NOT_FOUND', `${command.reference} was not found: the registry has no such manifest`, 'source');
  return { reference: command.reference.toString(), ...head };
}

/** `hoist tags REPO`: every tag of the repository, every `Link` page followed. */
export async function listTags(command: ReadCommand): Promise<{ repository: string; tags: string[] }> {
  const client = RegistryClient.for(command.reference.registry, command.hosts);
  try {
    return { repository: command.reference.name, tags: await client.listTags(command.reference) };
  } catch (error) {
    throw copyErrorFrom(error, 'source');
  }
}
