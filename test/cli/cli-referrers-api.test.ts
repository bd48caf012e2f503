/**
 * `hoist copy --referrers` between a registry with the OCI 1.1 referrers API (the protocol
 * fixture in front of distribution) and one without (distribution 2.8): the same referrers
 * arrive whichever side has the API, and the API side gets no fallback tag.
 */
import { startReferrersFixture, type ReferrersFixture } from '../helpers/referrers-fixture.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { allOf, expectSameBytes, fallbackIndex, listed, pushSignedImage, referrersOf, SBOM_TYPE, SIGNATURE_TYPE, tagsOf } from '../helpers/signed-referrers.js';
import { requireBuild, runHoist, tempHome, type TempHome } from './support.js';

let withApi: TestRegistry;
let plain: TestRegistry;
let api: ReferrersFixture;
let home: TempHome;

beforeAll(async () => {
  requireBuild();
  [withApi, plain, home] = await Promise.all([startRegistry(), startRegistry(), tempHome()]);
  api = await startReferrersFixture(withApi.url, { pageSize: 1 });
});
afterAll(async () => {
  await api?.stop();
  await Promise.all([withApi?.stop(), plain?.stop(), home?.cleanup()]);
});

it('--referrers copies API → fallback → API with every nested referrer, and no fallback tag on the API side', async () => {
  const signed = await pushSignedImage(api, 'cli/signed');
  const toPlain = await runHoist(['copy', `${api.host}/cli/signed:v1`, `${plain.host}/cli/signed:v1`, '--referrers'], home);
  expect(toPlain.code, toPlain.all).toBe(0);
  expect(toPlain.stdout).toMatch(/^4 manifests written;/m);
  await expectSameBytes(plain.host, 'cli/signed', allOf(signed));
  expect(await fallbackIndex(plain, 'cli/signed', signed.image.digest)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
  expect(await fallbackIndex(plain, 'cli/signed', signed.sbom.digest)).toEqual([listed(signed.sbomSignature, SIGNATURE_TYPE)]);

  const back = await runHoist(['copy', `${plain.host}/cli/signed:v1`, `${api.host}/cli/back:v1`, '--referrers'], home);
  expect(back.code, back.all).toBe(0);
  expect(back.stdout).toMatch(/^4 manifests written;/m);
  await expectSameBytes(api.host, 'cli/back', allOf(signed));
  expect(await referrersOf(api, 'cli/back', signed.image.digest)).toEqual([listed(signed.sbom, SBOM_TYPE), listed(signed.imageSignature, SIGNATURE_TYPE)]);
  expect(await referrersOf(api, 'cli/back', signed.sbom.digest)).toEqual([listed(signed.sbomSignature, SIGNATURE_TYPE)]);
  expect(await tagsOf(api, 'cli/back')).toEqual(['v1']);
});
