/**
 * Ctrl-C and SIGTERM during `hoist copy`: with --resume-dir the copy pauses at the next chunk
 * boundary, exits 130 and prints the command that resumes, and that command resumes where the
 * registry is, resending nothing; a second signal, or one without --resume-dir, exits at once.
 * The target sits behind a store-and-forward proxy that holds a chunk on cue, so each signal
 * lands while a request is in flight.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushImage } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startDelayProxy, type DelayProxy, type HeldRequest } from '../e2e/delay-proxy.js';
import { cliEnv, manifestStatus, PROJECT_ROOT, requireBuild, runHoist, tempHome, type HoistRun, type TempHome } from './support.js';

const CHUNK = 1024 * 1024;
const LAYER = 8 * CHUNK + 1;

let source: TestRegistry;
let target: TestRegistry;
let proxy: DelayProxy;
let home: TempHome;
let dir: string;

beforeAll(async () => {
  requireBuild();
  [source, target, home] = await Promise.all([startRegistry(), startRegistry(), tempHome()]);
  await pushImage(source, 'int/src', 'v1', { layers: [LAYER] });
  proxy = await startDelayProxy(target.url, { delayInMs: 0, methods: ['PATCH', 'PUT'] });
  dir = await mkdtemp(join(tmpdir(), 'hoist-interrupt-'));
});
afterAll(async () => {
  await Promise.all([proxy?.stop(), source?.stop(), target?.stop(), home?.cleanup(), dir && rm(dir, { recursive: true, force: true })]);
});

/** Starts the CLI; `done` settles when it exits. */
function startHoist(args: string[]): { kill: (signal: NodeJS.Signals) => void; stderr: () => string; done: Promise<HoistRun> } {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/hoist.js'), ...args], { cwd: PROJECT_ROOT, env: cliEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<HoistRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, all: `${stdout}\n${stderr}` }));
  });
  return { kill: (signal) => child.kill(signal), stderr: () => stderr, done };
}

function patchesTo(repository: string) {
  return proxy.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith(`/v2/${repository}/blobs/uploads/`));
}

/** Lets requests through until the `nth` PATCH, and holds that one. */
async function holdPatch(nth: number): Promise<HeldRequest> {
  for (let seen = 0; ; ) {
    const held = await proxy.holdNext();
    if (held.request.method === 'PATCH' && ++seen === nth) return held;
    held.release();
  }
}

it.each(['SIGINT', 'SIGTERM'] as const)('%s pauses at the chunk boundary, exits 130 with the resume command, and the rerun resumes there', async (signal) => {
  const repository = `int/${signal.toLowerCase()}`;
  const resumeDir = join(dir, signal);
  const args = ['copy', `${source.host}/int/src:v1`, `${proxy.host}/${repository}:v1`, '--resume-dir', resumeDir, '--chunk-size', String(CHUNK), '--concurrency', '1'];
  const first = startHoist(args);
  // Three chunks in, the signal arrives while the fourth is in flight: that one still lands.
  const held = await holdPatch(4);
  first.kill(signal);
  // The chunk is released only once the signal was handled.
  await expect.poll(first.stderr, { timeout: 10_000 }).toContain(`${signal}: pausing at the next chunk boundary`);
  held.release();
  const paused = await first.done;
  expect(paused.code).toBe(130);
  const command = `hoist ${args.join(' ')}`;
  expect(paused.stderr).toContain(`To resume, run:\n  ${command}\n`);
  expect(await readdir(resumeDir)).not.toEqual([]);
  expect(await manifestStatus(target, repository, 'v1')).toBe(404);
  expect(patchesTo(repository)).toHaveLength(4);

  const rerun = await runHoist(args, home);
  expect(rerun.code).toBe(0);
  expect(rerun.stderr).toContain(`resuming at 4.0 MiB of 8.0 MiB`);
  // Every chunk crossed once: 8 PATCHes, the last byte with the closing PUT.
  expect(patchesTo(repository)).toHaveLength(8);
  expect(new Set(patchesTo(repository).map((r) => r.contentRange)).size).toBe(8);
  expect(await manifestStatus(target, repository, 'v1')).toBe(200);
  expect(await readdir(resumeDir)).toEqual([]);
});

it('a second Ctrl-C exits at once, with a request still in flight', async () => {
  const args = ['copy', `${source.host}/int/src:v1`, `${proxy.host}/int/twice:v1`, '--resume-dir', join(dir, 'twice'), '--chunk-size', String(CHUNK), '--concurrency', '1'];
  const run = startHoist(args);
  const held = await holdPatch(1);
  run.kill('SIGINT');
  await expect.poll(run.stderr, { timeout: 10_000 }).toContain('pausing at the next chunk boundary');
  run.kill('SIGINT');
  const result = await run.done;
  held.drop();
  expect(result.code).toBe(130);
  expect(result.stderr).toContain('SIGINT again: exiting now');
});

it('without --resume-dir, Ctrl-C exits at once and says nothing can be resumed', async () => {
  const args = ['copy', `${source.host}/int/src:v1`, `${proxy.host}/int/plain:v1`];
  const run = startHoist(args);
  // The whole layer in one PUT, held: waiting for it to finish would be waiting for the copy.
  const held = await proxy.holdNext();
  run.kill('SIGINT');
  const result = await run.done;
  held.drop();
  expect(result.code).toBe(130);
  expect(result.stderr).toContain('nothing can be resumed without --resume-dir');
  expect(result.stderr).toContain(`  hoist ${args.join(' ')}\n`);
  expect(await manifestStatus(target, 'int/plain', 'v1')).toBe(404);
});
