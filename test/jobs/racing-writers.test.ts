/**
 * Jobs racing to write one target tag without force, through the real worker path (runImport),
 * the real engine, a real registry and Azurite: the tag lock makes NoForce hold.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { randomBytes } from 'node:crypto';
import { copy } from '../../src/copy/index.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { runImport, type RunImportDeps } from '../../src/jobs/run-import.js';
import { WriteLocks } from '../../src/jobs/write-locks.js';
import { FixtureClient, pushImage, sha256Digest } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startAzurite, type TestAzurite } from './azurite.js';

const JOBS = 20;
const ROUNDS = 3;

let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let storage: JobStorage;
const digests: string[] = [];

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startAzurite(), startRegistry(), startRegistry()]);
  storage = await openJobStorage(azurite.connectionString);
  await storage.queue.queue.createIfNotExists();
  for (let i = 0; i < JOBS; i++) digests.push((await pushImage(source, `race/src${i}`, 'v1', { layers: [200 + i] })).digest);
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
});

function deps(): RunImportDeps {
  const log = { info: () => {}, warn: () => {}, error: () => {} };
  return {
    jobs: storage.jobs,
    checkpoints: storage.checkpoints,
    queue: storage.queue,
    hosts: new RegistryHosts(),
    copy,
    coordination: new WriteLocks(storage.jobs.table, { durationInMs: 30_000 }),
    timeBudgetInMs: 120_000,
    leaseDurationInMs: 30_000,
    maxDequeueCount: 5,
    log,
  };
}

async function createJob(sourceIndex: number, targetTag: string): Promise<JobRecord> {
  const record = newJobRecord({
    id: newJobId(),
    source: `${source.host}/race/src${sourceIndex}:v1`,
    targets: [{ reference: `${target.host}/race/dst:${targetTag}`, tagged: true }],
    force: false,
    platforms: [],
    referrers: false,
  });
  await storage.jobs.create(record);
  return record;
}

// Cost: about 10 s for 3 rounds of 20 tiny imports on 2 cores.
describe('stress: twenty jobs with different sources racing for one target tag without force', () => {
  it.each(Array.from({ length: ROUNDS }, (_, i) => i + 1))('round %i: one writes the tag, every other fails TAG_EXISTS naming the winner', async (round) => {
    const tag = `round-${round}-${randomBytes(3).toString('hex')}`;
    const jobs = await Promise.all(Array.from({ length: JOBS }, (_, i) => createJob(i, tag)));
    const outcomes = await Promise.all(jobs.map((job, i) => runImport({ message: { jobId: job.id, continuation: 0 }, dequeueCount: 1, invocationId: `race-${round}-${i}` }, deps())));
    const finished = await Promise.all(jobs.map(async (job) => (await storage.jobs.get(job.id))!.value));

    const winners = finished.filter((j) => j.status === 'succeeded');
    expect(winners, JSON.stringify(finished.map((j) => [j.status, j.targets, j.error]))).toHaveLength(1);
    const winner = winners[0];
    expect(winner.targets[0].written).toBe(true);
    const winnerDigest = digests[jobs.findIndex((j) => j.id === winner.id)];
    expect(winner.targets[0].digest).toBe(winnerDigest);

    const held = await new FixtureClient(target).getManifest('race/dst', tag);
    expect(sha256Digest(held.bytes)).toBe(winnerDigest);

    for (const loser of finished.filter((j) => j !== winner)) {
      expect(loser.status).toBe('failed');
      expect(loser.error?.code).toBe('TAG_EXISTS');
      expect(loser.error?.message).toContain(winnerDigest);
    }
    expect(outcomes.filter((o) => o === 'succeeded')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'failed')).toHaveLength(JOBS - 1);
  });
});
