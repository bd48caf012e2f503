/**
 * bin/hoist.js runs the bundle with a V8 code cache beside it. The cache must appear after a
 * successful copy and then be used as it is, and a cache that is corrupt or from another build
 * must never break the CLI: it is rejected, the copy runs from source, and a good cache replaces it.
 *
 * Each run uses its own copy of bin/ and dist/hoist-cli.js, so other CLI tests running at the same
 * time neither see nor write this test's cache.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushImage } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { cliEnv, PROJECT_ROOT, requireBuild, runProcess, tempHome, type TempHome } from './support.js';

/** Node 22 caches through module.enableCompileCache; Node 20 through bin/hoist.js's own loader. */
const BUILT_IN_CACHE = typeof (Module as { enableCompileCache?: unknown }).enableCompileCache === 'function';

let registry: TestRegistry;
let home: TempHome;
let install: string;

beforeAll(async () => {
  requireBuild();
  [registry, home] = await Promise.all([startRegistry(), tempHome()]);
  install = await mkdtemp(join(tmpdir(), 'hoist-install-'));
  await mkdir(join(install, 'bin'));
  await mkdir(join(install, 'dist'));
  await copyFile(join(PROJECT_ROOT, 'bin', 'hoist.js'), join(install, 'bin', 'hoist.js'));
  await copyFile(join(PROJECT_ROOT, 'dist', 'hoist-cli.js'), join(install, 'dist', 'hoist-cli.js'));
});
afterAll(async () => {
  await Promise.all([registry?.stop(), home?.cleanup(), install && rm(install, { recursive: true, force: true })]);
});

function hoistCopy(tag: string, source = 'cache/src:v1') {
  return runProcess(process.execPath, [join(install, 'bin', 'hoist.js'), 'copy', `${registry.host}/${source}`, `${registry.host}/cache/dst:${tag}`], cliEnv(home));
}

async function cacheFiles(): Promise<string[]> {
  const entries = await readdir(join(install, 'dist'));
  return entries.filter((name) => name.endsWith('.v8cache') || name === 'compile-cache').sort();
}

it('writes a code cache on the first successful copy, then uses it, and survives a corrupt one', async () => {
  const image = await pushImage(registry, 'cache/src', 'v1', { layers: [1000, 2000] });
  expect(await cacheFiles()).toEqual([]);

  if (BUILT_IN_CACHE) {
    expect((await hoistCopy('first')).code).toBe(0);
    expect((await readdir(join(install, 'dist', 'compile-cache'), { recursive: true })).length).toBeGreaterThan(0);
    return;
  }
  // A copy that fails writes nothing: it would cache only the start of a run.
  expect((await hoistCopy('none', 'cache/missing:v1')).code).not.toBe(0);
  expect(await cacheFiles()).toEqual([]);
  // A cache left by an earlier build goes once this build writes its own.
  const stale = join(install, 'dist', 'hoist-cli.0123456789abcdef.v8cache');
  await writeFile(stale, 'from an earlier build');

  const first = await hoistCopy('first');
  expect(first.code, first.all).toBe(0);
  const written = await cacheFiles();
  expect(written).toHaveLength(1);
  expect(written[0]).toMatch(/^hoist-cli\.[0-9a-f]{16}\.v8cache$/);
  const cacheFile = join(install, 'dist', written[0]!);

  // Accepted: the next copy leaves it as it is.
  const good = await readFile(cacheFile);
  const before = (await stat(cacheFile)).mtimeMs;
  expect((await hoistCopy('second')).code).toBe(0);
  expect((await stat(cacheFile)).mtimeMs).toBe(before);
  expect((await readFile(cacheFile)).equals(good)).toBe(true);

  // Corrupt: rejected, the copy still succeeds, and a good cache replaces it.
  const garbage = Buffer.alloc(4096, 0x5a);
  await writeFile(cacheFile, garbage);
  const third = await hoistCopy('third');
  expect(third.code, third.all).toBe(0);
  expect((await skopeoInspectRaw(`${registry.host}/cache/dst:third`)).equals(image.manifestBytes)).toBe(true);
  expect((await readFile(cacheFile)).equals(garbage)).toBe(false);
});
