/** Manifest and blob media types the copy has to recognise (OCI image spec, Docker v2, Helm 3). */
export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  /** Only in OCI v1.1 release candidates: accepted when reading, never produced. */
  OciArtifactManifest: 'application/vnd.oci.artifact.manifest.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  HelmConfig: 'application/vnd.cncf.helm.config.v1+json',
  /** Windows base layers and the images built on them: served from the descriptor's `urls`. */
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciNonDistributableLayer: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciNonDistributableLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciNonDistributableLayerZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
} as const;

/** Every manifest type, sent in `Accept` on each manifest request: distribution answers 404 for an
 * OCI manifest, and silently the linux/amd64 child of a list, when its type is missing. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
  MediaType.OciArtifactManifest,
  MediaType.DockerSchema1Signed,
  MediaType.DockerSchema1,
].join(', ');

export function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

export function isSchema1Type(mediaType: string): boolean {
  return mediaType === MediaType.DockerSchema1 || mediaType === MediaType.DockerSchema1Signed;
}

const NON_DISTRIBUTABLE: readonly string[] = [MediaType.DockerForeignLayer, MediaType.OciNonDistributableLayer, MediaType.OciNonDistributableLayerGzip, MediaType.OciNonDistributableLayerZstd];

/**
 * A layer its publisher keeps out of registries (Windows base layers, licensed content): clients
 * fetch it from the descriptor's `urls`, and docker, containerd, crane and skopeo leave it there
 * when they push. Told by media type, as ggcr's `IsDistributable` does.
 */
export function isNonDistributableType(mediaType: string): boolean {
  return NON_DISTRIBUTABLE.includes(mediaType);
}
