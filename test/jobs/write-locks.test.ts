import { createHash } from 'node:crypto';
import { parseReference } from '../../src/registry/reference.js';
import { EXPIRED_LOCK_GRACE_MS, LOCK_PARTITION, sweepExpiredLocks, WriteLocks } from '../../src/jobs/write-locks.js';
import { useJobStorage } from './azurite.js';

const env = useJobStorage();

const never = () => false;
const repo = parseReference('127.0.0.1:5000/team/app');
const rowKey = (subject: string) => createHash('sha256').update(subject).digest('hex');

async function lockRow(subject: string): Promise<{ owner: string; expiresAt: string } | undefined> {
  try {
    return await env.storage.jobs.table.getEntity<{ owner: string; expiresAt: string }>(LOCK_PARTITION, rowKey(subject));
  } catch {
    return undefined;
  }
}

/** Resolves once `check` holds, asking every 20 ms for at most 10 s. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('write locks', () => {
  it('let one writer of a tag at a time: a second waits until the first releases, then takes it', async () => {
    const locks = new WriteLocks(env.storage.jobs.table, { durationInMs: 30_000 });
    const tag = parseReference('127.0.0.1:5000/team/app:v1');
    const first = await locks.lockTag(tag, never);
    expect(first).toBeDefined();
    let looks = 0;
    let secondTook = false;
    const second = locks
      .lockTag(tag, () => {
        looks++;
        return false;
      })
      .then((release) => {
        secondTook = true;
        return release;
      });
    await until(async () => looks >= 2, 'the second writer looked twice');
    expect(secondTook).toBe(false);
    // Another tag, and the same digest as a blob, are other locks.
    const other = await locks.lockTag(parseReference('127.0.0.1:5000/team/app:v2'), never);
    await other!();
    // So is the same repo:tag in another target registry (HOIST_TARGET_REGISTRY lists several).
    const elsewhere = await locks.lockTag(parseReference('127.0.0.1:5001/team/app:v1'), never);
    expect(elsewhere).toBeDefined();
    expect(secondTook).toBe(false);
    await elsewhere!();
    await first!();
    const release = await second;
    expect(release).toBeDefined();
    await release!();
    expect(await lockRow('tag 127.0.0.1:5000/team/app:v1')).toBeUndefined();
  });

  it('name, to a blob\'s waiter, the repositories of the holders it waited for: mount sources', async () => {
    const locks = new WriteLocks(env.storage.jobs.table, { durationInMs: 30_000 });
    const holder = await locks.lockBlob(parseReference('127.0.0.1:5000/team/first'), 'sha256:mount', never);
    expect(holder?.mountFrom).toBeUndefined();
    let looked = false;
    const waiter = locks.lockBlob(repo, 'sha256:mount', () => ((looked = true), false));
    await until(async () => looked, 'the waiter looked');
    await holder!.release();
    const taken = await waiter;
    expect(taken?.mountFrom).toEqual(['team/first']);
    await taken!.release();
  });

  it('kept over a paused upload, go back to the same job\'s continuation at once, and to no one else', async () => {
    const locks = new WriteLocks(env.storage.jobs.table, { durationInMs: 30_000 });
    const paused = await locks.forJob('job-1').lockBlob(repo, 'sha256:keep', never);
    await paused!.keepForResume();
    expect(await locks.forJob('job-2').lockBlob(repo, 'sha256:keep', () => true)).toBeUndefined();
    // The same job into another repository is another writer of the blob: it waits too.
    expect(await locks.forJob('job-1').lockBlob(parseReference('127.0.0.1:5000/team/other'), 'sha256:keep', () => true)).toBeUndefined();
    const resumed = await locks.forJob('job-1').lockBlob(repo, 'sha256:keep', () => true);
    expect(resumed).toBeDefined();
    await resumed!.release();
    expect(await lockRow('blob 127.0.0.1:5000@sha256:keep')).toBeUndefined();
  });

  it('give up waiting, without the lock, when told to stop', async () => {
    const locks = new WriteLocks(env.storage.jobs.table, { durationInMs: 30_000 });
    const held = await locks.forJob('a').lockBlob(repo, 'sha256:aa', never);
    expect(await locks.forJob('b').lockBlob(repo, 'sha256:aa', () => true)).toBeUndefined();
    await held!.release();
  });

  it('expire: a crashed holder blocks the others for one lease duration at most', async () => {
    const subject = 'blob 127.0.0.1:5000@sha256:crashed';
    await env.storage.jobs.table.createEntity({ partitionKey: LOCK_PARTITION, rowKey: rowKey(subject), subject, owner: 'a dead worker', expiresAt: new Date(Date.now() - 1).toISOString() });
    const locks = new WriteLocks(env.storage.jobs.table, { durationInMs: 30_000 });
    const release = await locks.lockBlob(repo, 'sha256:crashed', () => true);
    expect(release).toBeDefined();
    expect((await lockRow(subject))?.owner).not.toBe('a dead worker');
    await release!.release();
  });

  it('are renewed while held, so a live holder keeps its lock past the first expiry', async () => {
    const subject = 'blob 127.0.0.1:5000@sha256:renewed';
    const holder = new WriteLocks(env.storage.jobs.table, { durationInMs: 300 });
    const release = await holder.lockBlob(repo, 'sha256:renewed', never);
    const firstExpiry = Date.parse((await lockRow(subject))!.expiresAt);
    await until(async () => Date.parse((await lockRow(subject))?.expiresAt ?? '') > firstExpiry, 'the holder renewed its lock');
    // A contender whose clock has passed the first expiry still finds the lock live.
    const contender = new WriteLocks(env.storage.jobs.table, { durationInMs: 300, now: () => firstExpiry + 1 });
    expect(await contender.lockBlob(repo, 'sha256:renewed', () => true)).toBeUndefined();
    await release!.release();
    expect(await lockRow(subject)).toBeUndefined();
  });

  it('never delete a lock that another writer took over after theirs expired', async () => {
    const subject = 'blob 127.0.0.1:5000@sha256:taken';
    // A holder whose clock runs behind: its lock is already expired for everyone else.
    const late = new WriteLocks(env.storage.jobs.table, { durationInMs: 60_000, now: () => Date.now() - 120_000 });
    const stale = await late.lockBlob(repo, 'sha256:taken', never);
    const fresh = await new WriteLocks(env.storage.jobs.table, { durationInMs: 30_000 }).lockBlob(repo, 'sha256:taken', () => true);
    expect(fresh).toBeDefined();
    const owner = (await lockRow(subject))!.owner;
    await stale!.release();
    expect((await lockRow(subject))?.owner).toBe(owner);
    await fresh!.release();
  });
});

describe('the sweep of expired lock rows', () => {
  it('deletes rows expired longer than the grace, and leaves recently expired and live ones', async () => {
    const now = Date.now();
    const rows = {
      old: new Date(now - EXPIRED_LOCK_GRACE_MS - 60_000).toISOString(),
      recent: new Date(now - 60_000).toISOString(),
      live: new Date(now + 60_000).toISOString(),
    };
    for (const [name, expiresAt] of Object.entries(rows)) {
      await env.storage.jobs.table.createEntity({ partitionKey: LOCK_PARTITION, rowKey: rowKey(`sweep ${name}`), subject: `sweep ${name}`, owner: 'crashed', repository: 'team/app', expiresAt });
    }
    expect(await sweepExpiredLocks(env.storage.jobs.table, () => now)).toBeGreaterThanOrEqual(1);
    expect(await lockRow('sweep old')).toBeUndefined();
    expect(await lockRow('sweep recent')).toMatchObject({ expiresAt: rows.recent });
    expect(await lockRow('sweep live')).toMatchObject({ expiresAt: rows.live });
  });
});

