import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeCertificates } from '../helpers/certificates.js';
import { ALLOW_LOOPBACK_REGISTRIES } from '../helpers/registry.js';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { responseForError } from '../../src/functions/http-errors.js';
import { JobMayExistError } from '../../src/jobs/errors.js';
import { JobQueue } from '../../src/jobs/job-queue.js';
import { JobStore } from '../../src/jobs/job-store.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { DEFAULT_JOBS_TABLE } from '../../src/jobs/settings.js';
import { storageClients } from '../../src/jobs/storage-connection.js';
import { openTable } from '../../src/jobs/tables.js';
import { importsHandler } from '../../src/functions/imports.js';
import { CopyError } from '../../src/copy/errors.js';
import { jobStorage, setEngine, submitDeps } from '../../src/functions/services.js';
import { submitImport } from '../../src/jobs/submit-import.js';
import { acquireJobLease } from '../../src/jobs/job-lease.js';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startAzurite, type TestAzurite } from '../jobs/azurite.js';
import { freePort } from '../helpers/ports.js';
import { call, callChecked, type CallOptions, type Called } from './support.js';

const PASSWORD = `src-pass-${randomBytes(8).toString('hex')}`;
const SOURCE = 'docker.io/library/hello-world:latest';
let azurite: TestAzurite;
/** The real target registry, reached through a proxy that can refuse Hoist on cue. */
let registry: TestRegistry;
let proxy: TestProxy;
/** `host:port` the API is configured with (HOIST_TARGET_REGISTRY): the proxy. */
let TARGET: string;
let targetDown = false;
/**
 * A source the submit path may resolve by tag (it does when a target tag exists): on loopback,
 * so no test reaches beyond this machine.
 */
let LOCAL_SOURCE: string;

beforeAll(async () => {
  [azurite, registry] = await Promise.all([startAzurite(), startRegistry()]);
  // A registry that refuses Hoist's identity: the no-force check cannot be made.
  proxy = await startProxy(registry.url, [
    () => (targetDown ? { type: 'respond', status: 401, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }) } : undefined),
  ]);
  await pushImage(registry, 'library/hello-world', 'latest', { layers: [100] });
  LOCAL_SOURCE = `${registry.host}/library/hello-world:latest`;
  TARGET = proxy.host;
  Object.assign(process.env, {
    ...ALLOW_LOOPBACK_REGISTRIES,
    AzureWebJobsStorage: azurite.connectionString,
    HOIST_TARGET_REGISTRY: TARGET,
    HOIST_SECRET_KEY: randomBytes(32).toString('base64'),
  });
});
afterAll(async () => {
  await proxy?.stop();
  await Promise.all([azurite?.stop(), registry?.stop()]);
});
afterEach(() => {
  delete process.env.HOIST_API_KEY;
  targetDown = false;
});

/** Tags the registry was asked about (manifest HEADs) since `mark`. */
function tagChecksSince(mark: number): string[] {
  return proxy.requests
    .slice(mark)
    .filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/'))
    .map((r) => r.path.replace(/^\/v2\/(.+)\/manifests\/(.+)$/, '$1:$2'));
}

const post = (json: unknown, extra: Omit<CallOptions, 'json'> = {}) => call(importsHandler, { json, ...extra });
const get = (path: string, extra: CallOptions = {}) => call(importsHandler, { method: 'GET', path, ...extra });

function importsQueue() {
  return QueueServiceClient.fromConnectionString(azurite.connectionString).getQueueClient('imports');
}

/** The oldest 32 messages (peeked, left in place). */
async function queuedMessages(): Promise<string[]> {
  await importsQueue().createIfNotExists();
  const { peekedMessageItems } = await importsQueue().peekMessages({ numberOfMessages: 32 });
  return peekedMessageItems.map((m) => m.messageText);
}

async function queueLength(): Promise<number> {
  await importsQueue().createIfNotExists();
  return (await importsQueue().getProperties()).approximateMessagesCount ?? 0;
}

describe('POST /api/imports', () => {
  it('queues a job: 202, Location, the status document, and a base64 message with only the id', async () => {
    const before = await queueLength();
    const mark = proxy.requests.length;
    const res = await post({ source: SOURCE, images: ['hello:v1'], untaggedRepositories: ['mirror/hello'], platforms: ['linux/amd64'] });
    expect(res.status).toBe(202);
    // Azure's long-running operation headers: absolute, on the URL the caller used.
    expect(res.headers['operation-location']).toBe(`http://localhost:7071/api/imports/${res.body.id}`);
    expect(res.headers.location).toBe(res.headers['operation-location']);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.body.percentComplete).toBe(0);
    expect(res.body).toMatchObject({
      status: 'queued',
      source: { reference: SOURCE },
      targets: [
        { reference: `${TARGET}/hello:v1`, tagged: true },
        { reference: `${TARGET}/mirror/hello`, tagged: false },
      ],
      options: { force: false, platforms: ['linux/amd64'], referrers: false, allowNondistributableArtifacts: false },
      manifests: [],
      progress: { blobs: { total: 0, done: 0, skipped: 0, mounted: 0 }, bytes: { total: 0, done: 0 } },
      attempts: 0,
      continuations: 0,
    });
    // The no-force check asked the registry about the tag, and only about the tag.
    expect(tagChecksSince(mark)).toEqual(['hello:v1']);
    expect(await queueLength()).toBe(before + 1);
    const messages = (await queuedMessages()).map((m) => JSON.parse(Buffer.from(m, 'base64').toString('utf8')) as unknown);
    expect(messages).toContainEqual({ jobId: res.body.id, continuation: 0 });

    const fetched = await get(`/api/imports/${res.body.id}`, { params: { id: res.body.id } });
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual(res.body);
  });

  it('keeps credentials out of the response, the status document, the queue and the logs, but seals them in the job', async () => {
    const logs: string[] = [];
    const res = await call(importsHandler, { json: { source: SOURCE, images: ['private:v1'], username: 'robot$reader', password: PASSWORD } }, logs);
    expect(res.status).toBe(202);
    const fetched = await get(`/api/imports/${res.body.id}`, { params: { id: res.body.id } });
    const stored = (await (await jobStorage()).jobs.get(res.body.id))!.value;
    expect(stored.sealedCredentials).toMatch(/^v1\./);
    const messages = (await queuedMessages()).map((m) => `${m} ${Buffer.from(m, 'base64').toString('utf8')}`);
    expect(messages.some((m) => m.includes(res.body.id))).toBe(true);
    const everything = [JSON.stringify(res.body), JSON.stringify(fetched.body), ...messages, ...logs, JSON.stringify(stored)].join('\n');
    expect(everything).not.toContain(PASSWORD);
    expect(JSON.stringify(fetched.body)).not.toContain('robot$reader');
  });

  it('shows a leased job with sealed credentials field by field: exactly the documented keys', async () => {
    const res = await post({ source: SOURCE, images: ['keys:v1'], username: 'robot', password: PASSWORD });
    expect(res.status).toBe(202);
    const { jobs } = await jobStorage();
    const outcome = await acquireJobLease(jobs, res.body.id, { owner: 'worker-under-test', durationInMs: 60_000, continuation: 0 });
    expect(outcome.kind).toBe('acquired');
    if (outcome.kind !== 'acquired') return;
    await outcome.lease.update((job) => {
      job.sourceDigest = `sha256:${'a'.repeat(64)}`;
      job.lastError = { code: 'REGISTRY_ERROR', message: 'source registry error: 503', at: new Date().toISOString() };
    });
    // What the status must not show is really there in the stored job.
    const stored = (await jobs.get(res.body.id))!.value;
    expect(stored).toMatchObject({ leaseOwner: 'worker-under-test', sealedCredentials: expect.stringMatching(/^v1\./), leaseExpiresAt: expect.any(String) });

    const fetched = await get(`/api/imports/${res.body.id}`, { params: { id: res.body.id } });
    const listed = (await get('/api/imports?status=running')).body.value.find((j: { id: string }) => j.id === res.body.id);
    for (const document of [fetched.body, listed]) {
      expect(Object.keys(document).sort()).toEqual(
        ['attempts', 'continuations', 'createdAt', 'id', 'lastError', 'manifestCounts', 'manifests', 'options', 'percentComplete', 'progress', 'source', 'startedAt', 'status', 'targets', 'updatedAt'].sort(),
      );
      expect(Object.keys(document.source).sort()).toEqual(['digest', 'reference']);
      expect(Object.keys(document.targets[0]).sort()).toEqual(['reference', 'tagged']);
      expect(Object.keys(document.options).sort()).toEqual(['allowNondistributableArtifacts', 'force', 'platforms', 'referrers']);
      expect(Object.keys(document.lastError).sort()).toEqual(['at', 'code', 'message']);
      expect(document.status).toBe('running');
    }
    await outcome.lease.release();
  });

  it.each<[string, CallOptions, number, string, string | undefined, RegExp]>([
    ['unknown field', { json: { source: SOURCE, tag: 'x' } }, 400, 'UNKNOWN_FIELD', 'tag', /unknown field "tag"/],
    ['wrong type', { json: { source: SOURCE, referrers: 'yes' } }, 400, 'INVALID_FIELD', 'referrers', /"referrers" is a string; expected true or false/],
    ['invalid reference', { json: { source: 'docker.io/UPPER/x:1' } }, 400, 'INVALID_REFERENCE', 'source', /invalid reference/],
    ['not fully qualified', { json: { source: 'hello-world' } }, 400, 'INVALID_REFERENCE', 'source', /not fully qualified/],
    ['empty images entry', { json: { source: SOURCE, images: [''] } }, 400, 'INVALID_FIELD', 'images[0]', /"images\[0\]" is empty/],
    ['password without username', { json: { source: SOURCE, password: PASSWORD } }, 400, 'INCOMPLETE_CREDENTIALS', 'password', /without "username"/],
    ['malformed platform', { json: { source: SOURCE, platforms: ['linux/amd64/v1/x'] } }, 400, 'INVALID_PLATFORM', 'platforms[0]', /os\/arch or os\/arch\/variant/],
    ['too many targets', { json: { source: SOURCE, images: Array.from({ length: 51 }, (_, i) => `r:t${i}`) } }, 400, 'TOO_MANY_TARGETS', 'images', /more than the 50 accepted/],
    ['invalid JSON', { body: '{"source": ', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_JSON', undefined, /not valid JSON/],
    ['empty body', { body: '', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_JSON', undefined, /body is empty/],
    ['a JSON array', { json: [] }, 400, 'INVALID_JSON', undefined, /must be a JSON object/],
    ['not JSON', { body: 'source=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type', /must be JSON: send Content-Type: application\/json, not application\/x-www-form-urlencoded/],
    ['no content type', { body: '{}', headers: {} }, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type', /must be JSON/],
    ['over 64 KiB', { body: JSON.stringify({ source: SOURCE, images: ['x'.repeat(70_000)] }), headers: { 'content-type': 'application/json' } }, 413, 'PAYLOAD_TOO_LARGE', undefined, /at most 65536 bytes/],
    ['a bad Idempotency-Key', { json: { source: SOURCE }, headers: { 'idempotency-key': 'x'.repeat(300) } }, 400, 'INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key', /1 to 255 printable ASCII/],
  ])('answers %s with its status, code, field and message', async (_name, options, status, code, field, message) => {
    const before = await queueLength();
    const res = await call(importsHandler, { method: 'POST', ...options });
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toMatch(message);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
    expect(await queueLength()).toBe(before);
  });

  it('answers 409 when a target tag exists and force is not set, before anything is queued', async () => {
    const taken = await pushImage(registry, 'hello', 'taken', { layers: [100] });
    const before = await queueLength();
    const res = await post({ source: LOCAL_SOURCE, images: ['hello:free', 'hello:taken'] });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'TAG_EXISTS', field: 'images' });
    expect(res.body.error.message).toMatch(new RegExp(`${TARGET}/hello:taken \\(${taken.digest}\\).*set "force": true`));
    expect(res.body.error.message).not.toContain('hello:free');
    expect(res.body.error.details).toEqual([{ code: 'TAG_EXISTS', message: `${TARGET}/hello:taken points at ${taken.digest}`, field: 'images' }]);
    expect(await queueLength()).toBe(before);
    // With force, no check is made and the job is queued.
    const mark = proxy.requests.length;
    const forced = await post({ source: LOCAL_SOURCE, images: ['hello:taken'], force: true });
    expect(forced.status).toBe(202);
    expect(tagChecksSince(mark)).toEqual([]);
    // A tag that already points at the requested digest is no conflict.
    expect((await post({ source: `${registry.host}/hello@${taken.digest}`, images: ['hello:taken'] })).status).toBe(202);
  });

  it('accepts a tag already at the digest the source tag names, and a tag the source could not be asked about', async () => {
    // The source is the target tag itself, so the tag holds exactly the digest the source names.
    await pushImage(registry, 'hello', 'same', { layers: [100] });
    const mark = proxy.requests.length;
    expect((await post({ source: `${registry.host}/hello:same`, images: ['hello:same'] })).status).toBe(202);
    expect(tagChecksSince(mark)).toEqual(['hello:same']);
    // The source cannot be reached: the worker will decide.
    await pushImage(registry, 'hello', 'unknown', { layers: [100] });
    expect((await post({ source: `127.0.0.1:${await freePort()}/library/hello-world:latest`, images: ['hello:unknown'] })).status).toBe(202);
    // A tag at another digest than the reachable source's is still a conflict.
    expect((await post({ source: LOCAL_SOURCE, images: ['hello:unknown'] })).status).toBe(409);
  });

  it('writes to the HOIST_TARGET_REGISTRY entry that "targetRegistry" names, the first by default, and refuses any other', async () => {
    // The second target is the registry itself, without the proxy in front.
    process.env.HOIST_TARGET_REGISTRY = `${TARGET}, ${registry.host}`;
    try {
      const taken = await pushImage(registry, 'hello', 'second', { layers: [100] });
      const mark = proxy.requests.length;
      const conflict = await post({ source: LOCAL_SOURCE, targetRegistry: registry.host, images: ['hello:second'] });
      expect(conflict.status).toBe(409);
      expect(conflict.body.error.details).toEqual([{ code: 'TAG_EXISTS', message: `${registry.host}/hello:second points at ${taken.digest}`, field: 'images' }]);
      // The no-force check went to the named target, not to the default one.
      expect(tagChecksSince(mark)).toEqual([]);

      const named = await post({ source: SOURCE, targetRegistry: registry.host, images: ['hello:second'], force: true });
      expect(named.status).toBe(202);
      expect(named.body.targets).toEqual([{ reference: `${registry.host}/hello:second`, tagged: true }]);
      const byDefault = await post({ source: SOURCE, images: ['hello:first'], force: true });
      expect(byDefault.body.targets).toEqual([{ reference: `${TARGET}/hello:first`, tagged: true }]);

      const before = await queueLength();
      const refused = await post({ source: SOURCE, targetRegistry: 'elsewhere.example', images: ['hello:v1'] });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatchObject({ code: 'TARGET_NOT_ALLOWED', field: 'targetRegistry' });
      expect(refused.body.error.message).toContain(`give one of ${TARGET}, ${registry.host}`);
      const malformed = await post({ source: SOURCE, targetRegistry: 'https://elsewhere.example', images: ['hello:v1'] });
      expect(malformed.status).toBe(400);
      expect(malformed.body.error).toMatchObject({ code: 'INVALID_REFERENCE', field: 'targetRegistry' });
      expect(await queueLength()).toBe(before);
    } finally {
      process.env.HOIST_TARGET_REGISTRY = TARGET;
    }
  });

  it('answers 502 when the target cannot be checked', async () => {
    targetDown = true;
    const before = await queueLength();
    const res = await post({ source: SOURCE, images: ['hello:v9'] });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('TARGET_CHECK_FAILED');
    expect(res.body.error.message).toMatch(new RegExp(`could not check the target registry ${TARGET}`));
    expect(await queueLength()).toBe(before);
  });

  it('answers 502 naming the certificate, and the settings that trust it, when the target’s TLS certificate does not verify', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'hoist-imports-tls-'));
    const certificates = await makeCertificates(directory, 'target.hoist.test');
    const secure = await startProxy(registry.url, [], { tls: { key: certificates.key, cert: certificates.cert } });
    const before = await queueLength();
    Object.assign(process.env, { HOIST_TARGET_REGISTRY: secure.host, HOIST_HTTPS_REGISTRIES: secure.host });
    try {
      const res = await callChecked(importsHandler, { json: { source: LOCAL_SOURCE, images: ['hello:tls'] } });
      expect(res.status).toBe(502);
      expect(res.body.error.code).toBe('TARGET_CHECK_FAILED');
      expect(res.body.error.message).toContain(`the TLS certificate of ${secure.host} could not be verified: its certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
      expect(res.body.error.message).toContain('(the deployment trusts the CAs of HOIST_CA_FILE and NODE_EXTRA_CA_CERTS besides the public ones; HOIST_TLS_SKIP_VERIFY turns verification off');
      expect(await queueLength()).toBe(before);
    } finally {
      process.env.HOIST_TARGET_REGISTRY = TARGET;
      delete process.env.HOIST_HTTPS_REGISTRIES;
      await secure.stop();
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('keeps the target password out of a failed target check', async () => {
    const targetPassword = `target-pass-${randomBytes(8).toString('hex')}`;
    Object.assign(process.env, { HOIST_TARGET_USERNAME: 'pusher', HOIST_TARGET_PASSWORD: targetPassword });
    // A manifest HEAD carries no body, so no real registry can quote a password here: the
    // engine's target check is scripted to fail with one in its message.
    setEngine({
      findExistingTags: async (_targets, hosts) => {
        const answer = await hosts.credentials.getCredentials(TARGET, []);
        throw new CopyError('AUTH_FAILED', `the target refused password ${answer?.kind === 'basic' ? answer.password : ''}`, 'target');
      },
    });
    const logs: string[] = [];
    try {
      const res = await call(importsHandler, { json: { source: SOURCE, images: ['hello:echo'] } }, logs);
      expect(res.status).toBe(502);
      expect(res.body.error.message).toContain('[REDACTED]');
      expect(JSON.stringify(res.body)).not.toContain(targetPassword);
      expect(logs.join('\n')).not.toContain(targetPassword);
    } finally {
      setEngine();
      delete process.env.HOIST_TARGET_USERNAME;
      delete process.env.HOIST_TARGET_PASSWORD;
    }
  });

  it('refuses credentials when HOIST_SECRET_KEY is not set, and accepts the rest', async () => {
    const key = process.env.HOIST_SECRET_KEY;
    delete process.env.HOIST_SECRET_KEY;
    try {
      const res = await post({ source: SOURCE, images: ['hello:nokey'], username: 'u', password: PASSWORD });
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe('CONFIGURATION_ERROR');
      expect(res.body.error.message).toMatch(/HOIST_SECRET_KEY is not set/);
      expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
      expect((await post({ source: SOURCE, images: ['hello:nokey'] })).status).toBe(202);
    } finally {
      process.env.HOIST_SECRET_KEY = key;
    }
  });

  it.each(['not-base64!', Buffer.alloc(16).toString('base64')])('with a malformed HOIST_SECRET_KEY (%j) refuses only requests with credentials', async (malformed) => {
    const key = process.env.HOIST_SECRET_KEY;
    process.env.HOIST_SECRET_KEY = malformed;
    try {
      expect((await post({ source: SOURCE, images: ['hello:badkey'] })).status).toBe(202);
      const res = await post({ source: SOURCE, images: ['hello:badkey'], username: 'u', password: PASSWORD });
      expect(res.status).toBe(500);
      expect(res.body.error).toMatchObject({ code: 'CONFIGURATION_ERROR' });
      expect(res.body.error.message).toMatch(/HOIST_SECRET_KEY is not set, or is not base64 of 32 random bytes/);
      expect(JSON.stringify(res.body)).not.toContain(malformed);
      expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
    } finally {
      process.env.HOIST_SECRET_KEY = key;
    }
  });
});

describe('the source check at submit', () => {
  it('refuses a tag or a digest the source registry does not have: 400 SOURCE_NOT_FOUND on source, nothing queued, one HEAD each', async () => {
    const before = await queueLength();
    const mark = proxy.requests.length;
    const byTag = await post({ source: `${proxy.host}/library/hello-world:nope`, images: ['notfound:v1'] });
    expect(byTag.status).toBe(400);
    expect(byTag.body.error).toMatchObject({ code: 'SOURCE_NOT_FOUND', field: 'source' });
    expect(byTag.body.error.message).toMatch(/does not exist: its registry has no manifest under that tag in library\/hello-world/);
    const missingDigest = `sha256:${'0'.repeat(64)}`;
    const byDigest = await post({ source: `${proxy.host}/library/hello-world@${missingDigest}`, images: ['notfound:v2'], force: true });
    expect(byDigest.status).toBe(400);
    expect(byDigest.body.error).toMatchObject({ code: 'SOURCE_NOT_FOUND', field: 'source' });
    expect(tagChecksSince(mark).filter((t) => t.startsWith('library/'))).toEqual(['library/hello-world:nope', `library/hello-world:${missingDigest}`]);
    expect(await queueLength()).toBe(before);
    // The tag that exists passes.
    expect((await post({ source: `${proxy.host}/library/hello-world:latest`, images: ['notfound:v3'] })).status).toBe(202);
  });

  it('asks with the job\'s credentials: a private source is found, or not found, as the registry says', async () => {
    const locked = await startRegistry({ auth: 'basic', users: { reader: PASSWORD } });
    try {
      await pushImage(locked, 'private/app', 'v1', { layers: [100] });
      const creds = { username: 'reader', password: PASSWORD };
      expect((await post({ source: `${locked.host}/private/app:v1`, images: ['private-app:v1'], ...creds })).status).toBe(202);
      const missing = await post({ source: `${locked.host}/private/app:v2`, images: ['private-app:v2'], ...creds });
      expect(missing.status).toBe(400);
      expect(missing.body.error.code).toBe('SOURCE_NOT_FOUND');
      expect(JSON.stringify(missing.body)).not.toContain(PASSWORD);
      // Refused credentials say nothing about the manifest: the worker reports them.
      expect((await post({ source: `${locked.host}/private/app:v2`, images: ['private-app:v3'], username: 'reader', password: 'wrong' })).status).toBe(202);
    } finally {
      await locked.stop();
    }
  });

  it('accepts a source that cannot be reached, after one attempt (the worker retries)', async () => {
    const unreachable = `127.0.0.1:${await freePort()}/library/hello-world:latest`;
    const res = await post({ source: unreachable, images: ['unreachable:v1'] });
    expect(res.status).toBe(202);
    expect(res.body.source.reference).toBe(unreachable);
  });
});

describe('while the job storage is unreachable', () => {
  it.each([
    ['POST /api/imports', () => post({ source: SOURCE, images: ['hello:outage'] })],
    ['GET /api/imports', () => get('/api/imports')],
  ])('%s answers 503 with the error JSON and Retry-After', async (_name, send) => {
    const storage = process.env.AzureWebJobsStorage;
    const closed = await freePort();
    // Azurite's well-known development account, at a port nothing listens on.
    process.env.AzureWebJobsStorage = azurite.connectionString.replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${closed}`);
    try {
      const res = await send();
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('10');
      expect(res.body.error).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
      expect(res.body.error.message).toMatch(/the job storage cannot be reached right now: retry after 10 seconds/);
      expect(res.body.error.message).not.toContain(String(closed));
    } finally {
      process.env.AzureWebJobsStorage = storage;
    }
  }, 60_000);

  // An account that takes connections and never answers: without a bound on each try, the table
  // SDK waits on it with no limit, and the request with it.
  it.each([
    ['POST /api/imports', () => post({ source: SOURCE, images: ['hello:hung'] })],
    ['GET /api/imports', () => get('/api/imports')],
  ])('%s answers 503 while the storage accepts connections and never answers', async (_name, send) => {
    // Opened while Azurite answers, as a host that was serving when the outage began.
    await jobStorage();
    azurite.pause();
    try {
      const res = await send();
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('10');
      expect(res.body.error).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    } finally {
      azurite.resume();
    }
  }, 30_000);

  it('POST /api/imports answers 503 when only the queue service never answers', async () => {
    // Tables on the live Azurite, the queue on a second one, paused: the job is written, its
    // message cannot be sent.
    const hung = await startAzurite();
    const storage = process.env.AzureWebJobsStorage;
    process.env.AzureWebJobsStorage = azurite.connectionString.replace(/QueueEndpoint=http:\/\/127\.0\.0\.1:\d+/, `QueueEndpoint=http://127.0.0.1:${hung.ports.queue}`);
    hung.pause();
    try {
      const res = await post({ source: SOURCE, images: ['hello:queue-hung'] });
      expect(res.status).toBe(503);
      expect(res.body.error).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    } finally {
      process.env.AzureWebJobsStorage = storage;
      hung.resume();
      await hung.stop();
    }
  }, 30_000);
});

describe('a POST whose storage writes may land after its 503', () => {
  /** The imports queue's messages that name `jobId` (peeked, left in place). */
  async function messagesFor(queue: QueueClient, jobId: string): Promise<number> {
    await queue.createIfNotExists();
    const { peekedMessageItems } = await queue.peekMessages({ numberOfMessages: 32 });
    return peekedMessageItems.filter((m) => Buffer.from(m.messageText, 'base64').toString('utf8').includes(jobId)).length;
  }

  it('names the job whose insert lands late: it has no message, so it never runs, and the caller can cancel it', async () => {
    await jobStorage();
    azurite.pause();
    let res: Called;
    try {
      res = await callChecked(importsHandler, { json: { source: LOCAL_SOURCE, images: ['hello:late-insert'] } });
    } finally {
      azurite.resume();
    }
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('10');
    const jobId = res.body.error.jobId as string;
    expect(res.body.error).toMatchObject({ code: 'STORAGE_UNAVAILABLE', jobId: expect.stringMatching(/.+/) });
    expect(res.body.error.message).toContain(`the import may have been queued before it failed, as job ${jobId}: GET /api/imports/${jobId} says whether it exists`);
    // Not the same key: its claim may have outlived the 503 and would answer with this job, which never runs.
    expect(res.body.error.message).toContain('then retry after 10 seconds under a new Idempotency-Key');
    // Azurite, let go, applies the insert it had taken while frozen: the record exists after all…
    let found: Called;
    do found = await callChecked(importsHandler, { method: 'GET', path: `/api/imports/${jobId}`, params: { id: jobId } });
    while (found.status === 404);
    expect(found.status).toBe(200);
    expect(found.body.status).toBe('queued');
    // …but no message was ever sent for it, and its caller, who knows its id, can cancel it.
    expect(await messagesFor(importsQueue(), jobId)).toBe(0);
    const canceled = await callChecked(importsHandler, { method: 'DELETE', path: `/api/imports/${jobId}`, params: { id: jobId } });
    expect(canceled.status).toBe(200);
    expect(canceled.body.status).toBe('canceled');
  }, 30_000);

  it('names the job whose message may land late when its record cannot be undone: that is the job that would run', async () => {
    // The record on a table client whose undo (a DELETE) is sent to a port nothing listens on,
    // so it never lands; the message to a second Azurite that never answers while the POST waits.
    const hung = await startAzurite();
    const closed = await freePort();
    try {
      const deps = await submitDeps();
      const table = await openTable(storageClients(azurite.connectionString), DEFAULT_JOBS_TABLE);
      table.pipeline.addPolicy(
        {
          name: 'undoUnreachable',
          sendRequest: (request, next) => {
            if (request.method === 'DELETE') request.url = request.url.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${closed}`);
            return next(request);
          },
        },
        { afterPhase: 'Retry' },
      );
      const queue = new JobQueue(QueueServiceClient.fromConnectionString(hung.connectionString).getQueueClient('imports'));
      // One message first, so the queue is known to exist and the POST's enqueue sends its message at once.
      await queue.enqueue({ jobId: newJobId(), continuation: 0 });
      hung.pause();
      let error: unknown;
      try {
        error = await submitImport({ source: LOCAL_SOURCE, images: ['hello:late-message'] }, {}, { ...deps, jobs: new JobStore(table), queue }).then(
          () => undefined,
          (e: unknown) => e,
        );
      } finally {
        hung.resume();
      }
      expect(error).toBeInstanceOf(JobMayExistError);
      const jobId = (error as JobMayExistError).jobId;
      const answer = responseForError(error)!;
      expect(answer.status).toBe(503);
      expect(answer.jsonBody).toMatchObject({ error: { code: 'STORAGE_UNAVAILABLE', jobId } });
      // Let go, the queue takes the message it had been sent, and the record is still there: the
      // job runs, as the 503 said it might, under the id it gave.
      while ((await messagesFor(queue.queue, jobId)) === 0);
      expect((await deps.jobs.get(jobId))?.value.status).toBe('queued');
    } finally {
      await hung.stop();
    }
  }, 30_000);
});

describe('Idempotency-Key', () => {
  it('returns the same job for the same key and body, however the body is spelt', async () => {
    const key = `key-${randomBytes(6).toString('hex')}`;
    const first = await post({ source: SOURCE, images: ['idem:v1'] }, { headers: { 'idempotency-key': key } });
    expect(first.status).toBe(202);
    // Someone else creates the tag meanwhile: a replay still returns the job (no 409).
    await pushImage(registry, 'idem', 'v1', { layers: [100] });
    const again = await post({ images: ['idem:v1'], source: SOURCE, force: false }, { headers: { 'idempotency-key': key } });
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers.location).toBe(first.headers.location);
  });

  it('refuses the same key with a different body', async () => {
    const key = `key-${randomBytes(6).toString('hex')}`;
    const first = await post({ source: SOURCE, images: ['idem:v2'] }, { headers: { 'idempotency-key': key } });
    const other = await post({ source: SOURCE, images: ['idem:v3'] }, { headers: { 'idempotency-key': key } });
    expect(other.status).toBe(422);
    expect(other.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', field: 'Idempotency-Key' });
    expect(other.body.error.message).toContain(first.body.id);
  });

  it('creates one job for concurrent requests with one key', async () => {
    const key = `key-${randomBytes(6).toString('hex')}`;
    const before = await queueLength();
    const results = await Promise.all(Array.from({ length: 6 }, () => post({ source: SOURCE, images: ['idem:race'] }, { headers: { 'idempotency-key': key } })));
    const ids = new Set(results.filter((r) => r.status === 202).map((r) => r.body.id));
    expect(ids.size).toBe(1);
    for (const r of results.filter((r) => r.status !== 202)) expect(r.body.error.code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS');
    expect(await queueLength()).toBe(before + 1);
  });

  it('treats a different password as a different body', async () => {
    const key = `key-${randomBytes(6).toString('hex')}`;
    expect((await post({ source: SOURCE, images: ['idem:pw'], username: 'u', password: 'one-password' }, { headers: { 'idempotency-key': key } })).status).toBe(202);
    expect((await post({ source: SOURCE, images: ['idem:pw'], username: 'u', password: 'two-password' }, { headers: { 'idempotency-key': key } })).status).toBe(422);
  });
});

describe('GET /api/imports', () => {
  it('answers 404 for an unknown or malformed id', async () => {
    for (const id of ['0000000000000000000', 'nope', '..%2F..']) {
      const res = await get(`/api/imports/${id}`, { params: { id } });
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'id' });
    }
  });

  it('lists recent jobs newest first, paged, filtered by status', async () => {
    // Submitted as POST does, on a clock that gives each job its own millisecond, later than any
    // job made before: ids order by creation time, and two in one millisecond would order at random.
    const ids: string[] = [];
    const start = Date.now();
    for (let i = 0; i < 5; i++) {
      const createdAt = new Date(start + 1 + i);
      ids.push((await submitImport({ source: SOURCE, images: [`list:v${i}`] }, {}, { ...(await submitDeps()), now: () => createdAt })).job.id);
    }
    const first = await get('/api/imports?pageSize=3&status=queued');
    expect(first.status).toBe(200);
    expect(first.body.value.map((j: { id: string }) => j.id)).toEqual([...ids].reverse().slice(0, 3));
    expect(first.body.continuationToken).toBe(ids[2]);
    expect(first.body.nextLink).toBe(`http://localhost:7071/api/imports?status=queued&pageSize=3&continuationToken=${ids[2]}`);
    const second = await get(new URL(first.body.nextLink as string).pathname + new URL(first.body.nextLink as string).search);
    expect(second.body.value.map((j: { id: string }) => j.id).slice(0, 2)).toEqual([ids[1], ids[0]]);
    for (const job of [...first.body.value, ...second.body.value]) expect(job.status).toBe('queued');

    const none = await get('/api/imports?status=succeeded,failed');
    expect(none.body).toEqual({ value: [] });
  });

  it.each([
    ['/api/imports?status=done', 'status', /give one or more of queued, running, succeeded, failed, canceled/],
    ['/api/imports?pageSize=0', 'pageSize', /from 1 to 100/],
    ['/api/imports?pageSize=abc', 'pageSize', /from 1 to 100/],
    ['/api/imports?pageSize=1e2', 'pageSize', /"pageSize" is "1e2": give a whole number from 1 to 100 in plain decimal digits/],
    ['/api/imports?pageSize=0x10', 'pageSize', /"pageSize" is "0x10": give a whole number from 1 to 100 in plain decimal digits/],
    ['/api/imports?pageSize=5.0', 'pageSize', /plain decimal digits/],
    ['/api/imports?pageSize=%205', 'pageSize', /plain decimal digits/],
    ['/api/imports?pageSize=+5', 'pageSize', /plain decimal digits/],
    ['/api/imports?pageSize=1&pageSize=100', 'pageSize', /"pageSize" is given 2 times: give it once/],
    ['/api/imports?status=queued&status=failed', 'status', /"status" is given 2 times: give it once \(several statuses go in one "status", separated by commas\)/],
    ['/api/imports?continuationToken=zzz', 'continuationToken', /not one this API issued/],
  ])('rejects %s', async (path, field, message) => {
    const res = await get(path);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'INVALID_QUERY', field });
    expect(res.body.error.message).toMatch(message);
  });
});

describe('HOIST_API_KEY', () => {
  it('is required in x-functions-key or ?code= when set', async () => {
    process.env.HOIST_API_KEY = 'the-key';
    const missing = await post({ source: SOURCE, images: ['key:v1'] });
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe('UNAUTHORIZED');
    expect(missing.body.error.message).toMatch(/x-functions-key header or the code query parameter/);
    expect((await post({ source: SOURCE, images: ['key:v1'] }, { headers: { 'x-functions-key': 'wrong' } })).status).toBe(401);
    expect((await get('/api/imports')).status).toBe(401);
    expect((await post({ source: SOURCE, images: ['key:v1'] }, { headers: { 'x-functions-key': 'the-key' } })).status).toBe(202);
    // The key given in the query never comes back in where to poll.
    const byQuery = await post({ source: SOURCE, images: ['key:v2'] }, { path: '/api/imports?code=the-key' });
    expect(byQuery.status).toBe(202);
    expect(byQuery.headers['operation-location']).toBe(`http://localhost:7071/api/imports/${byQuery.body.id}`);
    expect((await get('/api/imports?code=the-key')).status).toBe(200);
  });

  it('is checked before the body, so a stranger learns nothing from validation', async () => {
    process.env.HOIST_API_KEY = 'the-key';
    expect((await call(importsHandler, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(401);
  });
});

describe('methods', () => {
  it.each([
    ['POST', '/api/imports/abc', { id: 'abc' }, 'GET, DELETE'],
    ['PUT', '/api/imports/abc', { id: 'abc' }, 'GET, DELETE'],
    ['DELETE', '/api/imports', undefined, 'GET, POST'],
    ['PATCH', '/api/imports', undefined, 'GET, POST'],
  ])('answers %s %s with 405, Allow and the error shape', async (method, path, params, allow) => {
    const res = await call(importsHandler, { method, path, ...(params && { params }), ...(method !== 'DELETE' && { json: {} }) });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe(allow);
    expect(res.body).toEqual({ error: { code: 'METHOD_NOT_ALLOWED', message: expect.stringContaining(method) } });
  });
});

describe('DELETE /api/imports/{id}', () => {
  const del = (id: string, logs: string[] = []) => call(importsHandler, { method: 'DELETE', path: `/api/imports/${id}`, params: { id } }, logs);

  it('cancels a queued job at once, and again is a no-op; the worker never starts it', async () => {
    const queued = await post({ source: SOURCE, images: ['cancel:queued'] });
    const logs: string[] = [];
    const res = await del(queued.body.id, logs);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: queued.body.id, status: 'canceled', cancelRequestedAt: expect.any(String), completedAt: expect.any(String) });
    expect((await del(queued.body.id, logs)).body).toEqual(res.body);
    // The job's end is a telemetry transition, told once however often it is canceled.
    expect(logs.filter((line) => line.includes('[canceled;'))).toHaveLength(1);
    // The job's message is still queued: the worker's lease finds the job over.
    const storage = await jobStorage();
    const lease = await acquireJobLease(storage.jobs, queued.body.id, { owner: 'w', durationInMs: 10_000, continuation: 0 });
    expect(lease).toEqual({ kind: 'finished', status: 'canceled' });
  });

  it('marks a running job and leaves stopping to its worker: 202 with where to poll', async () => {
    const running = await post({ source: SOURCE, images: ['cancel:running'] });
    const storage = await jobStorage();
    const lease = await acquireJobLease(storage.jobs, running.body.id, { owner: 'w', durationInMs: 60_000, continuation: 0 });
    expect(lease.kind).toBe('acquired');
    const res = await del(running.body.id);
    expect(res.status).toBe(202);
    expect(res.headers['operation-location']).toBe(`http://localhost:7071/api/imports/${running.body.id}`);
    expect(res.body).toMatchObject({ status: 'running', cancelRequestedAt: expect.any(String) });
    expect(res.body).not.toHaveProperty('completedAt');
    if (lease.kind !== 'acquired') return;
    // The holder's next write learns it.
    expect(lease.lease.cancelRequested).toBe(false);
    await lease.lease.update(() => {});
    expect(lease.lease.cancelRequested).toBe(true);
    expect(lease.lease.cancelSignal.aborted).toBe(true);
  });

  it('answers 409 JOB_FINISHED for a job that already ended, and 404 for none', async () => {
    const job = await post({ source: SOURCE, images: ['cancel:finished'] });
    const storage = await jobStorage();
    const current = (await storage.jobs.get(job.body.id))!;
    await storage.jobs.replace({ ...current.value, status: 'succeeded', completedAt: '2026-01-01T00:00:00.000Z' }, current.etag);
    const res = await del(job.body.id);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'JOB_FINISHED', field: 'id' });
    expect(res.body.error.message).toMatch(/already succeeded at 2026-01-01T00:00:00.000Z: only a queued or running job can be canceled/);
    const none = await del('0000000000000000000');
    expect(none.status).toBe(404);
    expect(none.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'id' });
  });
});
