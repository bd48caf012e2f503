/**
 * Telling manifest and layer kinds apart by media type: an index read as an image loses its
 * children, a schema1 manifest must be refused by name, and a non-distributable layer is left at
 * its URLs as docker, crane and skopeo leave it.
 */
import { isIndexType, isNonDistributableType, isSchema1Type, MANIFEST_ACCEPT, MediaType } from '../../src/registry/media-types.js';

const every = Object.values(MediaType);
const only = (predicate: (mediaType: string) => boolean) => every.filter(predicate);

describe('media types', () => {
  it('knows the two index types and no other', () => {
    expect(only(isIndexType)).toEqual([MediaType.DockerManifestList, MediaType.OciIndex]);
  });

  it('knows the two schema1 types and no other', () => {
    expect(only(isSchema1Type)).toEqual([MediaType.DockerSchema1, MediaType.DockerSchema1Signed]);
  });

  it('knows the four non-distributable layer types and no other', () => {
    expect(only(isNonDistributableType)).toEqual([MediaType.DockerForeignLayer, MediaType.OciNonDistributableLayer, MediaType.OciNonDistributableLayerGzip, MediaType.OciNonDistributableLayerZstd]);
    expect(isNonDistributableType('application/vnd.oci.image.layer.v1.tar+gzip')).toBe(false);
  });

  it('accepts every manifest type on a manifest request, and nothing that is not a manifest', () => {
    expect(MANIFEST_ACCEPT.split(', ').sort()).toEqual(
      [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest, MediaType.OciArtifactManifest, MediaType.DockerSchema1Signed, MediaType.DockerSchema1].sort(),
    );
  });
});
