/**
 * Bookkeeping for the external processes the harness starts (docker-registry).
 *
 * A test that fails or times out must not leave registries running: they would hold ports
 * and temp directories and, on CI, keep the run from finishing. Two layers make sure of it:
 *  - a process-wide 'exit' hook that SIGKILLs every tracked child (covers normal exits and
 *    `process.exit()`, which is what vitest's fork workers do when a file finishes), and
 *  - a tiny detached `sh` watchdog per child that kills it once this Node process is gone
 *    (covers SIGKILL/SIGTERM of the worker, where no 'exit' hook runs).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const tracked = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: kill() is, waiting is not possible here.
  process.on('exit', () => {
    for (const child of tracked) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/**
 * Spawns a process that is killed when the test process exits, however it exits.
 *
 * @param removeOnOrphan paths the watchdog deletes (rm -rf) after killing the child because this
 *   process died without cleaning up (normal stops remove them in the caller instead).
 * @returns the child; stop it with {@link killAndWait}.
 */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}, removeOnOrphan: readonly string[] = []): ChildProcess {
  installExitHook();
  const child = spawn(command, [...args], { ...options, stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT is reported via 'error'); nothing to track yet.
    return child;
  }
  tracked.add(child);
  // Watchdog: polls this process' pid and SIGKILLs the child once it has disappeared.
  // It is killed together with the child when the child is stopped normally, so it never
  // outlives the child and cannot hit a recycled pid.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'parent=$0; child=$1; shift; while kill -0 "$parent" 2>/dev/null; do kill -0 "$child" 2>/dev/null || exit 0; sleep 1; done; kill -9 "$child" 2>/dev/null; sleep 1; rm -rf -- "$@"',
      String(process.pid),
      String(child.pid),
      ...removeOnOrphan,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  child.once('exit', () => {
    tracked.delete(child);
    try {
      watchdog.kill('SIGKILL');
    } catch {
      // Watchdog already exited (it stops when the child is gone).
    }
  });
  return child;
}

/**
 * Sends SIGTERM, then SIGKILL after `graceMs`, and resolves once the child has exited.
 */
export async function killAndWait(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
    tracked.delete(child);
  }
}
