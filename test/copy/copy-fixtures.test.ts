/**
 * Every fixture kind, under each auth mode, copied by the engine between two real distribution
 * registries, and checked with skopeo.
 */
import { copy } from '../../src/copy/index.js';
import { pushAllFixtures, type FixtureSummary } from '../helpers/fixtures.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../helpers/registry.js';
import { hostsFor, expectIdenticalInTarget, ref } from './support.js';

describe.each<RegistryAuth>(['none', 'basic', 'token'])('copy every fixture kind, auth %s', (auth) => {
  let source: TestRegistry;
  let target: TestRegistry;
  let fixtures: FixtureSummary[];

  beforeAll(async () => {
    [source, target] = await Promise.all([startRegistry({ auth }), startRegistry({ auth })]);
    fixtures = await pushAllFixtures(source, 'fx', { includeBigLayer: auth === 'none' });
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('copies each fixture byte-identically', { tags: ['slow'] }, async () => {
    const hosts = hostsFor(source, target);
    for (const fixture of fixtures) {
      // The shared-layers fixture is two images under two tags: copy both.
      const tags = fixture.name === 'two-images-sharing-layers' ? fixture.tags : [fixture.tag];
      for (const tag of tags) {
        const pushed = fixture.manifests.find((m) => m.tag === tag)!;
        const result = await copy(
          { source: ref(source, `${fixture.repository}:${tag}`), targets: [ref(target, `copied/${fixture.name}:${tag}`)], referrers: fixture.name === 'image-with-referrers' },
          { hosts },
        );
        expect(result.status).toBe('completed');
        expect(result.sourceDigest).toBe(pushed.digest);
        expect(result.targets).toEqual([{ reference: `${target.host}/copied/${fixture.name}:${tag}`, digest: pushed.digest, written: true }]);
      }
      await expectIdenticalInTarget(target, `copied/${fixture.name}`, fixture.tag, fixture.manifests);
    }
  });
});
