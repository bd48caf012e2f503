/**
 * The benchmark images, pushed into the source registry with the test harness's fixture client
 * (test/helpers/fixtures.ts), so their bytes come from code Hoist does not share.
 *
 * Layers of the timed images are real gzip streams (deflate level 0, i.e. stored blocks) of the
 * harness's seeded pseudo-random bytes. They must be gzip: skopeo (containers/image) sniffs each
 * layer, and one that does not look compressed is gzip-compressed on the way to a registry,
 * which changes every layer digest and the manifest (checked: a 65,536-byte raw layer arrives
 * as a 65,571-byte one), so skopeo would be measured compressing, not copying. Real layers are
 * compressed, so both tools then stream the same bytes unchanged.
 *
 * The 1 GiB layer of the memory measurement is the harness's seeded stream as is (no gzip):
 * only Hoist copies it, and the fixture pusher generates and uploads it chunk by chunk.
 */
import { gzipSync } from 'node:zlib';
import { FixtureClient, pushImage, pushIndex, seededBytes, sha256Digest, type PushedManifest, type RegistryEndpoint } from '../test/helpers/fixtures.js';

export interface BenchImage {
  /** Short name used in tables. */
  key: string;
  title: string;
  repository: string;
  tag: string;
  pushed: PushedManifest;
  /** Config plus layers. */
  blobCount: number;
  /** Sum of blob sizes. */
  totalBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

function describe(key: string, title: string, pushed: PushedManifest): BenchImage {
  return {
    key,
    title,
    repository: pushed.repository,
    tag: pushed.tag ?? pushed.digest,
    pushed,
    blobCount: pushed.blobs.length,
    totalBytes: pushed.blobs.reduce((sum, b) => sum + b.size, 0),
  };
}

/** A gzip stream (stored blocks) wrapping `rawSize` seeded bytes. */
function gzipLayer(seed: string, rawSize: number): Buffer {
  return gzipSync(seededBytes(seed, rawSize), { level: 0 });
}

/** (a) 4 layers of 64 MiB of content each (gzip framing adds ~5 KiB per layer). */
export async function pushLargeLayers(source: RegistryEndpoint): Promise<BenchImage> {
  const repository = 'bench/large-layers';
  const layers = Array.from({ length: 4 }, (_, i) => ({ data: gzipLayer(`${repository}/layer-${i}`, 64 * MiB) }));
  const pushed = await pushImage(new FixtureClient(source), repository, 'v1', { layers });
  return describe('4x64MiB', '4 × 64 MiB layers', pushed);
}

/** (b) 40 small layers, 4 KiB to 64 KiB of content, distinct sizes. */
export async function pushSmallLayers(source: RegistryEndpoint): Promise<BenchImage> {
  const repository = 'bench/small-layers';
  const layers = Array.from({ length: 40 }, (_, i) => ({ data: gzipLayer(`${repository}/layer-${i}`, 4 * KiB + Math.round((i * 60 * KiB) / 39)) }));
  const pushed = await pushImage(new FixtureClient(source), repository, 'v1', { layers });
  return describe('40-small', '40 layers of 4–64 KiB', pushed);
}

/** (c) one layer of `size` bytes, streamed by the fixture pusher (never held in memory). */
export async function pushHugeLayer(source: RegistryEndpoint, size: number): Promise<BenchImage> {
  const repository = 'bench/huge-layer';
  const pushed = await pushImage(new FixtureClient(source), repository, 'v1', { layers: [{ size, seed: `${repository}/layer-0` }] });
  return describe(`1x${Math.round(size / MiB)}MiB`, `1 × ${formatSize(size)} layer`, pushed);
}

export function formatSize(bytes: number): string {
  if (bytes >= 1024 * MiB && bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(bytes % MiB === 0 ? 0 : 1)} MiB`;
  return `${(bytes / KiB).toFixed(1)} KiB`;
}

/**
 * Checks a copy in `target`: the manifest under the tag has the source's exact bytes (so its
 * digest, and every layer digest it lists, is unchanged) and every blob is present. Returns
 * problems, empty when the copy is faithful.
 */
export async function verifyCopy(target: RegistryEndpoint, image: BenchImage): Promise<string[]> {
  const client = new FixtureClient(target);
  const problems: string[] = [];
  const got = await client.getManifest(image.repository, image.tag);
  if (got.status !== 200) return [`manifest ${image.repository}:${image.tag}: HTTP ${got.status}`];
  if (!got.bytes.equals(image.pushed.manifestBytes)) {
    problems.push(`manifest bytes differ from the source (digest ${sha256Digest(got.bytes)} instead of ${image.pushed.digest})`);
  }
  for (const blob of image.pushed.blobs) {
    if (!(await client.hasBlob(image.repository, blob.digest))) problems.push(`blob ${blob.digest} missing`);
  }
  return problems;
}

/** Layer sizes of each platform of the link image: 20 MiB down to 2 KiB (about 27 MiB). */
const LINK_LAYER_SIZES = [20 * MiB, 5 * MiB, 1.5 * MiB, 512 * KiB, 128 * KiB, 32 * KiB, 8 * KiB, 2 * KiB];
const LINK_PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
  { os: 'linux', architecture: 'ppc64le' },
];

/**
 * (d) The real-world-link image of issue 5: an OCI index of 4 platforms, each with 8 distinct
 * layers from 20 MiB down to 2 KiB (about 109 MiB in all). `blobs` lists every platform's
 * config and layers; `children` the platform manifests.
 */
export async function pushLinkIndex(source: RegistryEndpoint): Promise<BenchImage> {
  const repository = 'bench/four-platforms';
  const client = new FixtureClient(source);
  const children: PushedManifest[] = [];
  for (const platform of LINK_PLATFORMS) {
    const name = `${platform.architecture}${platform.variant ?? ''}`;
    const layers = LINK_LAYER_SIZES.map((size, i) => ({ data: gzipLayer(`${repository}/${name}/layer-${i}`, size) }));
    const pushed = await pushImage(client, repository, undefined, { layers, platform });
    children.push({ ...pushed, descriptor: { ...pushed.descriptor, platform } });
  }
  const index = await pushIndex(client, repository, 'v1', children);
  const all = { ...index, blobs: children.flatMap((c) => c.blobs) };
  return describe('4-platform', '4-platform index, 8 layers each', all);
}

/** {@link verifyCopy} for an index: its bytes, every child's bytes, every child's blobs. */
export async function verifyIndexCopy(target: RegistryEndpoint, image: BenchImage): Promise<string[]> {
  const problems = await verifyCopy(target, image);
  const client = new FixtureClient(target);
  for (const child of image.pushed.children) {
    const got = await client.getManifest(image.repository, child.digest);
    if (got.status !== 200 || !got.bytes.equals(child.manifestBytes)) problems.push(`child manifest ${child.digest}: HTTP ${got.status}${got.status === 200 ? ', bytes differ' : ''}`);
  }
  return problems;
}
