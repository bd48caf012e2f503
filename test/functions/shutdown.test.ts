/**
 * The Functions runtime ending the worker (`appTerminate`): running imports are told to pause
 * (the signal run-import passes to the engine), and the hook returns only once they have settled,
 * so their continuations are queued before the worker goes. (The pause itself, against real
 * registries and Azurite, is test/e2e/crash.test.ts's Ctrl+C case, through the same signal.)
 */
import { join } from 'node:path';
import { shutdownSignal, trackUntilShutdown, watchRuntimeShutdown } from '../../src/functions/shutdown.js';
import { PROJECT_ROOT, requireBuild } from '../cli/support.js';
import { runUntilSigterm } from './support.js';

it('appTerminate aborts the shutdown signal and waits for the invocations in flight', async () => {
  let terminate: (() => Promise<void>) | undefined;
  watchRuntimeShutdown((handler) => (terminate = handler));
  let finish: () => void = () => undefined;
  let paused = false;
  // An invocation that pauses once asked to, as runImport does at its next chunk boundary.
  const invocation = trackUntilShutdown(
    new Promise<void>((resolve) => {
      finish = resolve;
    }).then(() => (paused = true)),
  );
  shutdownSignal.addEventListener('abort', () => finish());
  expect(shutdownSignal.aborted).toBe(false);
  await terminate!();
  expect(shutdownSignal.aborted).toBe(true);
  expect(paused).toBe(true);
  await invocation;
});

it('SIGTERM to the app the Functions runtime loads pauses running imports, then exits 143 once they settled', async () => {
  requireBuild();
  // The app as package.json `main` names it, with one invocation in flight that pauses (here:
  // reports it) when asked to, as runImport does at its next chunk boundary.
  const script = `
    require(${JSON.stringify(join(PROJECT_ROOT, 'dist/src/functions/register.js'))});
    const { shutdownSignal, trackUntilShutdown } = require(${JSON.stringify(join(PROJECT_ROOT, 'dist/src/functions/shutdown.js'))});
    trackUntilShutdown(new Promise((resolve) => shutdownSignal.addEventListener('abort', () => setTimeout(() => { process.stdout.write('paused\\n'); resolve(); }, 50))));
    process.stdout.write('ready\\n');
    setInterval(() => undefined, 1000);
  `;
  const { code, out } = await runUntilSigterm(script, PROJECT_ROOT, { PATH: process.env.PATH ?? '', HOIST_TARGET_REGISTRY: 'registry.example' });
  expect(code).toBe(143);
  // Outside the Functions worker, @azure/functions logs its own set-up (HTTP streams) to stdout first.
  expect(out).toMatch(/(^|\n)ready\npaused\n$/);
});
