/**
 * The host shutting this worker down (scale-in, a deploy, Ctrl+C on `npm start`): running
 * imports treat it as the end of their time budget, pausing at the next chunk boundary and
 * queuing a continuation, so another instance picks the job up from its checkpoints at once
 * instead of after a lease expiry, and nothing is cut mid-PATCH (which loses the upload session
 * on distribution 2.8).
 *
 * Under the Functions runtime the signal is the `appTerminate` hook (the host ending the worker)
 * or SIGTERM (the platform stopping the instance); the local host calls `beginShutdown` itself.
 */
const controller = new AbortController();
const running = new Set<Promise<unknown>>();

/** Aborted once the host began shutting down. */
export const shutdownSignal: AbortSignal = controller.signal;

/** Starts the shutdown: every running import pauses at its next chunk boundary. Idempotent. */
export function beginShutdown(reason: string): void {
  if (!controller.signal.aborted) controller.abort(new Error(`host shutting down: ${reason}`));
}

/** Tracks an invocation that shutdown must wait for (the pause, and its continuation). */
export function trackUntilShutdown<T>(work: Promise<T>): Promise<T> {
  running.add(work);
  const forget = () => running.delete(work);
  work.then(forget, forget);
  return work;
}

/** Resolves when every tracked invocation has settled. */
export async function settled(): Promise<void> {
  while (running.size > 0) await Promise.allSettled([...running]);
}

/**
 * Under the Functions runtime: on SIGTERM, pause running imports and exit once they have queued
 * their continuations (the default would exit at once, mid-chunk); `appTerminate` pauses them too.
 * `beforeExit` runs after they settled, either way (telemetry sends their last transitions).
 */
export function watchRuntimeShutdown(onTerminate: (handler: () => Promise<void>) => void, beforeExit: () => Promise<void> = () => Promise.resolve()): void {
  const finish = async () => {
    await settled();
    await beforeExit().catch(() => undefined);
  };
  onTerminate(async () => {
    beginShutdown('appTerminate');
    await finish();
  });
  process.once('SIGTERM', () => {
    beginShutdown('SIGTERM');
    void finish().then(() => process.exit(128 + 15));
  });
}
