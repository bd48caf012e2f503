/**
 * Job transitions reach Application Insights as customDimensions: the real Azure Monitor
 * exporter, set up as the app does (startTelemetry), sends to an ingestion fixture on loopback.
 * The job runs with source credentials (an Entra token as the password) on a token-auth registry
 * and target credentials on a Basic-auth one; no password and no bearer token Hoist held appears
 * in any log line or in any byte of telemetry.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient } from '@azure/storage-queue';
import { logs } from '@opentelemetry/api-logs';
import type { LoggerProvider } from '@opentelemetry/sdk-logs';
import { importWorkerHandler } from '../../src/functions/import-worker.js';
import { importsHandler } from '../../src/functions/imports.js';
import { setEngine } from '../../src/functions/services.js';
import { startTelemetry } from '../../src/functions/telemetry.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { ACR_AUDIENCE, createEntraTenant } from '../helpers/entra-tenant.js';
import { pushImage } from '../helpers/fixtures.js';
import { startIngestionFixture, type IngestionFixture } from '../helpers/ingestion-fixture.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { ALLOW_LOOPBACK_REGISTRIES, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { PROJECT_ROOT, requireBuild } from '../cli/support.js';
import { call, runUntilSigterm } from './support.js';

/**
 * The source password is an Entra access token, as `az acr import --password` takes one (with
 * ACR's token username): a long bearer string that must appear nowhere.
 */
const SOURCE_USERNAME = '00000000-0000-0000-0000-000000000000';
const SOURCE_PASSWORD = createEntraTenant().issue({ principal: randomUUID(), audience: ACR_AUDIENCE }).token;
const TARGET_PASSWORD = `dst-${randomBytes(12).toString('hex')}`;
const MIB = 1024 * 1024;
let azurite: TestAzurite;
let source: TestRegistry;
let target: TestRegistry;
/** In front of the source, to see every bearer token Hoist sent. */
let sourceProxy: TestProxy;
let ingestion: IngestionFixture;
const bearerTokens = new Set<string>();
let provider: LoggerProvider;
const saved = { ...process.env };

beforeAll(async () => {
  [azurite, source, target, ingestion] = await Promise.all([
    startAzurite(),
    startRegistry({ auth: 'token', users: { [SOURCE_USERNAME]: SOURCE_PASSWORD } }),
    startRegistry({ auth: 'basic', users: { pusher: TARGET_PASSWORD } }),
    startIngestionFixture(),
  ]);
  sourceProxy = await startProxy(source.url, [
    (request) => {
      if (request.bearerToken) bearerTokens.add(request.bearerToken);
      return undefined;
    },
  ]);
  Object.assign(process.env, {
    ...ALLOW_LOOPBACK_REGISTRIES,
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: target.host,
    HOIST_TARGET_USERNAME: 'pusher',
    HOIST_TARGET_PASSWORD: TARGET_PASSWORD,
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
    HOIST_TIME_BUDGET_SECONDS: '0.001',
    HOIST_CHUNK_SIZE_BYTES: String(MIB),
    // The exporter's own usage reports would go to Microsoft: nothing leaves loopback in tests.
    APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
    APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
  });
  provider = startTelemetry({ APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString }, { agent: ingestion.agent })!;
});
afterAll(async () => {
  await provider?.shutdown();
  logs.disable();
  process.env = saved;
  await sourceProxy?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), target?.stop(), ingestion?.stop()]);
});

const queue = () => QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');

function workerContext(lines: string[], dequeueCount: number): InvocationContext {
  return new InvocationContext({
    invocationId: `worker-${randomBytes(4).toString('hex')}`,
    functionName: 'importWorker',
    triggerMetadata: { dequeueCount },
    logHandler: (level, ...args) => lines.push(`${level}: ${args.map(String).join(' ')}`),
  });
}

it('exports every transition with jobId, source, target, bytes, duration and outcome as customDimensions, and no secret anywhere', async () => {
  setEngine();
  const image = await pushImage(source, 'org/app', '1.0', { layers: [3 * MIB + 5] });
  const sourceRef = `${sourceProxy.host}/org/app:1.0`;
  const lines: string[] = [];
  const posted = await call(importsHandler, { json: { source: sourceRef, images: ['app:1.0'], username: SOURCE_USERNAME, password: SOURCE_PASSWORD } }, lines);
  expect(posted.status).toBe(202);
  const jobId = posted.body.id as string;

  for (;;) {
    const { receivedMessageItems } = await queue().receiveMessages({ visibilityTimeout: 60 });
    const [m] = receivedMessageItems;
    if (!m) break;
    await importWorkerHandler(JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')), workerContext(lines, m.dequeueCount));
    await queue().deleteMessage(m.messageId, m.popReceipt);
  }
  await provider.forceFlush();

  const total = image.blobs.reduce((sum, b) => sum + b.size, 0);
  const events = ingestion.envelopes
    .map((e) => e.data.baseData.properties ?? {})
    .filter((p) => p.jobId === jobId);
  const transitions = events.map((p) => p.transition);
  expect(transitions[0]).toBe('queued');
  expect(transitions).toContain('started');
  // A budget of 1 ms pauses after every chunk: the job took several invocations.
  expect(transitions).toContain('paused');
  expect(transitions.at(-1)).toBe('succeeded');
  for (const p of events) {
    expect(p).toMatchObject({ jobId, source: sourceRef, target: `${target.host}/app:1.0`, functionName: expect.any(String), invocationId: expect.any(String) });
    expect(Number(p.bytes)).toBeGreaterThanOrEqual(0);
    expect(Number(p.durationMs)).toBeGreaterThanOrEqual(0);
    expect(p.outcome).toMatch(/^(queued|running|succeeded)$/);
  }
  const done = events.at(-1)!;
  expect(Number(done.bytes)).toBe(total);
  expect(done.outcome).toBe('succeeded');
  // Bytes only grow from one transition to the next.
  const bytes = events.map((p) => Number(p.bytes));
  expect(bytes).toEqual([...bytes].sort((a, b) => a - b));

  // Readable locally: the same transitions as lines.
  expect(lines.some((l) => l.includes(`job ${jobId}: succeeded`) && l.includes(`${total} bytes`))).toBe(true);

  // The source was read with bearer tokens, which are as secret as the passwords.
  const tokens = [...bearerTokens];
  expect(tokens.length).toBeGreaterThan(0);
  const everything = [...lines, ...ingestion.bodies].join('\n');
  for (const secret of [SOURCE_PASSWORD, TARGET_PASSWORD, ...tokens]) expect(everything).not.toContain(secret);
});

it('sends the transitions of imports paused by SIGTERM before the worker exits', async () => {
  requireBuild();
  // The app as the Functions runtime loads it, with telemetry on, and one invocation that logs
  // its pause when the shutdown asks for it, as runImport does.
  const script = `
    require(${JSON.stringify(join(PROJECT_ROOT, 'dist/src/functions/register.js'))});
    const { shutdownSignal, trackUntilShutdown } = require(${JSON.stringify(join(PROJECT_ROOT, 'dist/src/functions/shutdown.js'))});
    const { logJobEvent } = require(${JSON.stringify(join(PROJECT_ROOT, 'dist/src/functions/telemetry.js'))});
    const { InvocationContext } = require('@azure/functions');
    const context = new InvocationContext({ invocationId: 'sigterm', functionName: 'importWorker', logHandler: () => undefined });
    const event = { transition: 'paused', jobId: 'job-sigterm', source: 'a.example/x:1', target: 'b.example/x:1', bytes: 7, durationMs: 1, outcome: 'running' };
    trackUntilShutdown(new Promise((resolve) => shutdownSignal.addEventListener('abort', () => setTimeout(() => { logJobEvent(context, 'info', 'paused for shutdown', event); resolve(); }, 50))));
    process.stdout.write('ready\\n');
    setInterval(() => undefined, 1000);
  `;
  const env = {
    PATH: process.env.PATH ?? '',
    // The app refuses to load without a target registry (register.ts).
    HOIST_TARGET_REGISTRY: 'registry.example',
    APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
    NODE_EXTRA_CA_CERTS: ingestion.caPath,
    APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
    APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
  };
  expect((await runUntilSigterm(script, PROJECT_ROOT, env)).code).toBe(143);
  const sent = ingestion.envelopes.map((e) => e.data.baseData.properties ?? {}).filter((p) => p.jobId === 'job-sigterm');
  expect(sent).toEqual([expect.objectContaining({ transition: 'paused', bytes: '7', functionName: 'importWorker', invocationId: 'sigterm' })]);
});
