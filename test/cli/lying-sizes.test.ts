/**
 * `hoist copy` of manifests whose descriptors lie about a blob's size, against real registries:
 * the copy ends in INTEGRITY (exit 6) without a tag, whatever the lie and in both upload modes,
 * and a size over HOIST_MAX_BLOB_BYTES is refused before any byte moves. The process must end by
 * itself with its own exit code: a claim of 2^53-1 bytes once grew it until V8 aborted (134).
 */
import { pushImage, pushImageWithLyingSize, type SizeLie } from '../helpers/fixtures.js';
import { settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { manifestStatus, requireBuild, runHoist, tempHome, type HoistRun, type TempHome } from './support.js';

let source: TestRegistry;
let target: TestRegistry;
let home: TempHome;

beforeAll(async () => {
  requireBuild();
  [source, target, home] = await Promise.all([startRegistry(), startRegistry(), tempHome()]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop(), home?.cleanup()]);
});

const LAYERS = [5000, 1200];
/** Lets every claim through to the copy, so the bytes are what refuses it. */
const NO_LIMIT = { HOIST_MAX_BLOB_BYTES: String(Number.MAX_SAFE_INTEGER) };

/** The `--json` error object the CLI printed on stdout. */
function jsonError(run: HoistRun): { code: string; message: string; exitCode: number } {
  const last = run.stdout.trim().split('\n').at(-1) ?? '';
  return (JSON.parse(last) as { error: { code: string; message: string; exitCode: number } }).error;
}

/** The process ended by itself, with its own exit code, not by an abort or a V8 fatal error. */
function expectNoCrash(run: HoistRun): void {
  expect(run.all).not.toMatch(/FATAL ERROR|heap out of memory|Native stack trace|Aborted/);
}

let repos = 0;

describe.each([
  ['monolithic', []],
  ['chunked', ['--chunk-size', '4MiB']],
])('a descriptor that lies about its size, %s uploads', (_mode, flags) => {
  it.each<[string, (real: number) => number, 'config' | number]>([
    ['2^53-1 on the config (the source sends far fewer bytes)', () => Number.MAX_SAFE_INTEGER, 'config'],
    ['1000 bytes too many on a layer (the source sends fewer bytes)', (real) => real + 1000, 0],
    ['100 bytes too few on a layer (the source sends more bytes)', (real) => real - 100, 0],
  ])('%s: exit 6 INTEGRITY, no tag on the target', async (_case, claim, blob) => {
    const repository = `lie/src-${++repos}`;
    const honestSize = blob === 'config' ? undefined : LAYERS[blob];
    const lie: SizeLie = { blob, size: claim(honestSize ?? 0) };
    const { honest } = await pushImageWithLyingSize(source, repository, 'v1', lie, { layers: LAYERS });
    const dst = `${target.host}/lie/dst-${repos}:v1`;

    const run = await runHoist(['copy', `${source.host}/${repository}:v1`, dst, '--json', ...flags], home, NO_LIMIT);

    expectNoCrash(run);
    expect(run.code, run.all).toBe(6);
    const error = jsonError(run);
    expect(error.code).toBe('INTEGRITY');
    expect(error.message).toContain(honest.digest);
    expect(error.message).toContain('nothing was tagged');
    expect(await manifestStatus(target, `lie/dst-${repos}`, 'v1')).toBe(404);
  });
});

describe('HOIST_MAX_BLOB_BYTES', () => {
  it.each([
    ['a claim of 2^53-1 against the default limit', { blob: 'config', size: Number.MAX_SAFE_INTEGER } as SizeLie, {}],
    ['an honest 5000-byte layer against a limit of 4096', undefined, { HOIST_MAX_BLOB_BYTES: '4096' }],
  ])('%s: refused at planning, naming the setting; no bytes moved', async (_case, lie, env) => {
    const repository = `max/src-${++repos}`;
    const image = lie
      ? (await pushImageWithLyingSize(source, repository, 'v1', lie, { layers: LAYERS })).manifest
      : await pushImage(source, repository, 'v1', { layers: LAYERS });
    const tooBig = lie ? image.blobs[0] : image.blobs[1];
    const before = (await settledAccessLog(target)).length;

    const run = await runHoist(['copy', `${source.host}/${repository}:v1`, `${target.host}/max/dst-${repos}:v1`, '--json'], home, env);

    expectNoCrash(run);
    expect(run.code, run.all).toBe(1);
    const error = jsonError(run);
    expect(error.code).toBe('BLOB_TOO_LARGE');
    expect(error.message).toContain(tooBig.digest);
    expect(error.message).toContain(String(tooBig.size));
    expect(error.message).toContain('HOIST_MAX_BLOB_BYTES');
    // Not one request reached the target (past the marker of the first look at its log):
    // nothing was checked, uploaded or tagged there.
    expect((await settledAccessLog(target)).slice(before + 1)).toEqual([]);
  });

  it.each(['12x', '0', '-5', '1.5', String(2 ** 53)])('refuses HOIST_MAX_BLOB_BYTES=%s with exit 2, naming it', async (value) => {
    const run = await runHoist(['copy', `${source.host}/any:v1`, `${target.host}/any:v1`], home, { HOIST_MAX_BLOB_BYTES: value });
    expect(run.code, run.all).toBe(2);
    expect(run.stderr).toContain(`HOIST_MAX_BLOB_BYTES "${value}"`);
  });
});

describe('a blob the target holds at another size than the descriptor claims', () => {
  it.each([
    ['already there (skipped)', 'held'],
    ['mounted from another repository', 'mounted'],
  ])('%s: exit 6 INTEGRITY naming the blob and both sizes; the tag is not written', async (_case, how) => {
    const n = ++repos;
    const lie: SizeLie = { blob: 0, size: LAYERS[0] + 1000 };
    // The same bytes on both sides: one seed.
    const options = { layers: LAYERS, seed: `held-${n}` };
    let src: string;
    let dstRegistry: TestRegistry;
    let honestDigest: string;
    if (how === 'held') {
      const { honest } = await pushImageWithLyingSize(source, `held/src-${n}`, 'v1', lie, options);
      await pushImage(target, `held/dst-${n}`, 'other', options);
      src = `${source.host}/held/src-${n}:v1`;
      dstRegistry = target;
      honestDigest = honest.digest;
    } else {
      // Source and target on one registry: the layer is mounted from the source repository.
      const { honest } = await pushImageWithLyingSize(target, `held/src-${n}`, 'v1', lie, options);
      src = `${target.host}/held/src-${n}:v1`;
      dstRegistry = target;
      honestDigest = honest.digest;
    }

    for (const flags of [[], ['--chunk-size', '4MiB']]) {
      const run = await runHoist(['copy', src, `${dstRegistry.host}/held/dst-${n}:v1`, '--json', ...flags], home, NO_LIMIT);
      expect(run.code, run.all).toBe(6);
      const error = jsonError(run);
      expect(error.code).toBe('INTEGRITY');
      expect(error.message).toContain(honestDigest);
      expect(error.message).toContain(`claims ${LAYERS[0] + 1000} bytes`);
      expect(error.message).toContain(`holds ${LAYERS[0]}`);
      expect(error.message).toContain('nothing was tagged');
      expect(await manifestStatus(dstRegistry, `held/dst-${n}`, 'v1')).toBe(404);
    }
  });
});
