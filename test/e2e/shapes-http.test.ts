/**
 * Real-world image shapes through the import service (local host, Azurite, real registries): a
 * Windows image whose foreign layer the service leaves referenced by URL and lists in the status
 * document, or copies from its URL under the outbound address policy with
 * allowNondistributableArtifacts, and a platform subset that keeps its image's attestation.
 */
import { FixtureClient, seededBytes } from '../helpers/fixtures.js';
import { ALLOW_URLS, FOREIGN_LAYER, pushIndexWithAttestations, pushWindowsImage, startLayerHost, type LayerHost } from '../helpers/image-shapes.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { startTestAzurite, type TestAzurite, type TestHost } from '../local/support.js';
import { FAST_QUEUE_SETTINGS, ImportsApi, startAppHost } from './support.js';

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let layers: LayerHost;
let host: TestHost;
let api: ImportsApi;
let settings: Record<string, string>;

beforeAll(async () => {
  [azurite, source, target, layers] = await Promise.all([startTestAzurite(), startRegistry({ extraConfig: ALLOW_URLS }), startRegistry({ extraConfig: ALLOW_URLS }), startLayerHost()]);
  settings = { AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: target.host, ...FAST_QUEUE_SETTINGS };
  host = await startAppHost(settings);
  api = ImportsApi.of(host);
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop(), layers?.close()]);
  for (const name of Object.keys(settings ?? {})) delete process.env[name];
});

describe('image shapes through POST /api/imports', () => {
  it('leaves a foreign layer referenced by URL, keeps the digest, and lists the layer in the status document', async () => {
    const foreign = seededBytes('service-base', 4000);
    layers.serve('base', foreign);
    const url = `${layers.url}/layers/base`;
    const image = await pushWindowsImage(new FixtureClient(source), 'win/svc', 'ltsc2019', { urls: [url], foreign, osVersion: '10.0.17763.5329' });
    const mark = layers.requests.length;

    const accepted = await api.post({ source: `${source.host}/win/svc:ltsc2019` });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
    const done = await api.waitForStatus(accepted.body.id, 'succeeded', { logs: () => host.logs.join('\n') });
    expect(done.targets[0].digest).toBe(image.digest);
    expect(done.externalBlobs).toEqual([{ digest: image.foreignDigest, size: image.foreignSize, mediaType: FOREIGN_LAYER, urls: [url] }]);
    expect((await skopeoInspectRaw(`${target.host}/win/svc:ltsc2019`)).equals(image.bytes)).toBe(true);
    expect(layers.requests.length).toBe(mark);
  });

  it('with allowNondistributableArtifacts, copies a foreign layer from a URL the policy allows, and refuses one it does not before connecting', async () => {
    const foreign = seededBytes('service-copied-base', 5000);
    layers.serve('copied-base', foreign);
    const url = `${layers.url}/layers/copied-base`;
    const image = await pushWindowsImage(new FixtureClient(source), 'win/copied', 'ltsc2019', { urls: [url], foreign, osVersion: '10.0.17763.5329' });

    // Loopback is allowed here (the harness's HOIST_ALLOWED_PRIVATE_REGISTRIES): the layer is fetched and copied.
    const mark = layers.requests.length;
    const accepted = await api.post({ source: `${source.host}/win/copied:ltsc2019`, allowNondistributableArtifacts: true });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
    const done = await api.waitForStatus(accepted.body.id, 'succeeded', { logs: () => host.logs.join('\n') });
    expect(done.targets[0].digest).toBe(image.digest);
    expect(done.externalBlobs ?? []).toEqual([]);
    expect(done.options.allowNondistributableArtifacts).toBe(true);
    expect(layers.requests.length).toBe(mark + 1);
    const held = await fetch(`http://${target.host}/v2/win/copied/blobs/${image.foreignDigest}`);
    expect(Buffer.from(await held.arrayBuffer()).equals(foreign)).toBe(true);

    // Only the registries allowed: the layer host, on another loopback port, is refused unasked.
    // (Another layer: the target now holds the first one, and would skip it.)
    const other = seededBytes('service-refused-base', 5000);
    layers.serve('refused-base', other);
    await pushWindowsImage(new FixtureClient(source), 'win/refused', 'ltsc2019', { urls: [`${layers.url}/layers/refused-base`], foreign: other, osVersion: '10.0.17763.5329' });
    const allowed = process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES;
    process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES = source.host;
    try {
      const refused = await api.post({ source: `${source.host}/win/refused:ltsc2019`, allowNondistributableArtifacts: true });
      expect(refused.status, JSON.stringify(refused.body)).toBe(202);
      const failed = await api.waitForStatus(refused.body.id, 'failed', { logs: () => host.logs.join('\n') });
      expect(failed.error!.code).toBe('NONDISTRIBUTABLE');
      expect(failed.error!.message).toMatch(/refused to connect to 127\.0\.0\.1: the outbound address policy refuses loopback addresses/);
    } finally {
      process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES = allowed;
    }
    expect(layers.requests.length).toBe(mark + 1);
  });

  it('keeps the attestation of the platform a subset keeps, and says which image it describes', async () => {
    const pushed = await pushIndexWithAttestations(new FixtureClient(source), 'att/svc');
    const accepted = await api.post({ source: `${source.host}/att/svc:multi`, images: ['att/svc:amd64'], platforms: ['linux/amd64'] });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
    const done = await api.waitForStatus(accepted.body.id, 'succeeded', { logs: () => host.logs.join('\n') });
    expect(done.manifests).toContainEqual(expect.objectContaining({ digest: pushed.attestAmd64, attestationFor: pushed.amd64 }));
    expect(done.manifests.map((m) => m.digest)).not.toContain(pushed.attestArm64);
    const written = JSON.parse((await skopeoInspectRaw(`${target.host}/att/svc:amd64`)).toString()) as { manifests: Array<{ digest: string }> };
    expect(written.manifests.map((m) => m.digest)).toEqual([pushed.amd64, pushed.attestAmd64]);
  });
});
