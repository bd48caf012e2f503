/**
 * Hoist's own tables and queue reached with a managed identity, for real: Azurite serves HTTPS
 * and accepts only Entra bearer tokens for storage (`--oauth basic`), the managed-identity
 * fixture plays the platform's endpoint, and the real @azure/identity ManagedIdentityCredential
 * gets its tokens there. The app side runs in a child process, as on Azure: the platform's
 * variables in its environment, and NODE_EXTRA_CA_CERTS trusting the test CA (read only at
 * start, so not settable in this process). The service's wiring (functions/services.ts) gives
 * its job tables, queue and watch table one credential: one token serves them all.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startAzurite, type AzuriteInstance } from '../../src/local/azurite.js';
import { makeCertificates, type TestCertificates } from '../helpers/certificates.js';
import { createEntraTenant } from '../helpers/entra-tenant.js';
import { startManagedIdentityEndpoint, type ManagedIdentityEndpoint } from '../helpers/managed-identity.js';
import { freePort } from '../helpers/ports.js';
import { spawnTracked } from '../helpers/processes.js';
import { startAzurite as startPlainAzurite, type TestAzurite } from '../helpers/azurite.js';

const run = promisify(execFile);
const DIST = path.join(__dirname, '..', '..', 'dist', 'src', 'jobs');
const DIST_LOCAL = path.join(__dirname, '..', '..', 'dist', 'src', 'local');
const PROJECT_ROOT = path.join(__dirname, '..', '..');
const CLIENT_ID = randomUUID();
const OTHER_CLIENT_ID = randomUUID();
let directory: string;
let certificates: TestCertificates;
let azurite: AzuriteInstance;
let identity: ManagedIdentityEndpoint;
let plain: TestAzurite;

beforeAll(async () => {
  directory = mkdtempSync(path.join(tmpdir(), 'hoist-storage-identity-'));
  certificates = await makeCertificates(directory, 'localhost');
  const ports = { blob: await freePort(), queue: await freePort(), table: await freePort() };
  azurite = await startAzurite({
    location: directory,
    ports,
    inMemoryPersistence: true,
    oauth: { certPath: certificates.certPath, keyPath: certificates.keyPath },
    spawnProcess: (command, args, options) => spawnTracked(command, args, options),
  });
  identity = await startManagedIdentityEndpoint({ tenant: createEntraTenant(), userAssigned: { [CLIENT_ID]: randomUUID() } });
  plain = await startPlainAzurite();
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), identity?.stop(), plain?.stop()]);
  rmSync(directory, { recursive: true, force: true });
});

/** Opens the job storage from identity settings in a child process, writes a job and a message, reads them back. */
const SCRIPT = `
const { Settings } = require(${JSON.stringify(path.join(DIST, 'settings.js'))});
const { openJobStorage } = require(${JSON.stringify(path.join(DIST, 'job-storage.js'))});
const { newJobRecord } = require(${JSON.stringify(path.join(DIST, 'job-record.js'))});
const { newJobId } = require(${JSON.stringify(path.join(DIST, 'job-id.js'))});
(async () => {
  const storage = await openJobStorage(new Settings(process.env).storage, { queueName: 'identity-imports' });
  const record = newJobRecord({ id: newJobId(), source: 'docker.io/library/hello-world:latest', targets: [{ reference: 'localhost:5000/hello:v1', tagged: true }], force: false, platforms: [], referrers: false });
  await storage.jobs.create(record);
  const read = await storage.jobs.get(record.id);
  await storage.queue.enqueue({ jobId: record.id, continuation: 0 });
  const { receivedMessageItems } = await storage.queue.queue.receiveMessages();
  console.log(JSON.stringify({ created: record.id, read: read.value.id, message: Buffer.from(receivedMessageItems[0].messageText, 'base64').toString('utf8') }));
})().catch((error) => {
  console.error(String(error && error.message));
  process.exit(1);
});
`;

/**
 * The local host (`npm start`) on identity settings: a queue function gets a message sent there,
 * and a timer function's status is kept in the host's table, both with the identity.
 */
const HOST_SCRIPT = `
const { startLocalHost } = require(${JSON.stringify(path.join(DIST_LOCAL, 'local-host.js'))});
const { createConsoleLogger } = require(${JSON.stringify(path.join(DIST_LOCAL, 'logger.js'))});
const { readHostConfig } = require(${JSON.stringify(path.join(DIST, '..', 'functions', 'host-config.js'))});
const { readStorageConnection, storageClients, queueClient, tableClient } = require(${JSON.stringify(path.join(DIST, 'storage-connection.js'))});
(async () => {
  let received, ticked;
  const message = new Promise((resolve) => (received = resolve));
  const tick = new Promise((resolve) => (ticked = resolve));
  const config = readHostConfig(${JSON.stringify(PROJECT_ROOT)});
  const host = await startLocalHost({
    definitions: [
      { name: 'worker', trigger: { type: 'storageQueue', queueName: 'identity-host', connection: 'AzureWebJobsStorage' }, handler: async (m) => received(m) },
      { name: 'tick', trigger: { type: 'timer', schedule: '* * * * * *' }, handler: async () => ticked() },
    ],
    settings: Object.fromEntries(Object.entries(process.env).filter(([, v]) => typeof v === 'string')),
    port: 0,
    projectRoot: ${JSON.stringify(PROJECT_ROOT)},
    hostConfig: { ...config, queues: { ...config.queues, maxPollingIntervalInMs: 250 } },
    logger: createConsoleLogger({ write: (line) => process.stderr.write(line + '\\n') }),
  });
  const clients = storageClients(readStorageConnection(process.env, 'AzureWebJobsStorage'));
  const queue = queueClient(clients, 'identity-host');
  await queue.createIfNotExists();
  await queue.sendMessage(Buffer.from(JSON.stringify({ hello: 'identity' })).toString('base64'));
  const got = await message;
  await tick;
  const timers = [];
  for await (const entity of tableClient(clients, 'LocalHostTimerStatus').listEntities()) timers.push(entity.rowKey);
  await host.stop();
  console.log(JSON.stringify({ message: got, timers }));
})().catch((error) => {
  console.error(String(error && error.message));
  process.exit(1);
});
`;

function identityEnvironment(clientId: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...identity.environment,
    NODE_EXTRA_CA_CERTS: certificates.caPath,
    AzureWebJobsStorage__queueServiceUri: `https://127.0.0.1:${azurite.ports.queue}/devstoreaccount1`,
    AzureWebJobsStorage__tableServiceUri: `https://127.0.0.1:${azurite.ports.table}/devstoreaccount1`,
    AzureWebJobsStorage__credential: 'managedidentity',
    AzureWebJobsStorage__clientId: clientId,
  };
}

function runApp(clientId: string) {
  return run(process.execPath, ['-e', SCRIPT], { env: identityEnvironment(clientId), timeout: 60_000 });
}

it('reads and writes the jobs table and the imports queue with the user-assigned identity named by __clientId', async () => {
  const { stdout } = await runApp(CLIENT_ID);
  const result = JSON.parse(stdout.trim()) as { created: string; read: string; message: string };
  expect(result.read).toBe(result.created);
  expect(JSON.parse(result.message)).toEqual({ jobId: result.created, continuation: 0 });
  // Every token came from the platform endpoint, for storage, for that identity.
  const asked = identity.requests.filter((r) => r.status === 200);
  expect(asked.length).toBeGreaterThan(0);
  expect(new Set(asked.map((r) => `${r.resource} ${r.clientId}`))).toEqual(new Set([`https://storage.azure.com ${CLIENT_ID}`]));
});

it('fails, naming no secret, when the platform has no such identity', async () => {
  const failed = await runApp(OTHER_CLIENT_ID).then(
    () => undefined,
    (error: { stderr: string }) => error,
  );
  expect(failed).toBeDefined();
  expect(failed!.stderr).toMatch(/ManagedIdentityCredential/);
  for (const { token } of identity.issued) expect(failed!.stderr).not.toContain(token);
});

it('runs the local host (npm start) on the identity: its queue listener and its timer status', async () => {
  const before = identity.requests.length;
  const { stdout } = await run(process.execPath, ['-e', HOST_SCRIPT], { env: identityEnvironment(CLIENT_ID), timeout: 60_000 });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { message: unknown; timers: string[] };
  expect(result.message).toEqual({ hello: 'identity' });
  expect(result.timers).toEqual(['tick']);
  const asked = identity.requests.slice(before).filter((r) => r.status === 200);
  expect(new Set(asked.map((r) => `${r.resource} ${r.clientId}`))).toEqual(new Set([`https://storage.azure.com ${CLIENT_ID}`]));
});

/**
 * The service's own wiring (functions/services.ts), cold, as a resync invocation finds it: the
 * watch store and the job storage asked for at once, then a job, a message and a watch row
 * written and read back through them.
 */
const SERVICE_SCRIPT = `
const { jobStorage, watchStore } = require(${JSON.stringify(path.join(DIST, '..', 'functions', 'services.js'))});
const { Settings } = require(${JSON.stringify(path.join(DIST, 'settings.js'))});
const { newJobRecord } = require(${JSON.stringify(path.join(DIST, 'job-record.js'))});
const { newJobId } = require(${JSON.stringify(path.join(DIST, 'job-id.js'))});
(async () => {
  const settings = new Settings(process.env);
  const [store, storage] = await Promise.all([watchStore(settings), jobStorage(settings)]);
  const record = newJobRecord({ id: newJobId(), source: 'docker.io/library/hello-world:latest', targets: [{ reference: 'localhost:5000/hello:v1', tagged: true }], force: false, platforms: [], referrers: false });
  const next = new Date(Date.UTC(2030, 0, 1)).toISOString();
  await Promise.all([storage.jobs.create(record), storage.queue.enqueue({ jobId: record.id, continuation: 0 }), store.setNextRun(next)]);
  const [read, nextRun] = await Promise.all([storage.jobs.get(record.id), store.nextRun()]);
  console.log(JSON.stringify({ created: record.id, read: read.value.id, next, nextRun }));
})().catch((error) => {
  console.error(String(error && error.message));
  process.exit(1);
});
`;

function runService(env: Record<string, string>) {
  return run(process.execPath, ['-e', SERVICE_SCRIPT], { env: { PATH: process.env.PATH ?? '', HOIST_WATCHES_TABLE: 'sharedwatches', ...env }, timeout: 60_000 });
}

function expectWorked(stdout: string): void {
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { created: string; read: string; next: string; nextRun: string };
  expect(result.read).toBe(result.created);
  expect(result.nextRun).toBe(result.next);
}

it('serves the job tables, the imports queue and the watch table with one token from the identity', async () => {
  const before = identity.requests.length;
  const { stdout } = await runService(identityEnvironment(CLIENT_ID));
  expectWorked(stdout);
  const asked = identity.requests.slice(before);
  expect(asked.map((r) => `${r.status} ${r.resource} ${r.clientId}`)).toEqual([`200 https://storage.azure.com ${CLIENT_ID}`]);
});

it('serves them all on a connection string (Azurite) as before', async () => {
  const before = identity.requests.length;
  const { stdout } = await runService({ AzureWebJobsStorage: plain.connectionString });
  expectWorked(stdout);
  expect(identity.requests.length).toBe(before);
});
