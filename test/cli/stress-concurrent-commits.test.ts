/**
 * stress: many `hoist copy` processes racing to commit the same blobs into one repository.
 * distribution 2.8 answers concurrent commits of one digest with DIGEST_INVALID, BLOB_UNKNOWN or
 * a 500 to all but one of them (and a manifest PUT racing a commit can meet
 * MANIFEST_BLOB_UNKNOWN). Each copy must settle such a race by asking the registry what it holds,
 * so that all of them end well. Slow by design: 24 CLI processes per round.
 */
import { pushImage } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { manifestDigest, requireBuild, runHoist, tempHome, type HoistRun, type TempHome } from './support.js';

const COPIES = 24;
const ROUNDS = 3;

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

describe('stress: 24 concurrent hoist copy of one image into 24 tags of one repository', () => {
  it.each([
    ['monolithic', []],
    ['chunked', ['--chunk-size', '1MiB']],
  ])(`%s uploads: every copy succeeds in each of ${ROUNDS} rounds, and every tag holds the image`, async (mode, flags) => {
    // Layers of several sizes, some over a chunk, so commits of one digest overlap in time.
    const image = await pushImage(source, `race/${mode}`, 'v1', { layers: [300, 70_000, 900_000, 1_500_000, 2_600_000, 4000] });
    const failures: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const repository = `race/${mode}-${round}`;
      const runs: HoistRun[] = await Promise.all(
        Array.from({ length: COPIES }, (_, i) => runHoist(['copy', `${source.host}/race/${mode}:v1`, `${target.host}/${repository}:t${i}`, ...flags], home, {}, 180_000)),
      );
      runs.forEach((run, i) => {
        if (run.code !== 0) failures.push(`round ${round} copy ${i}: exit ${run.code}: ${run.stderr.trim().split('\n').at(-1)}`);
      });
      const digests = await Promise.all(Array.from({ length: COPIES }, (_, i) => manifestDigest(target, repository, `t${i}`)));
      digests.forEach((digest, i) => {
        if (digest !== image.digest) failures.push(`round ${round} tag t${i}: holds ${digest ?? 'nothing'}`);
      });
    }
    expect(failures).toEqual([]);
  });
});
