/**
 * The engine's coordination hook against real registries, with an in-memory coordination (the
 * service's Tables-backed one is tested in test/jobs): tags and missing blobs are written under
 * their locks, a blob another writer put in place meanwhile is skipped, and a wait that is told
 * to stop pauses the copy with nothing tagged.
 */
import { copy } from '../../src/copy/index.js';
import type { CopyCoordination, ReleaseLock } from '../../src/copy/types.js';
import type { Reference } from '../../src/registry/reference.js';
import { FixtureClient, pushImage, seededBytes } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { ref } from './support.js';

let source: TestRegistry;
let target: TestRegistry;

beforeAll(async () => {
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
});

/** Records every lock taken and released; `onLock` may act (as another writer) or refuse. */
function recordingCoordination(onLock: (subject: string) => Promise<boolean> = async () => true): CopyCoordination & { log: string[] } {
  const log: string[] = [];
  const lock = async (subject: string, shouldStop: () => boolean): Promise<ReleaseLock | undefined> => {
    if (!(await onLock(subject)) && shouldStop()) return undefined;
    log.push(`lock ${subject}`);
    return async () => void log.push(`release ${subject}`);
  };
  return {
    log,
    lockTag: (tag: Reference, shouldStop) => lock(`tag ${tag}`, shouldStop),
    lockBlob: (registry, digest, shouldStop) => lock(`blob ${registry}@${digest}`, shouldStop),
  };
}

describe('copy with a coordination', () => {
  it('writes tags and missing blobs under their locks, and skips a blob another writer put in place while it waited', async () => {
    const image = await pushImage(source, 'co/src', 'v1', { layers: [1000, 2000] });
    const [config, first, second] = image.blobs;
    const coordination = recordingCoordination(async (subject) => {
      // Another writer uploads the first layer while this copy waits for its lock.
      if (subject.endsWith(first.digest)) await new FixtureClient(target).pushBlob('co/dst', { data: seededBytes(`co/src:v1:amd64/layer-0`, 1000) });
      return true;
    });
    const result = await copy({ source: ref(source, 'co/src:v1'), targets: [ref(target, 'co/dst:v1')] }, { coordination, concurrency: 1 });
    expect(result.status).toBe('completed');
    expect(result.blobs).toEqual({ total: 3, copied: 2, skipped: 1, mounted: 0 });
    expect(result.targets).toEqual([{ reference: `${target.host}/co/dst:v1`, digest: image.digest, written: true }]);
    for (const blob of [config, first, second]) {
      expect(coordination.log.indexOf(`release blob ${target.host}@${blob.digest}`)).toBeGreaterThan(coordination.log.indexOf(`lock blob ${target.host}@${blob.digest}`));
    }
    expect(coordination.log.slice(-2)).toEqual([`lock tag ${target.host}/co/dst:v1`, `release tag ${target.host}/co/dst:v1`]);
  });

  it.each(['tag', 'blob'])('pauses, tagging nothing, when a wait for a %s lock is told to stop', async (kind) => {
    await pushImage(source, `co/stop-${kind}`, 'v1', { layers: [1500] });
    // The stop: for a tag, an abort (a lost job lease) that comes while it waits; for a blob, a
    // spent time budget, which ends a wait even before the copy has moved anything.
    const abort = new AbortController();
    const coordination = recordingCoordination(async (subject) => {
      if (!subject.startsWith(kind)) return true;
      abort.abort();
      return false;
    });
    const options = kind === 'tag' ? { coordination, abortSignal: abort.signal } : { coordination, timeBudgetInMs: 0 };
    const result = await copy({ source: ref(source, `co/stop-${kind}:v1`), targets: [ref(target, `co/stop-${kind}:v1`)] }, options);
    expect(result.status).toBe('paused');
    expect(coordination.log.filter((l) => l.startsWith(`lock ${kind}`))).toEqual([]);
    expect(await new FixtureClient(target).getManifest(`co/stop-${kind}`, 'v1')).toMatchObject({ status: 404 });
  });
});
