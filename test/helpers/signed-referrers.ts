/**
 * An image signed the OCI 1.1 way, with nested referrers (its SBOM and its signature refer to it;
 * a signature refers to the SBOM), and the checks the referrers tests share: bytes through
 * skopeo, tags, the referrers API's pages, and the tag-schema fallback indexes.
 */
import { expect } from 'vitest';
import { EMPTY_JSON, MEDIA_TYPES, pushImage, rawRequest, referrersTag, type Descriptor, type PushedManifest, type RegistryEndpoint } from './fixtures.js';
import type { ReferrerDescriptor, ReferrersFixture } from './referrers-fixture.js';
import type { TestRegistry } from './registry.js';
import { skopeoInspectRaw } from './skopeo.js';

/** Artifact type of the SBOM. */
export const SBOM_TYPE = 'application/vnd.example.sbom.v1';
/** Artifact type of the signatures. */
export const SIGNATURE_TYPE = 'application/vnd.example.signature.v1';
/** The OCI image index media type, which the referrers API answers with. */
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** An image, its SBOM and its signature (both referrers of the image), and a signature of the SBOM. */
export interface SignedImage {
  image: PushedManifest;
  sbom: PushedManifest;
  imageSignature: PushedManifest;
  sbomSignature: PushedManifest;
}

function subjectOf(pushed: PushedManifest): Descriptor {
  return { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.manifestBytes.length };
}

async function pushArtifact(target: RegistryEndpoint, repository: string, subject: PushedManifest, artifactType: string, content: string): Promise<PushedManifest> {
  return pushImage(target, repository, undefined, {
    artifactType,
    config: EMPTY_JSON,
    configMediaType: MEDIA_TYPES.ociEmpty,
    layers: [{ data: Buffer.from(content), mediaType: 'application/vnd.example.payload.v1' }],
    subject: subjectOf(subject),
    annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.kind': artifactType },
  });
}

/** Pushes the way an OCI 1.1 client does on a registry with the API: referrers, no fallback tags. */
export async function pushSignedImage(target: RegistryEndpoint, repository: string): Promise<SignedImage> {
  const image = await pushImage(target, repository, 'v1', { layers: [700, 1300] });
  const sbom = await pushArtifact(target, repository, image, SBOM_TYPE, `sbom of ${image.digest}`);
  const imageSignature = await pushArtifact(target, repository, image, SIGNATURE_TYPE, `signature of ${image.digest}`);
  const sbomSignature = await pushArtifact(target, repository, sbom, SIGNATURE_TYPE, `signature of ${sbom.digest}`);
  return { image, sbom, imageSignature, sbomSignature };
}

/** Every manifest of a signed image, the image first. */
export function allOf(signed: SignedImage): PushedManifest[] {
  return [signed.image, signed.sbom, signed.imageSignature, signed.sbomSignature];
}

/** What the referrers API (or the fallback index) must list for a referrer. */
export function listed(pushed: PushedManifest, artifactType: string): ReferrerDescriptor {
  return { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.manifestBytes.length, artifactType, annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.kind': artifactType } };
}

/** Each manifest reads back from `host` through skopeo byte for byte as it was pushed. */
export async function expectSameBytes(host: string, repository: string, manifests: PushedManifest[]): Promise<void> {
  for (const manifest of manifests) {
    const bytes = await skopeoInspectRaw(`${host}/${repository}@${manifest.digest}`);
    expect(bytes.equals(manifest.manifestBytes), `${manifest.digest} differs on ${host}`).toBe(true);
  }
}

/** The repository's tags, sorted (tags/list). */
export async function tagsOf(endpoint: { url: string }, repository: string): Promise<string[]> {
  const res = await rawRequest(`${endpoint.url}/v2/${repository}/tags/list`, { method: 'GET' });
  expect(res.status).toBe(200);
  return ((JSON.parse(res.body.toString()) as { tags: string[] | null }).tags ?? []).sort();
}

/** Every page of the referrers API, following `Link`. */
export async function referrersPages(fixture: ReferrersFixture, repository: string, digest: string, query = ''): Promise<Array<{ status: number; headers: Record<string, unknown>; manifests: ReferrerDescriptor[] }>> {
  const pages = [];
  let next: string | undefined = `/v2/${repository}/referrers/${digest}${query}`;
  while (next) {
    const res = await rawRequest(new URL(next, fixture.url).toString(), { method: 'GET', headers: { accept: OCI_INDEX } });
    pages.push({ status: res.status, headers: res.headers, manifests: (JSON.parse(res.body.toString()) as { manifests: ReferrerDescriptor[] }).manifests });
    next = /<([^>]+)>;\s*rel="next"/.exec(String(res.headers.link ?? ''))?.[1];
  }
  return pages;
}

/** Every referrer the API lists for `digest`, across its pages. */
export async function referrersOf(fixture: ReferrersFixture, repository: string, digest: string): Promise<ReferrerDescriptor[]> {
  return (await referrersPages(fixture, repository, digest)).flatMap((page) => page.manifests);
}

/** The descriptors the tag-schema fallback index of `digest` lists. */
export async function fallbackIndex(registry: TestRegistry, repository: string, digest: string): Promise<ReferrerDescriptor[]> {
  return (JSON.parse((await skopeoInspectRaw(`${registry.host}/${repository}:${referrersTag(digest)}`)).toString()) as { manifests: ReferrerDescriptor[] }).manifests;
}

/** The referrers tag schema's indexes for a signed image, as a client without the API writes them. */
export async function pushFallbackTags(registry: TestRegistry, repository: string, signed: SignedImage): Promise<void> {
  const indexes: Array<[PushedManifest, ReferrerDescriptor[]]> = [
    [signed.image, [listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]],
    [signed.sbom, [listed(signed.sbomSignature, SIGNATURE_TYPE)]],
  ];
  for (const [subject, manifests] of indexes) {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
    const res = await rawRequest(`${registry.url}/v2/${repository}/manifests/${referrersTag(subject.digest)}`, { method: 'PUT', headers: { 'content-type': OCI_INDEX }, body: bytes });
    expect(res.status).toBe(201);
  }
}
