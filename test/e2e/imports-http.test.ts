/**
 * End to end through HTTP: the local host runs the app's real function definitions on Azurite;
 * every fixture kind of the engine's tests is POSTed to /api/imports, followed with GET until it
 * succeeds, and read back from the target with skopeo. The target needs Basic auth
 * (HOIST_TARGET_USERNAME/PASSWORD); the source is anonymous.
 */
import { randomBytes } from 'node:crypto';
import { FIXTURE_KINDS, pushAllFixtures, referrersTag, type FixtureSummary } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget } from '../copy/support.js';
import { startTestAzurite, type TestAzurite, type TestHost } from '../local/support.js';
import { expectOrderedTimestamps, FAST_QUEUE_SETTINGS, ImportsApi, startAppHost, type ApiResponse, type ImportList, type ImportStatus } from './support.js';

const TARGET_PASSWORD = `target-${randomBytes(12).toString('hex')}`;

/** Every fixture kind pushAllFixtures makes, each imported under its main tag (both tags for the shared-layers pair). */
const KINDS = FIXTURE_KINDS;

interface Submitted {
  fixture: FixtureSummary;
  tag: string;
  id: string;
  accepted: ImportStatus;
  location: string | null;
  done?: ImportStatus;
}

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let host: TestHost;
let api: ImportsApi;
let fixtures: FixtureSummary[];
let settings: Record<string, string>;
const submitted: Submitted[] = [];

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startTestAzurite(), startRegistry(), startRegistry({ auth: 'basic', users: { pusher: TARGET_PASSWORD } })]);
  fixtures = await pushAllFixtures(source, 'fx');
  settings = {
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: target.host,
    HOIST_TARGET_USERNAME: 'pusher',
    HOIST_TARGET_PASSWORD: TARGET_PASSWORD,
    ...FAST_QUEUE_SETTINGS,
  };
  host = await startAppHost(settings);
  api = ImportsApi.of(host);

  // One POST after another, so creation order (and so list order) is known.
  for (const kind of KINDS) {
    const fixture = fixtures.find((f) => f.name === kind)!;
    const tags = kind === 'two-images-sharing-layers' ? fixture.tags : [fixture.tag];
    for (const tag of tags) {
      const response = await api.post({
        source: `${source.host}/${fixture.repository}:${tag}`,
        images: [`copied/${kind}:${tag}`],
        ...(kind === 'image-with-referrers' && { referrers: true }),
      });
      if (response.status !== 202) throw new Error(`POST for ${kind}:${tag}: ${response.status} ${JSON.stringify(response.body)}`);
      submitted.push({ fixture, tag, id: response.body.id, accepted: response.body, location: response.headers.get('location') });
      // The shared-layers pair one after the other, so the second finds the first's layers.
      if (kind === 'two-images-sharing-layers' && tag === tags[0]) await api.waitForStatus(response.body.id, 'succeeded', { logs: () => host.logs.join('\n') });
    }
  }
  for (const s of submitted) s.done = await api.waitForStatus(s.id, 'succeeded', { logs: () => host.logs.join('\n') });
});

afterAll(async () => {
  await host?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
  for (const name of [...Object.keys(settings ?? {}), 'HOIST_API_KEY']) delete process.env[name];
});

describe('POST /api/imports through the local host, for every fixture kind', () => {
  it('answered 202 with the queued status document and its Location', () => {
    expect(submitted).toHaveLength(KINDS.length + 1);
    for (const { accepted, location, fixture, tag } of submitted) {
      expect(location).toBe(`${api.baseUrl}/api/imports/${accepted.id}`);
      expect(accepted).toMatchObject({
        status: 'queued',
        source: { reference: `${source.host}/${fixture.repository}:${tag}` },
        targets: [{ reference: `${target.host}/copied/${fixture.name}:${tag}`, tagged: true }],
        options: { force: false, platforms: [], referrers: fixture.name === 'image-with-referrers' },
        manifests: [],
        attempts: 0,
        continuations: 0,
      });
    }
  });

  it.each(KINDS)('%s: the status document describes the finished import', (kind) => {
    for (const s of submitted.filter((x) => x.fixture.name === kind)) {
      const doc = s.done!;
      const pushed = s.fixture.manifests.find((m) => m.tag === s.tag)!;
      expect(doc).toMatchObject({
        id: s.id,
        status: 'succeeded',
        source: { reference: `${source.host}/${s.fixture.repository}:${s.tag}`, digest: pushed.digest, mediaType: pushed.mediaType },
        targets: [{ reference: `${target.host}/copied/${kind}:${s.tag}`, tagged: true, digest: pushed.digest, written: true }],
        attempts: 1,
        continuations: 0,
      });
      expect(doc).not.toHaveProperty('error');
      expect(doc).not.toHaveProperty('lastError');
      expectOrderedTimestamps(doc);

      // The manifests written: the top level, and each platform child of an index with its platform.
      const byDigest = new Map(doc.manifests.map((m) => [m.digest, m]));
      expect(byDigest.get(pushed.digest)).toMatchObject({ mediaType: pushed.mediaType, written: true });
      expect(byDigest.get(pushed.digest)).not.toHaveProperty('platform');
      for (const child of pushed.children) {
        const platform = child.descriptor.platform!;
        const expected = [platform.os, platform.architecture, ...(platform.variant ? [platform.variant] : [])].join('/');
        expect(byDigest.get(child.digest)).toMatchObject({ mediaType: child.mediaType, platform: expected, written: true });
      }
      if (kind === 'image-with-referrers') {
        // The referrer artifact and the cosign signature came along too. (The fallback tag index
        // is the target's own bookkeeping, kept merged there, not a manifest of the import;
        // skopeo checks its bytes below.)
        const fallbackTag = referrersTag(pushed.digest);
        for (const m of s.fixture.manifests.filter((x) => x.tag !== fallbackTag)) expect(byDigest.has(m.digest), `${m.digest} (${m.tag ?? 'untagged'}) listed`).toBe(true);
      } else {
        expect(doc.manifests).toHaveLength(1 + pushed.children.length);
      }

      // Progress: every blob and byte of the plan done.
      const { blobs, bytes } = doc.progress;
      expect(blobs.total).toBeGreaterThan(0);
      expect(blobs.done).toBe(blobs.total);
      expect(bytes.done).toBe(bytes.total);
      const imageBlobs = new Map([pushed, ...pushed.children].flatMap((m) => m.blobs).map((b) => [b.digest, b.size]));
      if (kind !== 'image-with-referrers') {
        expect(blobs.total).toBe(imageBlobs.size);
        expect(bytes.total).toBe([...imageBlobs.values()].reduce((a, b) => a + b, 0));
      } else {
        expect(blobs.total).toBeGreaterThan(imageBlobs.size);
      }
    }
  });

  it('the second image of the shared-layers pair skipped the layers the first had written', () => {
    const [first, second] = submitted.filter((s) => s.fixture.name === 'two-images-sharing-layers');
    expect(first!.done!.progress.blobs.skipped).toBe(0);
    expect(second!.done!.progress.blobs.skipped).toBeGreaterThanOrEqual(2);
  });

  it.each(KINDS)('%s: skopeo reads every manifest back byte for byte and copies the image out', async (kind) => {
    const fixture = fixtures.find((f) => f.name === kind)!;
    // Every manifest by digest, then `skopeo copy --all` of each imported tag.
    const tags = kind === 'two-images-sharing-layers' ? fixture.tags : [fixture.tag];
    for (const tag of tags) await expectIdenticalInTarget(target, `copied/${kind}`, tag, fixture.manifests);
  });
});

describe('GET /api/imports', () => {
  it('lists the succeeded jobs newest first, and pages through them with nextLink', async () => {
    const newestFirst = submitted.map((s) => s.id).reverse();
    const all = await api.list('?status=succeeded&pageSize=100');
    expect(all.status).toBe(200);
    expect(all.body.value.map((d) => d.id)).toEqual(newestFirst);
    expect(all.body.value.every((d) => d.status === 'succeeded')).toBe(true);
    expect(all.body.continuationToken).toBeUndefined();
    const created = all.body.value.map((d) => Date.parse(d.createdAt));
    expect(created).toEqual([...created].sort((a, b) => b - a));

    const paged: string[] = [];
    let next: string | undefined = '/api/imports?status=succeeded&pageSize=4';
    // nextLink is absolute, on the URL the caller used.
    let pages = 0;
    while (next) {
      const page: ApiResponse<ImportList> = await api.request<ImportList>('GET', next);
      expect(page.status).toBe(200);
      expect(page.body.value.length).toBeLessThanOrEqual(4);
      paged.push(...page.body.value.map((d) => d.id));
      next = page.body.nextLink;
      if (next !== undefined) expect(next.startsWith(`${api.baseUrl}/api/imports?`)).toBe(true);
      pages++;
    }
    expect(pages).toBe(Math.ceil(newestFirst.length / 4));
    expect(paged).toEqual(newestFirst);

    expect((await api.list('?status=failed')).body.value).toEqual([]);
    const running = await api.list('?status=queued,running');
    expect(running.body.value).toEqual([]);
  });

  it('answers 404 for an unknown job and 400 for an unknown status', async () => {
    expect((await api.request('GET', '/api/imports/0000000000000000000')).status).toBe(404);
    const bad = await api.request('GET', '/api/imports?status=done');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ field: 'status' });
  });
});

describe('error answers, each in the one error shape the OpenAPI document describes', () => {
  it.each([
    ['a source tag the registry lacks', 'POST', '/api/imports', { json: { source: 'SOURCE/fx/oci-image:no-such-tag', images: ['nf:v1'] } }, 400, 'SOURCE_NOT_FOUND', 'source'],
    ['a body that is not JSON', 'POST', '/api/imports', { headers: { 'content-type': 'text/plain' } }, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type'],
    ['a body over 64 KiB', 'POST', '/api/imports', { json: { source: 'x'.repeat(70 * 1024) } }, 413, 'PAYLOAD_TOO_LARGE', undefined],
    ['a method the collection does not take', 'PUT', '/api/imports', {}, 405, 'METHOD_NOT_ALLOWED', undefined],
    ['an unknown job', 'DELETE', '/api/imports/0000000000000000000', {}, 404, 'NOT_FOUND', 'id'],
    ['a route nothing serves', 'GET', '/api/nowhere', {}, 404, 'NOT_FOUND', undefined],
  ])('%s: %s %s', async (_, method, path, options: { json?: unknown; headers?: Record<string, string> }, status, code, field) => {
    const json = options.json === undefined ? undefined : JSON.parse(JSON.stringify(options.json).replace('SOURCE', source.host));
    const response = await api.request(method, path, { ...(json !== undefined && { json }), ...(options.headers && { headers: options.headers }) });
    expect(response.status).toBe(status);
    expect(response.body.error).toMatchObject({ code, ...(field !== undefined && { field }) });
    if (status === 405) expect(response.headers.get('allow')).toBe('GET, POST');
  });
});

describe('with HOIST_API_KEY set', () => {
  it('refuses requests without the key (401) and accepts x-functions-key or ?code=', async () => {
    const key = `key-${randomBytes(16).toString('hex')}`;
    const keyed = await startAppHost({ ...settings, HOIST_API_KEY: key });
    try {
      const open = ImportsApi.of(keyed);
      const body = { source: `${source.host}/fx/oci-image:v1`, images: ['keyed/oci-image:v1'] };
      expect((await open.post(body)).status).toBe(401);
      expect((await open.post(body, { 'x-functions-key': `${key}x` })).status).toBe(401);
      expect((await open.list()).status).toBe(401);
      expect((await open.request('GET', '/api/imports')).body.error).toMatchObject({ code: 'UNAUTHORIZED' });
      // The description is anonymous.
      const described = await open.request('GET', '/api/openapi.json');
      expect(described.status).toBe(200);
      expect(described.body).toMatchObject({ openapi: '3.1.0' });

      const accepted = await ImportsApi.of(keyed, key).post(body);
      expect(accepted.status).toBe(202);
      expect((await open.request('GET', `/api/imports/${accepted.body.id}?code=${key}`)).status).toBe(200);
      const done = await ImportsApi.of(keyed, key).waitForStatus(accepted.body.id, 'succeeded', { logs: () => keyed.logs.join('\n') });
      expect(done.targets[0]).toMatchObject({ reference: `${target.host}/keyed/oci-image:v1`, written: true });
      expect([...keyed.logs, ...host.logs].join('\n')).not.toContain(key);
    } finally {
      await keyed.stop();
      delete process.env.HOIST_API_KEY;
    }
  });
});
