/**
 * The watch store's state entity against Azurite: a state at the most a watch tracks, with every
 * field at its longest, is written within Azure Tables' 1 MiB by shedding the creation-time cache
 * and the per-tag details GET only shows, never what keeps syncs right.
 */
import { randomBytes } from 'node:crypto';
import { watchStore } from '../../src/functions/services.js';
import { entitySize, MAX_ENTITY_BYTES } from '../../src/jobs/tables.js';
import { MAX_CREATION_CANDIDATES, MAX_TRACKED_TAGS } from '../../src/mirror/resync.js';
import type { TrackedTag, WatchRun } from '../../src/mirror/watch-store.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';

let azurite: TestAzurite;
beforeAll(async () => {
  azurite = await startAzurite();
  Object.assign(process.env, { AzureWebJobsStorage: azurite.connectionString, HOIST_WATCHES_TABLE: `watches${randomBytes(4).toString('hex')}` });
});
afterAll(async () => {
  await azurite?.stop();
});

const CREATED_AT = '2026-11-30T20:00:00.000Z';
/** The longest of each: a 128-character tag and event id, a sha512 digest. */
const longTag = (i: number) => `t${String(i).padStart(4, '0')}`.padEnd(128, 'x');
const sha512 = (i: number) => `sha512:${i.toString(16).padStart(128, 'f')}`;
function longTracked(i: number): TrackedTag {
  const at = '2026-11-30T20:00:00.000Z';
  return { digest: sha512(i), checkedAt: at, observedAt: at, jobId: 'z'.repeat(19), queuedAt: at, trigger: `event:${'e'.repeat(128)}`, syncs: 999_999_999, epoch: 999_999 };
}
const longRun: WatchRun = {
  startedAt: CREATED_AT,
  finishedAt: CREATED_AT,
  tagListRequests: 1_000_000,
  heads: 1_000_000,
  gets: 1_000_000,
  jobsQueued: 1_000_000,
  wanted: 1_000_000,
  wantedTags: { matched: 1_000_000, followed: MAX_TRACKED_TAGS },
  creationCandidates: { matched: 1_000_000, compared: MAX_CREATION_CANDIDATES },
  untracked: { count: 1_000_000, tags: Array.from({ length: 20 }, (_, i) => longTag(100_000 + i)) },
  stopped: { code: 'FAILED', reason: 'r'.repeat(2000), retryAfter: CREATED_AT },
};

describe('watch state entity', () => {
  it('writes MAX_TRACKED_TAGS tags at their longest within 1 MiB, shedding the creation cache and the tags\' trigger and queuedAt, keeping what syncs need', async () => {
    const store = await watchStore();
    await store.updateState('worst', CREATED_AT, (state) => {
      for (let i = 0; i < MAX_TRACKED_TAGS; i++) state.tags[longTag(i)] = longTracked(i);
      state.created = Object.fromEntries(Array.from({ length: MAX_CREATION_CANDIDATES }, (_, i) => [sha512(10_000 + i), CREATED_AT]));
      state.lastRun = longRun;
      state.epoch = 999_999;
    });
    const entity = await store.table.getEntity<Record<string, unknown>>('state', 'worst');
    expect(entitySize(entity as Record<string, unknown> & { partitionKey: string; rowKey: string })).toBeLessThanOrEqual(MAX_ENTITY_BYTES);
    const { value } = await store.state('worst', CREATED_AT);
    expect(Object.keys(value.tags)).toHaveLength(MAX_TRACKED_TAGS);
    for (let i = 0; i < MAX_TRACKED_TAGS; i++) {
      const kept = longTracked(i);
      delete kept.trigger;
      delete kept.queuedAt;
      expect(value.tags[longTag(i)]).toEqual(kept);
    }
    expect(value.created).toBeUndefined();
    expect(value.lastRun).toEqual(longRun);
    expect(value.epoch).toBe(999_999);
  });

  it('keeps the creation cache and every tag\'s details while the state fits', async () => {
    const store = await watchStore();
    await store.updateState('small', CREATED_AT, (state) => {
      for (let i = 0; i < 10; i++) state.tags[longTag(i)] = longTracked(i);
      state.created = { [sha512(1)]: CREATED_AT };
    });
    const { value } = await store.state('small', CREATED_AT);
    expect(value.tags[longTag(3)]).toEqual(longTracked(3));
    expect(value.created).toEqual({ [sha512(1)]: CREATED_AT });
  });
});
