/**
 * `hoist copy` end to end: the compiled CLI in a child process against real distribution
 * registries on loopback (one behind a fault-injecting proxy), checking exit codes, what it
 * prints, and what the target registry holds afterwards (skopeo, access log).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../../src/cli/progress.js';
import type { CopyResult } from '../../src/copy/types.js';
import { pushImage, pushImageWithReferrers, pushOciIndexThreePlatforms, pushTwoImagesSharingLayers, referrersTag, sha256Digest } from '../helpers/fixtures.js';
import { corruptResponses, startProxy, type TestProxy } from '../helpers/proxy.js';
import { basicAuthorization, settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoCopyAll, skopeoInspectRaw } from '../helpers/skopeo.js';
import {
  cliEnv,
  hasScript,
  hoistCommandLine,
  manifestStatus,
  requireBuild,
  runHoist,
  runProcess,
  tempHome,
  type TempHome,
} from './support.js';

const WRONG_PASSWORD = 'n0t-the-Right-pa55word';

let source: TestRegistry;
let target: TestRegistry;
/** Basic auth (htpasswd), user alice. */
let locked: TestRegistry;
let home: TempHome;

beforeAll(async () => {
  requireBuild();
  [source, target, locked, home] = await Promise.all([startRegistry(), startRegistry(), startRegistry({ auth: 'basic' }), tempHome()]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop(), locked?.stop(), home?.cleanup()]);
});

function hoist(args: string[], env: Record<string, string> = {}) {
  return runHoist(args, home, env);
}

describe('success output', () => {
  it('prints a human summary naming the digest and target, progress lines on stderr, and "unchanged" on a rerun', async () => {
    const image = await pushImage(source, 'human/src', 'v1', { layers: [1500, 2500] });
    const src = `${source.host}/human/src:v1`;
    const dst = `${target.host}/human/dst:v1`;

    const first = await hoist(['copy', src, dst]);
    expect(first.code, first.all).toBe(0);
    const lines = first.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`copied ${src} (${image.digest})`);
    expect(lines).toContain(`  ${dst} -> ${image.digest}`);
    expect(lines.at(-1)).toMatch(/^1 manifests written; blobs: 3 copied, 0 skipped, 0 mounted; [\d.]+ KiB moved$/);
    // Not a TTY: plain progress lines.
    expect(first.stderr).toContain(`resolved ${src} to ${image.digest}`);
    expect(first.stderr).toMatch(/^plan: 1 manifests, 3 blobs \(0 already there\), .* to move of /m);
    expect(first.stderr).toContain(`tag ${dst} written`);
    expect(first.stderr).not.toContain('\x1b[');
    expect((await skopeoInspectRaw(dst)).equals(image.manifestBytes)).toBe(true);

    const again = await hoist(['copy', src, dst]);
    expect(again.code, again.all).toBe(0);
    expect(again.stdout).toContain(`  ${dst} -> ${image.digest} (unchanged)`);
    expect(again.stdout).toContain('0 manifests written; blobs: 0 copied, 3 skipped, 0 mounted; 0 B moved');
    expect(again.stderr).toContain(`tag ${dst} already at this digest`);
  });

  it('--json: one JSON event per line on stderr, the result as one JSON object on stdout', async () => {
    const image = await pushImage(source, 'json/src', 'v1', { layers: [4000, 5000] });
    const src = `${source.host}/json/src:v1`;
    const dst = `${target.host}/json/dst:v1`;
    const run = await hoist(['copy', src, dst, '--json']);
    expect(run.code, run.all).toBe(0);

    const events = run.stderr
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; time: string });
    for (const event of events) {
      expect(event.type).toMatch(/^(resolved|plan|blob-start|blob-progress|blob-done|manifest|tag)$/);
      expect(new Date(event.time).toISOString()).toBe(event.time);
    }
    expect(events[0]).toMatchObject({ type: 'resolved', source: src, digest: image.digest });
    expect(events).toContainEqual(expect.objectContaining({ type: 'plan', manifests: 1, blobs: 3, blobsPresent: 0 }));
    expect(events.filter((e) => e.type === 'blob-done')).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ type: 'tag', reference: dst, digest: image.digest, written: true });

    expect(run.stdout.endsWith('\n')).toBe(true);
    expect(run.stdout.trimEnd().split('\n')).toHaveLength(1);
    const result = JSON.parse(run.stdout) as CopyResult;
    const totalBytes = image.blobs.reduce((sum, b) => sum + b.size, 0);
    expect(result).toMatchObject({
      status: 'completed',
      sourceDigest: image.digest,
      targetDigest: image.digest,
      targets: [{ reference: dst, digest: image.digest, written: true }],
      manifests: [{ digest: image.digest, mediaType: image.mediaType }],
      blobs: { total: 3, copied: 3, skipped: 0, mounted: 0 },
      bytes: { total: totalBytes, moved: totalBytes },
    });
  });

  it('--dry-run prints the plan and writes nothing to the target', async () => {
    const images = await pushTwoImagesSharingLayers(source, 'dry/src');
    const firstRun = await hoist(['copy', `${source.host}/dry/src:first`, `${target.host}/dry/dst:first`]);
    expect(firstRun.code, firstRun.all).toBe(0);

    const mark = (await settledAccessLog(target)).length;
    const run = await hoist(['copy', `${source.host}/dry/src:second`, `${target.host}/dry/dst:second`, '--dry-run']);
    expect(run.code, run.all).toBe(0);
    const during = (await settledAccessLog(target)).slice(mark);

    // The plan: every manifest and blob, with sizes, which the target has, and the bytes to move.
    const out = run.stdout;
    expect(out).toContain(`plan for ${source.host}/dry/src:second (${images.second.digest}):`);
    expect(out).toContain(`  manifest ${images.second.digest} ${images.second.mediaType}`);
    const present = new Set(images.first.blobs.map((b) => b.digest));
    for (const blob of images.second.blobs) {
      expect(out).toContain(`  blob ${blob.digest} ${formatBytes(blob.size)}${present.has(blob.digest) ? ' (target has it)' : ''}\n`);
    }
    const toMove = images.second.blobs.filter((b) => !present.has(b.digest)).reduce((sum, b) => sum + b.size, 0);
    const total = images.second.blobs.reduce((sum, b) => sum + b.size, 0);
    expect(toMove).toBeLessThan(total);
    expect(out.trimEnd().split('\n').at(-1)).toBe(`${formatBytes(toMove)} to move of ${formatBytes(total)}; nothing changed (dry run)`);

    // It looked (tag check, blob checks) but changed nothing.
    expect(during.filter((r) => r.method === 'HEAD').length).toBeGreaterThan(0);
    expect(during.filter((r) => !['GET', 'HEAD'].includes(r.method))).toEqual([]);
    expect(await manifestStatus(target, 'dry/dst', 'second')).toBe(404);
    expect(await manifestStatus(target, 'dry/dst', images.second.digest)).toBe(404);
  });
});

describe('exit codes of failed copies', () => {
  it.each([
    ['--src-creds with a wrong password', 'source', ['--src-creds', `alice:${WRONG_PASSWORD}`], {}],
    ['HOIST_SRC_* with a wrong password, --json', 'source', ['--json'], { HOIST_SRC_USERNAME: 'alice', HOIST_SRC_PASSWORD: WRONG_PASSWORD }],
    ['no credentials at all', 'source', [], {}],
    ['--dest-creds with a wrong password', 'target', ['--dest-creds', `alice:${WRONG_PASSWORD}`], {}],
    ['HOIST_DEST_* with a wrong password', 'target', [], { HOIST_DEST_USERNAME: 'alice', HOIST_DEST_PASSWORD: WRONG_PASSWORD }],
  ] as Array<[string, 'source' | 'target', string[], Record<string, string>]>)('3 for refused credentials: %s, without printing the password', async (_name, side, flags, env) => {
    if (side === 'source') await pushImage(locked, 'auth/src', 'v1', { layers: [700] });
    else await pushImage(source, 'auth/src', 'v1', { layers: [700] });
    const src = side === 'source' ? `${locked.host}/auth/src:v1` : `${source.host}/auth/src:v1`;
    const dst = side === 'source' ? `${target.host}/auth/dst:v1` : `${locked.host}/auth/dst:v1`;
    const run = await hoist(['copy', src, dst, ...flags], env);
    expect(run.code, run.all).toBe(3);
    expect(run.stderr).toMatch(new RegExp(`^hoist: authentication failed on the ${side} `, 'm'));
    // The CLI's own words for where credentials come from.
    expect(run.stderr).toContain(side === 'source' ? "the source's credentials come from --src-creds" : "the target's credentials come from --dest-creds");
    expect(run.all).not.toContain(WRONG_PASSWORD);
    expect(run.all).not.toContain(Buffer.from(`alice:${WRONG_PASSWORD}`).toString('base64'));
    if (flags.includes('--json')) {
      expect(JSON.parse(run.stdout)).toMatchObject({ error: { code: 'AUTH_FAILED', exitCode: 3 } });
    }
    expect(await manifestStatus(locked, 'auth/dst', 'v1', basicAuthorization(locked.credentials!))).toBe(404);
  });

  it('4 for a missing source tag or repository, naming it', async () => {
    await pushImage(source, 'missing/src', 'v1', { layers: [300] });
    for (const src of [`${source.host}/missing/src:nope`, `${source.host}/missing/nothing:v1`]) {
      const run = await hoist(['copy', src, `${target.host}/missing/dst:v1`]);
      expect(run.code, run.all).toBe(4);
      expect(run.stderr).toMatch(/^hoist: the source .* was not found/m);
      expect(run.stderr).toContain(src.replace(/:[^:/]+$/, ''));
    }
  });

  it('4 for a missing platform, listing the platforms there are', async () => {
    await pushOciIndexThreePlatforms(source, 'missing/plat');
    const run = await hoist(['copy', `${source.host}/missing/plat:multi`, `${target.host}/missing/plat:v1`, '--platform', 'windows/amd64']);
    expect(run.code, run.all).toBe(4);
    expect(run.stderr).toMatch(/has no windows\/amd64; available platforms: linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7/);
    expect(await manifestStatus(target, 'missing/plat', 'v1')).toBe(404);
  });

  it('5 when the target tag points at another digest, and 0 with --force, which moves the tag', async () => {
    const a = await pushImage(source, 'exists/a', 'v1', { layers: [1000] });
    const b = await pushImage(source, 'exists/b', 'v1', { layers: [2000] });
    const dst = `${target.host}/exists/dst:v1`;
    expect((await hoist(['copy', `${source.host}/exists/a:v1`, dst])).code).toBe(0);

    const refused = await hoist(['copy', `${source.host}/exists/b:v1`, dst]);
    expect(refused.code, refused.all).toBe(5);
    expect(refused.stderr).toContain(`target tag already exists: ${dst} (now ${a.digest})`);
    expect(refused.stderr).toContain(`target tag already exists: ${dst} (now ${a.digest}); pass --force to overwrite it`);
    expect(sha256Digest(await skopeoInspectRaw(dst))).toBe(a.digest);

    const forced = await hoist(['copy', `${source.host}/exists/b:v1`, dst, '--force']);
    expect(forced.code, forced.all).toBe(0);
    expect(forced.stdout).toContain(`  ${dst} -> ${b.digest}\n`);
    const now = await skopeoInspectRaw(dst);
    expect(sha256Digest(now)).toBe(b.digest);
    expect(now.equals(b.manifestBytes)).toBe(true);
  });

  it('5 naming the digest that won when another writer moves the tag between the PUT and the read-back', async () => {
    await pushImage(source, 'race/src', 'v1', { layers: [1100] });
    let other: string | undefined;
    const proxy = await startProxy(target.url, [
      (request) => {
        if (other !== undefined || request.method !== 'PUT' || request.pathname !== '/v2/race/dst/manifests/v1') return undefined;
        other = 'pending';
        // Our PUT has landed; a writer the CLI knows nothing of moves the tag before it reads back.
        return { type: 'forward', afterUpstream: async () => void (other = (await pushImage(target, 'race/dst', 'v1', { layers: [1300], seed: 'other-writer' })).digest) };
      },
    ]);
    try {
      const dst = `${proxy.host}/race/dst:v1`;
      const run = await hoist(['copy', `${source.host}/race/src:v1`, dst]);
      expect(other).toMatch(/^sha256:/);
      expect(run.code, run.all).toBe(5);
      expect(run.stderr).toContain(`another writer moved target tag ${dst}`);
      expect(run.stderr).toContain(`now holds ${other}`);
      expect(run.stdout).not.toContain(`-> `);
      expect(sha256Digest(await skopeoInspectRaw(`${target.host}/race/dst:v1`))).toBe(other);
    } finally {
      await proxy.stop();
    }
  });

  // A digest beside the tag must not turn the no-force check into a lookup by digest.
  it('2 when DST names another digest, leaving the existing tag alone', async () => {
    const a = await pushImage(source, 'bypass/a', 'v1', { layers: [1000] });
    await pushImage(source, 'bypass/b', 'v1', { layers: [2000] });
    const dst = `${target.host}/bypass/dst:v1`;
    expect((await hoist(['copy', `${source.host}/bypass/a:v1`, dst])).code).toBe(0);
    const run = await hoist(['copy', `${source.host}/bypass/b:v1`, `${dst}@sha256:${'0'.repeat(64)}`]);
    expect(sha256Digest(await skopeoInspectRaw(dst))).toBe(a.digest);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/names digest sha256:0{64}, but the copy produces sha256:/);
  });

  describe('integrity', () => {
    let proxy: TestProxy | undefined;
    afterEach(async () => {
      await proxy?.stop();
      proxy = undefined;
    });

    it('6 when the source serves corrupt bytes, with the target tag absent afterwards', async () => {
      await pushImage(source, 'corrupt/src', 'v1', { layers: [100_000] });
      proxy = await startProxy(source.url, [corruptResponses({ offset: 100 })]);
      for (const flags of [[], ['--chunk-size', '16KiB']]) {
        const repository = `corrupt/dst${flags.length}`;
        const run = await hoist(['copy', `${proxy.host}/corrupt/src:v1`, `${target.host}/${repository}:v1`, ...flags]);
        expect(run.code, run.all).toBe(6);
        expect(run.stderr).toMatch(/^hoist: integrity check failed/m);
        expect(run.stderr).toContain('nothing was tagged');
        expect(proxy.requests.some((r) => r.action === 'corruptResponse')).toBe(true);
        expect(await manifestStatus(target, repository, 'v1')).toBe(404);
      }
    });
  });
});

describe('credentials from the environment', () => {
  it('HOIST_SRC_* and HOIST_DEST_* reach a basic-auth registry', async () => {
    const { username, password } = locked.credentials!;
    const pulled = await pushImage(locked, 'env/src', 'v1', { layers: [900] });
    const down = await hoist(['copy', `${locked.host}/env/src:v1`, `${target.host}/env/down:v1`], { HOIST_SRC_USERNAME: username, HOIST_SRC_PASSWORD: password });
    expect(down.code, down.all).toBe(0);
    expect(down.all).not.toContain(password);
    expect((await skopeoInspectRaw(`${target.host}/env/down:v1`)).equals(pulled.manifestBytes)).toBe(true);

    const pushed = await pushImage(source, 'env/src', 'v2', { layers: [1900] });
    const up = await hoist(['copy', `${source.host}/env/src:v2`, `${locked.host}/env/up:v2`], { HOIST_DEST_USERNAME: username, HOIST_DEST_PASSWORD: password });
    expect(up.code, up.all).toBe(0);
    expect((await skopeoInspectRaw(`${locked.host}/env/up:v2`, locked.credentials)).equals(pushed.manifestBytes)).toBe(true);
  });

  it('auths in $DOCKER_CONFIG/config.json reach a basic-auth registry', async () => {
    const { username, password } = locked.credentials!;
    const image = await pushImage(source, 'dockercfg/src', 'v1', { layers: [1200] });
    const src = `${source.host}/dockercfg/src:v1`;
    const dst = `${locked.host}/dockercfg/dst:v1`;
    const configHome = await tempHome();
    try {
      // Without the file: refused.
      const without = await runHoist(['copy', src, dst], configHome);
      expect(without.code, without.all).toBe(3);

      const auth = Buffer.from(`${username}:${password}`).toString('base64');
      await writeFile(join(configHome.dockerConfig, 'config.json'), JSON.stringify({ auths: { [locked.host]: { auth } } }));
      const run = await runHoist(['copy', src, dst], configHome);
      expect(run.code, run.all).toBe(0);
      expect(run.all).not.toContain(password);
      expect((await skopeoInspectRaw(dst, locked.credentials)).equals(image.manifestBytes)).toBe(true);
    } finally {
      await configHome.cleanup();
    }
  });
});

describe('the order of credential sources (README: first match wins)', () => {
  // Each source holds the right or a wrong password; the run succeeds only if the source that
  // should win holds the right one. A wrong winner is not retried with the next source.
  let cases = 0;
  it.each<[string, { flag?: boolean; env?: boolean; config?: boolean }, number]>([
    ['a right --src-creds beats a wrong HOIST_SRC_* and config.json', { flag: true, env: false, config: false }, 0],
    ['a wrong --src-creds beats a right HOIST_SRC_* and config.json', { flag: false, env: true, config: true }, 3],
    ['a right HOIST_SRC_* beats a wrong config.json', { env: true, config: false }, 0],
    ['a wrong HOIST_SRC_* beats a right config.json', { env: false, config: true }, 3],
    ['config.json is used when nothing else is given', { config: true }, 0],
  ])('%s', async (_name, right, code) => {
    const { username, password } = locked.credentials!;
    const secret = (isRight: boolean) => (isRight ? password : WRONG_PASSWORD);
    const tag = `case${++cases}`;
    await pushImage(locked, 'order/src', tag, { layers: [700] });
    const configHome = await tempHome();
    try {
      if (right.config !== undefined) {
        const auth = Buffer.from(`${username}:${secret(right.config)}`).toString('base64');
        await writeFile(join(configHome.dockerConfig, 'config.json'), JSON.stringify({ auths: { [locked.host]: { auth } } }));
      }
      const flags = right.flag === undefined ? [] : ['--src-creds', `${username}:${secret(right.flag)}`];
      const env: Record<string, string> = right.env === undefined ? {} : { HOIST_SRC_USERNAME: username, HOIST_SRC_PASSWORD: secret(right.env) };
      const run = await runHoist(['copy', `${locked.host}/order/src:${tag}`, `${target.host}/order/dst:${tag}`, ...flags], configHome, env);
      expect(run.code, run.all).toBe(code);
      if (code === 3) expect(run.stderr).toMatch(/authentication failed on the source/);
      expect(await manifestStatus(target, 'order/dst', tag)).toBe(code === 0 ? 200 : 404);
    } finally {
      await configHome.cleanup();
    }
  });

  it('a right --dest-creds beats a wrong HOIST_DEST_*', async () => {
    const { username, password } = locked.credentials!;
    await pushImage(source, 'order/up', 'v1', { layers: [600] });
    const run = await hoist(['copy', `${source.host}/order/up:v1`, `${locked.host}/order/up:v1`, '--dest-creds', `${username}:${password}`], { HOIST_DEST_USERNAME: username, HOIST_DEST_PASSWORD: WRONG_PASSWORD });
    expect(run.code, run.all).toBe(0);
    const wrong = await hoist(['copy', `${source.host}/order/up:v1`, `${locked.host}/order/up:v2`, '--dest-creds', `${username}:${WRONG_PASSWORD}`], { HOIST_DEST_USERNAME: username, HOIST_DEST_PASSWORD: password });
    expect(wrong.code, wrong.all).toBe(3);
  });
});

describe('--platform and --referrers', () => {
  it('--platform copies one platform into a new index', async () => {
    const index = await pushOciIndexThreePlatforms(source, 'cli/plat');
    const dst = `${target.host}/cli/plat:arm64`;
    const run = await hoist(['copy', `${source.host}/cli/plat:multi`, dst, '--platform', 'linux/arm64']);
    expect(run.code, run.all).toBe(0);
    const written = await skopeoInspectRaw(dst);
    expect(run.stdout).toContain(`copied ${source.host}/cli/plat:multi (${index.digest})`);
    expect(run.stdout).toContain(`platform subset: new index digest ${sha256Digest(written)}`);
    const manifests = (JSON.parse(written.toString()) as { manifests: Array<{ digest: string; platform: { architecture: string } }> }).manifests;
    const arm64 = index.children.find((c) => c.descriptor.platform?.architecture === 'arm64')!;
    expect(manifests.map((m) => [m.platform.architecture, m.digest])).toEqual([['arm64', arm64.digest]]);
    const copied = await skopeoCopyAll(dst);
    await copied.cleanup();
  });

  it('--referrers copies the referrer, the fallback index and the cosign signature', async () => {
    const signed = await pushImageWithReferrers(source, 'cli/refs');
    const run = await hoist(['copy', `${source.host}/cli/refs:signed`, `${target.host}/cli/refs:signed`, '--referrers']);
    expect(run.code, run.all).toBe(0);
    expect((await skopeoInspectRaw(`${target.host}/cli/refs@${signed.referrer.digest}`)).equals(signed.referrer.manifestBytes)).toBe(true);
    expect((await skopeoInspectRaw(`${target.host}/cli/refs:${referrersTag(signed.image.digest)}.sig`)).equals(signed.signature.manifestBytes)).toBe(true);
    const fallback = JSON.parse((await skopeoInspectRaw(`${target.host}/cli/refs:${referrersTag(signed.image.digest)}`)).toString()) as { manifests: Array<{ digest: string }> };
    expect(fallback.manifests.map((m) => m.digest)).toEqual([signed.referrer.digest]);
  });
});

describe('HOIST_MAX_MANIFESTS', () => {
  it('refuses an index over the limit before anything reaches the target, and --platform brings it under', async () => {
    await pushOciIndexThreePlatforms(source, 'limit/src');
    const src = `${source.host}/limit/src:multi`;
    const mark = (await settledAccessLog(target)).length;
    const refused = await hoist(['copy', src, `${target.host}/limit/dst:v1`, '--json'], { HOIST_MAX_MANIFESTS: '3' });
    expect(refused.code, refused.all).toBe(1);
    const error = (JSON.parse(refused.stdout.trim().split('\n').at(-1)!) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('TOO_MANY_MANIFESTS');
    // The index and its three images: four, one over.
    expect(error.message).toContain('the source has 4 manifests to copy, over the limit of 3 per import (HOIST_MAX_MANIFESTS)');
    expect((await settledAccessLog(target)).slice(mark).filter((r) => r.method !== 'GET' && r.method !== 'HEAD')).toEqual([]);
    expect(await manifestStatus(target, 'limit/dst', 'v1')).toBe(404);

    // One platform: the new index and one image.
    const subset = await hoist(['copy', src, `${target.host}/limit/dst:arm64`, '--platform', 'linux/arm64'], { HOIST_MAX_MANIFESTS: '3' });
    expect(subset.code, subset.all).toBe(0);
    expect(await manifestStatus(target, 'limit/dst', 'arm64')).toBe(200);
  });

  it.each(['0', 'ten', '1.5'])('refuses HOIST_MAX_MANIFESTS=%s as a usage error naming it', async (value) => {
    const run = await hoist(['copy', `${source.host}/limit/src:multi`, `${target.host}/limit/dst:bad`], { HOIST_MAX_MANIFESTS: value });
    expect(run.code, run.all).toBe(2);
    expect(run.stderr).toContain(`HOIST_MAX_MANIFESTS "${value}" is not valid: give a whole number of at least 1, or leave it unset for no limit`);
  });
});

describe('progress on a terminal', () => {
  const script = hasScript();
  it.skipIf(!script)('draws a live view with a "total … ETA" line (under util-linux script)', async () => {
    const image = await pushImage(source, 'tty/src', 'v1', { layers: [3 * 1024 * 1024, 1000] });
    const dst = `${target.host}/tty/dst:v1`;
    const command = hoistCommandLine(['copy', `${source.host}/tty/src:v1`, dst, '--concurrency', '1']);
    const run = await runProcess('script', ['-qfec', command, '/dev/null'], cliEnv(home));
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toMatch(/total [\d.]+ (B|KiB|MiB)\/[\d.]+ (B|KiB|MiB) [\d.]+ (B|KiB|MiB)\/s ETA (\d+:\d\d|--:--)\r?$/m);
    expect(run.stdout).toContain('\x1b[');
    expect(run.stdout).toContain(`copied ${source.host}/tty/src:v1 (${image.digest})`);
    expect(sha256Digest(await skopeoInspectRaw(dst))).toBe(image.digest);
  });
  if (!script) it.skip('TTY progress: util-linux `script` is not installed, so no pseudo-terminal can be given to the CLI', () => undefined);
});
