/**
 * Tests of the test harness itself (test/helpers/): if these fail, failures elsewhere say
 * nothing about Hoist. They check that registries start in every auth mode, that fixtures are
 * pushed byte-exactly (read back by skopeo, which shares no code with the harness or Hoist),
 * and that each proxy fault does what it says, using plain fetch.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALL_MANIFEST_TYPES,
  BIG_LAYER_SIZE,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  FIXTURE_KINDS,
  FixtureClient,
  pushAllFixtures,
  pushImage,
  pushTwoImagesSharingLayers,
  referrersTag,
  seededBytes,
  sha256Digest,
  type FixtureSummary,
} from './helpers/fixtures.js';
import { freePort } from './helpers/ports.js';
import { corruptResponses, cutRequestBody, cutResponseBody, dropUploads, expireToken, rejectRevokedTokens, startProxy, tooManyRequests, type TestProxy } from './helpers/proxy.js';
import { basicAuthorization, startRegistry, type Credentials, type RegistryAuth, type TestRegistry } from './helpers/registry.js';
import { skopeoCopyAll, skopeoInspectRaw } from './helpers/skopeo.js';
import { decodeJwt, type TokenIssuer } from './helpers/token-issuer.js';

/** Runs `fn` over `items` with at most `limit` in flight (skopeo processes are not free). */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(workers);
  return results;
}

/** Gets a token from the issuer directly (GET with Basic auth, one `scope` param per scope). */
async function fetchToken(issuer: TokenIssuer, scopes: string[], credentials?: Credentials): Promise<{ status: number; token?: string; body: Record<string, unknown> }> {
  const url = new URL(issuer.realm);
  url.searchParams.set('service', issuer.service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const response = await fetch(url, { headers: credentials ? { Authorization: basicAuthorization(credentials) } : {} });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, token: typeof body.token === 'string' ? body.token : undefined, body };
}

const sha256Hex = (data: Buffer | Uint8Array) => createHash('sha256').update(data).digest('hex');

it('freePort returns a loopback port that can be bound', async () => {
  const port = await freePort();
  expect(port).toBeGreaterThan(0);
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe.each<RegistryAuth>(['none', 'basic', 'token'])('registry with auth=%s', (auth) => {
  let reg: TestRegistry;
  let fixtures: FixtureSummary[];
  // The 64 MiB fixture costs a few seconds per mode: push it in one mode only.
  const withBigLayer = auth === 'none';

  beforeAll(async () => {
    reg = await startRegistry({ auth });
    fixtures = await pushAllFixtures(reg, 'fixtures', { includeBigLayer: withBigLayer });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('answers /v2/ as configured', async () => {
    const anonymous = await fetch(`${reg.url}/v2/`);
    if (auth === 'none') {
      expect(anonymous.status).toBe(200);
      expect(reg.credentials).toBeUndefined();
      return;
    }
    expect(anonymous.status).toBe(401);
    const challenge = anonymous.headers.get('www-authenticate') ?? '';
    if (auth === 'basic') {
      expect(challenge).toMatch(/^Basic realm=/);
      const authed = await fetch(`${reg.url}/v2/`, { headers: { Authorization: basicAuthorization(reg.credentials as Credentials) } });
      expect(authed.status).toBe(200);
      const wrong = await fetch(`${reg.url}/v2/`, { headers: { Authorization: basicAuthorization({ username: 'alice', password: 'nope' }) } });
      expect(wrong.status).toBe(401);
    } else {
      expect(challenge).toBe(`Bearer realm="${reg.tokenIssuer?.realm}",service="hoist-test-registry"`);
    }
  });

  it('pushed every fixture kind', () => {
    const names = fixtures.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining([...FIXTURE_KINDS]));
    expect(names.includes('big-layer')).toBe(withBigLayer);
    for (const f of fixtures) expect(f.manifestDigests[0]).toBe(f.digest);
  });

  it('skopeo reads back exactly the manifest bytes pushed, by digest and by tag', async () => {
    const checks = fixtures.flatMap((f) => [
      ...f.manifests.map((m) => ({ ref: `${reg.host}/${f.repository}@${m.digest}`, bytes: m.manifestBytes })),
      ...f.manifests.filter((m) => m.tag !== undefined).map((m) => ({ ref: `${reg.host}/${f.repository}:${m.tag}`, bytes: m.manifestBytes })),
    ]);
    const results = await mapLimit(checks, 4, async (check) => ({ ref: check.ref, same: (await skopeoInspectRaw(check.ref, reg.credentials)).equals(check.bytes) }));
    expect(results.filter((r) => !r.same)).toEqual([]);
    expect(results.length).toBeGreaterThan(20);
  });

  it('skopeo copy --all succeeds for every fixture', async () => {
    await mapLimit(fixtures, 3, async (f) => {
      const copy = await skopeoCopyAll(`${reg.host}/${f.repository}:${f.tag}`, reg.credentials);
      try {
        if (f.name === 'big-layer') {
          const big = f.manifests[0]?.blobs.find((b) => b.size === BIG_LAYER_SIZE);
          expect(big).toBeDefined();
          expect((await stat(join(copy.path, (big?.digest ?? '').replace('sha256:', '')))).size).toBe(BIG_LAYER_SIZE);
        }
      } finally {
        await copy.cleanup();
      }
    });
  });

  it('logs every request with method, URI and status', () => {
    const log = reg.accessLog();
    const oci = fixtures.find((f) => f.name === 'oci-image') as FixtureSummary;
    expect(log).toContainEqual(expect.objectContaining({ method: 'PUT', uri: `/v2/${oci.repository}/manifests/${oci.tag}`, status: 201 }));
    expect(log.some((e) => e.method === 'POST' && e.uri === `/v2/${oci.repository}/blobs/uploads/` && e.status === 202)).toBe(true);
    expect(reg.logLines.some((l) => l.includes('msg="response completed"'))).toBe(true);
  });
});

describe('fixture details', () => {
  let reg: TestRegistry;
  let fixtures: FixtureSummary[];
  beforeAll(async () => {
    reg = await startRegistry();
    fixtures = await pushAllFixtures(reg, 'detail');
  });
  afterAll(async () => {
    await reg?.stop();
  });
  const byName = (name: string) => fixtures.find((f) => f.name === name) as FixtureSummary;

  it('the OCI index has three platforms, one with a variant, and 3-space indentation', () => {
    const index = byName('oci-index-three-platforms');
    const json = JSON.parse(index.manifests[0]?.manifestBytes.toString() ?? '') as { manifests: Array<{ platform: { architecture: string; variant?: string } }> };
    expect(json.manifests.map((m) => `${m.platform.architecture}${m.platform.variant ?? ''}`)).toEqual(['amd64', 'arm64v8', 'armv7']);
    expect(index.manifests[0]?.manifestBytes.toString()).toMatch(/^\{\n {3}"schemaVersion": 2,[\s\S]*\}\n$/);
    expect(index.manifestDigests).toHaveLength(4);
  });

  it('the Helm chart has no top-level mediaType and Helm media types', () => {
    const helm = byName('helm-chart');
    const json = JSON.parse(helm.manifests[0]?.manifestBytes.toString() ?? '') as Record<string, unknown>;
    expect(json.mediaType).toBeUndefined();
    expect(JSON.stringify(json)).toContain('application/vnd.cncf.helm.config.v1+json');
    expect(JSON.stringify(json)).toContain('application/vnd.cncf.helm.chart.content.v1.tar+gzip');
  });

  it('the artifact has artifactType and the empty config', () => {
    const json = JSON.parse(byName('oci-artifact-empty-config').manifests[0]?.manifestBytes.toString() ?? '') as { artifactType: string; config: { digest: string; size: number } };
    expect(json.artifactType).toBe('application/vnd.example.sbom.v1');
    expect(json.config).toEqual(expect.objectContaining({ mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_JSON_DIGEST, size: 2 }));
    expect(sha256Digest(EMPTY_JSON)).toBe(EMPTY_JSON_DIGEST);
  });

  it('the referrers fixture has a subject, a fallback-tag index and a .sig tag', async () => {
    const f = byName('image-with-referrers');
    expect(f.tags).toEqual(['signed', referrersTag(f.digest), `${referrersTag(f.digest)}.sig`]);
    const client = new FixtureClient(reg);
    const index = await client.getManifest(f.repository, referrersTag(f.digest));
    const listed = (JSON.parse(index.bytes.toString()) as { manifests: Array<{ digest: string; artifactType: string }> }).manifests;
    expect(listed).toHaveLength(1);
    expect(listed[0]?.artifactType).toBe('application/vnd.example.sbom.v1');
    const referrer = await client.getManifest(f.repository, listed[0]?.digest ?? '');
    expect((JSON.parse(referrer.bytes.toString()) as { subject: { digest: string } }).subject.digest).toBe(f.digest);
  });

  it('two images share two layers; many-layers has 40', () => {
    const two = byName('two-images-sharing-layers');
    const [first, second] = two.manifests;
    const layers = (m: typeof first) => (m?.blobs ?? []).slice(1).map((b) => b.digest);
    expect(layers(first).filter((d) => layers(second).includes(d))).toHaveLength(2);
    expect(byName('many-layers').manifests[0]?.blobs).toHaveLength(41);
  });

  it('seeded content is deterministic and the registry agrees with our digests', async () => {
    expect(seededBytes('x', 100).equals(seededBytes('x', 100))).toBe(true);
    expect(seededBytes('x', 100).equals(seededBytes('y', 100))).toBe(false);
    const image = byName('oci-image').manifests[0];
    const layer = image?.blobs[1];
    const response = await fetch(`${reg.url}/v2/${byName('oci-image').repository}/blobs/${layer?.digest}`);
    expect(`sha256:${sha256Hex(new Uint8Array(await response.arrayBuffer()))}`).toBe(layer?.digest);
  });

  it('a given rootDirectory is kept after stop and reused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoist-helpers-root-'));
    try {
      const first = await startRegistry({ rootDirectory: dir });
      const pushed = await pushImage(first, 'kept/repo', 'v1');
      await first.stop();
      const second = await startRegistry({ rootDirectory: dir });
      try {
        expect((await skopeoInspectRaw(`${second.host}/kept/repo:v1`)).equals(pushed.manifestBytes)).toBe(true);
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('restart', () => {
  it('keeps port and storage, and an upload session resumes after a restart', async () => {
    const reg = await startRegistry({ auth: 'basic' });
    try {
      const headers = { Authorization: basicAuthorization(reg.credentials as Credentials) };
      const data = seededBytes('restart', 20_000);
      const started = await fetch(`${reg.url}/v2/resume/me/blobs/uploads/`, { method: 'POST', headers });
      expect(started.status).toBe(202);
      const patched = await fetch(started.headers.get('location') ?? '', {
        method: 'PATCH',
        headers: { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Range': '0-9999' },
        body: data.subarray(0, 10_000),
      });
      expect(patched.status).toBe(202);
      const location = patched.headers.get('location') ?? '';

      await reg.restart();
      expect(reg.logLines.filter((l) => l.includes('listening on')).length).toBe(2);

      const status = await fetch(location, { headers });
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-9999');
      const second = await fetch(location, {
        method: 'PATCH',
        headers: { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Range': '10000-19999' },
        body: data.subarray(10_000),
      });
      expect(second.status).toBe(202);
      const finalUrl = new URL(second.headers.get('location') ?? '');
      finalUrl.searchParams.set('digest', sha256Digest(data));
      const done = await fetch(finalUrl, { method: 'PUT', headers });
      expect(done.status).toBe(201);
    } finally {
      await reg.stop();
    }
  });
});

describe('token issuer', () => {
  let reg: TestRegistry;
  let issuer: TokenIssuer;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token' });
    issuer = reg.tokenIssuer as TokenIssuer;
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('records a multi-scope request, and one token allows a cross-repository mount', async () => {
    const shared = await pushTwoImagesSharingLayers(reg, 'mount/source', { secondRepository: 'mount/other' });
    const blob = shared.first.blobs[3]?.digest ?? ''; // the first image's own layer: not in mount/target
    const scopes = ['repository:mount/source:pull', 'repository:mount/target:pull,push'];
    const before = issuer.requests.length;
    const { status, token, body } = await fetchToken(issuer, scopes, reg.credentials);
    expect(status).toBe(200);
    expect(body).toEqual(expect.objectContaining({ access_token: token, expires_in: 300, issued_at: expect.any(String) }));
    expect(issuer.requests.slice(before)).toEqual([expect.objectContaining({ method: 'GET', scope: scopes, account: 'alice', authenticated: true, status: 200 })]);

    const claims = decodeJwt(token ?? '');
    expect(claims.aud).toBe('hoist-test-registry');
    expect(claims.iss).toBe('hoist-test-issuer');
    expect(claims.access).toEqual([
      { type: 'repository', name: 'mount/source', actions: ['pull'] },
      { type: 'repository', name: 'mount/target', actions: ['pull', 'push'] },
    ]);
    const header = JSON.parse(Buffer.from(token?.split('.')[0] ?? '', 'base64url').toString()) as { alg: string; x5c: string[] };
    expect(header.alg).toBe('ES256');
    expect(header.x5c).toHaveLength(1);

    const mounted = await fetch(`${reg.url}/v2/mount/target/blobs/uploads/?mount=${blob}&from=mount/source`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get('docker-content-digest')).toBe(blob);
  });

  it('rejects a wrong password and gives anonymous callers no access', async () => {
    const wrong = await fetchToken(issuer, ['repository:x/y:pull'], { username: 'alice', password: 'wrong' });
    expect(wrong.status).toBe(401);
    expect(issuer.requests.at(-1)).toEqual(expect.objectContaining({ status: 401, authenticated: false }));

    const anonymous = await fetchToken(issuer, ['repository:x/y:pull,push']);
    expect(anonymous.status).toBe(200);
    expect(decodeJwt(anonymous.token ?? '').access).toEqual([]);
    const denied = await fetch(`${reg.url}/v2/x/y/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${anonymous.token}` } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });

  it('supports the OAuth2 password grant (POST)', async () => {
    const response = await fetch(issuer.realm, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'wonderland-secret', service: issuer.service, scope: 'repository:a/b:pull repository:c/d:push' }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string };
    expect(decodeJwt(body.access_token).access.map((a) => a.name)).toEqual(['a/b', 'c/d']);
  });

  it('exactExpiry makes the real registry reject a token after ttlSeconds', async () => {
    // The registry accepts the token until exp + 60 s = iat + ttl, and iat is whole seconds, so a
    // token lives between ttl - 1 and ttl seconds. With ttl 1 the first probe had as little as no
    // time at all (a token issued late in a second); with 3 it has 2 s.
    const TTL_SECONDS = 3;
    const short = await startRegistry({ auth: 'token', tokenTtlSeconds: TTL_SECONDS, tokenIssuer: { exactExpiry: true } });
    try {
      const { token } = await fetchToken(short.tokenIssuer as TokenIssuer, ['repository:e/x:pull'], short.credentials);
      const probe = () => fetch(`${short.url}/v2/e/x/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
      expect((await probe()).status).toBe(404); // authorised; the repository just doesn't exist
      // The registry rejects once now > exp + 60 s = iat + ttl: wait until then (and a bit).
      const iat = decodeJwt(token ?? '').iat;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, (iat + TTL_SECONDS) * 1000 + 1100 - Date.now())));
      const expired = await probe();
      expect(expired.status).toBe(401);
      expect(expired.headers.get('www-authenticate')).toContain('error="invalid_token"');
    } finally {
      await short.stop();
    }
  });
});

describe('proxy', () => {
  let reg: TestRegistry;
  let proxy: TestProxy;
  let blobDigest: string;
  let blobSize: number;
  let repository: string;
  let token: string;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token' });
    proxy = await startProxy(reg.url);
    repository = 'proxied/app';
    // Pushed through the proxy: exercises Host/Location rewriting with real uploads.
    const image = await pushImage({ url: proxy.url, credentials: reg.credentials }, repository, 'v1', { layers: [50_000] });
    blobDigest = image.blobs[1]?.digest ?? '';
    blobSize = image.blobs[1]?.size ?? 0;
    token = (await fetchToken(reg.tokenIssuer as TokenIssuer, [`repository:${repository}:pull,push`], reg.credentials)).token ?? '';
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });
  const auth = () => ({ Authorization: `Bearer ${token}` });

  it('forwards, records requests and rewrites Location to itself', async () => {
    const raw = await skopeoInspectRaw(`${reg.host}/${repository}:v1`, reg.credentials);
    const viaProxy = await fetch(`${proxy.url}/v2/${repository}/manifests/v1`, { headers: { ...auth(), Accept: ALL_MANIFEST_TYPES } });
    expect(Buffer.from(await viaProxy.arrayBuffer()).equals(raw)).toBe(true);
    const started = await fetch(`${proxy.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth() });
    expect(started.status).toBe(202);
    expect(started.headers.get('location')).toMatch(new RegExp(`^${proxy.url}/v2/${repository}/blobs/uploads/`));
    expect(proxy.requests.at(-1)).toEqual(expect.objectContaining({ method: 'POST', path: `/v2/${repository}/blobs/uploads/`, status: 202, action: 'forward', cut: false }));
    expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/${repository}/blobs/uploads/`) && r.status === 201).length).toBeGreaterThan(0);
  });

  it('answers 429 with Retry-After the first K times', async () => {
    proxy.rules.push(tooManyRequests({ path: /\/manifests\/v1$/, times: 2, retryAfterSeconds: 7 }));
    try {
      const get = () => fetch(`${proxy.url}/v2/${repository}/manifests/v1`, { headers: { ...auth(), Accept: ALL_MANIFEST_TYPES } });
      for (let i = 0; i < 2; i++) {
        const limited = await get();
        expect(limited.status).toBe(429);
        expect(limited.headers.get('retry-after')).toBe('7');
        expect(await limited.text()).toContain('TOOMANYREQUESTS');
      }
      expect((await get()).status).toBe(200);
    } finally {
      proxy.rules.length = 0;
    }
  });

  it('corrupts exactly one byte of a blob GET', async () => {
    proxy.rules.push(corruptResponses({ offset: 1234, times: 1 }));
    try {
      const corrupted = new Uint8Array(await (await fetch(`${proxy.url}/v2/${repository}/blobs/${blobDigest}`, { headers: auth() })).arrayBuffer());
      const clean = new Uint8Array(await (await fetch(`${proxy.url}/v2/${repository}/blobs/${blobDigest}`, { headers: auth() })).arrayBuffer());
      expect(`sha256:${sha256Hex(clean)}`).toBe(blobDigest);
      expect(`sha256:${sha256Hex(corrupted)}`).not.toBe(blobDigest);
      expect(corrupted.length).toBe(clean.length);
      const differing = [...corrupted].flatMap((b, i) => (b !== clean[i] ? [i] : []));
      expect(differing).toEqual([1234]);
    } finally {
      proxy.rules.length = 0;
    }
  });

  it('cuts a response body after N bytes', async () => {
    proxy.rules.push(cutResponseBody({ path: /\/blobs\/sha256:/, afterBytes: 1000 }));
    try {
      const response = await fetch(`${proxy.url}/v2/${repository}/blobs/${blobDigest}`, { headers: auth() });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-length')).toBe(String(blobSize));
      await expect(response.arrayBuffer()).rejects.toThrow();
      expect(proxy.requests.at(-1)).toEqual(expect.objectContaining({ action: 'cutResponseBody', cut: true }));
      // Only the first match is cut.
      expect((await (await fetch(`${proxy.url}/v2/${repository}/blobs/${blobDigest}`, { headers: auth() })).arrayBuffer()).byteLength).toBe(blobSize);
    } finally {
      proxy.rules.length = 0;
    }
  });

  it('cuts a request body after N bytes (interrupted PATCH)', async () => {
    proxy.rules.push(cutRequestBody({ path: /\/blobs\/uploads\/[^/?]+/, method: 'PATCH', afterBytes: 4000 }));
    try {
      const started = await fetch(`${proxy.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth() });
      const location = started.headers.get('location') ?? '';
      const patch = fetch(location, { method: 'PATCH', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: seededBytes('cut', 100_000) });
      await expect(patch).rejects.toThrow();
      expect(proxy.requests.at(-1)).toEqual(expect.objectContaining({ method: 'PATCH', action: 'cutRequestBody', cut: true }));
      // The registry got exactly the first 4000 bytes before the connection died.
      await expect.poll(() => reg.logLines.some((l) => l.includes('client disconnected during blob PATCH') && l.includes('copied=4000'))).toBe(true);
    } finally {
      proxy.rules.length = 0;
    }
  });

  it('expires a token after N requests with the registry’s own invalid_token challenge', async () => {
    proxy.rules.push(expireToken({ afterRequests: 2 }));
    try {
      const get = (t: string) => fetch(`${proxy.url}/v2/${repository}/tags/list`, { headers: { Authorization: `Bearer ${t}` } });
      expect((await get(token)).status).toBe(200);
      expect((await get(token)).status).toBe(200);
      const expired = await get(token);
      expect(expired.status).toBe(401);
      const challenge = expired.headers.get('www-authenticate');
      expect(challenge).toBe(`Bearer realm="${reg.tokenIssuer?.realm}",service="hoist-test-registry",scope="repository:${repository}:pull",error="invalid_token"`);
      expect((await expired.json()) as unknown).toEqual({ errors: [expect.objectContaining({ code: 'UNAUTHORIZED' })] });
      expect((await get(token)).status).toBe(401); // stays expired
      const fresh = await fetchToken(reg.tokenIssuer as TokenIssuer, [`repository:${repository}:pull`], reg.credentials);
      expect((await get(fresh.token ?? '')).status).toBe(200);
    } finally {
      proxy.rules.length = 0;
    }
  });

  it('rejects revoked tokens after issuer.revokeAll()', async () => {
    const issuer = reg.tokenIssuer as TokenIssuer;
    proxy.rules.push(rejectRevokedTokens(issuer));
    try {
      const { token: old } = await fetchToken(issuer, [`repository:${repository}:pull`], reg.credentials);
      const get = (t: string) => fetch(`${proxy.url}/v2/${repository}/tags/list`, { headers: { Authorization: `Bearer ${t}` } });
      expect((await get(old ?? '')).status).toBe(200);
      issuer.revokeAll();
      const rejected = await get(old ?? '');
      expect(rejected.status).toBe(401);
      expect(rejected.headers.get('www-authenticate')).toContain('error="invalid_token"');
      const { token: fresh } = await fetchToken(issuer, [`repository:${repository}:pull`], reg.credentials);
      expect((await get(fresh ?? '')).status).toBe(200);
    } finally {
      proxy.rules.length = 0;
    }
  });

  it('drops a given upload session (404 BLOB_UPLOAD_UNKNOWN) and leaves others alone', async () => {
    const start = async () => (await fetch(`${proxy.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth() })).headers.get('location') ?? '';
    const lost = await start();
    const kept = await start();
    proxy.rules.push(dropUploads(lost));
    try {
      const status = await fetch(lost, { headers: auth() });
      expect(status.status).toBe(404);
      expect(await status.text()).toContain('BLOB_UPLOAD_UNKNOWN');
      const patch = await fetch(lost, { method: 'PATCH', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: Buffer.from('abc') });
      expect(patch.status).toBe(404);
      expect((await fetch(kept, { headers: auth() })).status).toBe(204);
    } finally {
      proxy.rules.length = 0;
    }
  });
});
