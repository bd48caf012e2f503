/**
 * A delivery that comes after the host began shutting down is handed on untouched: no lease, no
 * source read, the message re-queued with a short delay for another instance. (Its own file: the
 * shutdown signal, once aborted, stays aborted for the whole process.)
 */
import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient } from '@azure/storage-queue';
import { importWorkerHandler } from '../../src/functions/import-worker.js';
import { importsHandler } from '../../src/functions/imports.js';
import { setEngine } from '../../src/functions/services.js';
import { beginShutdown } from '../../src/functions/shutdown.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { scriptedEngine } from '../jobs/scripted-engine.js';
import { ALLOW_LOOPBACK_REGISTRIES } from '../helpers/registry.js';
import { call } from './support.js';

let azurite: TestAzurite;

beforeAll(async () => {
  azurite = await startAzurite();
  // Nothing connects to the target: the engine is scripted.
  Object.assign(process.env, { ...ALLOW_LOOPBACK_REGISTRIES, AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: '127.0.0.1:5999', HOIST_SECRET_KEY: randomBytes(32).toString('base64') });
});
afterAll(async () => {
  setEngine();
  await azurite?.stop();
});

it('re-queues a delivery that comes during shutdown, leaving its job untouched', async () => {
  const engine = scriptedEngine({ size: 4, chunk: 4 });
  setEngine({ copy: engine.copy, findExistingTags: async () => [] });
  const posted = await call(importsHandler, { json: { source: 'ghcr.io/org/app:1.0', images: ['app:1.0'] } });
  expect(posted.status, JSON.stringify(posted.body)).toBe(202);
  const queue = QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');
  const { receivedMessageItems: [delivered] } = await queue.receiveMessages({ visibilityTimeout: 30 });
  const body = JSON.parse(Buffer.from(delivered.messageText, 'base64').toString('utf8')) as unknown;
  const before = await call(importsHandler, { method: 'GET', path: `/api/imports/${posted.body.id}`, params: { id: posted.body.id } });

  beginShutdown('test');
  const logs: string[] = [];
  const context = new InvocationContext({ invocationId: 'worker-1', functionName: 'importWorker', triggerMetadata: { dequeueCount: 1 }, logHandler: (_level, ...args) => logs.push(args.map(String).join(' ')) });
  await importWorkerHandler(body, context);
  // The host deletes the delivered message once the handler returns.
  await queue.deleteMessage(delivered.messageId, delivered.popReceipt);

  expect(engine.calls).toEqual([]);
  const after = await call(importsHandler, { method: 'GET', path: `/api/imports/${posted.body.id}`, params: { id: posted.body.id } });
  expect(after.body).toEqual(before.body);
  expect(logs.join('\n')).toContain(`job ${posted.body.id} re-queued for another instance`);
  // The copy waits out its delay, invisible: counted, but not received yet.
  expect((await queue.getProperties()).approximateMessagesCount).toBe(1);
  expect((await queue.receiveMessages()).receivedMessageItems).toEqual([]);
});
