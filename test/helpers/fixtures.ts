/**
 * Test fixtures: images, indexes and artifacts pushed into a test registry by code that is
 * independent of Hoist, so tests compare Hoist's copies against bytes Hoist did not produce.
 *
 * The push client here is intentionally tiny: monolithic uploads (POST then PUT with the whole
 * body), manifest PUTs, and Basic or Bearer auth obtained from the registry's challenge. Blob
 * contents are deterministic (AES-CTR keystream of a seed), so the same fixture always has the
 * same digests, and big blobs are generated chunk by chunk instead of held in memory.
 *
 * Manifests are serialised with a fixed key order but deliberately varied formatting (compact,
 * 2 spaces, 3 spaces, tabs, trailing newline): a copier must keep manifest bytes exactly, and a
 * re-serialisation would change the digest.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';

/** Where to push: a registry (a `TestRegistry` fits) or a proxy in front of one. */
export interface RegistryEndpoint {
  /** `http://127.0.0.1:PORT` */
  url: string;
  credentials?: { username: string; password: string };
}

/** An OCI content descriptor (the subset fixtures use). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** An OCI/Docker platform object. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/** A manifest (image, artifact, index or list) that a fixture pushed. */
export interface PushedManifest {
  repository: string;
  /** The tag it was pushed under; undefined when pushed by digest only. */
  tag?: string;
  digest: string;
  /** The Content-Type it was pushed with (equals the manifest's `mediaType` field when it has one). */
  mediaType: string;
  /** Whether the JSON has a top-level `mediaType` field (Helm charts do not). */
  hasMediaTypeField: boolean;
  /** The exact bytes pushed. */
  manifestBytes: Buffer;
  /** Descriptor for referencing this manifest from an index. */
  descriptor: Descriptor;
  /** Config then layers, for image-like manifests; empty for indexes. */
  blobs: Descriptor[];
  /** The manifests an index/list references (already pushed), in order. */
  children: PushedManifest[];
}

/** Media types the fixtures use (spelled out once so tests can compare against them). */
export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  helmConfig: 'application/vnd.cncf.helm.config.v1+json',
  helmChart: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
} as const;

/** The OCI empty JSON blob `{}` (config of artifacts without one). */
export const EMPTY_JSON = Buffer.from('{}');
/** The well-known digest of {@link EMPTY_JSON}. */
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** Every manifest media type, for `Accept` (distribution 2.8 hides OCI manifests without it). */
export const ALL_MANIFEST_TYPES = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerList].join(', ');

/** `sha256:<hex>` of some bytes. */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Deterministic content

/** Blobs larger than this are generated and uploaded as a stream. */
const IN_MEMORY_LIMIT = 4 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/**
 * Deterministic pseudo-random bytes: the AES-256-CTR keystream for key sha256(seed). It is fast
 * (GB/s), incompressible like real compressed layers, and can be regenerated for a second pass.
 */
export function* seededChunks(seed: string, size: number, chunkSize = CHUNK): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkSize);
  let remaining = size;
  while (remaining > 0) {
    const n = Math.min(chunkSize, remaining);
    yield cipher.update(n === chunkSize ? zeros : zeros.subarray(0, n));
    remaining -= n;
  }
}

/** `size` deterministic bytes from `seed`, in one buffer (small blobs only). */
export function seededBytes(seed: string, size: number): Buffer {
  return Buffer.concat([...seededChunks(seed, size)]);
}

/** A blob to push: bytes in memory, or a seeded stream for big ones. */
export type BlobSource = { data: Buffer } | { seed: string; size: number };

function blobSize(source: BlobSource): number {
  return 'data' in source ? source.data.length : source.size;
}

function blobDigest(source: BlobSource): string {
  if ('data' in source) return sha256Digest(source.data);
  // First pass: hash the stream; the upload regenerates it.
  const hash = createHash('sha256');
  for (const chunk of seededChunks(source.seed, source.size)) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// A tiny registry client

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

type BodyFactory = () => Iterable<Buffer> | AsyncIterable<Buffer>;

interface RawRequestOptions {
  method: string;
  headers?: Record<string, string>;
  /** A buffer, or a factory producing the chunks (called again on a retry). */
  body?: Buffer | BodyFactory;
}

/** One HTTP/1.1 request with node:http (full control over Content-Length and streaming). */
export function rawRequest(url: string, options: RawRequestOptions): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else pipeline(Readable.from(body()), req).catch(reject);
  });
}

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const match of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[(match[1] ?? '').toLowerCase()] = match[2] ?? '';
  return { scheme, params };
}

/**
 * Minimal registry client used to push fixtures (and handy for tests that poke a registry).
 * Auth: on a 401 it reads `WWW-Authenticate`; Basic → sends the credentials, Bearer → gets a
 * `pull,push` token for the repository from the realm, then retries once.
 */
export class FixtureClient {
  private readonly authorization = new Map<string, string>();

  constructor(readonly endpoint: RegistryEndpoint) {}

  /** Sends a request about `repository`, authenticating on demand. `target` is a path or absolute URL. */
  async request(repository: string, target: string, options: RawRequestOptions): Promise<RawResponse> {
    const url = new URL(target, this.endpoint.url).toString();
    const send = () => {
      const auth = this.authorization.get(repository);
      return rawRequest(url, { ...options, headers: { ...options.headers, ...(auth ? { Authorization: auth } : {}) } });
    };
    const first = await send();
    if (first.status !== 401) return first;
    const challenge = first.headers['www-authenticate'];
    if (typeof challenge !== 'string') return first;
    await this.authenticate(repository, challenge);
    return send();
  }

  private async authenticate(repository: string, challengeHeader: string): Promise<void> {
    const { scheme, params } = parseChallenge(challengeHeader);
    const credentials = this.endpoint.credentials;
    const basic = credentials ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      if (!basic) throw new Error(`registry wants Basic auth but no credentials were given`);
      this.authorization.set(repository, basic);
      return;
    }
    if (scheme !== 'bearer' || !params.realm) throw new Error(`unsupported challenge: ${challengeHeader}`);
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.append('scope', `repository:${repository}:pull,push`);
    const response = await rawRequest(realm.toString(), { method: 'GET', headers: basic ? { Authorization: basic } : {} });
    if (response.status !== 200) throw new Error(`token request failed: ${response.status} ${response.body.toString()}`);
    const json = JSON.parse(response.body.toString()) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) throw new Error('token response without a token');
    this.authorization.set(repository, `Bearer ${token}`);
  }

  /** True when the repository already has the blob. */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const response = await this.request(repository, `/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
    return response.status === 200;
  }

  /** Monolithic upload (POST, then PUT with the whole body); skipped when the blob exists. */
  async pushBlob(repository: string, source: BlobSource, digest = blobDigest(source)): Promise<{ digest: string; size: number }> {
    const size = blobSize(source);
    if (await this.hasBlob(repository, digest)) return { digest, size };
    const started = await this.request(repository, `/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: { 'Content-Length': '0' } });
    const location = started.headers.location;
    if (started.status !== 202 || !location) throw new Error(`POST upload: ${started.status} ${started.body.toString()}`);
    const putUrl = new URL(location, this.endpoint.url);
    putUrl.searchParams.set('digest', digest);
    const body: Buffer | BodyFactory = 'data' in source ? source.data : () => seededChunks(source.seed, source.size);
    const done = await this.request(repository, putUrl.toString(), {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body,
    });
    if (done.status !== 201) throw new Error(`PUT upload ${digest}: ${done.status} ${done.body.toString()}`);
    return { digest, size };
  }

  /** PUTs manifest bytes under a tag or digest; checks the registry computed the same digest. */
  async putManifest(repository: string, reference: string, bytes: Buffer, contentType: string): Promise<string> {
    const response = await this.request(repository, `/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      headers: { 'Content-Type': contentType, 'Content-Length': String(bytes.length) },
      body: bytes,
    });
    if (response.status !== 201) throw new Error(`PUT manifest ${repository}:${reference}: ${response.status} ${response.body.toString()}`);
    const digest = sha256Digest(bytes);
    const echoed = response.headers['docker-content-digest'];
    if (echoed !== undefined && echoed !== digest) throw new Error(`registry says ${String(echoed)}, expected ${digest}`);
    return digest;
  }

  /** GETs a manifest (with every manifest type in Accept) and returns its exact bytes. */
  async getManifest(repository: string, reference: string, accept = ALL_MANIFEST_TYPES): Promise<{ status: number; contentType?: string; bytes: Buffer }> {
    const response = await this.request(repository, `/v2/${repository}/manifests/${reference}`, { method: 'GET', headers: { Accept: accept } });
    return { status: response.status, contentType: response.headers['content-type'], bytes: response.body };
  }
}

// ---------------------------------------------------------------------------------------------
// Manifest builders

/** How to format manifest JSON: JSON.stringify's indent argument, plus an optional final newline. */
export interface JsonFormat {
  indent?: number | string;
  trailingNewline?: boolean;
}

function formatJson(value: unknown, format: JsonFormat = {}): Buffer {
  const text = JSON.stringify(value, null, format.indent);
  return Buffer.from(format.trailingNewline ? `${text}\n` : text);
}

function client(target: RegistryEndpoint | FixtureClient): FixtureClient {
  return target instanceof FixtureClient ? target : new FixtureClient(target);
}

async function putManifestObject(
  c: FixtureClient,
  repository: string,
  tag: string | undefined,
  manifest: Record<string, unknown>,
  contentType: string,
  format: JsonFormat | undefined,
  blobs: Descriptor[],
  children: PushedManifest[],
  extra: Partial<Descriptor> = {},
): Promise<PushedManifest> {
  const manifestBytes = formatJson(manifest, format);
  const digest = await c.putManifest(repository, tag ?? sha256Digest(manifestBytes), manifestBytes, contentType);
  return {
    repository,
    tag,
    digest,
    mediaType: contentType,
    hasMediaTypeField: 'mediaType' in manifest,
    manifestBytes,
    descriptor: { mediaType: contentType, digest, size: manifestBytes.length, ...extra },
    blobs,
    children,
  };
}

/**
 * A layer for {@link pushImage}: bytes, a size (deterministic content from the image's seed),
 * or an object giving either `data` or `size` (+ optional `seed`) and optionally its media type.
 */
export type LayerSpec =
  | Buffer
  | number
  | { data: Buffer; mediaType?: string; annotations?: Record<string, string> }
  | { size: number; seed?: string; mediaType?: string; annotations?: Record<string, string> };

/** Options of {@link pushImage}. */
export interface PushImageOptions {
  /** Default: two small layers. */
  layers?: LayerSpec[];
  /** Raw config bytes; default: a plausible image config for `platform`. */
  config?: Buffer;
  /** Config media type; default the image config type of `mediaType`. */
  configMediaType?: string;
  /** 'oci' (default) or 'docker' media types. */
  mediaType?: 'oci' | 'docker';
  /** Default linux/amd64. */
  platform?: Platform;
  /** Seed for generated layers; default `${repository}:${tag}`. */
  seed?: string;
  annotations?: Record<string, string>;
  /** OCI `artifactType`. */
  artifactType?: string;
  /** OCI `subject` (makes this a referrer). */
  subject?: Descriptor;
  /** Leave out the top-level mediaType (as Helm does); pushed as an OCI manifest. */
  omitMediaType?: boolean;
  format?: JsonFormat;
}

function imageConfig(platform: Platform, diffIds: string[], label: string): Buffer {
  // Fixed timestamps keep digests stable between runs.
  const config = {
    created: '2024-01-01T00:00:00Z',
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], Labels: { 'org.example.fixture': label } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `fixture layer ${i}` })),
  };
  return Buffer.from(JSON.stringify(config));
}

/**
 * Pushes an image (config + layers + manifest) and tags it (or pushes by digest when `tag`
 * is undefined). Layers larger than 4 MiB are generated and uploaded as streams.
 */
export async function pushImage(
  target: RegistryEndpoint | FixtureClient,
  repository: string,
  tag: string | undefined,
  options: PushImageOptions = {},
): Promise<PushedManifest> {
  const c = client(target);
  const docker = options.mediaType === 'docker';
  const platform = options.platform ?? { architecture: 'amd64', os: 'linux' };
  const seed = options.seed ?? `${repository}:${tag ?? 'untagged'}:${platform.architecture}${platform.variant ?? ''}`;
  const specs = options.layers ?? [300, 1200];
  const defaultLayerType = docker ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.ociLayerGzip;

  const layers: Descriptor[] = [];
  for (const [index, spec] of specs.entries()) {
    let source: BlobSource;
    let mediaType: string = defaultLayerType;
    let annotations: Record<string, string> | undefined;
    if (Buffer.isBuffer(spec)) source = { data: spec };
    else if (typeof spec === 'number') source = { seed: `${seed}/layer-${index}`, size: spec };
    else {
      source = 'data' in spec ? { data: spec.data } : { seed: spec.seed ?? `${seed}/layer-${index}`, size: spec.size };
      mediaType = spec.mediaType ?? mediaType;
      annotations = spec.annotations;
    }
    // Small seeded layers are materialised: cheaper than two generator passes.
    if ('seed' in source && source.size <= IN_MEMORY_LIMIT) source = { data: seededBytes(source.seed, source.size) };
    const { digest, size } = await c.pushBlob(repository, source);
    layers.push({ mediaType, digest, size, ...(annotations ? { annotations } : {}) });
  }

  const configBytes = options.config ?? imageConfig(platform, layers.map((l) => l.digest), `${repository}:${tag ?? ''}`);
  const configMediaType = options.configMediaType ?? (docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig);
  const config = await c.pushBlob(repository, { data: configBytes });
  const configDescriptor: Descriptor = { mediaType: configMediaType, digest: config.digest, size: config.size };

  const contentType = docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest;
  const manifest: Record<string, unknown> = { schemaVersion: 2 };
  if (!options.omitMediaType) manifest.mediaType = contentType;
  if (options.artifactType) manifest.artifactType = options.artifactType;
  manifest.config = configDescriptor;
  manifest.layers = layers;
  if (options.subject) manifest.subject = options.subject;
  if (options.annotations) manifest.annotations = options.annotations;
  return putManifestObject(c, repository, tag, manifest, contentType, options.format, [configDescriptor, ...layers], [], {
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
  });
}

/** Options of {@link pushIndex}. */
export interface PushIndexOptions {
  /** 'oci' (image index, default) or 'docker' (manifest list). */
  mediaType?: 'oci' | 'docker';
  annotations?: Record<string, string>;
  /** OCI `artifactType` of the index. */
  artifactType?: string;
  format?: JsonFormat;
}

/** Pushes an index/list referencing already-pushed manifests (their descriptors are used as is). */
export async function pushIndex(
  target: RegistryEndpoint | FixtureClient,
  repository: string,
  tag: string | undefined,
  children: PushedManifest[],
  options: PushIndexOptions = {},
): Promise<PushedManifest> {
  const contentType = options.mediaType === 'docker' ? MEDIA_TYPES.dockerList : MEDIA_TYPES.ociIndex;
  const manifest: Record<string, unknown> = { schemaVersion: 2, mediaType: contentType };
  if (options.artifactType) manifest.artifactType = options.artifactType;
  manifest.manifests = children.map((child) => child.descriptor);
  if (options.annotations) manifest.annotations = options.annotations;
  return putManifestObject(client(target), repository, tag, manifest, contentType, options.format, [], children);
}

// ---------------------------------------------------------------------------------------------
// Named fixtures

function withPlatform(pushed: PushedManifest, platform: Platform): PushedManifest {
  return { ...pushed, descriptor: { ...pushed.descriptor, platform } };
}

/**
 * OCI image index for linux/amd64, linux/arm64/v8 and linux/arm/v7 (children pushed by digest),
 * pretty-printed with 3 spaces and a trailing newline to catch re-serialisation.
 */
export async function pushOciIndexThreePlatforms(target: RegistryEndpoint | FixtureClient, repository: string, tag = 'multi'): Promise<PushedManifest> {
  const c = client(target);
  const platforms: Platform[] = [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux', variant: 'v8' },
    { architecture: 'arm', os: 'linux', variant: 'v7' },
  ];
  const children: PushedManifest[] = [];
  for (const platform of platforms) {
    const child = await pushImage(c, repository, undefined, { platform, seed: `${repository}:${tag}:${platform.architecture}`, layers: [512, 2048] });
    children.push(withPlatform(child, platform));
  }
  return pushIndex(c, repository, tag, children, {
    annotations: { 'org.opencontainers.image.ref.name': tag, 'org.example.fixture': 'oci-index' },
    format: { indent: 3, trailingNewline: true },
  });
}

/** Docker manifest list for linux/amd64 and linux/arm64/v8, Docker media types, tab-indented. */
export async function pushDockerManifestList(target: RegistryEndpoint | FixtureClient, repository: string, tag = 'list'): Promise<PushedManifest> {
  const c = client(target);
  const platforms: Platform[] = [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux', variant: 'v8' },
  ];
  const children: PushedManifest[] = [];
  for (const platform of platforms) {
    // docker itself writes manifests with 3-space indentation.
    const child = await pushImage(c, repository, undefined, { mediaType: 'docker', platform, layers: [700, 900], format: { indent: 3 } });
    children.push(withPlatform(child, platform));
  }
  return pushIndex(c, repository, tag, children, { mediaType: 'docker', format: { indent: '\t' } });
}

/** Helm 3 chart: no top-level mediaType, Helm config and chart layer types, compact JSON. */
export async function pushHelmChart(target: RegistryEndpoint | FixtureClient, repository: string, tag = '0.1.0'): Promise<PushedManifest> {
  const name = repository.split('/').pop() ?? 'chart';
  const config = Buffer.from(JSON.stringify({ name, version: tag, description: 'Hoist test chart', apiVersion: 'v2', appVersion: '1.0.0', type: 'application' }));
  // Not a real tarball: copiers must treat layer bytes as opaque anyway.
  const chart = gzipSync(Buffer.concat([Buffer.from(`Chart.yaml\nname: ${name}\nversion: ${tag}\n`), seededBytes(`${repository}:${tag}:chart`, 1500)]), { level: 9 });
  return pushImage(target, repository, tag, {
    omitMediaType: true,
    config,
    configMediaType: MEDIA_TYPES.helmConfig,
    layers: [{ data: chart, mediaType: MEDIA_TYPES.helmChart, annotations: { 'org.opencontainers.image.title': `${name}-${tag}.tgz` } }],
    annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
  });
}

/** The artifact type used by the artifact and referrer fixtures. */
export const EXAMPLE_ARTIFACT_TYPE = 'application/vnd.example.sbom.v1';

/**
 * OCI artifact: `artifactType` set, the empty config `{}`, and one layer of a media type no tool
 * knows. 2-space indentation.
 */
export async function pushOciArtifactEmptyConfig(target: RegistryEndpoint | FixtureClient, repository: string, tag = 'sbom'): Promise<PushedManifest> {
  return pushImage(target, repository, tag, {
    artifactType: EXAMPLE_ARTIFACT_TYPE,
    config: EMPTY_JSON,
    configMediaType: MEDIA_TYPES.ociEmpty,
    layers: [{ data: Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: `${repository}:${tag}` })), mediaType: 'application/vnd.example.unknown-layer.v1+json' }],
    format: { indent: 2 },
  });
}

/** The fallback-tag name of the referrers tag schema: `sha256-<hex>`. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

/** What {@link pushImageWithReferrers} pushed. */
export interface ImageWithReferrers {
  image: PushedManifest;
  /** An artifact manifest whose `subject` is the image. */
  referrer: PushedManifest;
  /** The OCI index under the fallback tag `sha256-<hex>` listing the referrer. */
  referrersIndex: PushedManifest;
  /** A cosign-style signature manifest under `sha256-<hex>.sig`. */
  signature: PushedManifest;
}

/**
 * An image with one referrer (SBOM-like artifact with `subject`), the referrers tag-schema index
 * under `sha256-<hex>` (distribution 2.8 has no referrers API, so clients maintain that tag), and
 * a legacy cosign signature under `sha256-<hex>.sig`.
 */
export async function pushImageWithReferrers(target: RegistryEndpoint | FixtureClient, repository: string, tag = 'signed'): Promise<ImageWithReferrers> {
  const c = client(target);
  const image = await pushImage(c, repository, tag, { layers: [800, 1600] });
  const subject: Descriptor = { mediaType: image.mediaType, digest: image.digest, size: image.manifestBytes.length };
  const referrerAnnotations = { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' };
  const referrer = await pushImage(c, repository, undefined, {
    artifactType: EXAMPLE_ARTIFACT_TYPE,
    config: EMPTY_JSON,
    configMediaType: MEDIA_TYPES.ociEmpty,
    layers: [{ data: Buffer.from(`sbom of ${image.digest}\n`), mediaType: 'application/spdx+json' }],
    subject,
    annotations: referrerAnnotations,
  });
  const referrerDescriptor: Descriptor = { ...referrer.descriptor, artifactType: EXAMPLE_ARTIFACT_TYPE, annotations: referrerAnnotations };
  const referrersIndex = await pushIndex(c, repository, referrersTag(image.digest), [{ ...referrer, descriptor: referrerDescriptor }]);
  const payload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': repository }, image: { 'docker-manifest-digest': image.digest }, type: 'cosign container image signature' }, optional: null }));
  const signature = await pushImage(c, repository, `${referrersTag(image.digest)}.sig`, {
    layers: [{ data: payload, mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQDfixturesignatureAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==' } }],
    config: Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [sha256Digest(payload)] } })),
  });
  return { image, referrer, referrersIndex, signature };
}

/** What {@link pushTwoImagesSharingLayers} pushed. */
export interface TwoImagesSharingLayers {
  first: PushedManifest;
  second: PushedManifest;
  /** Digests of the layers both images have. */
  sharedLayerDigests: string[];
}

/**
 * Two images with two layers in common and one of their own each. The second goes to
 * `secondRepository` when given (cross-repository mount tests), else to the same repository.
 */
export async function pushTwoImagesSharingLayers(
  target: RegistryEndpoint | FixtureClient,
  repository: string,
  options: { secondRepository?: string; firstTag?: string; secondTag?: string } = {},
): Promise<TwoImagesSharingLayers> {
  const c = client(target);
  const base = (i: number) => ({ size: 3000 + i, seed: `${repository}:shared-base-${i}` });
  const first = await pushImage(c, repository, options.firstTag ?? 'first', { layers: [base(0), base(1), { size: 1111, seed: `${repository}:first-own` }] });
  const second = await pushImage(c, options.secondRepository ?? repository, options.secondTag ?? 'second', {
    layers: [base(0), base(1), { size: 2222, seed: `${repository}:second-own` }],
  });
  const sharedLayerDigests = first.blobs.slice(1, 3).map((b) => b.digest);
  return { first, second, sharedLayerDigests };
}

/** An image with `count` (default 40) small layers of distinct sizes. */
export async function pushManyLayers(target: RegistryEndpoint | FixtureClient, repository: string, tag = 'many', count = 40): Promise<PushedManifest> {
  return pushImage(target, repository, tag, { layers: Array.from({ length: count }, (_, i) => 100 + i * 37) });
}

/** Default size of {@link pushBigLayer}: 64 MiB + 1 byte (not a multiple of any chunk size). */
export const BIG_LAYER_SIZE = 64 * 1024 * 1024 + 1;

/**
 * An image with one big layer (default {@link BIG_LAYER_SIZE}) generated and uploaded as a
 * stream (never held in one buffer), plus one small layer.
 */
export async function pushBigLayer(target: RegistryEndpoint | FixtureClient, repository: string, tag = 'big', sizeBytes = BIG_LAYER_SIZE): Promise<PushedManifest> {
  return pushImage(target, repository, tag, { layers: [{ size: sizeBytes, seed: `${repository}:${tag}:big` }, 4096] });
}

// ---------------------------------------------------------------------------------------------
// Everything at once

/** The kinds {@link pushAllFixtures} always pushes, in its order (big-layer only on request). */
export const FIXTURE_KINDS = [
  'oci-image',
  'docker-image',
  'oci-index-three-platforms',
  'docker-manifest-list',
  'helm-chart',
  'oci-artifact-empty-config',
  'image-with-referrers',
  'two-images-sharing-layers',
  'many-layers',
] as const;

/** One fixture of {@link pushAllFixtures}, for table-driven tests. */
export interface FixtureSummary {
  /** Fixture kind, e.g. 'oci-index-three-platforms'. */
  name: string;
  repository: string;
  /** The main tag (copy this). */
  tag: string;
  /** Digest of the manifest under `tag`. */
  digest: string;
  /** Content type of the manifest under `tag`. */
  mediaType: string;
  /** Every manifest the fixture pushed (top-level first), so tests can compare bytes. */
  manifests: PushedManifest[];
  /** Digests of `manifests`. */
  manifestDigests: string[];
  /** Every tag the fixture created (main tag first). */
  tags: string[];
}

function flatten(manifest: PushedManifest): PushedManifest[] {
  return [manifest, ...manifest.children.flatMap(flatten)];
}

function summary(name: string, main: PushedManifest, others: PushedManifest[] = []): FixtureSummary {
  const manifests: PushedManifest[] = [];
  for (const m of [main, ...others].flatMap(flatten)) if (!manifests.some((x) => x.digest === m.digest)) manifests.push(m);
  const tags = [main, ...others].flatMap((m) => (m.tag ? [m.tag] : []));
  return {
    name,
    repository: main.repository,
    tag: main.tag ?? main.digest,
    digest: main.digest,
    mediaType: main.mediaType,
    manifests,
    manifestDigests: manifests.map((m) => m.digest),
    tags: [...new Set(tags)],
  };
}

/** Options of {@link pushAllFixtures}. */
export interface PushAllOptions {
  /** Also push the 64 MiB layer fixture (slow-ish; default false). */
  includeBigLayer?: boolean;
}

/**
 * Pushes one of each fixture kind into `${prefix}/<kind>` repositories, in parallel, and returns
 * their summaries (in a fixed order). Kinds: oci-image, docker-image, oci-index-three-platforms,
 * docker-manifest-list, helm-chart, oci-artifact-empty-config, image-with-referrers,
 * two-images-sharing-layers, many-layers, and big-layer when asked.
 */
export async function pushAllFixtures(target: RegistryEndpoint, prefix = 'fixtures', options: PushAllOptions = {}): Promise<FixtureSummary[]> {
  const repo = (kind: string) => `${prefix}/${kind}`;
  // A client per fixture: tokens are per repository anyway, and parallel pushes stay independent.
  const fresh = () => new FixtureClient(target);
  const jobs: Array<Promise<FixtureSummary>> = [
    pushImage(fresh(), repo('oci-image'), 'v1', { annotations: { 'org.example.fixture': 'oci-image' } }).then((m) => summary('oci-image', m)),
    pushImage(fresh(), repo('docker-image'), 'v1', { mediaType: 'docker', format: { indent: 3 } }).then((m) => summary('docker-image', m)),
    pushOciIndexThreePlatforms(fresh(), repo('oci-index-three-platforms')).then((m) => summary('oci-index-three-platforms', m)),
    pushDockerManifestList(fresh(), repo('docker-manifest-list')).then((m) => summary('docker-manifest-list', m)),
    pushHelmChart(fresh(), repo('helm-chart')).then((m) => summary('helm-chart', m)),
    pushOciArtifactEmptyConfig(fresh(), repo('oci-artifact-empty-config')).then((m) => summary('oci-artifact-empty-config', m)),
    pushImageWithReferrers(fresh(), repo('image-with-referrers')).then((r) => summary('image-with-referrers', r.image, [r.referrer, r.referrersIndex, r.signature])),
    pushTwoImagesSharingLayers(fresh(), repo('two-images-sharing-layers')).then((r) => summary('two-images-sharing-layers', r.first, [r.second])),
    pushManyLayers(fresh(), repo('many-layers')).then((m) => summary('many-layers', m)),
  ];
  if (options.includeBigLayer) jobs.push(pushBigLayer(fresh(), repo('big-layer')).then((m) => summary('big-layer', m)));
  return Promise.all(jobs);
}

/** Which descriptor of an image {@link pushImageWithLyingSize} makes lie, and the size it claims. */
export interface SizeLie {
  /** `config`, or the index of a layer. */
  blob: 'config' | number;
  size: number;
}

/**
 * An image whose manifest claims a wrong size for one of its blobs (the bytes themselves are
 * right): pushes an honest image under `${tag}-honest`, then its manifest with the size changed
 * under `tag`. distribution 2.8 checks only that referenced blobs exist, so it takes the lie.
 * Returns the lying manifest and the honest descriptor of the blob that lies.
 */
export async function pushImageWithLyingSize(
  target: RegistryEndpoint | FixtureClient,
  repository: string,
  tag: string,
  lie: SizeLie,
  options: PushImageOptions = {},
): Promise<{ manifest: PushedManifest; honest: Descriptor; honestImage: PushedManifest }> {
  const c = client(target);
  const honestImage = await pushImage(c, repository, `${tag}-honest`, options);
  const json = JSON.parse(honestImage.manifestBytes.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  const descriptor = lie.blob === 'config' ? json.config : json.layers[lie.blob];
  if (!descriptor) throw new Error(`the image has no layer ${String(lie.blob)}`);
  const honest = { ...descriptor };
  descriptor.size = lie.size;
  const blobs = [json.config, ...json.layers];
  const manifest = await putManifestObject(c, repository, tag, json as unknown as Record<string, unknown>, honestImage.mediaType, undefined, blobs, []);
  return { manifest, honest, honestImage };
}
