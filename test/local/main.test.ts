import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../helpers/ports.js';
import { spawnTracked } from '../helpers/processes.js';
import { PROJECT_ROOT, startTestAzurite, waitFor, type TestAzurite } from './support.js';

// `npm start` end to end: the compiled entry point with the app's real function definitions, run
// as its own process. It is compiled into a private directory under dist/ (so a stale or
// concurrent `npm run build` cannot affect it) and finds the project root from there.
describe('npm start (src/local/main.ts)', () => {
  const outDir = path.join(PROJECT_ROOT, 'dist', `local-main-test-${randomUUID().slice(0, 8)}`);
  let azurite: TestAzurite;

  beforeAll(async () => {
    const tsc = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await promisify(execFile)(process.execPath, [tsc, '-p', path.join(PROJECT_ROOT, 'tsconfig.build.json'), '--outDir', outDir]).catch((error: { stdout?: string }) => {
      throw new Error(`the project does not compile:\n${error.stdout ?? String(error)}`);
    });
    azurite = await startTestAzurite();
  });
  afterAll(async () => {
    await azurite?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  /** Starts `npm start` and waits until it listens. */
  async function startListening(env: Record<string, string>): Promise<ReturnType<typeof start>> {
    const host = start(env);
    await waitFor(() => host.output().includes('Host listening on'), 30_000, `the host to listen; output so far:\n${host.output()}`);
    return host;
  }

  async function postImport(port: number, json: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`http://127.0.0.1:${port}/api/imports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
    return { status: res.status, body: await res.json() };
  }

  function start(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const child = spawnTracked(process.execPath, [path.join(outDir, 'src', 'local', 'main.js')], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, output: () => output, exited };
  }

  it('serves the app with its settings, enforces the key, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const apiKey = `main-test-${randomUUID()}`;
    const host = start({
      PORT: String(port),
      AzureWebJobsStorage: azurite.connectionString,
      HOIST_API_KEY: apiKey,
      HOIST_TARGET_REGISTRY: '127.0.0.1:9',
    });
    await waitFor(() => host.output().includes('Host listening on'), 30_000, `the host to listen; output so far:\n${host.output()}`);
    // It says which settings file it read and where imports go, before anything else.
    const settingsFile = existsSync(path.join(PROJECT_ROOT, 'local.settings.json')) ? 'local.settings.json' : 'local.settings.sample.json';
    expect(host.output().split('\n').slice(0, 2)).toEqual([
      expect.stringMatching(new RegExp(`^settings: ${path.join(PROJECT_ROOT, settingsFile).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`)),
      'target registry: 127.0.0.1:9 (HOIST_TARGET_REGISTRY, from the environment): every import writes there',
    ]);
    expect(host.output()).toMatch(/imports: \[GET,POST,DELETE,PUT,PATCH\]/);
    expect(host.output()).toMatch(/openapi: \[GET\] http:\/\/localhost:\d+\/api\/openapi.json/);
    expect(host.output()).toMatch(/importWorker: queueTrigger on 'imports'/);

    const url = `http://127.0.0.1:${port}/api/imports`;
    expect((await fetch(url)).status).toBe(401);
    const listed = await fetch(url, { headers: { 'x-functions-key': apiKey } });
    expect(listed.status).toBe(200);
    expect(await listed.json()).toMatchObject({ value: expect.any(Array) });

    host.child.kill('SIGTERM');
    expect(await host.exited).toBe(0);
    expect(host.output()).toMatch(/SIGTERM: stopping/);
    expect(host.output()).toMatch(/\[host\] stopped/);
    expect(host.output()).not.toContain(apiKey);
  });

  it('without HOIST_SECRET_KEY uses a development key from a git-ignored file, so imports with credentials work', async () => {
    const port = await freePort();
    const host = await startListening({ PORT: String(port), AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: '127.0.0.1:9', HOIST_SECRET_KEY: '' });
    try {
      expect(host.output()).toContain('HOIST_SECRET_KEY is not set: using the development key in .hoist-dev/secret-key');
      const key = readFileSync(path.join(PROJECT_ROOT, '.hoist-dev', 'secret-key'), 'utf8').trim();
      expect(Buffer.from(key, 'base64')).toHaveLength(32);
      expect(execFileSync('git', ['check-ignore', '.hoist-dev/secret-key'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim()).toBe('.hoist-dev/secret-key');
      const password = `dev-key-${randomUUID()}`;
      const res = await postImport(port, { source: '127.0.0.1:9/team/app:v1', images: ['app:v1'], force: true, username: 'u', password });
      expect(res.status).toBe(202);
      expect(JSON.stringify(res.body)).not.toContain(password);
      expect(host.output()).not.toContain(key);
    } finally {
      host.child.kill('SIGTERM');
      await host.exited;
    }
  });

  it('reports a malformed HOIST_SECRET_KEY once at start, and refuses only the requests that need it', async () => {
    const port = await freePort();
    const malformed = `not-a-key-${randomUUID()}`;
    const host = await startListening({ PORT: String(port), AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: '127.0.0.1:9', HOIST_SECRET_KEY: malformed });
    try {
      expect((await postImport(port, { source: '127.0.0.1:9/team/app:v1', images: ['app:v2'], force: true })).status).toBe(202);
      const refused = await postImport(port, { source: '127.0.0.1:9/team/app:v1', images: ['app:v3'], force: true, username: 'u', password: 'p' });
      expect(refused.status).toBe(500);
      expect(refused.body).toMatchObject({ error: { code: 'CONFIGURATION_ERROR' } });
      expect((await fetch(`http://127.0.0.1:${port}/api/imports`)).status).toBe(200);
      const reports = host.output().split('HOIST_SECRET_KEY must be base64 of exactly 32 random bytes').length - 1;
      expect(reports).toBe(1);
      expect(host.output()).not.toContain(malformed);
    } finally {
      host.child.kill('SIGTERM');
      await host.exited;
    }
  });

  it('on Ctrl+C finishes a request already in flight, then exits 0', async () => {
    const port = await freePort();
    const host = await startListening({ PORT: String(port), AzureWebJobsStorage: azurite.connectionString, HOIST_TARGET_REGISTRY: '127.0.0.1:9' });
    // A POST whose body arrives in two halves: the handler is running, waiting for the second,
    // when SIGINT comes.
    const body = Buffer.from(JSON.stringify({ source: 42 }));
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`http://127.0.0.1:${port}/api/imports`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(body.length) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (part: string) => (text += part));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 5));
      void waitFor(() => host.output().includes("Executing 'Functions.imports'"), 30_000, 'the request to reach the handler')
        .then(() => {
          host.child.kill('SIGINT');
          return waitFor(() => host.output().includes('SIGINT: stopping'), 30_000, 'the host to start stopping');
        })
        .then(() => req.end(body.subarray(5)), reject);
    });
    const answered = await response;
    // The handler saw the whole body: 400 for the bad field, not a cut connection.
    expect(answered.status).toBe(400);
    expect(JSON.parse(answered.body)).toMatchObject({ error: { code: 'INVALID_FIELD', field: 'source' } });
    expect(await host.exited).toBe(0);
    expect(host.output()).toMatch(/\[host\] stopped/);
  });

  it('exits with an error naming a bad setting', async () => {
    const host = start({ PORT: 'not-a-port', AzureWebJobsStorage: azurite.connectionString });
    expect(await host.exited).toBe(1);
    expect(host.output()).toMatch(/PORT "not-a-port" is not a port number/);
  });
});
