/**
 * Running one measured process: wall-clock time from spawn to exit, its output, and its peak
 * resident set size, taken two ways:
 *  - from the child itself (`maxrss-preload.ts`, Node children only): its own VmHWM at exit;
 *  - from outside, by polling `/proc/PID/status` VmHWM (the kernel's high-water mark of RSS)
 *    every few milliseconds. VmHWM only grows, so the last reading before exit is the peak up to
 *    at most one polling interval before the end. Works for any child (skopeo too).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the preload lives once compiled (next to this file in dist/bench). */
export const RUSAGE_PRELOAD = join(__dirname, 'maxrss-preload.js');

const HWM_POLL_MS = 20;

/** Kernel clock ticks per second, for /proc/PID/stat's utime and stime. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Preload the rusage writer (the command must be node). */
  rusage?: boolean;
  /** Kill the child after this long. */
  timeoutMs?: number;
}

export interface RunResult {
  command: string;
  args: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  /** Date.now() when the child was spawned, to place its own timestamps. */
  startedAtEpochMs: number;
  stdout: string;
  stderr: string;
  /** Peak RSS (VmHWM) reported by the child at exit (KiB), when `rusage` was asked for. */
  peakKiB?: number;
  /** getrusage maxRSS reported by the child (KiB); includes the forked parent's RSS, see the preload. */
  rusageMaxRssKiB?: number;
  /** Last VmHWM read from /proc while the child ran (KiB). */
  hwmKiB?: number;
  /** CPU time (user + system) the child reported at exit (ms), when `rusage` was asked for. */
  cpuMs?: number;
  /** Last CPU time (user + system) read from /proc/PID/stat while the child ran (ms): a lower bound. */
  polledCpuMs?: number;
}

async function readProc(pid: number): Promise<{ hwmKiB?: number; cpuMs?: number }> {
  try {
    const [status, stat] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/stat`, 'utf8')]);
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    // Fields after "(comm)": state is the 3rd field, utime the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { hwmKiB: m ? Number(m[1]) : undefined, cpuMs: Number.isFinite(ticks) ? (ticks * 1000) / CLK_TCK : undefined };
  } catch {
    return {};
  }
}

/** Runs `command args`, timing it from spawn to exit. Never rejects for a non-zero exit. */
export async function runMeasured(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const dir = options.rusage ? await mkdtemp(join(tmpdir(), 'hoist-bench-rusage-')) : undefined;
  const rusageFile = dir ? join(dir, 'rusage.json') : undefined;
  const fullArgs = options.rusage ? ['-r', RUSAGE_PRELOAD, ...args] : args;
  const env = { ...process.env, ...options.env, ...(rusageFile ? { BENCH_RUSAGE_FILE: rusageFile } : {}) };
  try {
    const startedAtEpochMs = Date.now();
    const started = process.hrtime.bigint();
    const child = spawn(command, fullArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    let hwmKiB: number | undefined;
    let polledCpuMs: number | undefined;
    let polling = false;
    const pid = child.pid;
    const poll = setInterval(() => {
      if (polling || pid === undefined) return;
      polling = true;
      void readProc(pid).then((v) => {
        polling = false;
        if (v.hwmKiB !== undefined) hwmKiB = Math.max(hwmKiB ?? 0, v.hwmKiB);
        if (v.cpuMs !== undefined) polledCpuMs = Math.max(polledCpuMs ?? 0, v.cpuMs);
      });
    }, HWM_POLL_MS);
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    const { code, signal, endedAt } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; endedAt: bigint }>((resolve, reject) => {
      child.once('error', reject);
      // 'exit' is the moment the process ended; output is collected on 'close' below.
      child.once('exit', (c, s) => resolve({ code: c, signal: s, endedAt: process.hrtime.bigint() }));
    });
    clearInterval(poll);
    if (timer) clearTimeout(timer);
    if (child.stdout.readable || child.stderr.readable) await new Promise<void>((resolve) => child.once('close', () => resolve()));
    let reported: { vmHwmKiB?: number; maxRssKiB?: number; cpuMs?: number } = {};
    if (rusageFile) {
      try {
        reported = JSON.parse(await readFile(rusageFile, 'utf8')) as typeof reported;
      } catch {
        reported = {};
      }
    }
    return {
      command,
      args: fullArgs,
      exitCode: code,
      signal,
      wallMs: Number(endedAt - started) / 1e6,
      startedAtEpochMs,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: Buffer.concat(stderr).toString('utf8'),
      peakKiB: reported.vmHwmKiB,
      rusageMaxRssKiB: reported.maxRssKiB,
      hwmKiB,
      cpuMs: reported.cpuMs,
      polledCpuMs,
    };
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export const MiB = 1024 * 1024;

function readCpuTimes(): { idle: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { idle, total: values.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** Fraction of the machine's CPU time that was idle over the next `ms`. */
export async function idleFraction(ms = 1000): Promise<number> {
  const a = readCpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = readCpuTimes();
  return b.total > a.total ? (b.idle - a.idle) / (b.total - a.total) : 1;
}

/**
 * Waits until the machine is quiet (at least `minIdle` of its CPU idle over a second), at most
 * `maxWaitMs`; returns the last idle fraction seen. Other work on a 2-core machine (a test
 * suite, say) would otherwise be measured along with the copy.
 */
export async function waitForQuiet(minIdle: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const idle = await idleFraction();
    if (idle >= minIdle || Date.now() >= deadline) return idle;
  }
}

/** A whole-number setting from the environment, with its default and lower bound. */
export function intEnv(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}="${raw}": give a whole number ≥ ${min}`);
  return n;
}

/** A command's output, or "unknown (why)" when it cannot run: for describing the machine. */
export function tryRun(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    return `unknown (${(error as Error).message.split('\n')[0]})`;
  }
}

/** What the figures were measured on: hardware, Node, the registry binary and Hoist's commit. */
export function describeMachine(root: string) {
  return {
    date: new Date().toISOString(),
    nproc: tryRun('nproc', []),
    availableParallelism: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memory: tryRun('sh', ['-c', "free -m | awk '/^Mem:/{print $2\" MiB\"}'"]),
    node: process.version,
    registry: tryRun(process.env.HOIST_TEST_REGISTRY_BINARY ?? '/usr/bin/docker-registry', ['--version']).replace(/^\S*docker-registry\s+/, ''),
    kernel: tryRun('uname', ['-r']),
    commit: tryRun('git', ['-C', root, 'rev-parse', '--short', 'HEAD']),
    srcDirty: tryRun('git', ['-C', root, 'status', '--porcelain', '--', 'src']) !== '',
  };
}
