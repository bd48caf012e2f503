/**
 * `hoist inspect`, `hoist digest` and `hoist tags` end to end: the built CLI against real
 * distribution registries on loopback, checked against what the fixtures pushed and against
 * `skopeo inspect --raw`.
 */
import type { InspectSummary } from '../../src/cli/inspect.js';
import { EXAMPLE_ARTIFACT_TYPE, MEDIA_TYPES, pushImage, pushImageWithReferrers, pushOciIndexThreePlatforms, referrersTag } from '../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { requireBuild, runHoist, tempHome, type TempHome } from './support.js';

let registry: TestRegistry;
/** Basic auth (htpasswd), user alice. */
let locked: TestRegistry;
let home: TempHome;

beforeAll(async () => {
  requireBuild();
  [registry, locked, home] = await Promise.all([startRegistry(), startRegistry({ auth: 'basic' }), tempHome()]);
});
afterAll(async () => {
  await Promise.all([registry?.stop(), locked?.stop(), home?.cleanup()]);
});

function hoist(args: string[], env: Record<string, string> = {}) {
  return runHoist(args, home, env);
}

describe('hoist inspect', () => {
  it('summarises an index: digest, media type, platforms, each image with its layers, and blob totals', async () => {
    const index = await pushOciIndexThreePlatforms(registry, 'read/multi');
    const ref = `${registry.host}/read/multi:multi`;
    const run = await hoist(['inspect', ref, '--format', 'json']);
    expect(run.code, run.all).toBe(0);
    const summary = JSON.parse(run.stdout) as InspectSummary;
    const blobs = new Map(index.children.flatMap((c) => c.blobs.map((b) => [b.digest, b.size])));
    expect(summary).toEqual({
      reference: ref,
      digest: index.digest,
      mediaType: MEDIA_TYPES.ociIndex,
      size: index.manifestBytes.length,
      platforms: ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7'],
      manifests: index.children.map((c, i) => {
        const layers = c.blobs.slice(1);
        return {
          digest: c.digest,
          mediaType: c.mediaType,
          size: c.manifestBytes.length,
          platform: ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7'][i],
          layers: { count: layers.length, bytes: layers.reduce((sum, b) => sum + b.size, 0) },
        };
      }),
      blobs: { count: blobs.size, bytes: [...blobs.values()].reduce((sum, s) => sum + s, 0) },
      referrers: [],
    });

    const text = await hoist(['inspect', `docker://${ref}`]);
    expect(text.code, text.all).toBe(0);
    expect(text.stdout).toContain(`  digest      ${index.digest}\n`);
    expect(text.stdout).toContain('  platforms   linux/amd64, linux/arm64/v8, linux/arm/v7\n');
    expect(text.stdout).toContain(`    ${index.children[0].digest} linux/amd64: `);
    expect(text.stdout).toContain('  referrers:  none\n');
  });

  it('lists the referrers the fallback tag names', async () => {
    const signed = await pushImageWithReferrers(registry, 'read/signed');
    const run = await hoist(['inspect', `${registry.host}/read/signed:signed`, '--json']);
    expect(run.code, run.all).toBe(0);
    const summary = JSON.parse(run.stdout) as InspectSummary;
    expect(summary.digest).toBe(signed.image.digest);
    expect(summary.platforms).toEqual([]);
    expect(summary.manifests).toEqual([
      { digest: signed.image.digest, mediaType: signed.image.mediaType, size: signed.image.manifestBytes.length, layers: { count: 2, bytes: 2400 } },
    ]);
    expect(summary.referrers).toEqual([
      { digest: signed.referrer.digest, mediaType: signed.referrer.mediaType, artifactType: EXAMPLE_ARTIFACT_TYPE, subject: signed.image.digest },
      { digest: signed.signature.digest, mediaType: signed.signature.mediaType, artifactType: signed.signature.blobs[0].mediaType, subject: signed.image.digest, tag: `${referrersTag(signed.image.digest)}.sig` },
    ]);
    // The image's own blobs only: the referrers' are not the image's size.
    expect(summary.blobs).toEqual({ count: 3, bytes: signed.image.blobs.reduce((sum, b) => sum + b.size, 0) });

    const text = await hoist(['inspect', `${registry.host}/read/signed:signed`]);
    expect(text.stdout).toContain(`  referrers:\n    ${signed.referrer.digest} ${EXAMPLE_ARTIFACT_TYPE} (refers to ${signed.image.digest})\n`);
    expect(text.stdout).toContain(`(refers to ${signed.image.digest}, tag ${referrersTag(signed.image.digest)}.sig)\n`);
  });

  it('--raw prints exactly the bytes skopeo inspect --raw prints, for an index and by digest', async () => {
    const index = await pushOciIndexThreePlatforms(registry, 'read/raw');
    for (const ref of [`${registry.host}/read/raw:multi`, `${registry.host}/read/raw@${index.children[1].digest}`]) {
      const run = await hoist(['inspect', '--raw', ref]);
      expect(run.code, run.all).toBe(0);
      expect(Buffer.from(run.stdout, 'utf8').equals(await skopeoInspectRaw(ref))).toBe(true);
    }
  });

  it('exits 4 naming a reference that is not there, and 3 without credentials the registry wants', async () => {
    const missing = await hoist(['inspect', `${registry.host}/read/nothing:v1`]);
    expect(missing.code, missing.all).toBe(4);
    expect(missing.stderr).toContain(`${registry.host}/read/nothing`);

    await pushImage(locked, 'read/locked', 'v1', { layers: [300] });
    const refused = await hoist(['inspect', `${locked.host}/read/locked:v1`]);
    expect(refused.code, refused.all).toBe(3);
    expect(refused.stderr).toContain("the registry's credentials come from --creds or HOIST_SRC_USERNAME/HOIST_SRC_PASSWORD");
  });
});

describe('hoist digest', () => {
  it('prints the digest a tag resolves to, with the same credentials flags as copy', async () => {
    const image = await pushImage(locked, 'read/digest', 'v1', { layers: [700] });
    const { username, password } = locked.credentials!;
    const run = await hoist(['digest', `${locked.host}/read/digest:v1`, '--creds', `${username}:${password}`]);
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toBe(`${image.digest}\n`);
    expect(run.all).not.toContain(password);

    const json = await hoist(['digest', `${locked.host}/read/digest:v1`, '--format=json'], { HOIST_SRC_USERNAME: username, HOIST_SRC_PASSWORD: password });
    expect(json.code, json.all).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ reference: `${locked.host}/read/digest:v1`, digest: image.digest, mediaType: image.mediaType, size: image.manifestBytes.length });
  });

  it('exits 4 for a tag that is not there', async () => {
    const run = await hoist(['digest', `${registry.host}/read/digest-missing:v1`]);
    expect(run.code, run.all).toBe(4);
    expect(run.stderr).toContain(`${registry.host}/read/digest-missing:v1 was not found`);
  });
});

describe('hoist tags', () => {
  const TAGS = ['t1', 't2', 't3', 't4', 't5', 't6', 't7'];

  it('lists every tag, one per line in the registry order, or as JSON', async () => {
    for (const tag of TAGS) await pushImage(registry, 'read/tags', tag, { layers: [200] });
    const run = await hoist(['tags', `${registry.host}/read/tags`]);
    expect(run.code, run.all).toBe(0);
    expect(run.stdout.endsWith('\n')).toBe(true);
    expect(run.stdout.trimEnd().split('\n').sort()).toEqual(TAGS);
    const json = await hoist(['tags', `docker://${registry.host}/read/tags`, '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ repository: `${registry.host}/read/tags`, tags: run.stdout.trimEnd().split('\n') });
  });

  /** Pages of a tag list, each a Link to the next: distribution 2.8 cannot page, so the proxy serves them. */
  function pagedTags(pages: Array<{ path: string; tags: string[]; next?: string }>) {
    return (request: { path: string }) => {
      const page = pages.find((p) => p.path === request.path);
      return page ? { type: 'respond' as const, status: 200, headers: { 'content-type': 'application/json', ...(page.next && { link: `<${page.next}>; rel="next"` }) }, body: JSON.stringify({ name: 'read/paged', tags: page.tags }) } : undefined;
    };
  }

  it('follows Link pages to the end, absolute or relative', async () => {
    let proxy: TestProxy | undefined;
    try {
      proxy = await startProxy(registry.url, []);
      proxy.rules.push(
        pagedTags([
          { path: '/v2/read/paged/tags/list', tags: ['t1', 't2'], next: '/v2/read/paged/tags/list?n=2&last=t2' },
          { path: '/v2/read/paged/tags/list?n=2&last=t2', tags: ['t3', 't4'], next: `${proxy.url}/v2/read/paged/tags/list?n=2&last=t4` },
          { path: '/v2/read/paged/tags/list?n=2&last=t4', tags: ['t5', 't6', 't7'] },
        ]),
      );
      const run = await hoist(['tags', `${proxy.host}/read/paged`]);
      expect(run.code, run.all).toBe(0);
      expect(run.stdout).toBe(`${TAGS.join('\n')}\n`);
      expect(proxy.requests.map((r) => r.path)).toEqual(['/v2/read/paged/tags/list', '/v2/read/paged/tags/list?n=2&last=t2', '/v2/read/paged/tags/list?n=2&last=t4']);
    } finally {
      await proxy?.stop();
    }
  });

  it('fails, never printing a shorter list, when a page links back to one already read', async () => {
    let proxy: TestProxy | undefined;
    try {
      proxy = await startProxy(registry.url, [
        pagedTags([
          { path: '/v2/read/loop/tags/list', tags: ['t1'], next: '/v2/read/loop/tags/list?n=1&last=t1' },
          { path: '/v2/read/loop/tags/list?n=1&last=t1', tags: ['t2'], next: '/v2/read/loop/tags/list' },
        ]),
      ]);
      const run = await hoist(['tags', `${proxy.host}/read/loop`]);
      expect(run.code, run.all).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain('the tag list broke off: page 3 links back to a page already read');
    } finally {
      await proxy?.stop();
    }
  });

  it('exits 4 for a repository that is not there', async () => {
    const run = await hoist(['tags', `${registry.host}/read/no-such-repo`]);
    expect(run.code, run.all).toBe(4);
    expect(run.stderr).toContain(`${registry.host}/read/no-such-repo`);
  });
});
