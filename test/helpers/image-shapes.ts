/**
 * Real-world image shapes: Windows images with foreign (non-distributable) layers, a loopback HTTP
 * server standing in for the host their `urls` point at (Microsoft's, in real life), and an index
 * with BuildKit attestation manifests beside its images.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MEDIA_TYPES, pushImage, seededBytes, sha256Digest, type FixtureClient } from './fixtures.js';

export const FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
/** The OCI spelling of a foreign layer (deprecated in image-spec 1.1, still pushed). */
export const OCI_NONDISTRIBUTABLE_LAYER = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
/** `extraConfig` for a registry that accepts foreign URLs, as Docker Hub does (distribution 2.8 refuses them otherwise). */
export const ALLOW_URLS = { validation: { manifests: { urls: { allow: ['^https?://'] } } } };

/** The stand-in for the layer host: serves each foreign layer by name, and records every request. */
export interface LayerHost {
  url: string;
  requests: Array<{ path: string; headers: IncomingHttpHeaders }>;
  /**
   * Serves `bytes` at `/layers/<name>`; `/wrong/<name>` serves as many other bytes; `/moved/<name>`
   * redirects; `/unavailable/<anything>` answers 503, as a host in trouble.
   */
  serve(name: string, bytes: Buffer): void;
  close(): Promise<void>;
}

/** Starts the layer host on loopback. */
export async function startLayerHost(): Promise<LayerHost> {
  const layers = new Map<string, Buffer>();
  const requests: LayerHost['requests'] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push({ path, headers: req.headers });
    const [, kind, name] = path.split('/');
    const bytes = layers.get(name ?? '');
    if (kind === 'unavailable') {
      res.writeHead(503).end('try again later');
    } else if (!bytes || !['layers', 'moved', 'wrong'].includes(kind ?? '')) {
      res.writeHead(404).end('no such layer');
    } else if (kind === 'moved') {
      res.writeHead(302, { location: `/layers/${name}` }).end();
    } else if (kind === 'wrong') {
      res.writeHead(200, { 'content-length': bytes.length }).end(Buffer.alloc(bytes.length, 7));
    } else {
      res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    serve: (name, bytes) => layers.set(name, bytes),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface PushedWindowsImage {
  digest: string;
  bytes: Buffer;
  foreignDigest: string;
  foreignSize: number;
}

/**
 * A Windows image as docker pushes one built on a pre-2023 base: a config, a foreign base layer
 * that only `urls` point at, and an ordinary layer. The foreign layer goes into the registry too
 * only when `inRegistry`. `oci` writes it with OCI media types, as buildkit can.
 */
export async function pushWindowsImage(client: FixtureClient, repository: string, tag: string | undefined, options: { urls: string[]; foreign: Buffer; osVersion: string; inRegistry?: boolean; oci?: boolean }): Promise<PushedWindowsImage> {
  const types = options.oci
    ? { manifest: MEDIA_TYPES.ociManifest, config: MEDIA_TYPES.ociConfig, foreign: OCI_NONDISTRIBUTABLE_LAYER, layer: MEDIA_TYPES.ociLayerGzip }
    : { manifest: MEDIA_TYPES.dockerManifest, config: MEDIA_TYPES.dockerConfig, foreign: FOREIGN_LAYER, layer: MEDIA_TYPES.dockerLayerGzip };
  const foreignDigest = sha256Digest(options.foreign);
  if (options.inRegistry) await client.pushBlob(repository, { data: options.foreign });
  const own = seededBytes(`${repository}:${options.osVersion}:own`, 1500);
  await client.pushBlob(repository, { data: own });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'windows', 'os.version': options.osVersion, rootfs: { type: 'layers', diff_ids: [foreignDigest, sha256Digest(own)] } }));
  await client.pushBlob(repository, { data: config });
  const manifest = {
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, size: config.length, digest: sha256Digest(config) },
    layers: [
      { mediaType: types.foreign, size: options.foreign.length, digest: foreignDigest, urls: options.urls },
      { mediaType: types.layer, size: own.length, digest: sha256Digest(own) },
    ],
  };
  // docker writes manifests with 3-space indentation.
  const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
  const digest = await client.putManifest(repository, tag ?? sha256Digest(bytes), bytes, types.manifest);
  return { digest, bytes, foreignDigest, foreignSize: options.foreign.length };
}

/** What {@link pushIndexWithAttestations} pushed: the index, its images and their attestations. */
export interface IndexWithAttestations {
  index: Buffer;
  digest: string;
  amd64: string;
  arm64: string;
  attestAmd64: string;
  attestArm64: string;
}

/** Two platforms and, beside each, the attestation manifest BuildKit writes for it. */
export async function pushIndexWithAttestations(client: FixtureClient, repository: string): Promise<IndexWithAttestations> {
  const images = [];
  for (const architecture of ['amd64', 'arm64']) {
    const image = await pushImage(client, repository, undefined, { platform: { os: 'linux', architecture }, layers: [600] });
    const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', predicateType: 'https://slsa.dev/provenance/v0.2', subject: [{ name: repository, digest: { sha256: image.digest.slice(7) } }] }));
    const attestation = await pushImage(client, repository, undefined, {
      config: Buffer.from(JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [sha256Digest(statement)] } })),
      layers: [{ data: statement, mediaType: 'application/vnd.in-toto+json', annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } }],
    });
    images.push({ image, attestation, architecture });
  }
  const manifests = [
    ...images.map(({ image, architecture }) => ({ ...image.descriptor, platform: { architecture, os: 'linux' } })),
    ...images.map(({ image, attestation }) => ({
      ...attestation.descriptor,
      annotations: { 'vnd.docker.reference.digest': image.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
      platform: { architecture: 'unknown', os: 'unknown' },
    })),
  ];
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }, null, 2));
  const digest = await client.putManifest(repository, 'multi', index, MEDIA_TYPES.ociIndex);
  const [amd, arm] = images;
  return { index, digest, amd64: amd.image.digest, arm64: arm.image.digest, attestAmd64: amd.attestation.digest, attestArm64: arm.attestation.digest };
}
