import { parseHostList, RegistryHosts } from '../../src/registry/hosts.js';
import { parseReference } from '../../src/registry/reference.js';

describe('parseReference', () => {
  it.each([
    ['hello-world', 'docker.io', 'library/hello-world', 'latest', undefined, 'registry-1.docker.io'],
    ['docker.io/hello-world:1', 'docker.io', 'library/hello-world', '1', undefined, 'registry-1.docker.io'],
    ['index.docker.io/library/alpine:3', 'docker.io', 'library/alpine', '3', undefined, 'registry-1.docker.io'],
    ['bitnami/redis', 'docker.io', 'bitnami/redis', 'latest', undefined, 'registry-1.docker.io'],
    ['localhost:5000/a/b:tag', 'localhost:5000', 'a/b', 'tag', undefined, 'localhost:5000'],
    ['localhost/x', 'localhost', 'x', 'latest', undefined, 'localhost'],
    ['ghcr.io/owner/repo/sub:v1.2', 'ghcr.io', 'owner/repo/sub', 'v1.2', undefined, 'ghcr.io'],
    ['[::1]:5000/x:y', '[::1]:5000', 'x', 'y', undefined, '[::1]:5000'],
    ['localhost:65535/x:y', 'localhost:65535', 'x', 'y', undefined, 'localhost:65535'],
    ['a.io:1/x', 'a.io:1', 'x', 'latest', undefined, 'a.io:1'],
    [`repo@sha256:${'a'.repeat(64)}`, 'docker.io', 'library/repo', undefined, `sha256:${'a'.repeat(64)}`, 'registry-1.docker.io'],
    [`myreg.azurecr.io/a:t@sha256:${'b'.repeat(64)}`, 'myreg.azurecr.io', 'a', 't', `sha256:${'b'.repeat(64)}`, 'myreg.azurecr.io'],
    ['a.b/c__d/e-f--g.h_i:T_1', 'a.b', 'c__d/e-f--g.h_i', 'T_1', undefined, 'a.b'],
  ])('%s', (input, registry, repository, tag, digest, apiHost) => {
    const ref = parseReference(input);
    expect(ref.registry.name).toBe(registry);
    expect(ref.repository).toBe(repository);
    expect(ref.tag).toBe(tag);
    expect(ref.digest).toBe(digest);
    expect(ref.registry.apiHost).toBe(apiHost);
  });

  it('lets the digest win over the tag', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    expect(parseReference(`a.io/x:tag@${digest}`).identifier).toBe(digest);
  });

  it.each([
    ['', /empty/],
    ['Hello-World', /component "Hello-World" is not valid: use lowercase/],
    ['a.io/Repo:tag', /component "Repo"/],
    ['a.io/x:-bad', /tag "-bad" is not valid/],
    ['a.io/x:', /tag "" is not valid/],
    ['a.io/x@sha256:abc', /64 lowercase hex/],
    ['a.io/x@md5:abcdef', /unsupported digest algorithm "md5"/],
    ['a.io//x', /component "" is not valid/],
    ['a.io/x y', /whitespace/],
    ['a.io/a..b', /component "a..b"/],
    [`a.io/${'x'.repeat(300)}`, /longer than 255/],
    ['127.0.0.1:99999/x', /registry "127.0.0.1:99999" has port 99999: give a port from 1 to 65535/],
    ['localhost:0/x', /has port 0: give a port from 1 to 65535/],
    ['[::1]:65536/x', /has port 65536/],
    // Surviving mutants showed these unchecked: anchors of the host, tag and digest patterns.
    ['bad_host.io/x:1', /registry "bad_host\.io" is not a valid host\[:port\]/],
    ['a.io_b/x:1', /registry "a\.io_b" is not a valid host/],
    [`a.io/x:${'t'.repeat(129)}`, /tag "t+" is not valid: up to 128/],
    [`a.io/x@sha256:${'a'.repeat(65)}`, /exactly 64 lowercase hex/],
    [`a.io/x@sha256:${'a'.repeat(63)}`, /exactly 64 lowercase hex/],
    [`a.io/x@sha512:${'b'.repeat(129)}`, /exactly 128 lowercase hex/],
    [`a.io/x@sha256:${'a'.repeat(64)}!`, /a digest is ALGORITHM:HEX/],
    [`a.io/x@!sha256:${'a'.repeat(64)}`, /a digest is ALGORITHM:HEX/],
    ['a.io/', /the repository name is empty/],
  ])('rejects %j', (input, message) => {
    expect(() => parseReference(input)).toThrow(message);
  });

  it('reads a lone name with a dot as a Docker Hub repository, and an uppercase first component as a registry', () => {
    expect(parseReference('my.image:1').name).toBe('docker.io/library/my.image');
    expect(parseReference('Myregistry/app:1').registry.name).toBe('Myregistry');
  });

  it('accepts a 128-character tag and a name of exactly 255 characters, not 256', () => {
    expect(parseReference(`a.io/x:${'t'.repeat(128)}`).tag).toHaveLength(128);
    const repository = (length: number) => `x${'y'.repeat(length - 'a.io/'.length - 1)}`;
    expect(parseReference(`a.io/${repository(255)}:t`).name).toHaveLength(255);
    expect(() => parseReference(`a.io/${repository(256)}:t`)).toThrow(/longer than 255/);
  });

  it('names the whole reference once when its digest is wrong', () => {
    expect(() => parseReference('a.io/x@sha256:abc')).toThrow(/^invalid reference "a\.io\/x@sha256:abc": a sha256 digest needs exactly 64 lowercase hex digits$/);
  });

  it('requires a registry when asked (az acr import rule)', () => {
    expect(() => parseReference('library/hello-world', { requireRegistry: true })).toThrow(/not fully qualified/);
    expect(parseReference('docker.io/library/hello-world', { requireRegistry: true }).registry.name).toBe('docker.io');
  });

  describe('scheme (a RegistryHost\'s)', () => {
    it.each([
      ['localhost:5000/x', 'http'],
      ['127.0.0.1:5000/x', 'http'],
      ['127.1.2.3/x', 'http'],
      ['127.10.200.30:5000/x', 'http'],
      ['[::1]:5000/x', 'http'],
      ['ghcr.io/x', 'https'],
      ['myreg.example:8443/x', 'https'],
      // Names that merely start like a loopback address are other hosts: never plain http.
      ['127.0.0.1.nip.io/x', 'https'],
      ['127.0.0.1000:5000/x', 'https'],
      ['127.0.0.1x.example/x', 'https'],
      ['a127.0.0.1/x', 'https'],
      ['localhost.example/x', 'https'],
    ])('%s uses %s', (input, scheme) => {
      expect(new RegistryHosts().host(parseReference(input).registry).scheme).toBe(scheme);
    });
    it('uses http for the insecure registries it is given (HOIST_INSECURE_REGISTRIES), and only in those hosts', () => {
      const hosts = new RegistryHosts({ insecureRegistries: parseHostList('myreg.example:8443, Other.example') });
      expect(hosts.host(parseReference('myreg.example:8443/x').registry).scheme).toBe('http');
      expect(hosts.host(parseReference('other.example/x').registry).scheme).toBe('http');
      expect(hosts.host(parseReference('myreg.example/x').registry).scheme).toBe('https');
      expect(new RegistryHosts().host(parseReference('other.example/x').registry).scheme).toBe('https');
    });
  });
});
