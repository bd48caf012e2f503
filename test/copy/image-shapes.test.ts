/**
 * Real-world image shapes against real distribution registries: Windows images with foreign
 * (non-distributable) layers served from a URL host, Windows and Linux in one index told apart
 * by os.version, and BuildKit attestation manifests kept with a platform subset.
 *
 * The registries accept foreign URLs the way Docker Hub does (`validation.manifests.urls.allow`),
 * except the one that stands for a target refusing them; a loopback HTTP server stands in for
 * Microsoft's layer host.
 */
import { copy, CopyError } from '../../src/copy/index.js';
import { parsePlatform } from '../../src/copy/platform.js';
import type { ProgressEvent } from '../../src/copy/types.js';
import { FixtureClient, MEDIA_TYPES, pushImage, rawRequest, seededBytes } from '../helpers/fixtures.js';
import { ALLOW_URLS, FOREIGN_LAYER, OCI_NONDISTRIBUTABLE_LAYER, pushIndexWithAttestations, pushWindowsImage, startLayerHost, type LayerHost } from '../helpers/image-shapes.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoCopyAll, skopeoInspectRaw } from '../helpers/skopeo.js';
import { hostsFor, ref } from './support.js';

const LTSC2019 = '10.0.17763.5329';
const LTSC2022 = '10.0.20348.2227';

async function blobStatus(registry: TestRegistry, repository: string, digest: string): Promise<number> {
  return (await rawRequest(`${registry.url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' })).status;
}

async function manifestStatus(registry: TestRegistry, repository: string, reference: string): Promise<number> {
  const accept = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest].join(', ');
  return (await rawRequest(`${registry.url}/v2/${repository}/manifests/${reference}`, { method: 'HEAD', headers: { accept } })).status;
}

describe('real-world image shapes', () => {
  let source: TestRegistry;
  let target: TestRegistry;
  let refusing: TestRegistry;
  let host: LayerHost;
  let client: FixtureClient;

  beforeAll(async () => {
    // The source wants credentials: they must never reach the layer host.
    [source, target, refusing, host] = await Promise.all([startRegistry({ auth: 'basic', extraConfig: ALLOW_URLS }), startRegistry({ extraConfig: ALLOW_URLS }), startRegistry(), startLayerHost()]);
    client = new FixtureClient(source);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop(), refusing?.stop(), host?.close()]);
  });

  describe('foreign layers', () => {
    it.each([
      ['Docker', FOREIGN_LAYER],
      ['OCI', OCI_NONDISTRIBUTABLE_LAYER],
    ])('leaves a foreign layer (%s) referenced by URL by default, and keeps the manifest digest', async (kind, mediaType) => {
      const repository = `win/skip-${kind.toLowerCase()}`;
      const foreign = seededBytes(`default-skip-${kind}`, 6000);
      host.serve('default-skip', foreign);
      const image = await pushWindowsImage(client, repository, 'ltsc2019', { urls: [`${host.url}/layers/default-skip`], foreign, osVersion: LTSC2019, oci: kind === 'OCI' });
      const events: ProgressEvent[] = [];
      const mark = host.requests.length;

      const planned = await copy({ source: ref(source, `${repository}:ltsc2019`), targets: [ref(target, `${repository}:ltsc2019`)], dryRun: true }, { hosts: hostsFor(source) });
      expect(planned.plan.externalBlobs).toEqual([{ digest: image.foreignDigest, size: image.foreignSize, mediaType, urls: [`${host.url}/layers/default-skip`] }]);
      expect(planned.plan.blobs.map((b) => b.digest)).not.toContain(image.foreignDigest);

      const result = await copy({ source: ref(source, `${repository}:ltsc2019`), targets: [ref(target, `${repository}:ltsc2019`)] }, { hosts: hostsFor(source), onProgress: (e) => events.push(e) });
      expect(result.targetDigest).toBe(image.digest);
      expect(result.blobs).toMatchObject({ total: 2, copied: 2 });
      expect(events).toContainEqual(expect.objectContaining({ type: 'plan', blobs: 2, blobsExternal: 1 }));
      expect(events).toContainEqual(expect.objectContaining({ type: 'blob-external', digest: image.foreignDigest }));
      expect((await skopeoInspectRaw(`${target.host}/${repository}:ltsc2019`)).equals(image.bytes)).toBe(true);
      expect(await blobStatus(target, repository, image.foreignDigest)).toBe(404);
      expect(host.requests.length).toBe(mark);
    });

    it('copies a foreign layer from its URL on request, with no credentials sent there', async () => {
      const foreign = seededBytes('opt-in', 7000);
      host.serve('opt-in', foreign);
      // The first URL fails, the second redirects: the first that works is used.
      const urls = [`${host.url}/missing/opt-in`, `${host.url}/moved/opt-in`];
      const image = await pushWindowsImage(client, 'win/copy', 'ltsc2019', { urls, foreign, osVersion: LTSC2019 });
      const mark = host.requests.length;

      const result = await copy({ source: ref(source, 'win/copy:ltsc2019'), targets: [ref(target, 'win/copy:ltsc2019')], allowNondistributableArtifacts: true }, { hosts: hostsFor(source) });
      expect(result.plan.externalBlobs).toEqual([]);
      expect(result.blobs).toMatchObject({ total: 3, copied: 3 });
      expect(result.targetDigest).toBe(image.digest);
      expect(await blobStatus(target, 'win/copy', image.foreignDigest)).toBe(200);
      expect((await skopeoInspectRaw(`${target.host}/win/copy:ltsc2019`)).equals(image.bytes)).toBe(true);
      const asked = host.requests.slice(mark);
      expect(asked.map((r) => r.path)).toEqual(expect.arrayContaining(['/missing/opt-in', '/moved/opt-in', '/layers/opt-in']));
      expect(asked.every((r) => r.headers.authorization === undefined)).toBe(true);
    });

    it('takes a foreign layer from the source registry when it holds it, asking no URL', async () => {
      const foreign = seededBytes('in-registry', 5000);
      const image = await pushWindowsImage(client, 'win/held', 'ltsc2019', { urls: [`${host.url}/layers/in-registry`], foreign, osVersion: LTSC2019, inRegistry: true });
      const mark = host.requests.length;
      await copy({ source: ref(source, 'win/held:ltsc2019'), targets: [ref(target, 'win/held:ltsc2019')], allowNondistributableArtifacts: true }, { hosts: hostsFor(source), uploadMode: 'chunked', chunkSizeInBytes: 2048 });
      expect(await blobStatus(target, 'win/held', image.foreignDigest)).toBe(200);
      expect(host.requests.length).toBe(mark);
    });

    it('fails with INTEGRITY and writes no tag when the URL serves wrong bytes', async () => {
      const foreign = seededBytes('wrong', 4000);
      host.serve('wrong', foreign);
      const image = await pushWindowsImage(client, 'win/wrong', 'ltsc2019', { urls: [`${host.url}/wrong/wrong`], foreign, osVersion: LTSC2019 });
      const error = await copy({ source: ref(source, 'win/wrong:ltsc2019'), targets: [ref(target, 'win/wrong:ltsc2019')], allowNondistributableArtifacts: true }, { hosts: hostsFor(source) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CopyError);
      expect((error as CopyError).code).toBe('INTEGRITY');
      expect(await manifestStatus(target, 'win/wrong', 'ltsc2019')).toBe(404);
      expect(await blobStatus(target, 'win/wrong', image.foreignDigest)).toBe(404);
    });

    it('names the way out when no URL serves the layer', async () => {
      const foreign = seededBytes('nowhere', 3000);
      await pushWindowsImage(client, 'win/nowhere', 'ltsc2019', { urls: [`${host.url}/layers/nowhere`, `${host.url}/missing/nowhere`], foreign, osVersion: LTSC2019 });
      const error = await copy({ source: ref(source, 'win/nowhere:ltsc2019'), targets: [ref(target, 'win/nowhere:ltsc2019')], allowNondistributableArtifacts: true }, { hosts: hostsFor(source) }).catch((e: unknown) => e);
      expect((error as CopyError).code).toBe('NONDISTRIBUTABLE');
      expect((error as CopyError).message).toMatch(/\/layers\/nowhere: answered 404; .*\/missing\/nowhere: answered 404/);
      // Gone everywhere: no retry will find it.
      expect((error as CopyError).permanent).toBe(true);
      expect(await manifestStatus(target, 'win/nowhere', 'ltsc2019')).toBe(404);
    });

    it('fails retryably when a URL host is in trouble (503), even if another URL is gone', async () => {
      const foreign = seededBytes('outage', 3000);
      await pushWindowsImage(client, 'win/outage', 'ltsc2019', { urls: [`${host.url}/missing/outage`, `${host.url}/unavailable/outage`], foreign, osVersion: LTSC2019 });
      const error = await copy({ source: ref(source, 'win/outage:ltsc2019'), targets: [ref(target, 'win/outage:ltsc2019')], allowNondistributableArtifacts: true }, { hosts: hostsFor(source) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CopyError);
      expect((error as CopyError).code).toBe('NONDISTRIBUTABLE');
      expect((error as CopyError).message).toMatch(/\/unavailable\/outage: answered 503/);
      expect((error as CopyError).permanent).toBe(false);
      expect(await manifestStatus(target, 'win/outage', 'ltsc2019')).toBe(404);
    });

    it('explains a target that refuses foreign URLs, and writes no tag', async () => {
      const foreign = seededBytes('refused', 3000);
      host.serve('refused', foreign);
      await pushWindowsImage(client, 'win/refused', 'ltsc2019', { urls: [`${host.url}/layers/refused`], foreign, osVersion: LTSC2019 });
      const error = await copy({ source: ref(source, 'win/refused:ltsc2019'), targets: [ref(refusing, 'win/refused:ltsc2019')] }, { hosts: hostsFor(source) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CopyError);
      expect((error as CopyError).code).toBe('NONDISTRIBUTABLE');
      expect((error as CopyError).side).toBe('target');
      expect((error as CopyError).message).toMatch(/refused manifest .*non-distributable .*--allow-nondistributable-artifacts/);
      expect(await manifestStatus(refusing, 'win/refused', 'ltsc2019')).toBe(404);
    });

    it('copies an index of Linux and two Windows versions, and picks a Windows one by os.version', async () => {
      const foreign = seededBytes('mixed', 5000);
      host.serve('mixed', foreign);
      const linux = await pushImage(client, 'win/mixed', undefined, { mediaType: 'docker', layers: [900] });
      const w2019 = await pushWindowsImage(client, 'win/mixed', undefined, { urls: [`${host.url}/layers/mixed`], foreign, osVersion: LTSC2019 });
      const w2022 = await pushWindowsImage(client, 'win/mixed', undefined, { urls: [`${host.url}/layers/mixed`], foreign, osVersion: LTSC2022 });
      const entry = (digest: string, bytes: Buffer, platform: Record<string, string>) => ({ mediaType: MEDIA_TYPES.dockerManifest, size: bytes.length, digest, platform });
      const index = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.dockerList,
        manifests: [
          entry(linux.digest, linux.manifestBytes, { architecture: 'amd64', os: 'linux' }),
          entry(w2019.digest, w2019.bytes, { architecture: 'amd64', os: 'windows', 'os.version': LTSC2019 }),
          entry(w2022.digest, w2022.bytes, { architecture: 'amd64', os: 'windows', 'os.version': LTSC2022 }),
        ],
      }, null, 3));
      const indexDigest = await client.putManifest('win/mixed', 'all', index, MEDIA_TYPES.dockerList);

      const whole = await copy({ source: ref(source, 'win/mixed:all'), targets: [ref(target, 'win/mixed:all')] }, { hosts: hostsFor(source) });
      expect(whole.targetDigest).toBe(indexDigest);
      expect(whole.plan.externalBlobs.map((b) => b.digest)).toEqual([w2019.foreignDigest]);
      expect(whole.plan.manifests.map((m) => m.platform)).toEqual(expect.arrayContaining(['linux/amd64', `windows/amd64:${LTSC2019}`, `windows/amd64:${LTSC2022}`]));
      expect((await skopeoInspectRaw(`${target.host}/win/mixed:all`)).equals(index)).toBe(true);
      for (const image of [w2019, w2022]) expect((await skopeoInspectRaw(`${target.host}/win/mixed@${image.digest}`)).equals(image.bytes)).toBe(true);

      const subset = await copy({ source: ref(source, 'win/mixed:all'), targets: [ref(target, 'win/mixed:ltsc2022')], platforms: [parsePlatform(`windows/amd64:${LTSC2022}`)] }, { hosts: hostsFor(source) });
      const written = JSON.parse((await skopeoInspectRaw(`${target.host}/win/mixed:ltsc2022`)).toString()) as { manifests: Array<{ digest: string }> };
      expect(written.manifests.map((m) => m.digest)).toEqual([w2022.digest]);
      expect(subset.plan.platformSubset?.platforms).toEqual([`windows/amd64:${LTSC2022}`]);
    });
  });

  describe('attestations with a platform subset', () => {
    it('keeps exactly the attestation of the chosen platform', async () => {
      const pushed = await pushIndexWithAttestations(client, 'att/subset');
      const result = await copy({ source: ref(source, 'att/subset:multi'), targets: [ref(target, 'att/subset:amd64')], platforms: [parsePlatform('linux/amd64')] }, { hosts: hostsFor(source) });
      const written = JSON.parse((await skopeoInspectRaw(`${target.host}/att/subset:amd64`)).toString()) as { manifests: Array<{ digest: string }> };
      expect(written.manifests.map((m) => m.digest)).toEqual([pushed.amd64, pushed.attestAmd64]);
      expect(result.plan.platformSubset).toEqual({ platforms: ['linux/amd64'], attestationsKept: [pushed.attestAmd64], attestationsDropped: [pushed.attestArm64] });
      expect(result.plan.manifests.find((m) => m.digest === pushed.attestAmd64)?.attestationFor).toBe(pushed.amd64);
      expect(await manifestStatus(target, 'att/subset', pushed.attestAmd64)).toBe(200);
      expect(await manifestStatus(target, 'att/subset', pushed.attestArm64)).toBe(404);
      expect(await manifestStatus(target, 'att/subset', pushed.arm64)).toBe(404);
      const pulled = await skopeoCopyAll(`${target.host}/att/subset:amd64`);
      await pulled.cleanup();
    });

    it('copies the whole index byte-identically, attestations included', async () => {
      const pushed = await pushIndexWithAttestations(client, 'att/whole');
      const result = await copy({ source: ref(source, 'att/whole:multi'), targets: [ref(target, 'att/whole:multi')] }, { hosts: hostsFor(source) });
      expect(result.targetDigest).toBe(pushed.digest);
      expect((await skopeoInspectRaw(`${target.host}/att/whole:multi`)).equals(pushed.index)).toBe(true);
      for (const digest of [pushed.attestAmd64, pushed.attestArm64]) expect(await manifestStatus(target, 'att/whole', digest)).toBe(200);
    });
  });
});
