/**
 * `hoist copy` between registries and OCI image layouts (`oci:DIR[:TAG]`), checked with tools that
 * share no code with Hoist: skopeo (containers/image) and umoci read what Hoist writes, and Hoist
 * reads what they write. Registry → layout → registry must give the same bytes.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pushImage, pushImageWithReferrers, pushOciIndexThreePlatforms, referrersTag, sha256Digest } from '../helpers/fixtures.js';
import { startProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { SKOPEO_BINARY, skopeoInspectRaw } from '../helpers/skopeo.js';
import { cliEnv, PROJECT_ROOT, requireBuild, runHoist, tempHome, type TempHome } from './support.js';

const run = promisify(execFile);
const REF_NAME = 'org.opencontainers.image.ref.name';

let registry: TestRegistry;
let home: TempHome;
let work: string;

beforeAll(async () => {
  requireBuild();
  [registry, home] = await Promise.all([startRegistry(), tempHome()]);
  work = await mkdtemp(join(tmpdir(), 'hoist-layout-'));
});
afterAll(async () => {
  await Promise.all([registry?.stop(), home?.cleanup(), work && rm(work, { recursive: true, force: true })]);
});

/** `skopeo inspect --raw` of a layout image: the exact manifest bytes skopeo reads there. */
async function skopeoRawFromLayout(dir: string, tag: string): Promise<Buffer> {
  const { stdout } = await run(SKOPEO_BINARY, ['inspect', '--raw', `oci:${dir}:${tag}`], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

async function indexOf(dir: string): Promise<{ manifests: Array<{ digest: string; annotations?: Record<string, string> }> }> {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
}

describe('hoist copy with OCI image layouts', () => {
  it('copies a multi-arch index registry → layout → registry byte-identically, readable by skopeo and umoci', async () => {
    const index = await pushOciIndexThreePlatforms(registry, 'layout/multi', 'v1');
    const dir = join(work, 'multi');

    const out = await runHoist(['copy', `${registry.host}/layout/multi:v1`, `oci:${dir}:v1`], home);
    expect(out.code, out.all).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect((await indexOf(dir)).manifests.map((m) => [m.digest, m.annotations?.[REF_NAME]])).toEqual([[index.digest, 'v1']]);
    expect((await skopeoRawFromLayout(dir, 'v1')).equals(index.manifestBytes)).toBe(true);
    // Every manifest and blob of every platform is there under its digest.
    for (const child of index.children) {
      expect((await readFile(join(dir, 'blobs/sha256', child.digest.slice(7)))).equals(child.manifestBytes)).toBe(true);
      for (const blob of child.blobs) expect(sha256Digest(await readFile(join(dir, 'blobs/sha256', blob.digest.slice(7))))).toBe(blob.digest);
    }
    expect(await readdir(join(dir, 'ingest'))).toEqual([]);
    // umoci reads the layout and lists the tag.
    const umoci = await run('umoci', ['ls', '--layout', dir]);
    expect(umoci.stdout.trim().split('\n')).toEqual(['v1']);

    const back = await runHoist(['copy', `oci:${dir}:v1`, `${registry.host}/layout/back:v1`], home);
    expect(back.code, back.all).toBe(0);
    expect((await skopeoInspectRaw(`${registry.host}/layout/back:v1`)).equals(index.manifestBytes)).toBe(true);
    for (const child of index.children) expect((await skopeoInspectRaw(`${registry.host}/layout/back@${child.digest}`)).equals(child.manifestBytes)).toBe(true);
  });

  it('keeps other tags, refuses to move one without --force, and leaves a same-digest tag alone', async () => {
    const first = await pushImage(registry, 'layout/tags', 'a', { layers: [300] });
    const second = await pushImage(registry, 'layout/tags', 'b', { layers: [400] });
    const dir = join(work, 'tags');
    expect((await runHoist(['copy', `${registry.host}/layout/tags:a`, `oci:${dir}:a`], home)).code).toBe(0);
    expect((await runHoist(['copy', `${registry.host}/layout/tags:b`, `oci:${dir}:b`], home)).code).toBe(0);

    const again = await runHoist(['copy', `${registry.host}/layout/tags:a`, `oci:${dir}:a`], home);
    expect(again.code, again.all).toBe(0);
    const refused = await runHoist(['copy', `${registry.host}/layout/tags:b`, `oci:${dir}:a`], home);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(`target tag already exists: oci:${dir}:a (now ${first.digest})`);
    expect((await indexOf(dir)).manifests.map((m) => [m.annotations?.[REF_NAME], m.digest])).toEqual([
      ['a', first.digest],
      ['b', second.digest],
    ]);

    const forced = await runHoist(['copy', `${registry.host}/layout/tags:b`, `oci:${dir}:a`, '--force'], home);
    expect(forced.code, forced.all).toBe(0);
    expect((await skopeoRawFromLayout(dir, 'a')).equals(second.manifestBytes)).toBe(true);
    expect((await indexOf(dir)).manifests.filter((m) => m.annotations?.[REF_NAME] === 'a')).toHaveLength(1);
  });

  it('carries referrers through a layout under their fallback tags', async () => {
    const signed = await pushImageWithReferrers(registry, 'layout/signed', 'v1');
    const dir = join(work, 'signed');
    const out = await runHoist(['copy', `${registry.host}/layout/signed:v1`, `oci:${dir}:v1`, '--referrers'], home);
    expect(out.code, out.all).toBe(0);
    const names = (await indexOf(dir)).manifests.map((m) => m.annotations?.[REF_NAME]);
    expect(names).toEqual(expect.arrayContaining(['v1', referrersTag(signed.image.digest), `${referrersTag(signed.image.digest)}.sig`]));

    const back = await runHoist(['copy', `oci:${dir}:v1`, `${registry.host}/layout/signed-back:v1`, '--referrers'], home);
    expect(back.code, back.all).toBe(0);
    for (const m of [signed.image, signed.referrer, signed.signature]) expect((await skopeoInspectRaw(`${registry.host}/layout/signed-back@${m.digest}`)).equals(m.manifestBytes)).toBe(true);
    expect((await skopeoInspectRaw(`${registry.host}/layout/signed-back:${referrersTag(signed.image.digest)}`)).equals(signed.referrersIndex.manifestBytes)).toBe(true);
  });

  it('reads a layout skopeo wrote, and skopeo copies what Hoist wrote on to a registry', async () => {
    const image = await pushImage(registry, 'layout/skopeo', '1', { layers: [700, 900] });
    const dir = join(work, 'by-skopeo');
    await run(SKOPEO_BINARY, ['copy', '--src-tls-verify=false', '--retry-times', '0', `docker://${registry.host}/layout/skopeo:1`, `oci:${dir}:tag`]);
    // skopeo writes OCI media types, so the bytes it stored are what Hoist must carry.
    const stored = await skopeoRawFromLayout(dir, 'tag');

    const out = await runHoist(['copy', `oci:${dir}:tag`, `${registry.host}/layout/from-skopeo:1`], home);
    expect(out.code, out.all).toBe(0);
    expect((await skopeoInspectRaw(`${registry.host}/layout/from-skopeo:1`)).equals(stored)).toBe(true);
    // Without a tag, a layout with one image names that image, as skopeo reads oci:DIR.
    const untagged = await runHoist(['copy', `oci:${dir}`, `${registry.host}/layout/from-skopeo:2`], home);
    expect(untagged.code, untagged.all).toBe(0);

    const hoisted = join(work, 'by-hoist');
    expect((await runHoist(['copy', `${registry.host}/layout/skopeo:1`, `oci:${hoisted}:1`], home)).code).toBe(0);
    // umoci reads the manifest and config Hoist wrote (stat walks the image's history from its config).
    await run('umoci', ['stat', '--image', `${hoisted}:1`, '--json']);
    await run(SKOPEO_BINARY, ['copy', '--dest-tls-verify=false', '--retry-times', '0', `oci:${hoisted}:1`, `docker://${registry.host}/layout/via-skopeo:1`]);
    expect((await skopeoInspectRaw(`${registry.host}/layout/via-skopeo:1`)).equals(image.manifestBytes)).toBe(true);
  });

  it('reads an image umoci made', async () => {
    const dir = join(work, 'by-umoci');
    await run('umoci', ['init', '--layout', dir]);
    await run('umoci', ['new', '--image', `${dir}:fresh`]);
    const made = await skopeoRawFromLayout(dir, 'fresh');
    const out = await runHoist(['copy', `oci:${dir}:fresh`, `${registry.host}/layout/umoci:fresh`], home);
    expect(out.code, out.all).toBe(0);
    expect((await skopeoInspectRaw(`${registry.host}/layout/umoci:fresh`)).equals(made)).toBe(true);
  });

  it('leaves no blob and no index entry when killed mid-copy, and a rerun completes it', async () => {
    const image = await pushImage(registry, 'layout/killed', 'v1', { layers: [2000, 300_000] });
    const layer = image.blobs[image.blobs.length - 1];
    // The big layer's GET is held until the CLI is gone: it is killed with that blob in flight.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const proxy = await startProxy(registry.url, [(r) => (r.method === 'GET' && r.pathname.endsWith(`/blobs/${layer.digest}`) ? { type: 'forward', waitFor: held } : undefined)]);
    const dir = join(work, 'killed');
    try {
      const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/hoist.js'), 'copy', `${proxy.host}/layout/killed:v1`, `oci:${dir}:v1`], { cwd: PROJECT_ROOT, env: cliEnv(home), stdio: 'ignore' });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await vi.waitFor(async () => expect(proxy.requests.some((r) => r.path.endsWith(`/blobs/${layer.digest}`))).toBe(true), { timeout: 30_000 });
      // The layer's file is open (wherever the store writes it first) before the kill.
      const begun = async () => existsSync(join(dir, 'blobs/sha256', layer.digest.slice(7))) || (await readdir(join(dir, 'ingest')).catch(() => [])).length > 0;
      await vi.waitFor(async () => expect(await begun()).toBe(true), { timeout: 30_000 });
      child.kill('SIGKILL');
      await exited;
    } finally {
      release();
      await proxy.stop();
    }
    expect(existsSync(join(dir, 'blobs/sha256', layer.digest.slice(7)))).toBe(false);
    expect(existsSync(join(dir, 'index.json'))).toBe(false);

    const rerun = await runHoist(['copy', `${registry.host}/layout/killed:v1`, `oci:${dir}:v1`], home);
    expect(rerun.code, rerun.all).toBe(0);
    expect((await skopeoRawFromLayout(dir, 'v1')).equals(image.manifestBytes)).toBe(true);
    expect(sha256Digest(await readFile(join(dir, 'blobs/sha256', layer.digest.slice(7))))).toBe(layer.digest);
  });

  it('copies layout to layout, and a dry run into a layout writes nothing', async () => {
    const image = await pushImage(registry, 'layout/pair', 'v1', { layers: [1200] });
    const first = join(work, 'pair-a');
    const second = join(work, 'pair-b');
    expect((await runHoist(['copy', `${registry.host}/layout/pair:v1`, `oci:${first}:v1`], home)).code).toBe(0);

    const dry = await runHoist(['copy', `oci:${first}:v1`, `oci:${second}:copied`, '--dry-run'], home);
    expect(dry.code, dry.all).toBe(0);
    expect(existsSync(second)).toBe(false);

    const out = await runHoist(['copy', `oci:${first}:v1`, `oci:${second}:copied`], home);
    expect(out.code, out.all).toBe(0);
    expect((await skopeoRawFromLayout(second, 'copied')).equals(image.manifestBytes)).toBe(true);
  });

  it('names the layout and tag when the tag is missing, and wants a tag on a layout target', async () => {
    const dir = join(work, 'tags');
    const missing = await runHoist(['copy', `oci:${dir}:nope`, `${registry.host}/layout/none:1`], home);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain(`no manifest in ${dir}/index.json is named "nope"`);
    const nowhere = await runHoist(['copy', `oci:${join(work, 'nowhere')}:v1`, `${registry.host}/layout/none:1`], home);
    expect(nowhere.code).toBe(4);
    expect(nowhere.stderr).toContain(`${join(work, 'nowhere')} is no OCI image layout: it has no index.json`);
    const untagged = await runHoist(['copy', `${registry.host}/layout/tags:a`, `oci:${join(work, 'new')}`], home);
    expect(untagged.code).toBe(2);
    expect(untagged.stderr).toContain('name the image in the layout, as oci:DIR:TAG');
    expect(existsSync(join(work, 'new'))).toBe(false);
  });
});
