/**
 * What the mirroring tests share: the app settings for a target registry on Azurite, saving and
 * removing watches through the API handler, and working the imports queue through the worker
 * handler as the host would.
 */
import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient } from '@azure/storage-queue';
import { importWorkerHandler } from '../../src/functions/import-worker.js';
import { setEngine, watchStore } from '../../src/functions/services.js';
import { watchesHandler } from '../../src/functions/watches.js';
import { ALLOW_LOOPBACK_REGISTRIES, type TestRegistry } from '../helpers/registry.js';
import type { TestAzurite } from '../jobs/azurite.js';
import { callChecked as call } from '../functions/support.js';

/** Points the app settings (process.env, as the handlers read them) at Azurite and the target registry. */
export function useMirrorSettings(azurite: TestAzurite, target: TestRegistry): void {
  setEngine();
  Object.assign(process.env, {
    ...ALLOW_LOOPBACK_REGISTRIES,
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: target.host,
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
    // A dead host fails at once rather than after back-off.
    HOIST_RETRY_ATTEMPTS: '1',
  });
}

/** An invocation context whose log lines go to `logs`. */
export function testContext(functionName: string, logs: string[]): InvocationContext {
  return new InvocationContext({ invocationId: `t-${randomBytes(4).toString('hex')}`, functionName, triggerMetadata: { dequeueCount: 1 }, logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`) });
}

/** Saves a watch through the API; fails the test unless it is accepted. */
export async function putWatch(name: string, json: unknown, headers: Record<string, string> = {}): Promise<void> {
  const response = await call(watchesHandler, { method: 'PUT', path: `/api/watches/${name}`, params: { name }, json, headers });
  expect(response.status, JSON.stringify(response.body)).toBeLessThan(300);
}

/** A watch as `GET /api/watches/{name}` shows it. */
export async function getWatch(name: string, headers: Record<string, string> = {}) {
  return (await call(watchesHandler, { method: 'GET', path: `/api/watches/${name}`, params: { name }, headers })).body;
}

/** Deletes every watch through the API, so each test starts without any. */
export async function deleteAllWatches(headers: Record<string, string> = {}): Promise<void> {
  for (const watch of await (await watchStore()).list()) await call(watchesHandler, { method: 'DELETE', path: `/api/watches/${watch.name}`, params: { name: watch.name }, headers });
}

/** Drops every message of the imports queue (jobs a test queued and left unrun). */
export async function clearQueue(azurite: TestAzurite): Promise<void> {
  await QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports').clearMessages().catch(() => undefined);
}

/** Runs the worker on every message of the imports queue until it is empty; returns the job ids first delivered. */
export async function workQueue(azurite: TestAzurite, logs: string[]): Promise<string[]> {
  const queue = QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');
  const ids: string[] = [];
  for (;;) {
    const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 8, visibilityTimeout: 120 });
    if (receivedMessageItems.length === 0) return ids;
    for (const m of receivedMessageItems) {
      const body = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as { jobId: string; continuation: number };
      if (body.continuation === 0) ids.push(body.jobId);
      await importWorkerHandler(body, testContext('importWorker', logs));
      await queue.deleteMessage(m.messageId, m.popReceipt);
    }
  }
}
