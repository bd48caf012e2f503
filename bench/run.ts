/**
 * `npm run bench`: the copy-engine benchmark of issue 2.
 *
 * 1. Wall-clock time of whole `hoist copy` and `skopeo copy` processes between local
 *    docker-registry instances on loopback: a source holding (a) 4 × 64 MiB layers and (b) 40
 *    small layers, and a FRESH EMPTY target for every single run, so no blob is skipped or
 *    mounted. Runs alternate between the tools; Hoist is also timed with `--chunk-size 4MiB` on
 *    (a). Every copy is checked afterwards: same manifest bytes (so the same digests) and every
 *    blob present.
 * 2. Peak RSS of `hoist copy` for one 1 GiB layer, monolithic and chunked (4 MiB), reported by
 *    the child itself (its /proc/self/status VmHWM at exit, via a `-r` preload) and cross-checked
 *    by polling /proc/PID/status from outside. Peak RSS is recorded for every Hoist run.
 * 3. A Markdown report against the issue's goals, printed and written to docs/benchmarks.md
 *    (section "Copy engine (issue 2)"; other sections are kept).
 *
 * Knobs (environment): BENCH_RUNS (timed runs per tool and image, default 5), BENCH_WARMUP
 * (untimed rounds first, default 1), BENCH_RSS_RUNS (runs per mode of the 1 GiB copy, default 2),
 * BENCH_BIG_MIB (size of the big layer, default 1024), BENCH_HOIST_ARGS (extra hoist flags, e.g.
 * "--concurrency 8", for experiments), BENCH_WRITE_DOCS=0 (print only), BENCH_QUIET_IDLE and
 * BENCH_QUIET_WAIT_S (before each run, wait up to 20 s for the CPU to be 80% idle over a second,
 * since other work on this 2-core machine would be measured along with the copy).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAccessLog, startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { SKOPEO_BINARY } from '../test/helpers/skopeo.js';
import { pushHugeLayer, pushLargeLayers, pushSmallLayers, verifyCopy, type BenchImage } from './images.js';
import { describeMachine, intEnv, median, MiB, runMeasured, tryRun, waitForQuiet, type RunResult } from './measure.js';
import { renderReport, updateBenchmarksDoc, type BenchReport, type Sample, type VariantKey } from './report.js';

const ROOT = resolve(__dirname, '..', '..');
const HOIST_BIN = join(ROOT, 'bin', 'hoist.js');
const DOC_PATH = join(ROOT, 'docs', 'benchmarks.md');
const CHILD_TIMEOUT_MS = 5 * 60_000;

const RUNS = intEnv('BENCH_RUNS', 5, 1);
const WARMUP = intEnv('BENCH_WARMUP', 1, 0);
const RSS_RUNS = intEnv('BENCH_RSS_RUNS', 2, 1);
const BIG_MIB = intEnv('BENCH_BIG_MIB', 1024, 1);
const HOIST_EXTRA = (process.env.BENCH_HOIST_ARGS ?? '').split(/\s+/).filter(Boolean);
const WRITE_DOCS = process.env.BENCH_WRITE_DOCS !== '0';
const QUIET_IDLE = Number(process.env.BENCH_QUIET_IDLE ?? '0.8');
const QUIET_WAIT_S = intEnv('BENCH_QUIET_WAIT_S', 20, 0);

interface Invocation {
  command: string;
  args: string[];
  rusage: boolean;
}

let authFile = '';

function invocation(variant: VariantKey, source: string, target: string): Invocation {
  switch (variant) {
    case 'hoist':
      return { command: process.execPath, args: [HOIST_BIN, 'copy', source, target, '--json', ...HOIST_EXTRA], rusage: true };
    case 'hoist-chunked':
      return { command: process.execPath, args: [HOIST_BIN, 'copy', source, target, '--json', '--chunk-size', '4MiB', ...HOIST_EXTRA], rusage: true };
    case 'skopeo':
      // An auth file with no credentials: nothing from the machine's config leaks in.
      return {
        command: SKOPEO_BINARY,
        args: ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--retry-times', '0', '--authfile', authFile, `docker://${source}`, `docker://${target}`],
        rusage: false,
      };
  }
}

function countByMethod(entries: Array<{ method: string }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of entries) counts[e.method] = (counts[e.method] ?? 0) + 1;
  return counts;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * One copy into a fresh, empty target registry; throws if the tool fails. Children are spawned
 * asynchronously on purpose: the registries log into pipes this process reads, and a blocked
 * event loop (execFileSync, spawnSync) fills them and stalls the registries mid-request.
 */
async function oneRun(source: TestRegistry, image: BenchImage, variant: VariantKey, round: number, warmup: boolean, total = RUNS): Promise<Sample> {
  const target = await startRegistry();
  try {
    const ref = (host: string) => `${host}/${image.repository}:${image.tag}`;
    const inv = invocation(variant, ref(source.host), ref(target.host));
    const idleBefore = await waitForQuiet(QUIET_IDLE, QUIET_WAIT_S * 1000);
    const sourceLogStart = source.logLines.length;
    const result: RunResult = await runMeasured(inv.command, inv.args, { rusage: inv.rusage, timeoutMs: CHILD_TIMEOUT_MS });
    if (result.exitCode !== 0) {
      throw new Error(`${variant} copy of ${image.title} failed (exit ${result.exitCode ?? result.signal}):\n${result.stderr.slice(-2000)}\n${result.stdout.slice(-2000)}`);
    }
    // Access-log lines arrive through a pipe just after each response: let them land.
    await sleep(150);
    const targetRequests = countByMethod(target.accessLog());
    const sourceRequests = countByMethod(parseAccessLog(source.logLines.slice(sourceLogStart)));
    const problems = await verifyCopy(target, image);
    const outcome = copyOutcome(variant, result, image);
    if (outcome) problems.push(outcome);
    const sample: Sample = {
      image: image.key,
      variant,
      round,
      warmup,
      wallMs: result.wallMs,
      idleBefore,
      cpuMs: variant === 'skopeo' ? result.polledCpuMs : result.cpuMs,
      peakKiB: result.peakKiB,
      rusageMaxRssKiB: result.rusageMaxRssKiB,
      hwmKiB: result.hwmKiB,
      problems,
      targetRequests,
      sourceRequests,
      ...(variant === 'skopeo' ? {} : { phases: hoistPhases(result) }),
    };
    log(
      `${warmup ? 'warm-up' : `run ${round + 1}/${total}`} ${image.title.padEnd(22)} ${variant.padEnd(13)} ${(result.wallMs / 1000).toFixed(3)} s` +
        `${result.peakKiB ? `  peak ${(result.peakKiB / 1024).toFixed(1)} MiB` : ''}${result.hwmKiB ? `  polled ${(result.hwmKiB / 1024).toFixed(1)} MiB` : ''}` +
        `  cpu ${(((variant === 'skopeo' ? result.polledCpuMs : result.cpuMs) ?? NaN) / 1000).toFixed(2)} s  idle-before ${(idleBefore * 100).toFixed(0)}%` +
        `${problems.length ? `  PROBLEMS: ${problems.join('; ')}` : '  verified'}`,
    );
    return sample;
  } finally {
    await target.stop();
  }
}

/** Confirms every blob was really moved (nothing skipped or mounted). */
function copyOutcome(variant: VariantKey, result: RunResult, image: BenchImage): string | undefined {
  if (variant === 'skopeo') {
    return /skipped|already exists/i.test(result.stdout + result.stderr) ? 'skopeo reports skipped blobs' : undefined;
  }
  const last = result.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(last) as { blobs?: { copied: number; skipped: number; mounted: number } };
    const blobs = parsed.blobs;
    if (!blobs) return 'hoist printed no result';
    if (blobs.copied !== image.blobCount || blobs.skipped || blobs.mounted) return `hoist: ${blobs.copied} copied, ${blobs.skipped} skipped, ${blobs.mounted} mounted of ${image.blobCount}`;
    return undefined;
  } catch {
    return `hoist printed no JSON result: ${last.slice(0, 200)}`;
  }
}

/**
 * Where a Hoist run's time went, from the timestamps of its --json progress events (ms
 * resolution) relative to the spawn: start-up and source manifest (→ resolved), the target's
 * existence checks (→ plan), blob transfers (→ last blob-done), then manifests, tag and exit.
 */
function hoistPhases(result: RunResult): Sample['phases'] {
  const events = result.stderr
    .split('\n')
    .map((line) => {
      try {
        return JSON.parse(line) as { type?: string; time?: string };
      } catch {
        return undefined;
      }
    })
    .filter((e): e is { type: string; time: string } => typeof e?.type === 'string' && typeof e.time === 'string')
    .map((e) => ({ type: e.type, at: Date.parse(e.time) - result.startedAtEpochMs }));
  const first = (type: string) => events.find((e) => e.type === type)?.at;
  const last = (type: string) => [...events].reverse().find((e) => e.type === type)?.at;
  const resolved = first('resolved');
  const plan = first('plan');
  const blobsDone = last('blob-done');
  if (resolved === undefined || plan === undefined || blobsDone === undefined) return undefined;
  return { toResolvedMs: resolved, existenceChecksMs: plan - resolved, blobsMs: blobsDone - plan, finishMs: result.wallMs - blobsDone };
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function commandLine(): string {
  const knobs = ['BENCH_RUNS', 'BENCH_WARMUP', 'BENCH_RSS_RUNS', 'BENCH_BIG_MIB', 'BENCH_HOIST_ARGS', 'BENCH_QUIET_IDLE', 'BENCH_QUIET_WAIT_S']
    .filter((k) => process.env[k] !== undefined && process.env[k] !== '')
    .map((k) => `${k}=${/\s/.test(process.env[k] ?? '') ? `'${process.env[k]}'` : process.env[k]}`);
  const base = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : 'node dist/bench/run.js';
  return [...knobs, base].join(' ');
}

/** Process start-up alone: bare node, `hoist --version` (loads the CLI's modules), skopeo. */
async function measureStartup(): Promise<BenchReport['startup']> {
  const runs: Record<'node' | 'hoist' | 'skopeo', number[]> = { node: [], hoist: [], skopeo: [] };
  let hoistVersionPeakKiB: number | undefined;
  for (let i = 0; i < 7; i++) {
    runs.node.push((await runMeasured(process.execPath, ['-e', '0'])).wallMs);
    const hoist = await runMeasured(process.execPath, [HOIST_BIN, '--version'], { rusage: true });
    runs.hoist.push(hoist.wallMs);
    runs.skopeo.push((await runMeasured(SKOPEO_BINARY, ['--version'])).wallMs);
    hoistVersionPeakKiB = Math.max(hoistVersionPeakKiB ?? 0, hoist.peakKiB ?? 0) || undefined;
  }
  return { nodeMs: median(runs.node), hoistVersionMs: median(runs.hoist), skopeoVersionMs: median(runs.skopeo), hoistVersionPeakKiB };
}
async function main(): Promise<void> {
  const startedAt = Date.now();
  const workDir = await mkdtemp(join(tmpdir(), 'hoist-bench-'));
  authFile = join(workDir, 'auth.json');
  await writeFile(authFile, '{"auths":{}}\n');

  const machine = { ...describeMachine(ROOT), skopeo: tryRun(SKOPEO_BINARY, ['--version']) };
  log(`machine: ${JSON.stringify(machine)}`);

  const startup = await measureStartup();
  log(`start-up medians: ${JSON.stringify(startup)}`);

  const source = await startRegistry();
  const samples: Sample[] = [];
  try {
    // The 1 GiB push goes first, while this process is still small, so its effect on our own
    // peak RSS shows whether the fixture pusher streams (it must not buffer the layer).
    const rssBefore = process.resourceUsage().maxRSS;
    let t = Date.now();
    const huge = await pushHugeLayer(source, BIG_MIB * MiB);
    const rssAfter = process.resourceUsage().maxRSS;
    const pushCheck = { bytes: huge.totalBytes, seconds: (Date.now() - t) / 1000, peakGrowthMiB: (rssAfter - rssBefore) / 1024, peakMiB: rssAfter / 1024 };
    log(`pushed ${huge.title} in ${pushCheck.seconds.toFixed(1)} s; bench process peak RSS ${(rssBefore / 1024).toFixed(0)} → ${(rssAfter / 1024).toFixed(0)} MiB`);
    if (pushCheck.peakGrowthMiB > 256) throw new Error(`pushing the ${huge.title} grew this process by ${pushCheck.peakGrowthMiB.toFixed(0)} MiB: the fixture pusher is buffering it`);

    t = Date.now();
    const large = await pushLargeLayers(source);
    const small = await pushSmallLayers(source);
    log(`pushed ${large.title} and ${small.title} in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // 1. Wall time, alternating tools, fresh target every run.
    const timed: Array<{ image: BenchImage; variants: VariantKey[] }> = [
      { image: large, variants: ['hoist', 'skopeo', 'hoist-chunked'] },
      { image: small, variants: ['hoist', 'skopeo'] },
    ];
    for (let round = -WARMUP; round < RUNS; round++) {
      for (const { image, variants } of timed) {
        for (const variant of rotate(variants, Math.max(0, round))) {
          samples.push(await oneRun(source, image, variant, round, round < 0));
        }
      }
    }

    // 2. Peak RSS for one big layer, monolithic and chunked, alternating.
    for (let round = 0; round < RSS_RUNS; round++) {
      for (const variant of rotate<VariantKey>(['hoist', 'hoist-chunked'], round)) {
        samples.push(await oneRun(source, huge, variant, round, false, RSS_RUNS));
      }
    }

    const report: BenchReport = {
      machine,
      command: commandLine(),
      runs: RUNS,
      warmup: WARMUP,
      rssRuns: RSS_RUNS,
      quiet: { minIdle: QUIET_IDLE, maxWaitSeconds: QUIET_WAIT_S },
      hoistExtraArgs: HOIST_EXTRA,
      images: { large, small, huge },
      startup,
      pushCheck,
      samples,
      durationSeconds: (Date.now() - startedAt) / 1000,
    };
    const markdown = renderReport(report);
    process.stdout.write(`${markdown}\n`);
    const rawPath = join(tmpdir(), `hoist-bench-${Date.now()}.json`);
    await writeFile(rawPath, JSON.stringify(report, (k, v: unknown) => (k === 'pushed' ? undefined : v), 2));
    log(`raw samples: ${rawPath}`);
    if (WRITE_DOCS) {
      await updateBenchmarksDoc(DOC_PATH, markdown);
      log(`wrote ${DOC_PATH}`);
    }
    const failed = samples.filter((s) => s.problems.length);
    if (failed.length) {
      log(`${failed.length} copies did not verify`);
      process.exitCode = 1;
    }
  } finally {
    await source.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

