/**
 * The Functions runtime ending the worker (`appTerminate`): running imports are told to pause
 * (the signal run-import passes to the engine), and the hook returns only once they have settled,
 * so their continuations are queued before the worker goes. (The pause itself, against real
 * registries and Azurite, is test/e2e/crash.test.ts's Ctrl+C case, through the same signal.)
 */
import { shutdownSignal, trackUntilShutdown, watchRuntimeShutdown } from '../../src/functions/shutdown.js';

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
