/**
 * Real-world image shapes through the import service (local host, Azurite, real registries): a
 * Windows image whose foreign layer the service leaves referenced by URL and lists in the status
 * document, the refusal of allowNondistributableArtifacts, and a platform subset that keeps its
 * image's attestation.
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

  it('refuses allowNondistributableArtifacts with 400, naming the field, until there is an outbound address policy', async () => {
    const response = await api.request<{ error: { code: string; field: string; message: string } }>('POST', '/api/imports', { json: { source: `${source.host}/win/svc:ltsc2019`, allowNondistributableArtifacts: true } });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: 'INVALID_FIELD', field: 'allowNondistributableArtifacts', message: expect.stringMatching(/outbound address policy/) });
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
