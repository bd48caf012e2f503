/**
 * The import-service benchmark of issue 3 (`npx tsc -p tsconfig.build.json && node dist/bench/service.js`).
 *
 * Everything runs through the local host (src/local/local-host.ts) in this process, with the
 * app's real function definitions, a private Azurite on free loopback ports and docker-registry
 * instances on 127.0.0.1:
 *
 * 1. Resume overhead. A 1 GiB single-layer image is imported through the service (POST
 *    /api/imports, then GET /api/imports/{id} every 100 ms until it succeeded), with chunked
 *    4 MiB uploads (HOIST_CHUNK_SIZE_BYTES), into a fresh empty target registry every run:
 *      (i)   in one invocation (HOIST_TIME_BUDGET_SECONDS=3600);
 *      (ii)  under a 5 s budget, so the worker re-queues continuations, with the project's
 *            host.json as deployed (maxPollingInterval 5 s);
 *      (iii) the same 5 s budget with maxPollingInterval 250 ms (the host's documented
 *            `AzureFunctionsJobHost__extensions__queues__maxPollingInterval` override), to
 *            separate queue latency from the work of resuming.
 *      (iv), (v) as (ii), (iii) with a 1 s budget: on loopback the copy outlives a 5 s budget
 *            only once, a 1 s budget many times.
 *    Modes alternate (the order rotates each round). Each run gets a new local host, so every
 *    run starts from the same queue-listener state. The real engine does the copy; the bench
 *    only wraps its `copy` (services.setEngine) to timestamp the call and its progress events,
 *    and reads the host's log lines ("Executing"/"Executed", the worker's own lines) to place
 *    each invocation, so each run's worker time splits exactly into queue wait between
 *    invocations, handler start (lease), engine set-up (manifest, existence checks, checkpoint
 *    and upload-status look-ups), transfer, and wrap-up (progress, lease release, re-queue).
 * 2. Submission. POST /api/imports throughput and latency at concurrency 1 and 16, from a load
 *    generator in a child process (bench/service-load.ts) over keep-alive connections. The host
 *    runs only the HTTP function (the definitions list is filtered), so no worker consumes the
 *    queue; the no-force pre-check HEADs a real, empty docker-registry.
 *
 * Knobs (environment): BENCH_SERVICE_RUNS (timed runs per resume mode, default 4),
 * BENCH_SERVICE_WARMUP (untimed imports first, default 1), BENCH_SERVICE_MODES (default
 * "one,budget,budget-fast,budget1,budget1-fast"), BENCH_BIG_MIB
 * (layer size, default 1024), BENCH_SUBMIT_REQUESTS (requests per concurrency, default 1000),
 * BENCH_SUBMIT_CONCURRENCY (default "1,16"), BENCH_SERVICE_PARTS ("resume,submit"),
 * BENCH_WRITE_DOCS=0 (print only), BENCH_QUIET_IDLE / BENCH_QUIET_WAIT_S (as bench/run.ts).
 */
import { QueueServiceClient } from '@azure/storage-queue';
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { format } from 'node:util';
import { copy } from '../src/copy/index.js';
import type { ProgressEvent } from '../src/copy/types.js';
import { definitions } from '../src/functions/definitions.js';
import { setEngine } from '../src/functions/services.js';
import type { ImportStatus } from '../src/jobs/status-document.js';
import { startAzurite } from '../src/local/azurite.js';
import { readHostConfig } from '../src/functions/host-config.js';
import { startLocalHost, type LocalHost } from '../src/local/local-host.js';
import type { HostLogger, LogLevel } from '../src/local/logger.js';
import { freePort } from '../test/helpers/ports.js';
import { spawnTracked } from '../test/helpers/processes.js';
import { parseAccessLog, startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { formatSize, pushHugeLayer, verifyCopy, type BenchImage } from './images.js';
import { describeMachine, intEnv, median, MiB, waitForQuiet } from './measure.js';
import type { LoadRequest, LoadResult } from './service-load.js';

const ROOT = resolve(__dirname, '..', '..');
const DOC_PATH = join(ROOT, 'docs', 'benchmarks.md');

const RUNS = intEnv('BENCH_SERVICE_RUNS', 4, 1);
const WARMUP = intEnv('BENCH_SERVICE_WARMUP', 1, 0);
const BIG_MIB = intEnv('BENCH_BIG_MIB', 1024, 1);
const SUBMIT_REQUESTS = intEnv('BENCH_SUBMIT_REQUESTS', 1000, 1);
const SUBMIT_CONCURRENCY = (process.env.BENCH_SUBMIT_CONCURRENCY ?? '1,16').split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
const PARTS = new Set((process.env.BENCH_SERVICE_PARTS ?? 'resume,submit').split(',').map((s) => s.trim()));
const WRITE_DOCS = process.env.BENCH_WRITE_DOCS !== '0';
const QUIET_IDLE = Number(process.env.BENCH_QUIET_IDLE ?? '0.8');
const QUIET_WAIT_S = intEnv('BENCH_QUIET_WAIT_S', 20, 0);

const CHUNK_BYTES = 4 * MiB;
const POLL_OVERRIDE = 'AzureFunctionsJobHost__extensions__queues__maxPollingInterval';
const FAST_POLL = '00:00:00.250';
const GET_POLL_MS = 100;
const RUN_TIMEOUT_MS = 5 * 60_000;

type Mode = 'one' | 'budget' | 'budget-fast' | 'budget1' | 'budget1-fast';
interface ModeSpec {
  label: string;
  budgetSeconds: number;
  maxPollingInterval?: string;
}
const MODES: Record<Mode, ModeSpec> = {
  one: { label: '(i) one invocation', budgetSeconds: 3600 },
  budget: { label: '(ii) 5 s budget, host.json polling', budgetSeconds: 5 },
  'budget-fast': { label: '(iii) 5 s budget, 250 ms polling', budgetSeconds: 5, maxPollingInterval: FAST_POLL },
  budget1: { label: '(iv) 1 s budget, host.json polling', budgetSeconds: 1 },
  'budget1-fast': { label: '(v) 1 s budget, 250 ms polling', budgetSeconds: 1, maxPollingInterval: FAST_POLL },
};
/** (iv) and (v) are extra: on loopback the copy outlives a 5 s budget only once, a 1 s budget many times. */
const MODE_ORDER: Mode[] = (process.env.BENCH_SERVICE_MODES ?? 'one,budget,budget-fast,budget1,budget1-fast').split(',').map((m) => m.trim()).filter((m): m is Mode => m in MODES);
const BUDGET_MODES = MODE_ORDER.filter((m) => m !== 'one');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Host logs and engine traces

interface LogEntry {
  t: number;
  level: LogLevel;
  source: string;
  text: string;
}

let logEntries: LogEntry[] = [];
let keepLogs = true;
let hostProblems = 0;

/** Keeps every host line with its time (performance.now()); warnings and errors also go to stderr. */
const logger: HostLogger = {
  log(level, source, ...args) {
    const text = format(...args);
    if (keepLogs) logEntries.push({ t: now(), level, source, text });
    if (level === 'warning' || level === 'error' || level === 'critical') {
      hostProblems++;
      log(`  [host ${level}] ${source} ${text.split('\n')[0]!.slice(0, 400)}`);
    }
  },
};

interface CopyTrace {
  start: number;
  end?: number;
  status?: string;
  resolved?: number;
  plan?: number;
  /** blob-start events: the offset shows where a resumed upload picked up. */
  blobStarts: Array<{ t: number; digest: string; size: number; offset: number }>;
  /** blob-progress events of every blob (the big layer's dominate). */
  progress: Array<{ t: number; digest: string; bytesDone: number }>;
}

let traces: CopyTrace[] = [];

/** The real engine, with each call and its progress events timestamped. */
function installTracingEngine(): void {
  setEngine({
    copy: async (request, options = {}) => {
      const trace: CopyTrace = { start: now(), blobStarts: [], progress: [] };
      traces.push(trace);
      const forward = options.onProgress;
      const onProgress = (event: ProgressEvent) => {
        const t = now();
        if (event.type === 'resolved') trace.resolved ??= t;
        else if (event.type === 'plan') trace.plan ??= t;
        else if (event.type === 'blob-start') trace.blobStarts.push({ t, digest: event.digest, size: event.size, offset: event.offset });
        else if (event.type === 'blob-progress') trace.progress.push({ t, digest: event.digest, bytesDone: event.bytesDone });
        forward?.(event);
      };
      try {
        const result = await copy(request, { ...options, onProgress });
        trace.status = result.status;
        return result;
      } finally {
        trace.end = now();
      }
    },
  });
}

interface Invocation {
  tag: string;
  executing: number;
  executed?: number;
  failed?: boolean;
  outcome?: string;
  continuation?: number;
  trace?: CopyTrace;
}

/** The worker's invocations in `entries`, in order, each with its engine call. */
function workerInvocations(entries: readonly LogEntry[], calls: readonly CopyTrace[]): Invocation[] {
  const byTag = new Map<string, Invocation>();
  for (const e of entries) {
    if (!e.source.startsWith('Functions.importWorker[')) continue;
    if (e.text.startsWith("Executing '")) {
      byTag.set(e.source, { tag: e.source, executing: e.t });
      continue;
    }
    const inv = byTag.get(e.source);
    if (!inv) continue;
    if (e.text.startsWith("Executed '")) {
      inv.executed = e.t;
      inv.failed = e.text.includes('(Failed');
    }
    const outcome = /^importWorker: (\S+)/.exec(e.text);
    if (outcome) inv.outcome = outcome[1];
    const attempt = /: attempt \d+, continuation (\d+)/.exec(e.text);
    if (attempt) inv.continuation = Number(attempt[1]);
  }
  const list = [...byTag.values()].sort((a, b) => a.executing - b.executing);
  for (const trace of calls) {
    const inv = list.find((i) => trace.start >= i.executing && (i.executed === undefined || trace.start <= i.executed));
    if (inv) inv.trace = trace;
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Processes and the machine

let azuritePid: number | undefined;

function readProcCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function machineTimes(): { busy: number; total: number } {
  const values = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  return { busy: total - (values[3] ?? 0) - (values[4] ?? 0), total };
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

type Machine = ReturnType<typeof describeMachine> & { azurite: string };

function describeServiceMachine(): Machine {
  let azurite = 'unknown';
  try {
    azurite = (JSON.parse(readFileSync(require.resolve('azurite/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // keep unknown
  }
  return { ...describeMachine(ROOT), azurite };
}

function countByMethod(entries: Array<{ method: string }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of entries) counts[e.method] = (counts[e.method] ?? 0) + 1;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// The API client (in this process: a few requests per second, negligible next to the copy)

async function api<T>(base: string, method: string, path: string, json?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: json === undefined ? {} : { 'content-type': 'application/json' },
    ...(json !== undefined && { body: JSON.stringify(json) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

// ---------------------------------------------------------------------------------------------
// 1. Resume overhead

interface Boundary {
  /** Copy returned `paused` → invocation ended: progress flush, lease release, re-queue. */
  wrapUpMs: number;
  /** Invocation ended → next one started: message delete, listener's poll wait, receive. */
  queueMs: number;
  /** Next invocation started → engine called: settings, job lease. */
  handlerStartMs: number;
  /** Engine called → the big layer's upload resumed (blob-start): manifest, HEADs, checkpoint, upload status. */
  engineSetupMs: number;
  /** blob-start → first chunk acknowledged: source Range GET, first 4 MiB, PATCH, checkpoint. */
  firstChunkMs: number;
  /** Where the resumed upload picked up, bytes. */
  offset: number;
}

interface ResumeSample {
  mode: Mode;
  round: number;
  idleBefore: number;
  /** POST sent → 202 read. */
  postMs: number;
  /** 202 → first worker invocation started (the queue pick-up every import pays). */
  pickupMs: number;
  /** First invocation started → last one ended: the worker's time on the job. */
  spanMs: number;
  /** POST sent → the GET poll that first saw `succeeded`. */
  endToEndMs: number;
  invocations: number;
  continuations: number;
  attempts: number;
  /** Sums over the run; they add up to spanMs. */
  parts: { queueMs: number; handlerStartMs: number; engineSetupMs: number; transferMs: number; wrapUpMs: number };
  boundaries: Boundary[];
  /** Median time between consecutive chunk acknowledgements of the big layer, ms. */
  chunkMs: number;
  /** The same, for chunks ending in each quarter of the layer. */
  chunkByQuarterMs: number[];
  /** This process's CPU (host + bench client) over the run, ms. */
  hostCpuMs: number;
  azuriteCpuMs?: number;
  targetRequests: Record<string, number>;
  sourceRequests: Record<string, number>;
  problems: string[];
}

function hostConfigFor(mode: Mode, settings: Record<string, string>) {
  const overrides: Record<string, string> = { ...settings };
  const poll = MODES[mode].maxPollingInterval;
  if (poll) overrides[POLL_OVERRIDE] = poll;
  return readHostConfig(ROOT, overrides);
}

async function startHost(settings: Record<string, string>, mode: Mode | 'submit', defs = definitions): Promise<LocalHost> {
  const hostConfig = mode === 'submit' ? readHostConfig(ROOT, settings) : hostConfigFor(mode, settings);
  return startLocalHost({ definitions: defs, settings, hostConfig, projectRoot: ROOT, port: 0, logger, shutdownGraceInMs: 10_000 });
}

async function resumeRun(source: TestRegistry, image: BenchImage, settings: Record<string, string>, mode: Mode, round: number): Promise<ResumeSample> {
  const target = await startRegistry();
  let host: LocalHost | undefined;
  try {
    process.env.HOIST_TARGET_REGISTRY = target.host;
    process.env.HOIST_TIME_BUDGET_SECONDS = String(MODES[mode].budgetSeconds);
    process.env.HOIST_CHUNK_SIZE_BYTES = String(CHUNK_BYTES);
    host = await startHost(settings, mode);
    const base = `http://127.0.0.1:${host.port}`;
    const idleBefore = await waitForQuiet(QUIET_IDLE, QUIET_WAIT_S * 1000);
    logEntries = [];
    traces = [];
    const sourceLogStart = source.logLines.length;
    const cpu0 = selfCpuMs();
    const az0 = readProcCpuMs(azuritePid);

    const t0 = now();
    const accepted = await api<ImportStatus>(base, 'POST', '/api/imports', { source: `${source.host}/${image.repository}:${image.tag}`, images: [`${image.repository}:${image.tag}`] });
    const tAccepted = now();
    if (accepted.status !== 202) throw new Error(`POST /api/imports: ${accepted.status} ${JSON.stringify(accepted.body)}`);
    const id = accepted.body.id;
    let doc: ImportStatus;
    for (;;) {
      const got = await api<ImportStatus>(base, 'GET', `/api/imports/${id}`);
      if (got.status !== 200) throw new Error(`GET /api/imports/${id}: ${got.status}`);
      doc = got.body;
      if (doc.status === 'succeeded' || doc.status === 'failed') break;
      if (now() - t0 > RUN_TIMEOUT_MS) throw new Error(`job ${id} still ${doc.status} after ${RUN_TIMEOUT_MS} ms`);
      await sleep(GET_POLL_MS);
    }
    const tSeen = now();
    if (doc.status !== 'succeeded') throw new Error(`job ${id} failed: ${JSON.stringify(doc.error)}\n${logEntries.slice(-30).map((e) => `${e.source} ${e.text}`).join('\n')}`);
    // The status flips before the handler returns (checkpoint clean-up, "Executed"): wait for it.
    const deadline = now() + 30_000;
    while (workerInvocations(logEntries, traces).some((i) => i.executed === undefined) && now() < deadline) await sleep(20);
    const hostCpuMs = selfCpuMs() - cpu0;
    const az1 = readProcCpuMs(azuritePid);
    await host.stop();
    host = undefined;

    const invocations = workerInvocations(logEntries, traces);
    const problems: string[] = [];
    const odd = invocations.filter((i) => i.failed || !i.trace || (i.outcome !== 'paused' && i.outcome !== 'succeeded'));
    if (odd.length) problems.push(`unexpected invocations: ${odd.map((i) => `${i.outcome ?? '?'}${i.failed ? ' (failed)' : ''}`).join(', ')}`);
    const runs = invocations.filter((i) => i.trace && i.executed !== undefined);
    const first = invocations[0]!;
    const last = invocations[invocations.length - 1]!;
    const parts = { queueMs: 0, handlerStartMs: 0, engineSetupMs: 0, transferMs: 0, wrapUpMs: 0 };
    const boundaries: Boundary[] = [];
    const bigBlob = image.pushed.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const bigDigest = bigBlob.digest;
    const bigSize = bigBlob.size;
    const chunkGaps: number[] = [];
    /** Chunk gaps with where in the layer they ended, to see whether chunks slow down as a copy goes on. */
    const positionedGaps: Array<{ at: number; ms: number }> = [];
    invocations.forEach((inv, k) => {
      const trace = inv.trace;
      if (k > 0) parts.queueMs += inv.executing - invocations[k - 1]!.executed!;
      if (!trace || trace.end === undefined || inv.executed === undefined) return;
      const bigStart = trace.blobStarts.find((b) => b.digest === bigDigest);
      // Set-up ends when the big layer's transfer starts (or, on a call that only finishes up, at the end).
      const setupEnd = bigStart?.t ?? trace.end;
      parts.handlerStartMs += trace.start - inv.executing;
      parts.engineSetupMs += setupEnd - trace.start;
      parts.transferMs += trace.end - setupEnd;
      parts.wrapUpMs += inv.executed - trace.end;
      const big = trace.progress.filter((p) => p.digest === bigDigest);
      for (let j = 1; j < big.length; j++) {
        chunkGaps.push(big[j]!.t - big[j - 1]!.t);
        positionedGaps.push({ at: big[j]!.bytesDone, ms: big[j]!.t - big[j - 1]!.t });
      }
      if (k > 0) {
        const prev = invocations[k - 1]!;
        boundaries.push({
          wrapUpMs: prev.executed! - (prev.trace?.end ?? prev.executed!),
          queueMs: inv.executing - prev.executed!,
          handlerStartMs: trace.start - inv.executing,
          engineSetupMs: setupEnd - trace.start,
          firstChunkMs: bigStart && big[0] ? big[0].t - bigStart.t : NaN,
          offset: bigStart?.offset ?? NaN,
        });
      }
    });
    if (runs.length !== invocations.length) problems.push(`${invocations.length - runs.length} invocations without an engine call`);
    if (doc.continuations !== invocations.length - 1) problems.push(`status says ${doc.continuations} continuations, the host ran ${invocations.length} invocations`);
    const totalBytes = image.pushed.blobs.reduce((s, b) => s + b.size, 0);
    if (doc.progress.bytes.done !== totalBytes || doc.progress.blobs.skipped || doc.progress.blobs.mounted) {
      problems.push(`progress ${JSON.stringify(doc.progress)}`);
    }
    // Resumed uploads must pick up where the previous invocation stopped (never from 0).
    for (const b of boundaries) if (!(b.offset > 0)) problems.push(`a continuation restarted the big layer at offset ${b.offset}`);
    await sleep(150);
    problems.push(...(await verifyCopy(target, image)));
    const sample: ResumeSample = {
      mode,
      round,
      idleBefore,
      postMs: tAccepted - t0,
      pickupMs: first.executing - tAccepted,
      spanMs: last.executed! - first.executing,
      endToEndMs: tSeen - t0,
      invocations: invocations.length,
      continuations: doc.continuations,
      attempts: doc.attempts,
      parts,
      boundaries,
      chunkMs: median(chunkGaps),
      chunkByQuarterMs: [0, 1, 2, 3].map((q) => median(positionedGaps.filter((g) => Math.min(3, Math.floor((4 * g.at) / bigSize)) === q).map((g) => g.ms))),
      hostCpuMs,
      ...(az0 !== undefined && az1 !== undefined && { azuriteCpuMs: az1 - az0 }),
      targetRequests: countByMethod(target.accessLog()),
      sourceRequests: countByMethod(parseAccessLog(source.logLines.slice(sourceLogStart))),
      problems,
    };
    log(
      `${round < 0 ? 'warm-up' : `run ${round + 1}/${RUNS}`} ${MODES[mode].label.padEnd(36)} end-to-end ${(sample.endToEndMs / 1000).toFixed(2)} s  worker ${(sample.spanMs / 1000).toFixed(2)} s  ` +
        `pick-up ${(sample.pickupMs / 1000).toFixed(2)} s  continuations ${sample.continuations}  queue ${(parts.queueMs / 1000).toFixed(2)} s  ` +
        `set-up ${(parts.engineSetupMs / 1000).toFixed(2)} s  wrap-up ${(parts.wrapUpMs / 1000).toFixed(2)} s  chunk ${sample.chunkMs.toFixed(1)} ms (by quarter ${sample.chunkByQuarterMs.map((x) => x.toFixed(1)).join('/')})  idle-before ${(idleBefore * 100).toFixed(0)}%` +
        `${problems.length ? `  PROBLEMS: ${problems.join('; ')}` : '  verified'}`,
    );
    return sample;
  } finally {
    await host?.stop();
    await target.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Submission

interface SubmitSample {
  concurrency: number;
  requests: number;
  statuses: Record<string, number>;
  errors: string[];
  wallMs: number;
  perSecond: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  idleBefore: number;
  /** CPU per request, ms: the host (this process), Azurite, the load generator. */
  hostCpuPerRequestMs: number;
  azuriteCpuPerRequestMs?: number;
  loadCpuPerRequestMs: number;
  /** Share of the machine's CPU busy during the run (all processes). */
  machineBusy: number;
  /** Requests the target registry saw per POST. */
  registryRequestsPerPost: Record<string, number>;
}

function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

function runLoadChild(spec: LoadRequest): Promise<LoadResult> {
  return new Promise((resolvePromise, reject) => {
    const child: ChildProcess = fork(join(__dirname, 'service-load.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: LoadResult | undefined;
    child.once('message', (m) => (result = m as LoadResult));
    child.once('error', reject);
    child.once('exit', (code) => (result ? resolvePromise(result) : reject(new Error(`load generator exited ${code} without a result`))));
    child.send(spec);
  });
}

async function submission(source: TestRegistry, image: BenchImage, settings: Record<string, string>): Promise<{ samples: SubmitSample[]; queued: number | undefined; accepted: number }> {
  const target = await startRegistry();
  let host: LocalHost | undefined;
  keepLogs = false;
  try {
    process.env.HOIST_TARGET_REGISTRY = target.host;
    // Only the HTTP function: nothing consumes the queue, so the worker takes no CPU here.
    host = await startHost(settings, 'submit', definitions.filter((d) => d.trigger.type === 'http'));
    const url = `http://127.0.0.1:${host.port}/api/imports`;
    const spec = (count: number, concurrency: number, tagPrefix: string): LoadRequest => ({
      url,
      count,
      concurrency,
      source: `${source.host}/${image.repository}:${image.tag}`,
      repository: 'bench/submitted',
      tagPrefix,
    });
    // Warm-up: connections, the job tables' and queue's first use, JIT.
    const warm = await runLoadChild(spec(100, 4, 'warm-'));
    let accepted = warm.statuses['202'] ?? 0;
    log(`submission warm-up: ${JSON.stringify(warm.statuses)}${warm.errors.length ? ` ${warm.errors.join(' | ')}` : ''}`);
    const samples: SubmitSample[] = [];
    for (const concurrency of SUBMIT_CONCURRENCY) {
      const idleBefore = await waitForQuiet(QUIET_IDLE, QUIET_WAIT_S * 1000);
      const logStart = target.accessLog().length;
      const m0 = machineTimes();
      const cpu0 = selfCpuMs();
      const az0 = readProcCpuMs(azuritePid);
      const result = await runLoadChild(spec(SUBMIT_REQUESTS, concurrency, `c${concurrency}-`));
      const cpu1 = selfCpuMs();
      const az1 = readProcCpuMs(azuritePid);
      const m1 = machineTimes();
      await sleep(150);
      const registryRequests = countByMethod(target.accessLog().slice(logStart));
      const n = result.latenciesMs.length;
      accepted += result.statuses['202'] ?? 0;
      const sorted = [...result.latenciesMs].sort((a, b) => a - b);
      const perPost: Record<string, number> = {};
      for (const [k, v] of Object.entries(registryRequests)) perPost[k] = v / n;
      const sample: SubmitSample = {
        concurrency,
        requests: n,
        statuses: result.statuses,
        errors: result.errors,
        wallMs: result.wallMs,
        perSecond: (n / result.wallMs) * 1000,
        p50: percentile(sorted, 0.5),
        p90: percentile(sorted, 0.9),
        p99: percentile(sorted, 0.99),
        max: sorted[sorted.length - 1] ?? NaN,
        mean: sorted.reduce((a, b) => a + b, 0) / n,
        idleBefore,
        hostCpuPerRequestMs: (cpu1 - cpu0) / n,
        ...(az0 !== undefined && az1 !== undefined && { azuriteCpuPerRequestMs: (az1 - az0) / n }),
        loadCpuPerRequestMs: result.cpuMs / n,
        machineBusy: m1.total > m0.total ? (m1.busy - m0.busy) / (m1.total - m0.total) : NaN,
        registryRequestsPerPost: perPost,
      };
      samples.push(sample);
      log(
        `submission c=${concurrency}: ${n} requests in ${(result.wallMs / 1000).toFixed(2)} s = ${sample.perSecond.toFixed(0)}/s, p50 ${sample.p50.toFixed(1)} ms, p99 ${sample.p99.toFixed(1)} ms, max ${sample.max.toFixed(1)} ms; ` +
          `statuses ${JSON.stringify(result.statuses)}; CPU/request host ${sample.hostCpuPerRequestMs.toFixed(2)} ms, Azurite ${sample.azuriteCpuPerRequestMs?.toFixed(2) ?? 'n/a'} ms; machine busy ${(sample.machineBusy * 100).toFixed(0)}%` +
          `${result.errors.length ? `; errors: ${result.errors.join(' | ')}` : ''}`,
      );
    }
    // Nothing consumed the queue: every accepted job's message must still be there.
    const queue = QueueServiceClient.fromConnectionString(settings.AzureWebJobsStorage!).getQueueClient('imports');
    const queued = (await queue.getProperties()).approximateMessagesCount;
    return { samples, queued, accepted };
  } finally {
    keepLogs = true;
    await host?.stop();
    await target.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const START = '<!-- bench:import-service:start (generated by bench/service.ts; replaced on every run) -->';
const START_PREFIX = '<!-- bench:import-service:start';
const END = '<!-- bench:import-service:end -->';
const SECTION_TITLE = '## Import service (issue 3)';
const RATIO_GOAL = 1.3;

interface Report {
  machine: Machine;
  command: string;
  image: BenchImage;
  resume: ResumeSample[];
  warmupRuns: number;
  submit?: { samples: SubmitSample[]; queued: number | undefined; accepted: number };
  hostConfig: { maxPollingIntervalMs: number; batchSize: number; newBatchThreshold: number };
  durationSeconds: number;
  hostProblems: number;
}

const bigLayer = (image: BenchImage) => Math.max(...image.pushed.blobs.map((b) => b.size));
const s = (ms: number, digits = 2) => (ms / 1000).toFixed(digits);
const yes = (ok: boolean) => (ok ? '**yes**' : '**no**');

function range(values: number[], digits = 2): string {
  return `${s(median(values), digits)} (${s(Math.min(...values), digits)}–${s(Math.max(...values), digits)})`;
}

function requestCell(counts: Array<Record<string, number>>): string {
  return ['HEAD', 'GET', 'POST', 'PATCH', 'PUT', 'DELETE']
    .map((m) => {
      const n = median(counts.map((c) => c[m] ?? 0));
      return n ? `${m} ${n}` : '';
    })
    .filter(Boolean)
    .join(', ');
}

function render(report: Report): string {
  const { machine, image } = report;
  const by = (mode: Mode) => report.resume.filter((r) => r.mode === mode);
  const med = (mode: Mode, f: (r: ResumeSample) => number) => median(by(mode).map(f));
  const lines: string[] = [START, ''];
  lines.push(
    `Measured ${machine.date.slice(0, 16).replace('T', ' ')} UTC on ${machine.cpu}, \`nproc\` ${machine.nproc}, ${machine.memory} RAM, Linux ${machine.kernel}; ` +
      `Node ${machine.node}; Azurite ${machine.azurite} (in memory); docker-registry (${machine.registry}); ` +
      `Hoist at ${machine.commit}${machine.srcDirty ? ' plus uncommitted changes in src/' : ''}. Other sessions share this machine; "idle before" says how quiet it was.`,
  );
  lines.push('');
  lines.push(`Command: \`${report.command}\` (the whole bench took ${(report.durationSeconds / 60).toFixed(1)} min).`);
  lines.push('');
  lines.push(
    'Setup: the local host (`startLocalHost`, src/local/local-host.ts) runs in the bench process with the app\'s real definitions (src/functions/definitions.ts), ' +
      'a private Azurite on free loopback ports (an explicit connection string in `AzureWebJobsStorage`) and docker-registry on 127.0.0.1. ' +
      `The source registry holds one image with a ${formatSize(bigLayer(image))} layer (${image.blobCount} blobs with the config, ${formatSize(image.totalBytes)} in all; seeded pseudo-random bytes, pushed once). ` +
      'Settings are app settings in `process.env`, as the host reads them.',
  );
  lines.push('');

  // 1. Resume
  if (report.resume.length) {
    const one = by('one');
    const runs = Math.min(...MODE_ORDER.map((m) => by(m).length));
    const label = (m: Mode) => MODES[m].label;
    lines.push(`### Resume overhead: ${formatSize(bigLayer(image))} layer, one invocation vs 5 s budget`);
    lines.push('');
    lines.push(
      `Method: POST /api/imports, then GET /api/imports/{id} every ${GET_POLL_MS} ms until \`succeeded\`; chunked uploads of 4 MiB (\`HOIST_CHUNK_SIZE_BYTES=${CHUNK_BYTES}\`), a **new, empty** target registry every run; ` +
        `${runs} timed runs per mode after ${report.warmupRuns} untimed warm-up import${report.warmupRuns === 1 ? '' : 's'}, modes alternating (the order rotates each round), a new local host per run. ` +
        '(i) `HOIST_TIME_BUDGET_SECONDS=3600`: the whole copy in one invocation. (ii) `HOIST_TIME_BUDGET_SECONDS=5`: the worker pauses at the first chunk boundary after 5 s, re-queues a continuation message and returns; ' +
        `the next delivery resumes from the checkpoint; the host polls as the project's host.json says (\`maxPollingInterval\` ${s(report.hostConfig.maxPollingIntervalMs, 0)} s, batchSize ${report.hostConfig.batchSize}, newBatchThreshold ${report.hostConfig.newBatchThreshold}). ` +
        `(iii) as (ii), with \`${POLL_OVERRIDE}=${FAST_POLL}\`, to separate queue latency from resume work. ` +
        '(iv) and (v) repeat (ii) and (iii) with a 1 s budget, because on loopback the copy outlives a 5 s budget only once. ' +
        'Nothing is faked: continuations go through the real queue and listener; ' +
        'the bench only wraps the engine\'s `copy` (src/functions/services.ts `setEngine`) to timestamp each call and its progress events, and timestamps the host\'s log lines.',
    );
    lines.push('');
    lines.push(
      '"Worker time" runs from the first invocation\'s start to the last one\'s end; it leaves out the first queue pick-up (202 → first invocation), which every import pays once whatever its budget, and whose length depends only on where the idle listener\'s back-off happens to be. ' +
        '"End to end" is POST sent → the GET that first saw `succeeded`, and includes it. ' +
        'The first pick-up is short here because each run\'s host is about a second old when the POST arrives (its listener\'s back-off is still small); a host idle for longer picks a new import up within maxPollingInterval (5 s).',
    );
    lines.push('');
    lines.push('Seconds: median (min–max).');
    lines.push('');
    lines.push('| Mode | worker time | end to end | first pick-up | invocations | worker time / (i) | end to end / (i) |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const mode of MODE_ORDER) {
      const r = by(mode);
      if (!r.length) continue;
      const inv = r.map((x) => x.invocations);
      const ratio = (f: (x: ResumeSample) => number) => (one.length ? (med(mode, f) / med('one', f)).toFixed(2) : 'n/a');
      lines.push(
        `| ${label(mode)} | ${range(r.map((x) => x.spanMs))} | ${range(r.map((x) => x.endToEndMs))} | ${range(r.map((x) => x.pickupMs))} | ${median(inv)} (${Math.min(...inv)}–${Math.max(...inv)}) | ${ratio((x) => x.spanMs)} | ${ratio((x) => x.endToEndMs)} |`,
      );
    }
    lines.push('');
    if (one.length) {
      lines.push('| Goal: 5 s budget ≤ 1.3 × one invocation | worker time | end to end | met |');
      lines.push('| --- | ---: | ---: | :---: |');
      for (const mode of ['budget', 'budget-fast'] as Mode[]) {
        if (!by(mode).length) continue;
        const span = med(mode, (x) => x.spanMs) / med('one', (x) => x.spanMs);
        const e2e = med(mode, (x) => x.endToEndMs) / med('one', (x) => x.endToEndMs);
        lines.push(`| ${label(mode)}${mode === 'budget' ? ' (as deployed)' : ''} / (i) | ${span.toFixed(2)} × | ${e2e.toFixed(2)} × | ${yes(span <= RATIO_GOAL)} |`);
      }
      lines.push('');
      lines.push('"met" is judged on worker time, the stricter of the two (end to end dilutes the overhead with the first pick-up, which both modes pay).');
      lines.push('');
    }

    lines.push('Where the worker time goes (median seconds per run; the parts of one run add up exactly to its worker time):');
    lines.push('');
    lines.push('| Mode | queue wait between invocations | handler start (lease) | engine set-up | transfer | wrap-up (release, re-queue) | worker time |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const mode of MODE_ORDER) {
      const r = by(mode);
      if (!r.length) continue;
      const p = (f: (x: ResumeSample['parts']) => number) => s(median(r.map((x) => f(x.parts))));
      lines.push(`| ${label(mode)} | ${p((x) => x.queueMs)} | ${p((x) => x.handlerStartMs)} | ${p((x) => x.engineSetupMs)} | ${p((x) => x.transferMs)} | ${p((x) => x.wrapUpMs)} | ${s(median(r.map((x) => x.spanMs)))} |`);
    }
    lines.push('');
    lines.push(
      '"Queue wait" is an invocation\'s end to the next one\'s start: deleting the finished message, the listener\'s wait until its next poll, receiving. ' +
        '"Engine set-up" is the engine call to the big layer\'s `blob-start` (source manifest, the target tag and blob HEADs, the checkpoint read, the upload-status GET of a resumed upload). ' +
        '"Transfer" is from there to the engine\'s return (for the last invocation the manifest and tag writes too). "Wrap-up" is the engine\'s return to the invocation\'s end (last progress write, lease release, re-queue; on success, checkpoint clean-up).',
    );
    lines.push('');
    const boundaries = BUDGET_MODES.flatMap((mode) => by(mode).flatMap((x) => x.boundaries.map((b) => ({ ...b, mode }))));
    if (boundaries.length) {
      lines.push('Per continuation (median ms over every continuation of the mode, min–max for the queue wait):');
      lines.push('');
      lines.push('| Mode | continuations | wrap-up | queue wait | handler start | engine set-up | first chunk after resume | steady chunk |');
      lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const mode of BUDGET_MODES) {
        const b = boundaries.filter((x) => x.mode === mode);
        if (!b.length) continue;
        const m = (f: (x: Boundary) => number) => median(b.map(f).filter(Number.isFinite)).toFixed(0);
        const q = b.map((x) => x.queueMs);
        lines.push(
          `| ${label(mode)} | ${b.length} | ${m((x) => x.wrapUpMs)} | ${m((x) => x.queueMs)} (${Math.min(...q).toFixed(0)}–${Math.max(...q).toFixed(0)}) | ${m((x) => x.handlerStartMs)} | ${m((x) => x.engineSetupMs)} | ${m((x) => x.firstChunkMs)} | ${median(by(mode).map((x) => x.chunkMs)).toFixed(0)} |`,
        );
      }
      lines.push('');
      lines.push(
        `"Steady chunk" is the median time between two chunk acknowledgements of the big layer (a 4 MiB PATCH plus a checkpoint write to Azurite's table); (i) runs at ${one.length ? median(one.map((x) => x.chunkMs)).toFixed(0) : 'n/a'} ms. ` +
          '"First chunk after resume" adds the source\'s ranged GET to a steady chunk.',
      );
      lines.push('');
    }
    if (one.length) {
      lines.push('Attribution of the extra worker time against (i) (medians, seconds):');
      lines.push('');
      lines.push('| Mode | extra worker time | of which queue wait (idle) | the rest: resume work and noise | the rest per continuation | resume work measured per continuation |');
      lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
      for (const mode of BUDGET_MODES) {
        if (!by(mode).length) continue;
        const extra = med(mode, (x) => x.spanMs) - med('one', (x) => x.spanMs);
        const queue = med(mode, (x) => x.parts.queueMs);
        const continuations = med(mode, (x) => x.continuations);
        const measured = median(by(mode).flatMap((x) => x.boundaries.map((b) => b.wrapUpMs + b.handlerStartMs + b.engineSetupMs + Math.max(0, b.firstChunkMs - x.chunkMs))));
        lines.push(
          `| ${label(mode)} | ${s(extra)} | ${s(queue)} | ${s(extra - queue)} | ${continuations ? `${((extra - queue) / continuations).toFixed(0)} ms` : 'n/a'} | ${measured.toFixed(0)} ms |`,
        );
      }
      lines.push('');
      const oneSpans = one.map((x) => x.spanMs);
      lines.push(
        `"The rest" is what is left once the queue wait is taken away; it is within run-to-run noise of the transfer: (i)'s own worker time spans ${s(Math.min(...oneSpans))}–${s(Math.max(...oneSpans))} s. ` +
        '"Resume work measured" adds, per continuation, the previous invocation\'s wrap-up, the next one\'s handler start and engine set-up, and what its first chunk took beyond a steady one. ' +
          'It leaves out one cost that is not timed separately: when the budget runs out, the engine has already read the next 4 MiB from the source, and the continuation reads it again.',
      );
      lines.push('');
      lines.push(
        'Why the queue wait is what it is (src/local/queue-listener.ts, src/local/backoff.ts, which mirror the Functions host\'s queue listener): while an invocation runs, its listener keeps polling the empty queue, ' +
          'waiting 100, 200, 400, 800, 1600, 3200 ms (±20 % jitter) and then maxPollingInterval between polls, counted from the receive of the running message. ' +
          'Empty polls therefore fall about 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s after an invocation starts: a continuation queued when a 5 s budget ends waits for the poll near 6.3 s, one queued after a 1 s budget for the poll near 1.5 s, which is what the per-continuation table shows. ' +
          'With the deployed default budget (480 s) the back-off has long reached its 5 s cap, so a continuation waits 0–5 s, about 2.5 s on average: about 0.5 % of a 480 s invocation (derived from the schedule, not measured here).',
      );
      lines.push('');
    }
    lines.push('Requests per run (median), from the registries\' access logs:');
    lines.push('');
    lines.push('| Mode | to the target | to the source |');
    lines.push('| --- | --- | --- |');
    for (const mode of MODE_ORDER) {
      const r = by(mode);
      if (r.length) lines.push(`| ${label(mode)} | ${requestCell(r.map((x) => x.targetRequests))} | ${requestCell(r.map((x) => x.sourceRequests))} |`);
    }
    lines.push('');
    const cpu = (mode: Mode) => {
      const r = by(mode);
      const az = r.map((x) => x.azuriteCpuMs).filter((x): x is number => x !== undefined);
      return `${s(median(r.map((x) => x.hostCpuMs)))} s host${az.length ? `, ${s(median(az))} s Azurite` : ''}`;
    };
    lines.push(`CPU per run (median; "host" is the bench process: the local host, the handlers, the engine and the GET polling): ${MODE_ORDER.filter((m) => by(m).length).map((m) => `${label(m)}: ${cpu(m)}`).join('; ')}.`);
    lines.push('');
    const idles = report.resume.map((x) => x.idleBefore);
    lines.push(`Machine load: idle before each run median ${Math.round(median(idles) * 100)}%, lowest ${Math.round(Math.min(...idles) * 100)}% (the bench waits up to ${QUIET_WAIT_S} s for ${Math.round(QUIET_IDLE * 100)}%).`);
    lines.push('');
    const bad = report.resume.filter((x) => x.problems.length);
    lines.push(
      bad.length
        ? `**Integrity: ${bad.length} of ${report.resume.length} runs had problems:** ${bad.map((x) => `${x.mode} #${x.round + 1}: ${x.problems.join('; ')}`).join(' / ')}`
        : `Integrity: all ${report.resume.length} timed imports succeeded and verified: the target serves the source's exact manifest bytes and every blob; the status document counted every blob copied (none skipped or mounted), its continuations matched the invocations the host ran, and every continuation resumed the layer's upload at a non-zero offset.`,
    );
    lines.push('');
    lines.push('Every timed run, in order (worker time / end to end, seconds; continuations):');
    lines.push('');
    for (const mode of MODE_ORDER) {
      const r = by(mode);
      if (r.length) lines.push(`- ${label(mode)}: ${r.map((x) => `${s(x.spanMs)} / ${s(x.endToEndMs)} (${x.continuations})`).join(', ')}`);
    }
    lines.push('');
  }

  // 2. Submission
  if (report.submit) {
    const { samples, queued, accepted } = report.submit;
    lines.push('### Submission: POST /api/imports on loopback, with Azurite');
    lines.push('');
    lines.push(
      `Method: a load generator in a child process (bench/service-load.ts, Node \`http\` with keep-alive, so it does not share the host's event loop) sends ${SUBMIT_REQUESTS} POSTs per concurrency level, ` +
        'each a valid import with its own target tag; latency is first byte sent → last byte of the 202 read. ' +
        'The host runs only the `imports` HTTP function (the definitions list filtered to HTTP triggers), so no worker consumes the queue; each POST validates, HEADs the target tag on a real, empty docker-registry (the no-force pre-check), inserts the job row and sends the queue message. ' +
        'After a 100-request warm-up.',
    );
    lines.push('');
    lines.push('| Concurrency | requests | requests/s | p50 ms | p90 ms | p99 ms | max ms | mean ms | statuses |');
    lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
    for (const x of samples) {
      lines.push(
        `| ${x.concurrency} | ${x.requests} | ${x.perSecond.toFixed(0)} | ${x.p50.toFixed(1)} | ${x.p90.toFixed(1)} | ${x.p99.toFixed(1)} | ${x.max.toFixed(1)} | ${x.mean.toFixed(1)} | ${Object.entries(x.statuses).map(([k, v]) => `${k} × ${v}`).join(', ')} |`,
      );
    }
    lines.push('');
    lines.push('CPU per request and machine load during each run:');
    lines.push('');
    lines.push('| Concurrency | host (Functions + handler) | Azurite | load generator | machine busy | idle before | target-registry requests per POST |');
    lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | --- |');
    for (const x of samples) {
      lines.push(
        `| ${x.concurrency} | ${x.hostCpuPerRequestMs.toFixed(2)} ms | ${x.azuriteCpuPerRequestMs?.toFixed(2) ?? 'n/a'} ms | ${x.loadCpuPerRequestMs.toFixed(2)} ms | ${Math.round(x.machineBusy * 100)}% | ${Math.round(x.idleBefore * 100)}% | ${Object.entries(x.registryRequestsPerPost).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} |`,
      );
    }
    lines.push('');
    lines.push(`Queue check: ${accepted} jobs accepted (warm-up included); the \`imports\` queue held ${queued ?? 'n/a'} messages afterwards (nothing consumed them).`);
    lines.push('');
  }
  if (report.hostProblems) lines.push(`The host logged ${report.hostProblems} warnings or errors during the bench (printed on stderr).`, '');
  lines.push(END);
  return lines.join('\n');
}

/** Replaces the generated block of "Import service (issue 3)" (or the section's placeholder); touches nothing else. */
async function updateDoc(block: string): Promise<void> {
  let doc = await readFile(DOC_PATH, 'utf8').catch(() => '# Benchmarks\n');
  const start = doc.indexOf(START_PREFIX);
  const end = doc.indexOf(END);
  if (start >= 0 && end > start) {
    doc = doc.slice(0, start) + block + doc.slice(end + END.length);
  } else {
    const heading = doc.indexOf(SECTION_TITLE);
    if (heading < 0) {
      doc = `${doc.trimEnd()}\n\n${SECTION_TITLE}\n\n${block}\n`;
    } else {
      const bodyStart = heading + SECTION_TITLE.length;
      const next = doc.indexOf('\n## ', bodyStart);
      const bodyEnd = next < 0 ? doc.length : next + 1;
      // Keep notes written by hand under the heading; drop only the placeholder.
      const kept = doc.slice(bodyStart, bodyEnd).replace('_Not measured yet._', '').trim();
      doc = `${doc.slice(0, bodyStart)}\n\n${block}\n${kept ? `\n${kept}\n` : ''}${next < 0 ? '' : '\n'}${doc.slice(bodyEnd)}`;
    }
  }
  await writeFile(DOC_PATH, doc.endsWith('\n') ? doc : `${doc}\n`);
}

function commandLine(): string {
  const knobs = ['BENCH_SERVICE_RUNS', 'BENCH_SERVICE_WARMUP', 'BENCH_SERVICE_MODES', 'BENCH_BIG_MIB', 'BENCH_SUBMIT_REQUESTS', 'BENCH_SUBMIT_CONCURRENCY', 'BENCH_SERVICE_PARTS', 'BENCH_QUIET_IDLE', 'BENCH_QUIET_WAIT_S']
    .filter((k) => process.env[k] !== undefined && process.env[k] !== '')
    .map((k) => `${k}=${process.env[k]}`);
  return `npx tsc -p tsconfig.build.json && ${[...knobs, 'node dist/bench/service.js'].join(' ')}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const startedAt = Date.now();
  hostProblems = 0;
  const machine = describeServiceMachine();
  log(`machine: ${JSON.stringify(machine)}`);
  // A stray API key in the environment would make every request a 401.
  delete process.env.HOIST_API_KEY;

  const location = await mkdtemp(join(tmpdir(), 'hoist-bench-azurite-'));
  const azurite = await startAzurite({
    location,
    ports: { blob: await freePort(), queue: await freePort(), table: await freePort() },
    inMemoryPersistence: true,
    spawnProcess: (command, args, options) => {
      const child = spawnTracked(command, args, options, [location]);
      azuritePid = child.pid;
      return child;
    },
  });
  const source = await startRegistry();
  try {
    const settings: Record<string, string> = { AzureWebJobsStorage: azurite.connectionString };
    Object.assign(process.env, settings);
    installTracingEngine();
    const hostConfig = readHostConfig(ROOT, settings).queues;

    let t = Date.now();
    const image = await pushHugeLayer(source, BIG_MIB * MiB);
    log(`pushed ${image.title} (${image.blobCount} blobs) in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    const resume: ResumeSample[] = [];
    if (PARTS.has('resume')) {
      // Untimed: the first import pays for JIT, the tables' and queue's creation and a cold page cache.
      for (let i = 0; i < WARMUP; i++) await resumeRun(source, image, settings, 'one', -1 - i);
      for (let round = 0; round < RUNS; round++) {
        for (let i = 0; i < MODE_ORDER.length; i++) {
          const mode = MODE_ORDER[(i + round) % MODE_ORDER.length]!;
          resume.push(await resumeRun(source, image, settings, mode, round));
        }
      }
    }
    let submit: Report['submit'];
    if (PARTS.has('submit')) {
      t = Date.now();
      submit = await submission(source, image, settings);
      log(`submission bench took ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }

    const report: Report = {
      machine,
      command: commandLine(),
      image,
      resume,
      warmupRuns: WARMUP,
      ...(submit && { submit }),
      hostConfig: { maxPollingIntervalMs: hostConfig.maxPollingIntervalInMs, batchSize: hostConfig.batchSize, newBatchThreshold: hostConfig.newBatchThreshold },
      durationSeconds: (Date.now() - startedAt) / 1000,
      hostProblems,
    };
    const block = render(report);
    process.stdout.write(`${SECTION_TITLE}\n\n${block}\n`);
    const rawPath = join(tmpdir(), `hoist-bench-service-${Date.now()}.json`);
    await writeFile(rawPath, JSON.stringify(report, (k, v: unknown) => (k === 'pushed' ? undefined : v), 2));
    log(`raw samples: ${rawPath}`);
    if (WRITE_DOCS) {
      await updateDoc(block);
      log(`wrote ${DOC_PATH}`);
    }
    if (resume.some((x) => x.problems.length)) process.exitCode = 1;
  } finally {
    await source.stop();
    await azurite.stop();
    await rm(location, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
