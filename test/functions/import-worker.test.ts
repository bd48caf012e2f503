import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient } from '@azure/storage-queue';
import { CopyError } from '../../src/copy/errors.js';
import { RegistryError } from '../../src/registry/errors.js';
import { importWorkerHandler } from '../../src/functions/import-worker.js';
import { Settings } from '../../src/jobs/settings.js';
import { importsHandler } from '../../src/functions/imports.js';
import { configuredTargets, setEngine } from '../../src/functions/services.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { scriptedEngine } from '../jobs/scripted-engine.js';
import { expectIdenticalInTarget } from '../copy/support.js';
import { pushImage } from '../helpers/fixtures.js';
import { ALLOW_LOOPBACK_REGISTRIES, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { call } from './support.js';

const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const MIB = 1024 * 1024;
let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;

beforeAll(async () => {
  [azurite, source, target] = await Promise.all([startAzurite(), startRegistry(), startRegistry()]);
  Object.assign(process.env, {
    ...ALLOW_LOOPBACK_REGISTRIES,
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: target.host,
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
  });
});
afterAll(async () => {
  setEngine();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop()]);
});
afterEach(() => {
  delete process.env.HOIST_TIME_BUDGET_SECONDS;
  delete process.env.HOIST_MAX_BLOB_BYTES;
  delete process.env.HOIST_CHUNK_SIZE_BYTES;
});

const queue = () => QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');

/** Receives one visible message and decodes it as the host does (base64, then JSON). */
async function receive(): Promise<{ body: unknown; dequeueCount: number; remove: () => Promise<unknown> } | undefined> {
  const { receivedMessageItems } = await queue().receiveMessages({ visibilityTimeout: 30 });
  const [m] = receivedMessageItems;
  if (!m) return undefined;
  return { body: JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')), dequeueCount: m.dequeueCount, remove: () => queue().deleteMessage(m.messageId, m.popReceipt) };
}

function workerContext(logs: string[], dequeueCount = 1): InvocationContext {
  return new InvocationContext({
    invocationId: `worker-${randomBytes(4).toString('hex')}`,
    functionName: 'importWorker',
    triggerMetadata: { dequeueCount },
    logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`),
  });
}

describe('importWorker', () => {
  it('runs a posted job to success across continuations with the real engine; GET shows it done, with no secret anywhere', async () => {
    setEngine();
    const image = await pushImage(source, 'org/app', '1.0', { layers: [5 * MIB + 1] });
    process.env.HOIST_TIME_BUDGET_SECONDS = '0.001';
    process.env.HOIST_CHUNK_SIZE_BYTES = String(MIB);
    const logs: string[] = [];
    const posted = await call(importsHandler, { json: { source: `${source.host}/org/app:1.0`, images: ['app:1.0'], username: 'bot', password: PASSWORD } }, logs);
    expect(posted.status).toBe(202);
    const texts: string[] = [];
    let invocations = 0;
    for (let message = await receive(); message; message = await receive()) {
      texts.push(JSON.stringify(message.body));
      await importWorkerHandler(message.body, workerContext(logs, message.dequeueCount));
      await message.remove();
      invocations++;
    }
    expect(invocations).toBeGreaterThanOrEqual(3);
    const status = await call(importsHandler, { method: 'GET', path: `/api/imports/${posted.body.id}`, params: { id: posted.body.id } });
    const total = image.blobs.reduce((sum, b) => sum + b.size, 0);
    expect(status.body).toMatchObject({
      status: 'succeeded',
      source: { reference: `${source.host}/org/app:1.0`, digest: image.digest },
      targets: [{ reference: `${target.host}/app:1.0`, tagged: true, digest: image.digest, written: true }],
      progress: { bytes: { total, done: total } },
      continuations: invocations - 1,
      attempts: 1,
    });
    // Each continuation resumed the one upload session where the last stopped: every chunk once.
    const uploads = target.accessLog().filter((r) => r.uri.startsWith('/v2/app/blobs/uploads/'));
    expect(uploads.filter((r) => r.method === 'PATCH' && r.status === 202)).toHaveLength(5);
    await expectIdenticalInTarget(target, 'app', '1.0', [image]);
    const everything = [...texts, ...logs, JSON.stringify(status.body), JSON.stringify(posted.body)].join('\n');
    expect(everything).not.toContain(PASSWORD);
    expect(logs.some((l) => l.includes('importWorker: paused'))).toBe(true);
  });

  it('throws on a transient failure, and on the last delivery marks the job failed before the message goes to poison', async () => {
    const transient = new CopyError('REGISTRY_ERROR', 'target registry error: SERVER_ERROR (HTTP 502) on PATCH; the registry failed; retry later', 'target', {
      cause: new RegistryError({ code: 'SERVER_ERROR', status: 502, method: 'PATCH', url: 'http://127.0.0.1:5998/v2/app/blobs/uploads/x', reference: '127.0.0.1:5998/app' }),
    });
    setEngine({ copy: scriptedEngine({ fail: () => transient }).copy, findExistingTags: async () => [] });
    const posted = await call(importsHandler, { json: { source: 'ghcr.io/org/app:2.0', images: ['app:2.0'] } });
    const message = (await receive())!;
    const logs: string[] = [];
    for (let dequeueCount = 1; dequeueCount <= 4; dequeueCount++) {
      await expect(importWorkerHandler(message.body, workerContext(logs, dequeueCount))).rejects.toThrow(/SERVER_ERROR/);
    }
    const running = await call(importsHandler, { method: 'GET', path: `/api/imports/${posted.body.id}`, params: { id: posted.body.id } });
    expect(running.body).toMatchObject({ status: 'running', attempts: 4, lastError: { code: 'REGISTRY_ERROR' } });
    await expect(importWorkerHandler(message.body, workerContext(logs, 5))).rejects.toThrow(/last attempt/);
    const failed = await call(importsHandler, { method: 'GET', path: `/api/imports/${posted.body.id}`, params: { id: posted.body.id } });
    expect(failed.body).toMatchObject({ status: 'failed', error: { code: 'REGISTRY_ERROR', message: expect.stringMatching(/gave up after 5 attempts/) } });
    expect(failed.body.completedAt).toBeDefined();
    await message.remove();
  });

  it('hands HOIST_MAX_BLOB_BYTES to the engine as maxBlobBytes', async () => {
    const engine = scriptedEngine({ size: 4, chunk: 4 });
    setEngine({ copy: engine.copy, findExistingTags: async () => [] });
    process.env.HOIST_MAX_BLOB_BYTES = '4096';
    await call(importsHandler, { json: { source: 'ghcr.io/org/app:3.0', images: ['app:3.0'] } });
    const message = (await receive())!;
    await importWorkerHandler(message.body, workerContext([]));
    await message.remove();
    expect(engine.calls[0].options.maxBlobBytes).toBe(4096);
  });
});

describe('configuredTargets', () => {
  it('scopes the target credentials to no registry when HOIST_TARGET_REGISTRY is unset or malformed', () => {
    expect(configuredTargets(new Settings({}))).toEqual([]);
    expect(configuredTargets(new Settings({ HOIST_TARGET_REGISTRY: 'not a host/' }))).toEqual([]);
    expect(configuredTargets(new Settings({ HOIST_TARGET_REGISTRY: 'a.example, b.example' }))).toEqual(['a.example', 'b.example']);
  });
});
