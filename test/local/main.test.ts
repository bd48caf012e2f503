import { execFile, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
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
    expect(host.output()).toMatch(/imports: \[GET,POST\]/);
    expect(host.output()).toMatch(/importWorker: queueTrigger on 'imports'/);

    const url = `http://127.0.0.1:${port}/api/imports`;
    expect((await fetch(url)).status).toBe(401);
    const listed = await fetch(url, { headers: { 'x-functions-key': apiKey } });
    expect([401, 404]).not.toContain(listed.status);

    host.child.kill('SIGTERM');
    expect(await host.exited).toBe(0);
    expect(host.output()).toMatch(/SIGTERM: stopping/);
    expect(host.output()).toMatch(/\[host\] stopped/);
    expect(host.output()).not.toContain(apiKey);
  });

  it('exits with an error naming a bad setting', async () => {
    const host = start({ PORT: 'not-a-port', AzureWebJobsStorage: azurite.connectionString });
    expect(await host.exited).toBe(1);
    expect(host.output()).toMatch(/PORT "not-a-port" is not a port number/);
  });
});
