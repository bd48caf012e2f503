/**
 * Referrers between registries with the OCI 1.1 referrers API (the protocol fixture in front of
 * a real distribution registry) and without it (distribution 2.8 alone, the tag fallback): every
 * referrer arrives byte for byte, nested ones too, in both directions, and a registry that took
 * the subject itself gets no fallback tag.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { copy, CopyError } from '../../src/copy/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryError } from '../../src/registry/errors.js';
import { rawRequest, type PushedManifest } from '../helpers/fixtures.js';
import { startProxy, type ProxyRule } from '../helpers/proxy.js';
import { startReferrersFixture, type ReferrersFixture } from '../helpers/referrers-fixture.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  allOf,
  expectSameBytes,
  fallbackIndex,
  listed,
  OCI_INDEX,
  pushFallbackTags,
  pushSignedImage,
  referrersOf,
  referrersPages,
  SBOM_TYPE,
  SIGNATURE_TYPE,
  tagsOf,
  type SignedImage,
} from '../helpers/signed-referrers.js';
import { ref } from './support.js';

describe('referrers with and without the OCI 1.1 referrers API', () => {
  let registryA: TestRegistry;
  let plain: TestRegistry;
  let registryC: TestRegistry;
  let apiA: ReferrersFixture;
  let apiC: ReferrersFixture;
  beforeAll(async () => {
    [registryA, plain, registryC] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
    // One descriptor per page, so a reader that ignores Link loses referrers.
    [apiA, apiC] = await Promise.all([startReferrersFixture(registryA.url, { pageSize: 1 }), startReferrersFixture(registryC.url, { pageSize: 1 })]);
  });
  afterAll(async () => {
    await Promise.all([apiA?.stop(), apiC?.stop()]);
    await Promise.all([registryA?.stop(), plain?.stop(), registryC?.stop()]);
  });

  describe('the protocol fixture (distribution-spec v1.1)', () => {
    let signed: SignedImage;
    beforeAll(async () => {
      signed = await pushSignedImage(apiA, 'fixture/app');
    });

    it('answers a manifest PUT with a subject with OCI-Subject, and one without it without', async () => {
      const put = (pushed: PushedManifest) =>
        rawRequest(`${apiA.url}/v2/fixture/app/manifests/${pushed.digest}`, { method: 'PUT', headers: { 'content-type': pushed.mediaType }, body: pushed.manifestBytes });
      const withSubject = await put(signed.sbomSignature);
      expect(withSubject.status).toBe(201);
      expect(withSubject.headers['oci-subject']).toBe(signed.sbom.digest);
      const withoutSubject = await put(signed.image);
      expect(withoutSubject.status).toBe(201);
      expect(withoutSubject.headers['oci-subject']).toBeUndefined();
    });

    it('lists referrers as an OCI index, a page at a time with Link, filtered by artifactType', async () => {
      const pages = await referrersPages(apiA, 'fixture/app', signed.image.digest);
      expect(pages.map((p) => [p.status, p.headers['content-type']])).toEqual([
        [200, OCI_INDEX],
        [200, OCI_INDEX],
      ]);
      expect(pages.flatMap((p) => p.manifests)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
      expect(pages[0]!.headers['oci-filters-applied']).toBeUndefined();

      const filtered = await referrersPages(apiA, 'fixture/app', signed.image.digest, `?artifactType=${encodeURIComponent(SIGNATURE_TYPE)}`);
      expect(filtered.flatMap((p) => p.manifests)).toEqual([listed(signed.imageSignature, SIGNATURE_TYPE)]);
      expect(filtered.map((p) => p.headers['oci-filters-applied'])).toEqual(['artifactType']);
    });

    it('answers an empty index (200) for a digest nothing refers to, and the registry 404 for an unknown repository', async () => {
      const [page] = await referrersPages(apiA, 'fixture/app', signed.sbomSignature.digest);
      expect(page).toMatchObject({ status: 200, headers: { 'content-type': OCI_INDEX }, manifests: [] });
      const unknown = await rawRequest(`${apiA.url}/v2/fixture/nothing/referrers/${signed.image.digest}`, { method: 'GET' });
      expect(unknown.status).toBe(404);
    });

    it("Hoist's client follows Link across every page, and finds no API on distribution 2.8", async () => {
      const image = ref(apiA, `fixture/app@${signed.image.digest}`);
      const found = await RegistryClient.for(image.registry, new RegistryHosts()).referrers(image, signed.image.digest);
      expect(found?.map((d) => d.digest)).toEqual([signed.sbom.digest, signed.imageSignature.digest]);
      const onPlain = ref(plain, 'fixture/app:v1');
      expect(await RegistryClient.for(onPlain.registry, new RegistryHosts()).referrers(onPlain, signed.image.digest)).toBeUndefined();
    });

    it('drops a deleted manifest from its subject\'s referrers', async () => {
      const deleted = await rawRequest(`${apiA.url}/v2/fixture/app/manifests/${signed.sbomSignature.digest}`, { method: 'DELETE' });
      expect(deleted.status).toBe(202);
      expect(await referrersOf(apiA, 'fixture/app', signed.sbom.digest)).toEqual([]);
      expect(await referrersOf(apiA, 'fixture/app', signed.image.digest)).toHaveLength(2);
    });
  });

  it('copies API registry → fallback registry → API registry: every referrer, nested ones too, and no fallback tag where the API took the subject', async () => {
    const signed = await pushSignedImage(apiA, 'chain/app');
    expect(await tagsOf(apiA, 'chain/app')).toEqual(['v1']);

    const toPlain = await copy({ source: ref(apiA, 'chain/app:v1'), targets: [ref(plain, 'chain/app:v1')], referrers: true });
    expect(toPlain.manifests.map((m) => m.digest).sort()).toEqual(allOf(signed).map((m) => m.digest).sort());
    expect(apiA.referrersRequests.some((path) => path.startsWith(`/v2/chain/app/referrers/${signed.image.digest}?last=`)), 'the second page was read').toBe(true);
    await expectSameBytes(plain.host, 'chain/app', allOf(signed));
    // Without the API the subjects' fallback tags list their referrers, as the API did.
    expect(await fallbackIndex(plain, 'chain/app', signed.image.digest)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
    expect(await fallbackIndex(plain, 'chain/app', signed.sbom.digest)).toEqual([listed(signed.sbomSignature, SIGNATURE_TYPE)]);

    const toApi = await copy({ source: ref(plain, 'chain/app:v1'), targets: [ref(apiC, 'chain/app:v1')], referrers: true });
    expect(toApi.manifests.map((m) => m.digest).sort()).toEqual(allOf(signed).map((m) => m.digest).sort());
    await expectSameBytes(apiC.host, 'chain/app', allOf(signed));
    expect(await referrersOf(apiC, 'chain/app', signed.image.digest)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
    expect(await referrersOf(apiC, 'chain/app', signed.sbom.digest)).toEqual([listed(signed.sbomSignature, SIGNATURE_TYPE)]);
    expect(await tagsOf(apiC, 'chain/app')).toEqual(['v1']);
  });

  it('writes no fallback tag on an API registry that already holds the referrers (a copy run again)', async () => {
    const signed = await pushSignedImage(apiA, 'again/app');
    for (let run = 0; run < 2; run++) {
      const result = await copy({ source: ref(apiA, 'again/app:v1'), targets: [ref(apiC, 'again/app:v1')], referrers: true });
      expect(result.targetDigest).toBe(signed.image.digest);
    }
    await expectSameBytes(apiC.host, 'again/app', allOf(signed));
    expect(await tagsOf(apiC, 'again/app')).toEqual(['v1']);
  });

  it('--referrers brings the same referrers whichever side has the API', async () => {
    const signed = await pushSignedImage(plain, 'sides/app');
    // An OCI 1.1 client on a registry without the API keeps the fallback tags itself.
    await pushFallbackTags(plain, 'sides/app', signed);
    const fromPlain = await copy({ source: ref(plain, 'sides/app:v1'), targets: [ref(apiC, 'sides/app:v1')], referrers: true });
    const fromApi = await copy({ source: ref(apiC, 'sides/app:v1'), targets: [ref(plain, 'sides/copy:v1')], referrers: true });
    const plainToPlain = await copy({ source: ref(plain, 'sides/app:v1'), targets: [ref(plain, 'sides/again:v1')], referrers: true });
    for (const result of [fromPlain, fromApi, plainToPlain]) {
      expect(result.manifests.map((m) => m.digest).sort()).toEqual(allOf(signed).map((m) => m.digest).sort());
    }
    await expectSameBytes(apiC.host, 'sides/app', allOf(signed));
    await expectSameBytes(plain.host, 'sides/copy', allOf(signed));
    expect(await referrersOf(apiC, 'sides/app', signed.image.digest)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
    expect(await tagsOf(apiC, 'sides/app')).toEqual(['v1']);
    for (const repository of ['sides/copy', 'sides/again']) {
      expect(await fallbackIndex(plain, repository, signed.image.digest)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
      expect(await fallbackIndex(plain, repository, signed.sbom.digest)).toEqual([listed(signed.sbomSignature, SIGNATURE_TYPE)]);
    }
  });
});

describe('a referrers list that breaks off', () => {
  let registry: TestRegistry;
  let target: TestRegistry;
  let api: ReferrersFixture;
  let signed: SignedImage;
  beforeAll(async () => {
    [registry, target] = await Promise.all([startRegistry(), startRegistry()]);
    api = await startReferrersFixture(registry.url, { pageSize: 1 });
    signed = await pushSignedImage(api, 'broken/app');
  });
  afterAll(async () => {
    await api?.stop();
    await Promise.all([registry?.stop(), target?.stop()]);
  });

  /** Copies through a proxy in front of the fixture; the copy must fail before anything is tagged. */
  async function copyThrough(rule: ProxyRule, repository: string): Promise<{ error: unknown; referrersRequests: number }> {
    const proxy = await startProxy(api.url, [rule]);
    try {
      const error = await copy({ source: ref(proxy, 'broken/app:v1'), targets: [ref(target, `${repository}:v1`)], referrers: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const tag = await rawRequest(`${target.url}/v2/${repository}/manifests/v1`, { method: 'HEAD' });
      expect(tag.status, 'the target tag was not written').toBe(404);
      return { error, referrersRequests: proxy.requests.filter((r) => r.path.startsWith(`/v2/broken/app/referrers/${signed.image.digest}`)).length };
    } finally {
      await proxy.stop();
    }
  }

  function expectIncomplete(error: unknown): void {
    expect(error).toBeInstanceOf(CopyError);
    const cause = (error as CopyError).cause;
    expect(cause).toBeInstanceOf(RegistryError);
    expect((cause as RegistryError).details[0]?.code).toBe('REFERRERS_INCOMPLETE');
  }

  it('fails the copy when a later page is not an index, rather than copying the first page alone', async () => {
    const secondPage: ProxyRule = (req) => (req.path.includes('/referrers/') && req.path.includes('last=') ? { type: 'respond', status: 200, headers: { 'content-type': 'text/html' }, body: '<html>maintenance</html>' } : undefined);
    const { error } = await copyThrough(secondPage, 'broken/second-page');
    expectIncomplete(error);
    expect((error as CopyError).message).toContain('page 2 answered 200 with a text/html body');
  });

  it('fails the copy when Link leads back to a page already read, after one request', async () => {
    const loop: ProxyRule = (req) => {
      if (!req.pathname.endsWith(`/referrers/${signed.image.digest}`)) return undefined;
      const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [listed(signed.sbom, SBOM_TYPE)] });
      return { type: 'respond', status: 200, headers: { 'content-type': OCI_INDEX, link: `<${req.path}>; rel="next"` }, body };
    };
    const { error, referrersRequests } = await copyThrough(loop, 'broken/loop');
    expectIncomplete(error);
    expect(referrersRequests).toBe(1);
  });

  it('stops at 1000 pages of a list that never ends, with an error rather than what it read', async () => {
    const endless: ProxyRule = (req) => {
      if (!req.pathname.endsWith(`/referrers/${signed.image.digest}`)) return undefined;
      const page = Number(new URLSearchParams(req.path.split('?')[1] ?? '').get('page') ?? 0);
      const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [listed(signed.sbom, SBOM_TYPE)] });
      return { type: 'respond', status: 200, headers: { 'content-type': OCI_INDEX, link: `<${req.pathname}?page=${page + 1}>; rel="next"` }, body };
    };
    const proxy = await startProxy(api.url, [endless]);
    try {
      const image = ref(proxy, `broken/app@${signed.image.digest}`);
      const error = await RegistryClient.for(image.registry, new RegistryHosts()).referrers(image, signed.image.digest).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).details[0]).toMatchObject({ code: 'REFERRERS_INCOMPLETE', message: 'the referrers list broke off: the list goes on past 1000 pages' });
      expect(proxy.requests).toHaveLength(1000);
    } finally {
      await proxy.stop();
    }
  });
});

