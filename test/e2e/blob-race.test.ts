/**
 * Racing uploads of one blob: forty API imports of one image, spread over three `npm start`
 * processes (`node …/src/local/main.js`) sharing one Azurite, into one target repository. The
 * blob locks (src/jobs/write-locks.ts) let one job upload each blob while the others wait and
 * then find it in place, so the target registry's access log shows one upload session per
 * unique blob.
 */
import { pushImage, type PushedManifest } from '../helpers/fixtures.js';
import { settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startTestAzurite, type TestAzurite } from '../local/support.js';
import { buildApp, type AppProcesses, type HostProcess } from './app-process.js';
import { MiB } from './support.js';

const HOSTS = 3;
const IMPORTS = 40;

let app: AppProcesses;
let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
let image: PushedManifest;
const hosts: HostProcess[] = [];

beforeAll(async () => {
  [azurite, source, target, app] = await Promise.all([startTestAzurite(), startRegistry(), startRegistry(), buildApp('e2e-blob-race')]);
  // Layers of several chunks, so an upload is still under way when other jobs reach it.
  image = await pushImage(source, 'shared/app', 'v1', { layers: [3 * MiB + 17, 2 * MiB + 5, 700_000] });
  for (let i = 0; i < HOSTS; i++) {
    hosts.push(
      await app.startHost({
        AzureWebJobsStorage: azurite.connectionString,
        HOIST_TARGET_REGISTRY: target.host,
        HOIST_CHUNK_SIZE_BYTES: String(MiB),
        AzureFunctionsJobHost__extensions__queues__maxPollingInterval: '00:00:00.250',
        AzureFunctionsJobHost__extensions__queues__batchSize: '16',
      }),
    );
  }
});

afterAll(async () => {
  await app?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
});

// Cost: 15 to 40 s on 2 busy cores (three app processes, forty jobs of a 6 MiB image), after a
// private tsc build of about 30 s. Its timeout, 300 s, is above the 240 s its jobs are given to
// finish: the default 120 s cut that wait short, at 3x the test's usual time.
describe('stress: forty imports of one image through three hosts sharing one Azurite', () => {
  it('all succeed, and the registry sees one upload session per unique blob', async () => {
    const posted = await Promise.all(
      Array.from({ length: IMPORTS }, (_, i) => hosts[i % HOSTS].api.post({ source: `${source.host}/shared/app:v1`, images: [`shared/copy:t${i}`] })),
    );
    for (const res of posted) expect(res.status, JSON.stringify(res.body)).toBe(202);
    const logs = () => hosts.map((h) => h.output()).join('\n');
    const docs = await Promise.all(posted.map((res, i) => hosts[i % HOSTS].api.waitForStatus(res.body.id, 'succeeded', { timeoutInMs: 240_000, logs })));
    for (const doc of docs) expect(doc.targets[0]).toMatchObject({ digest: image.digest, written: true });

    const uniqueBlobs = new Set(image.blobs.map((b) => b.digest)).size;
    const sessions = (await settledAccessLog(target)).filter((r) => r.method === 'POST' && /^\/v2\/shared\/copy\/blobs\/uploads\/(\?|$)/.test(r.uri));
    expect(sessions.map((r) => r.uri)).toHaveLength(uniqueBlobs);
    const blobs = docs.reduce((sum, d) => sum + d.progress.blobs.done, 0);
    expect(blobs).toBe(IMPORTS * uniqueBlobs);
  }, 300_000);
});
