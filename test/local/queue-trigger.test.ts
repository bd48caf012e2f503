import type { InvocationContext } from '@azure/functions';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { randomUUID } from 'node:crypto';
import type { FunctionDefinition } from '../../src/functions/definition.js';
import type { HostConfig } from '../../src/functions/host-config.js';
import { ImportsApi } from '../e2e/support.js';
import { delay, fastHostConfig, startTestAzurite, startTestHost, waitFor, type TestAzurite, type TestHost } from './support.js';

type QueueHandler = (message: unknown, context: InvocationContext) => Promise<void>;

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('local host queue trigger', () => {
  let azurite: TestAzurite;
  let service: QueueServiceClient;
  const hosts: TestHost[] = [];

  beforeAll(async () => {
    azurite = await startTestAzurite();
    service = QueueServiceClient.fromConnectionString(azurite.connectionString);
  });
  afterEach(async () => {
    await Promise.all(hosts.splice(0).map((h) => h.stop()));
  });
  afterAll(async () => {
    await azurite?.stop();
  });

  /** A fresh queue per test, so tests never see each other's messages. */
  async function newQueue(): Promise<{ name: string; queue: QueueClient; poison: QueueClient }> {
    const name = `q-${randomUUID().slice(0, 12)}`;
    const queue = service.getQueueClient(name);
    await queue.create();
    return { name, queue, poison: service.getQueueClient(`${name}-poison`) };
  }

  async function startHost(queueName: string, handler: QueueHandler, extra: { messageLeaseInMs?: number; hostConfig?: HostConfig } = {}): Promise<TestHost> {
    const definition: FunctionDefinition = {
      name: 'worker',
      trigger: { type: 'storageQueue', queueName, connection: 'AzureWebJobsStorage' },
      handler,
    };
    const host = await startTestHost({
      definitions: [definition],
      settings: { AzureWebJobsStorage: azurite.connectionString },
      hostConfig: fastHostConfig(),
      ...extra,
    });
    hosts.push(host);
    return host;
  }

  async function messageCount(queue: QueueClient): Promise<number> {
    if (!(await queue.exists())) return 0;
    // Counts invisible (leased) messages too, unlike peek.
    return (await queue.getProperties()).approximateMessagesCount ?? 0;
  }

  it('reads maxDequeueCount 5 and base64 encoding from the project host.json', () => {
    expect(fastHostConfig().queues).toMatchObject({ maxDequeueCount: 5, messageEncoding: 'base64', batchSize: 4, newBatchThreshold: 2 });
  });

  it('delivers JSON parsed with camelCase trigger metadata, and deletes the message on success', async () => {
    const { name, queue } = await newQueue();
    const calls: Array<{ message: unknown; context: InvocationContext }> = [];
    await startHost(name, async (message, context) => {
      calls.push({ message, context });
    });
    const sent = await queue.sendMessage(base64(JSON.stringify({ jobId: 'job-1', continuation: 0 })));
    await waitFor(() => calls.length === 1, 20_000, 'the invocation');
    const [{ message, context }] = calls as [(typeof calls)[number]];
    expect(message).toEqual({ jobId: 'job-1', continuation: 0 });
    expect(context.functionName).toBe('worker');
    expect(context.triggerMetadata).toMatchObject({
      dequeueCount: 1,
      id: sent.messageId,
      queueTrigger: '{"jobId":"job-1","continuation":0}',
    });
    for (const key of ['popReceipt', 'insertionTime', 'expirationTime', 'nextVisibleTime']) {
      expect(typeof context.triggerMetadata?.[key]).toBe('string');
    }
    await waitFor(async () => (await messageCount(queue)) === 0, 10_000, 'the message to be deleted');
  });

  it('passes non-JSON text through as a string', async () => {
    const { name, queue } = await newQueue();
    const messages: unknown[] = [];
    await startHost(name, async (message) => {
      messages.push(message);
    });
    await queue.sendMessage(base64('plain text'));
    await waitFor(() => messages.length === 1);
    expect(messages).toEqual(['plain text']);
  });

  it('retries a failing message after visibilityTimeout until maxDequeueCount, then moves the original to <queue>-poison', { tags: ['slow'] }, async () => {
    const { name, queue, poison } = await newQueue();
    const attempts: Array<{ dequeueCount: unknown; nextVisibleTime: number }> = [];
    await startHost(
      name,
      async (_, context) => {
        attempts.push({ dequeueCount: context.triggerMetadata?.dequeueCount, nextVisibleTime: Date.parse(String(context.triggerMetadata?.nextVisibleTime)) });
        throw new Error('transient failure');
      },
      { hostConfig: fastHostConfig({ visibilityTimeoutInMs: 2000 }) },
    );
    const original = base64(JSON.stringify({ jobId: 'job-poison', continuation: 0 }));
    await queue.sendMessage(original);
    const poisoned = await waitFor(
      async () => {
        if (!(await poison.exists())) return undefined;
        const { peekedMessageItems } = await poison.peekMessages();
        return peekedMessageItems.length > 0 ? peekedMessageItems : undefined;
      },
      60_000,
      'the poison message',
    );
    expect(attempts.map((a) => a.dequeueCount)).toEqual([1, 2, 3, 4, 5]);
    expect(poisoned.map((m) => m.messageText)).toEqual([original]);
    // Each retry waited out host.json's visibilityTimeout (2 s here), by the queue's own account:
    // a delivery's nextVisibleTime is when the queue received it plus the lease, so the gap between
    // two deliveries is the gap between their nextVisibleTimes. Those have whole seconds, so a gap
    // of 2 s or more never shows as less, and a retry released at once (well under 1 s) never as 2.
    for (let i = 1; i < attempts.length; i++) expect(attempts[i]!.nextVisibleTime - attempts[i - 1]!.nextVisibleTime).toBeGreaterThanOrEqual(2000);
    await waitFor(async () => (await messageCount(queue)) === 0, 10_000, 'the original to be deleted');
  });

  it('moves a message that is not base64 to poison without invoking the function', async () => {
    const { name, queue, poison } = await newQueue();
    let invoked = 0;
    const host = await startHost(name, async () => {
      invoked += 1;
    });
    await queue.sendMessage('{"not": "base64"}');
    const poisoned = await waitFor(async () => {
      if (!(await poison.exists())) return undefined;
      const { peekedMessageItems } = await poison.peekMessages();
      return peekedMessageItems[0];
    });
    expect(poisoned.messageText).toBe('{"not": "base64"}');
    expect(invoked).toBe(0);
    expect(await messageCount(queue)).toBe(0);
    // The host logs why, but never the message body.
    expect(host.logs.join('\n')).toMatch(/not valid base64/);
    expect(host.logs.join('\n')).not.toContain('"not"');
  });

  it('runs at most batchSize + newBatchThreshold messages at once (4 + 2 in host.json)', async () => {
    const { name, queue } = await newQueue();
    let running = 0;
    let most = 0;
    let done = 0;
    // All 16 are queued before the host starts, so its first receive takes a whole batch of 4 at
    // once, however slowly the sends go; sent after the start, on a loaded machine they could trickle
    // in one per poll and never overlap. Each handler works 300 ms: slower only adds overlap, so the
    // host always has the chance to take more than 6 if it would.
    await Promise.all(Array.from({ length: 16 }, (_, n) => queue.sendMessage(base64(JSON.stringify({ n })))));
    await startHost(name, async () => {
      running += 1;
      most = Math.max(most, running);
      await delay(300);
      running -= 1;
      done += 1;
    });
    await waitFor(() => done === 16, 60_000, '16 messages');
    expect(most).toBeGreaterThanOrEqual(4);
    expect(most).toBeLessThanOrEqual(6);
  });

  it('poisons a message already dequeued more than maxDequeueCount times (a crashing worker) without invoking', async () => {
    const { name, queue, poison } = await newQueue();
    const original = base64('{"crashy":true}');
    await queue.sendMessage(original);
    // Five receives that never settle, as from a process that died five times mid-message.
    for (let i = 0; i < 5; i++) {
      const [message] = (await queue.receiveMessages({ visibilityTimeout: 30 })).receivedMessageItems;
      await queue.updateMessage(message!.messageId, message!.popReceipt, undefined, 0);
    }
    let invoked = 0;
    await startHost(name, async () => {
      invoked += 1;
    });
    const poisoned = await waitFor(async () => (await poison.exists()) && (await poison.peekMessages()).peekedMessageItems[0]);
    expect(poisoned.messageText).toBe(original);
    expect(invoked).toBe(0);
  });

  it('shares a batch between two host instances, processing each message exactly once', async () => {
    const { name, queue } = await newQueue();
    const processed: Array<{ host: string; n: number }> = [];
    // Every handler holds until both hosts have begun a message, so B (started second) gets a
    // share however fast A drains the queue on its own; a fixed handler delay raced B's start-up.
    const begun = new Set<string>();
    let bothBegun!: () => void;
    const gate = new Promise<void>((resolve) => (bothBegun = resolve));
    const worker =
      (hostName: string): QueueHandler =>
      async (message) => {
        begun.add(hostName);
        if (begun.size === 2) bothBegun();
        await gate;
        processed.push({ host: hostName, n: (message as { n: number }).n });
      };
    const pair = [await startHost(name, worker('A')), await startHost(name, worker('B'))];
    await Promise.all(Array.from({ length: 20 }, (_, n) => queue.sendMessage(base64(JSON.stringify({ n })))));
    await waitFor(() => processed.length >= 20, 30_000, '20 messages');
    // Once every message is deleted none can be delivered again, and once both hosts have
    // stopped (letting running handlers finish) every delivery made is in `processed`.
    await waitFor(async () => (await messageCount(queue)) === 0, 10_000, 'the queue to drain');
    await Promise.all(pair.map((host) => host.stop()));
    expect(processed.map((p) => p.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    expect(new Set(processed.map((p) => p.host))).toEqual(new Set(['A', 'B']));
  });

  it('renews the lease while a handler outlives it, so no other instance receives the message', { tags: ['slow'] }, async () => {
    const LEASE_IN_MS = 4000;
    const { name, queue } = await newQueue();
    const invocations: Array<{ host: string; dequeueCount: unknown }> = [];
    const redelivered: unknown[] = [];
    const slow =
      (hostName: string): QueueHandler =>
      async (_, context) => {
        invocations.push({ host: hostName, dequeueCount: context.triggerMetadata?.dequeueCount });
        // The handler runs until the queue's own clock is a lease past the end of the lease it was
        // received with (so it has outlived that lease twice over), while this test keeps asking
        // the queue for the message as one more consumer would. A message the host let go shows up.
        const receivedLeaseEnd = Date.parse(String(context.triggerMetadata?.nextVisibleTime));
        await waitFor(
          async () => {
            const { receivedMessageItems, date } = await queue.receiveMessages();
            redelivered.push(...receivedMessageItems);
            return redelivered.length > 0 || (date !== undefined && date.getTime() >= receivedLeaseEnd + LEASE_IN_MS);
          },
          60_000,
          'the queue clock to pass the received lease',
        );
      };
    // A 4 s lease renewed every 2 s: a renewal may come up to 2 s late (a loaded machine, a slow
    // Azurite) before the message shows. (With 2 s renewed every second, a 1 s stall would do.)
    await startHost(name, slow('A'), { messageLeaseInMs: LEASE_IN_MS });
    await queue.sendMessage(base64('{"slow":true}'));
    await waitFor(() => invocations.length === 1);
    await startHost(name, slow('B'), { messageLeaseInMs: LEASE_IN_MS });
    await waitFor(async () => redelivered.length > 0 || (await messageCount(queue)) === 0, 60_000, 'the message to be deleted');
    expect(redelivered).toEqual([]);
    expect(invocations).toEqual([{ host: 'A', dequeueCount: 1 }]);
  });

  it('runs the function on the input of POST /admin/functions/{name} as a message text, outside the queue, as the Functions host does', async () => {
    const { name, queue } = await newQueue();
    const calls: Array<{ message: unknown; context: InvocationContext }> = [];
    const host = await startHost(name, async (message, context) => {
      calls.push({ message, context });
    });
    // Through the OpenAPI checker, as every e2e call.
    const api = ImportsApi.of(host);
    const text = JSON.stringify({ jobId: 'admin-job', continuation: 0 });
    expect((await api.request('POST', '/admin/functions/Worker', { json: { input: text } })).status).toBe(202);
    expect((await api.request('POST', '/admin/functions/worker', { json: { input: 'plain text' } })).status).toBe(202);
    await waitFor(() => calls.length === 2, 10_000, 'the two runs asked for');
    const byText = new Map(calls.map((c) => [c.context.triggerMetadata?.queueTrigger, c]));
    // JSON arrives parsed and text as text, as from the queue; the text is taken as it is, not base64.
    expect(byText.get(text)!.message).toEqual({ jobId: 'admin-job', continuation: 0 });
    expect(byText.get('plain text')!.message).toBe('plain text');
    // Its only delivery is also its last: a handler that gives up on a last attempt does.
    expect(byText.get(text)!.context.triggerMetadata?.dequeueCount).toBe(fastHostConfig().queues.maxDequeueCount);
    expect(byText.get(text)!.context.functionName).toBe('worker');
    // Nothing went through the queue.
    expect(await messageCount(queue)).toBe(0);
  });

  it('lets a running handler finish on stop, and deletes its message', async () => {
    const { name, queue } = await newQueue();
    let finished = false;
    let stopCalled = false;
    // The handler is still running when stop is called, and goes on for a while after: it waits
    // for the call rather than sleeping a fixed time that a slow poll of the log could outlast.
    const host = await startHost(name, async () => {
      await waitFor(() => stopCalled, 60_000, 'stop to be called');
      await delay(500);
      finished = true;
    });
    await queue.sendMessage(base64('{"n":1}'));
    await waitFor(() => host.logs.some((line) => line.includes("Executing 'Functions.worker'")));
    stopCalled = true;
    await host.stop();
    expect(finished).toBe(true);
    expect(await messageCount(queue)).toBe(0);
  });
});
