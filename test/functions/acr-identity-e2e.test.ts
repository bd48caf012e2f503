/**
 * The import service with its Azure identity, end to end: POST through the HTTP handler and the
 * worker handler draining the queue as the host would, with Azurite, the real @azure/identity
 * (DefaultAzureCredential picking the user-assigned identity AZURE_CLIENT_ID names from the
 * managed-identity endpoint fixture, as in Azure Functions), ACR fixtures in front of real
 * token-auth registries, and the ARM fixture for resource IDs. No registry credentials anywhere:
 * every registry is reached with the app's identity, or a token given as the source password.
 */
import { createHash, randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient } from '@azure/storage-queue';
import { importWorkerHandler } from '../../src/functions/import-worker.js';
import { importsHandler } from '../../src/functions/imports.js';
import { resyncHandler } from '../../src/functions/resync.js';
import { watchesHandler } from '../../src/functions/watches.js';
import { setEngine } from '../../src/functions/services.js';
import { startAcrFixture, type AcrFixture } from '../helpers/acr-fixture.js';
import { registryResourceId, startArmFixture, type ArmFixture } from '../helpers/arm-fixture.js';
import { ACR_AUDIENCE, ARM_AUDIENCE, createEntraTenant } from '../helpers/entra-tenant.js';
import { pushImage, type PushedManifest } from '../helpers/fixtures.js';
import { startManagedIdentityEndpoint, type ManagedIdentityEndpoint } from '../helpers/managed-identity.js';
import { ALLOW_LOOPBACK_REGISTRIES } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { call, callChecked } from './support.js';

const MiB = 1024 * 1024;
const tenant = createEntraTenant();
/** The Function App's user-assigned identity: its client id (AZURE_CLIENT_ID) and object id. */
const APP_CLIENT = 'app-client-id';
const APP = 'app-object-id';
/** A principal whose Entra token a caller gives as the source password. */
const CALLER = 'caller-object-id';

let azurite: TestAzurite;
let endpoint: ManagedIdentityEndpoint;
/** Target: the app may push. */
let target: AcrFixture;
/** Target where the app may only pull. */
let pullOnlyTarget: AcrFixture;
/** Target where the app has no role at all: the exchange works, every scope is refused. */
let noRoleTarget: AcrFixture;
/** Source: the app may pull team/app; the caller may pull everything. */
let source: AcrFixture;
let arm: ArmFixture;
let image: PushedManifest;
/** Blobs no other test copies, so its upload is chunked rather than mounted. */
let fresh: PushedManifest;
const logs: string[] = [];
const SOURCE_ID = registryResourceId('00000000-0000-0000-0000-000000000001', 'rg-images', 'srcacr');

beforeAll(async () => {
  [azurite, endpoint] = await Promise.all([startAzurite(), startManagedIdentityEndpoint({ tenant, userAssigned: { [APP_CLIENT]: APP } })]);
  [target, pullOnlyTarget, noRoleTarget, source] = await Promise.all([
    startAcrFixture({ tenant, roles: [{ principal: APP, role: 'AcrPush' }] }),
    startAcrFixture({ tenant, roles: [{ principal: APP, role: 'AcrPull' }] }),
    startAcrFixture({ tenant, roles: [] }),
    startAcrFixture({ tenant, roles: [{ principal: APP, role: 'AcrPull', repository: 'team/app' }, { principal: CALLER, role: 'AcrPull' }] }),
  ]);
  arm = await startArmFixture({
    tenant,
    registries: [
      { resourceId: SOURCE_ID, loginServer: source.host, readers: [APP] },
      { resourceId: registryResourceId('00000000-0000-0000-0000-000000000001', 'rg-images', 'secret'), loginServer: 'secret.azurecr.io', readers: [] },
    ],
  });
  image = await pushImage(source.registry, 'team/app', '1', { layers: [300, 3 * MiB + 17] });
  fresh = await pushImage(source.registry, 'team/app', '2', { layers: [3 * MiB + 99] });
  await pushImage(source.registry, 'team/private', '1', { layers: [200] });
  setEngine();
  Object.assign(process.env, {
    ...ALLOW_LOOPBACK_REGISTRIES,
    ...endpoint.environment,
    AZURE_CLIENT_ID: APP_CLIENT,
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: target.host,
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
    HOIST_CHUNK_SIZE_BYTES: String(MiB),
    HOIST_ARM_ENDPOINT: arm.url,
    HOIST_ARM_AUDIENCE: ARM_AUDIENCE,
    // The source fixture's loopback login server, trusted as an ACR custom domain would be (the target always is).
    HOIST_ACR_REGISTRIES: source.host,
  });
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), endpoint?.stop(), target?.stop(), pullOnlyTarget?.stop(), noRoleTarget?.stop(), source?.stop(), arm?.stop()]);
});

const queue = () => QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');
const getJob = async (id: string) => (await call(importsHandler, { method: 'GET', path: `/api/imports/${id}`, params: { id } }, logs)).body;

/** Runs the worker on every message until the job has ended. */
async function work(id: string): Promise<void> {
  for (let round = 0; round < 200; round++) {
    const job = await getJob(id);
    if (job.status === 'succeeded' || job.status === 'failed') return;
    const { receivedMessageItems } = await queue().receiveMessages({ numberOfMessages: 1, visibilityTimeout: 60 });
    for (const m of receivedMessageItems) {
      const context = new InvocationContext({
        invocationId: `w-${randomBytes(4).toString('hex')}`,
        functionName: 'importWorker',
        triggerMetadata: { dequeueCount: m.dequeueCount },
        logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`),
      });
      await importWorkerHandler(JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')), context).catch((error: unknown) => logs.push(`worker threw: ${String(error)}`));
      await queue().deleteMessage(m.messageId, m.popReceipt);
    }
    if (receivedMessageItems.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not finish:\n${logs.slice(-20).join('\n')}`);
}

/** Every token issued anywhere in this file: none may reach logs, status documents or errors. */
function secrets(): string[] {
  return [...endpoint.issued.map((t) => t.token), ...target.issuedTokens, ...pullOnlyTarget.issuedTokens, ...noRoleTarget.issuedTokens, ...source.issuedTokens];
}

async function targetDigest(acr: AcrFixture, reference: string): Promise<string> {
  return `sha256:${createHash('sha256').update(await skopeoInspectRaw(`${acr.registry.host}/${reference}`, acr.adminCredentials)).digest('hex')}`;
}

describe('imports with the app identity', () => {
  afterEach(() => {
    process.env.HOIST_TARGET_REGISTRY = target.host;
  });

  it('imports from an ACR source to an ACR target with the managed identity only', async () => {
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:1`, images: ['copied/app:1'] } }, logs);
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    await work(posted.body.id);
    const job = await getJob(posted.body.id);
    expect(job, logs.slice(-10).join('\n')).toMatchObject({ status: 'succeeded', targets: [{ reference: `${target.host}/copied/app:1`, digest: image.digest, written: true }] });
    expect(await targetDigest(target, 'copied/app:1')).toBe(image.digest);
    // The user-assigned identity AZURE_CLIENT_ID names, for ACR's audience, exchanged at both registries.
    expect(endpoint.requests).toContainEqual(expect.objectContaining({ resource: ACR_AUDIENCE, clientId: APP_CLIENT, status: 200 }));
    for (const acr of [source, target]) expect(acr.requests.filter((r) => r.endpoint === 'exchange' && r.status === 200).map((r) => r.principal)).toContain(APP);
  });

  it('takes the source by resource ID, resolved once at submit: the job holds the login server', async () => {
    const posted = await call(importsHandler, { json: { registry: SOURCE_ID, source: 'team/app:1', images: ['by-id/app:1'] } }, logs);
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    expect(posted.body.source.reference).toBe(`${source.host}/team/app:1`);
    expect(arm.requests).toEqual([{ path: SOURCE_ID, status: 200, principal: APP }]);
    await work(posted.body.id);
    expect(await getJob(posted.body.id)).toMatchObject({ status: 'succeeded', targets: [{ digest: image.digest }] });
    expect(arm.requests).toHaveLength(1);
  });

  it.each([
    ['not found', registryResourceId('00000000-0000-0000-0000-000000000001', 'rg-images', 'missing'), 'REGISTRY_RESOURCE_NOT_FOUND', /no container registry has the resource id .*ResourceNotFound/],
    ['not readable by the identity', registryResourceId('00000000-0000-0000-0000-000000000001', 'rg-images', 'secret'), 'REGISTRY_RESOURCE_FORBIDDEN', /may not read .*AuthorizationFailed.*assign it a role/],
  ])('refuses a resource ID %s with 400 naming "registry"', async (_, id, code, message) => {
    const posted = await call(importsHandler, { json: { registry: id, source: 'team/app:1' } }, logs);
    expect(posted.status).toBe(400);
    expect(posted.body.error).toMatchObject({ code, field: 'registry' });
    expect(posted.body.error.message).toMatch(message);
  });

  it('asks ARM under the outbound address policy: an ARM endpoint the policy refuses is never reached', async () => {
    const allowed = process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES;
    process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES = `${source.host},${target.host}`;
    try {
      const before = arm.requests.length;
      const posted = await call(importsHandler, { json: { registry: SOURCE_ID, source: 'team/app:1', images: ['refused/app:1'] } }, logs);
      expect(posted.status).toBe(502);
      expect(posted.body.error.code).toBe('ARM_ERROR');
      expect(posted.body.error.message).toContain(`Resource Manager could not be asked for ${SOURCE_ID}`);
      expect(posted.body.error.message).toMatch(/loopback/);
      expect(arm.requests.length).toBe(before);
    } finally {
      process.env.HOIST_ALLOWED_PRIVATE_REGISTRIES = allowed;
    }
  });

  it('renews tokens that expire mid-copy: the registry refuses them, a new exchange follows, the import completes', async () => {
    let expired = false;
    target.onRequest((method, path) => {
      // The first chunk of the big layer: every token issued so far lapses under it.
      if (!expired && method === 'PATCH' && path.includes('/expiring/')) {
        expired = true;
        target.expireTokens();
      }
    });
    const exchangesBefore = target.requests.filter((r) => r.endpoint === 'exchange').length;
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:2`, images: ['expiring/app:2'] } }, logs);
    await work(posted.body.id);
    expect(expired).toBe(true);
    expect(await getJob(posted.body.id), logs.slice(-10).join('\n')).toMatchObject({ status: 'succeeded', targets: [{ digest: fresh.digest, written: true }] });
    expect(await targetDigest(target, 'expiring/app:2')).toBe(fresh.digest);
    expect(target.requests.filter((r) => r.endpoint === 'exchange').length).toBeGreaterThan(exchangesBefore);
  });

  it('names the role the identity lacks on the target: AcrPush', async () => {
    process.env.HOIST_TARGET_REGISTRY = pullOnlyTarget.host;
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:1`, images: ['denied/app:1'] } }, logs);
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    await work(posted.body.id);
    const job = await getJob(posted.body.id);
    expect(job.status).toBe('failed');
    expect(job.error.code).toBe('ACR_ROLE_MISSING');
    expect(job.error.message).toContain(`target registry ${pullOnlyTarget.host}`);
    expect(job.error.message).toContain('AcrPush (or Container Registry Data Importer and Data Reader)');
  });

  it('refuses at submit, naming the role, a target where the identity may not even pull: 403 ACR_ROLE_MISSING', async () => {
    process.env.HOIST_TARGET_REGISTRY = noRoleTarget.host;
    const jobsBefore = (await call(importsHandler, { method: 'GET', path: '/api/imports?pageSize=100' }, logs)).body.value.length;
    const posted = await callChecked(importsHandler, { json: { source: `${source.host}/team/app:1`, images: ['denied/app:1'] } }, logs);
    expect(posted.status, JSON.stringify(posted.body)).toBe(403);
    expect(posted.body.error.code).toBe('ACR_ROLE_MISSING');
    expect(posted.body.error.field).toBe('targetRegistry');
    expect(posted.body.error.message).toContain(`target registry ${noRoleTarget.host}`);
    expect(posted.body.error.message).toContain('AcrPush (or Container Registry Data Importer and Data Reader)');
    // The exchange was accepted (the identity is known) and the tag check refused: no job was queued.
    expect(noRoleTarget.requests.filter((r) => r.endpoint === 'exchange' && r.status === 200).map((r) => r.principal)).toContain(APP);
    expect((await call(importsHandler, { method: 'GET', path: '/api/imports?pageSize=100' }, logs)).body.value.length).toBe(jobsBefore);
    for (const secret of secrets()) expect(JSON.stringify(posted.body)).not.toContain(secret);
  });

  it('names the role the identity lacks on the source: AcrPull', async () => {
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/private:1`, images: ['denied/private:1'] } }, logs);
    await work(posted.body.id);
    const job = await getJob(posted.body.id);
    expect(job.error).toMatchObject({ code: 'ACR_ROLE_MISSING' });
    expect(job.error.message).toContain(`source registry ${source.host}`);
    expect(job.error.message).toContain('AcrPull role');
  });

  it('never sends the identity\'s token to a source that only answers like an ACR', async () => {
    const trusted = process.env.HOIST_ACR_REGISTRIES;
    process.env.HOIST_ACR_REGISTRIES = '';
    try {
      const exchanges = source.requests.filter((r) => r.endpoint === 'exchange').length;
      const posted = await call(importsHandler, { json: { source: `${source.host}/team/app:1`, images: ['untrusted/app:1'] } }, logs);
      await work(posted.body.id);
      const job = await getJob(posted.body.id);
      expect(job.error).toMatchObject({ code: 'AUTH_FAILED' });
      expect(source.requests.filter((r) => r.endpoint === 'exchange').length).toBe(exchanges);
    } finally {
      process.env.HOIST_ACR_REGISTRIES = trusted;
    }
  });

  it('takes an Entra token given as the password without a username, and exchanges it for the source', async () => {
    const { token } = tenant.issue({ principal: CALLER, audience: ACR_AUDIENCE });
    const posted = await call(importsHandler, { json: { source: `${source.host}/team/private:1`, images: ['caller/private:1'], password: token } }, logs);
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    await work(posted.body.id);
    expect(await getJob(posted.body.id), logs.slice(-10).join('\n')).toMatchObject({ status: 'succeeded' });
    expect(source.requests.filter((r) => r.endpoint === 'exchange' && r.status === 200).map((r) => r.principal)).toContain(CALLER);
    expect(JSON.stringify(await getJob(posted.body.id))).not.toContain(token);
    expect(logs.join('\n')).not.toContain(token);
  });

  it('mirrors a watched ACR tag into the ACR target with the identity only: the resync reads both with it', async () => {
    const name = 'acr-watch';
    const saved = await call(watchesHandler, { method: 'PUT', path: `/api/watches/${name}`, params: { name }, json: { source: `${source.host}/team/app:1`, target: 'watched/app' } }, logs);
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    await resyncHandler({ isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } }, new InvocationContext({ functionName: 'resync', logHandler: (level, ...args) => logs.push(`${level}: ${args.map(String).join(' ')}`) }));
    const watch = (await call(watchesHandler, { method: 'GET', path: `/api/watches/${name}`, params: { name } }, logs)).body;
    expect(watch.lastRun.stopped, JSON.stringify(watch.lastRun)).toBeUndefined();
    expect(watch.lastRun.jobsQueued).toBe(1);
    await work(watch.trackedTags['1'].jobId);
    expect(await targetDigest(target, 'watched/app:1')).toBe(image.digest);
  });

  it('never writes a token into logs, status documents or errors', async () => {
    const listed = await call(importsHandler, { method: 'GET', path: '/api/imports' }, logs);
    const output = `${logs.join('\n')}\n${JSON.stringify(listed.body)}`;
    expect(secrets().length).toBeGreaterThan(10);
    for (const secret of secrets()) expect(output).not.toContain(secret);
  });
});
