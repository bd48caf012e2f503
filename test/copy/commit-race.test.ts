/**
 * Commits that lose a race with another upload of the same digest. distribution 2.8 answers all
 * but one of concurrent commits of one digest with DIGEST_INVALID, BLOB_UNKNOWN or a 500, and a
 * manifest PUT racing another push of the same bytes with DIGEST_INVALID. A proxy in front of a
 * real registry gives those answers on cue (the stress test in test/cli meets them for real):
 * a blob the registry then holds at its size is done, one it lacks is sent again, a bounded
 * number of times, and a manifest PUT is resent.
 */
import { copy } from '../../src/copy/engine.js';
import { CopyError } from '../../src/copy/errors.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { DEFAULT_RETRY } from '../../src/registry/retry.js';
import { pushImage } from '../helpers/fixtures.js';
import { loseCommitRace, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { expectIdenticalInTarget, ref } from './support.js';

let source: TestRegistry;
let target: TestRegistry;
let proxy: TestProxy | undefined;

beforeAll(async () => {
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
});

const LAYER = 150_000;
const MODES = [
  ['monolithic', { uploadMode: 'monolithic' as const }],
  ['chunked', { uploadMode: 'chunked' as const, chunkSizeInBytes: 65_536 }],
] as const;
let n = 0;

describe.each(MODES)('%s uploads', (mode, options) => {
  it.each([
    ['another upload committed it first (DIGEST_INVALID)', { status: 400, code: 'DIGEST_INVALID', committed: true }, 1],
    ['another upload committed it first (500)', { status: 500, code: 'UNKNOWN', committed: true }, 1],
    ['nothing was committed (BLOB_UNKNOWN): the blob is sent again', { status: 404, code: 'BLOB_UNKNOWN', committed: false }, 2],
    ['nothing was committed (DIGEST_INVALID): the blob is sent again', { status: 400, code: 'DIGEST_INVALID', committed: false }, 2],
  ])('a commit that lost a race, %s: the copy completes', async (_case, race, commits) => {
    const repository = `race-${mode}-${++n}`;
    const image = await pushImage(source, `${repository}/src`, 'v1', { layers: [LAYER] });
    const layer = image.blobs.find((b) => b.size === LAYER)!;
    proxy = await startProxy(target.url, [loseCommitRace({ digest: layer.digest, ...race })]);

    const result = await copy({ source: ref(source, `${repository}/src:v1`), targets: [ref(proxy, `${repository}/dst:v1`)] }, { ...options, concurrency: 1 });

    expect(result.status).toBe('completed');
    const commitsOfLayer = proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes(`digest=${encodeURIComponent(layer.digest)}`));
    expect(commitsOfLayer).toHaveLength(commits);
    // After the lost commit: a HEAD asks whether the blob is there.
    const lost = proxy.requests.find((r) => r.action === 'loseCommitRace')!;
    expect(proxy.requests.slice(lost.index + 1).some((r) => r.method === 'HEAD' && r.path.endsWith(`/blobs/${layer.digest}`))).toBe(true);
    await expectIdenticalInTarget(target, `${repository}/dst`, 'v1', [image]);
  });

  it(`a blob whose every commit fails is tried ${DEFAULT_RETRY.maxAttempts} times in all, then fails the copy with INTEGRITY, untagged`, async () => {
    const repository = `race-${mode}-${++n}`;
    const image = await pushImage(source, `${repository}/src`, 'v1', { layers: [LAYER] });
    const layer = image.blobs.find((b) => b.size === LAYER)!;
    proxy = await startProxy(target.url, [loseCommitRace({ digest: layer.digest, status: 400, code: 'DIGEST_INVALID', committed: false, times: Infinity })]);

    const error = await copy({ source: ref(source, `${repository}/src:v1`), targets: [ref(proxy, `${repository}/dst:v1`)] }, { ...options, concurrency: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(CopyError);
    expect((error as CopyError).code).toBe('INTEGRITY');
    expect(proxy.requests.filter((r) => r.action === 'loseCommitRace')).toHaveLength(DEFAULT_RETRY.maxAttempts);
    expect(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toBe(false);
  });

  it('a blob whose every commit fails is tried as many times as the copy\'s retry policy says', async () => {
    const repository = `race-${mode}-${++n}`;
    const image = await pushImage(source, `${repository}/src`, 'v1', { layers: [LAYER] });
    const layer = image.blobs.find((b) => b.size === LAYER)!;
    proxy = await startProxy(target.url, [loseCommitRace({ digest: layer.digest, status: 400, code: 'DIGEST_INVALID', committed: false, times: Infinity })]);
    const hosts = new RegistryHosts({ retry: { maxAttempts: 2, baseDelayInMs: 10, maxDelayInMs: 50 } });

    const error = await copy({ source: ref(source, `${repository}/src:v1`), targets: [ref(proxy, `${repository}/dst:v1`)] }, { ...options, concurrency: 1, hosts }).catch((e: unknown) => e);

    expect((error as CopyError).code).toBe('INTEGRITY');
    expect(proxy.requests.filter((r) => r.action === 'loseCommitRace')).toHaveLength(2);
  });
});

it('a manifest PUT that lost a race (DIGEST_INVALID) is sent again, and the tag is written', async () => {
  const image = await pushImage(source, 'race-manifest/src', 'v1', { layers: [3000] });
  let refused = 0;
  proxy = await startProxy(target.url, [
    (request) =>
      request.method === 'PUT' && request.path.includes('/manifests/') && refused++ === 0
        ? { type: 'respond', status: 400, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] }), label: 'lostManifestRace' }
        : undefined,
  ]);

  const result = await copy({ source: ref(source, 'race-manifest/src:v1'), targets: [ref(proxy, 'race-manifest/dst:v1')] });

  expect(result.status).toBe('completed');
  expect(result.targets).toEqual([{ reference: `${proxy.host}/race-manifest/dst:v1`, digest: image.digest, written: true }]);
  expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')).map((r) => r.status)).toEqual([400, 201]);
  await expectIdenticalInTarget(target, 'race-manifest/dst', 'v1', [image]);
});
