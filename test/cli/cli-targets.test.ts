/**
 * `hoist copy` as skopeo users write it (`docker://`, `--all`) and with several targets, end to
 * end: the built CLI against real distribution registries on loopback, checked with skopeo and
 * the registries' access logs. Also the dry run's list of tags and referrers.
 */
import type { CopyResult } from '../../src/copy/types.js';
import { pushImage, pushImageWithReferrers, pushOciIndexThreePlatforms, sha256Digest } from '../helpers/fixtures.js';
import { basicAuthorization, settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { manifestStatus, requireBuild, runHoist, tempHome, type TempHome } from './support.js';

let source: TestRegistry;
let target: TestRegistry;
let second: TestRegistry;
/** Basic auth (htpasswd), user alice: a target the CLI has no credentials for. */
let locked: TestRegistry;
let home: TempHome;

beforeAll(async () => {
  requireBuild();
  [source, target, second, locked, home] = await Promise.all([startRegistry(), startRegistry(), startRegistry(), startRegistry({ auth: 'basic' }), tempHome()]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop(), second?.stop(), locked?.stop(), home?.cleanup()]);
});

function hoist(args: string[], env: Record<string, string> = {}) {
  return runHoist(args, home, env);
}

/** Requests a registry logged since `mark` (an index into its access log). */
async function requestsSince(registry: TestRegistry, mark: number) {
  return (await settledAccessLog(registry)).slice(mark);
}

/** Blob uploads a registry completed: each is one crossing of a blob's bytes. */
function blobPuts(log: Array<{ method: string; uri: string; status: number }>) {
  return log.filter((r) => r.method === 'PUT' && r.uri.includes('/blobs/uploads/') && r.status === 201);
}

describe('skopeo habits', () => {
  it('takes docker://REF for source and target, and --all with a note, once, that it is the default', async () => {
    const index = await pushOciIndexThreePlatforms(source, 'habits/multi');
    const dst = `${target.host}/habits/multi:v1`;
    const run = await hoist(['copy', '--all', `docker://${source.host}/habits/multi:multi`, `docker://${dst}`]);
    expect(run.code, run.all).toBe(0);
    expect(run.stderr.split('\n').filter((l) => l.includes('--all'))).toEqual(['hoist: note: --all is the default: every platform of an index is copied']);
    expect(run.stdout).toContain(`  ${dst} -> ${index.digest}\n`);
    // The whole index, byte for byte, every platform with it.
    expect((await skopeoInspectRaw(dst)).equals(index.manifestBytes)).toBe(true);
    for (const child of index.children) expect((await skopeoInspectRaw(`${target.host}/habits/multi@${child.digest}`)).equals(child.manifestBytes)).toBe(true);

    // With --json, stderr stays one JSON object per line: the note is one of them.
    const json = await hoist(['copy', '--all', '--json', `docker://${source.host}/habits/multi:multi`, `docker://${dst}`]);
    expect(json.code, json.all).toBe(0);
    const events = json.stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as { type: string; message?: string });
    expect(events.filter((e) => e.type === 'note')).toEqual([expect.objectContaining({ message: '--all is the default: every platform of an index is copied' })]);
  });
});

describe('several targets', () => {
  it('writes two tags in one repository and a third in another repository of the same registry, each blob sent once', async () => {
    const image = await pushImage(source, 'multi/src', 'v1', { layers: [40_000, 50_000, 60_000] });
    const targets = [`${target.host}/multi/one:v1`, `${target.host}/multi/one:latest`, `${target.host}/multi/two:v1`];
    const mark = target.accessLog().length;
    const sourceMark = source.accessLog().length;
    const run = await hoist(['copy', `${source.host}/multi/src:v1`, ...targets, '--format', 'json']);
    expect(run.code, run.all).toBe(0);
    const result = JSON.parse(run.stdout) as CopyResult;
    expect(result.targets).toEqual(targets.map((reference) => ({ reference, digest: image.digest, written: true })));
    for (const dst of targets) expect((await skopeoInspectRaw(dst)).equals(image.manifestBytes)).toBe(true);

    // One repository receives each blob, the other mounts it from there: the bytes cross once.
    expect(result.blobs).toMatchObject({ copied: image.blobs.length, mounted: image.blobs.length });
    const log = await requestsSince(target, mark);
    expect(blobPuts(log)).toHaveLength(image.blobs.length);
    expect(log.filter((r) => r.method === 'POST' && r.uri.includes('mount=') && r.status === 201)).toHaveLength(image.blobs.length);
    // And the source served each blob once.
    const reads = (await requestsSince(source, sourceMark)).filter((r) => r.method === 'GET' && r.uri.includes('/blobs/sha256:'));
    expect(reads.map((r) => r.uri).sort()).toEqual(image.blobs.map((b) => `/v2/multi/src/blobs/${b.digest}`).sort());
  });

  it('writes targets on two registries, each receiving every blob once', async () => {
    const index = await pushOciIndexThreePlatforms(source, 'multi/index');
    const targets = [`${target.host}/two/index:v1`, `docker://${second.host}/two/index:v1`, `${second.host}/two/index:stable`];
    const marks = [target.accessLog().length, second.accessLog().length];
    const run = await hoist(['copy', `${source.host}/multi/index:multi`, ...targets]);
    expect(run.code, run.all).toBe(0);
    for (const dst of targets.map((t) => t.replace('docker://', ''))) {
      expect(run.stdout).toContain(`  ${dst} -> ${index.digest}\n`);
      expect((await skopeoInspectRaw(dst)).equals(index.manifestBytes)).toBe(true);
    }
    const blobs = new Set(index.children.flatMap((c) => c.blobs.map((b) => b.digest)));
    expect(blobPuts(await requestsSince(target, marks[0]))).toHaveLength(blobs.size);
    expect(blobPuts(await requestsSince(second, marks[1]))).toHaveLength(blobs.size);
  });

  it('refuses, before anything moves, a target tag at another digest, naming it (exit 5); --force writes all', async () => {
    const old = await pushImage(source, 'noforce/old', 'v1', { layers: [1200] });
    const image = await pushImage(source, 'noforce/new', 'v1', { layers: [1300] });
    expect((await hoist(['copy', `${source.host}/noforce/old:v1`, `${second.host}/noforce/app:v1`])).code).toBe(0);
    const fresh = `${target.host}/noforce/app:v1`;
    const held = `${second.host}/noforce/app:v1`;

    const refused = await hoist(['copy', `${source.host}/noforce/new:v1`, fresh, held]);
    expect(refused.code, refused.all).toBe(5);
    expect(refused.stderr).toContain(`target tag already exists: ${held} (now ${old.digest}); pass --force to overwrite it`);
    expect(refused.stderr).not.toContain(fresh);
    // All or nothing: the other target was not written either.
    expect(await manifestStatus(target, 'noforce/app', 'v1')).toBe(404);
    expect(sha256Digest(await skopeoInspectRaw(held))).toBe(old.digest);

    const forced = await hoist(['copy', `${source.host}/noforce/new:v1`, fresh, held, '--force']);
    expect(forced.code, forced.all).toBe(0);
    for (const dst of [fresh, held]) expect(sha256Digest(await skopeoInspectRaw(dst))).toBe(image.digest);
  });

  it('names the target that fails (exit 3 for refused credentials) and tags none of them', async () => {
    await pushImage(source, 'fail/src', 'v1', { layers: [900] });
    const good = `${target.host}/fail/dst:v1`;
    const bad = `${locked.host}/fail/dst:v1`;
    const run = await hoist(['copy', `${source.host}/fail/src:v1`, good, bad]);
    expect(run.code, run.all).toBe(3);
    expect(run.stderr).toMatch(new RegExp(`^hoist: authentication failed on the target ${locked.host}/fail/dst`, 'm'));
    expect(await manifestStatus(target, 'fail/dst', 'v1')).toBe(404);
    expect(await manifestStatus(locked, 'fail/dst', 'v1', basicAuthorization(locked.credentials!))).toBe(404);

    // A target nobody listens at (port 1 on loopback refuses): exit 1, naming it.
    const unreachable = await hoist(['copy', `${source.host}/fail/src:v1`, good, '127.0.0.1:1/fail/dst:v1', '--retry-times', '1']);
    expect(unreachable.code, unreachable.all).toBe(1);
    expect(unreachable.stderr).toContain('127.0.0.1:1/fail/dst:v1');
    expect(await manifestStatus(target, 'fail/dst', 'v1')).toBe(404);
  });
});

describe('dry runs', () => {
  it('list the tags they would write (new, unchanged or overwritten) and which manifests are referrers', async () => {
    const signed = await pushImageWithReferrers(source, 'dry/signed');
    const other = await pushImage(source, 'dry/other', 'v1', { layers: [500] });
    expect((await hoist(['copy', `${source.host}/dry/signed:signed`, `${target.host}/dry/same:v1`])).code).toBe(0);
    expect((await hoist(['copy', `${source.host}/dry/other:v1`, `${target.host}/dry/moved:v1`])).code).toBe(0);
    const targets = [`${target.host}/dry/new:v1`, `${target.host}/dry/same:v1`, `${target.host}/dry/moved:v1`];

    const mark = target.accessLog().length;
    const run = await hoist(['copy', `${source.host}/dry/signed:signed`, ...targets, '--referrers', '--force', '--dry-run']);
    expect(run.code, run.all).toBe(0);
    const digest = signed.image.digest;
    const lines = run.stdout.split('\n');
    expect(lines).toContain(`  tag ${targets[0]} -> ${digest} (new)`);
    expect(lines).toContain(`  tag ${targets[1]} -> ${digest} (unchanged, already at this digest)`);
    expect(lines).toContain(`  tag ${targets[2]} -> ${digest} (overwrites ${other.digest})`);
    expect(lines).toContain(`  manifest ${signed.referrer.digest} ${signed.referrer.mediaType} (referrer of ${digest})`);
    expect(lines).toContain(`  manifest ${digest} ${signed.image.mediaType}`);
    // Nothing was written.
    expect((await requestsSince(target, mark)).filter((r) => !['GET', 'HEAD'].includes(r.method))).toEqual([]);
    expect(await manifestStatus(target, 'dry/new', 'v1')).toBe(404);

    const json = await hoist(['copy', `${source.host}/dry/signed:signed`, ...targets, '--referrers', '--force', '--dry-run', '--json']);
    expect(json.code, json.all).toBe(0);
    const plan = (JSON.parse(json.stdout) as CopyResult & { plan: { tags: Array<{ reference: string; now?: string }> } }).plan;
    expect(plan.tags).toEqual([{ reference: targets[0] }, { reference: targets[1], now: digest }, { reference: targets[2], now: other.digest }]);
    expect(plan.manifests).toContainEqual(expect.objectContaining({ digest: signed.referrer.digest, referrerOf: digest }));
    expect(plan.manifests.find((m) => m.digest === digest)?.referrerOf).toBeUndefined();
  });
});
