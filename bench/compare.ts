/**
 * `node dist/bench/compare.js [options] BIN...`: how builds of Hoist compare with each other and
 * with skopeo, for judging one change. Each BIN is a `bin/hoist.js` (of this checkout, or of
 * another one built with `npm run build`). Every round runs each BIN and skopeo once per image,
 * alternating the order, each into a new, empty registry, and checks the copy; then it prints
 * median wall and CPU time per variant, and the highest peak RSS of each Hoist variant.
 *
 * Options: `--images ab` (a: 4 × 64 MiB layers, b: 40 small layers, c: one 256 MiB layer, which
 * is not gzip and so is left out for skopeo, which would compress it under a new digest),
 * `--rounds N` (default 6), `--chunk-size SIZE` (adds a chunked run of every BIN).
 * Example: `node dist/bench/compare.js --images ab ../before/bin/hoist.js bin/hoist.js`.
 *
 * Unlike `npm run bench` (bench/run.ts) it neither waits for a quiet machine nor writes
 * docs/benchmarks.md: it is a quick A/B, so run the variants you compare in one invocation.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { SKOPEO_BINARY } from '../test/helpers/skopeo.js';
import { pushHugeLayer, pushLargeLayers, pushSmallLayers, verifyCopy, type BenchImage } from './images.js';
import { median, MiB, runMeasured } from './measure.js';

interface Variant {
  name: string;
  command: string;
  args: (source: string, target: string) => string[];
  rusage: boolean;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { images: { type: 'string', default: 'ab' }, rounds: { type: 'string', default: '6' }, 'chunk-size': { type: 'string' } },
  });
  const rounds = Number(values.rounds);
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error(`--rounds "${values.rounds}": a whole number of at least 1`);
  if (!/^[abc]+$/.test(values.images)) throw new Error(`--images "${values.images}": letters from a (4 × 64 MiB), b (40 small layers), c (one 256 MiB layer)`);
  if (positionals.length === 0) throw new Error('name at least one bin/hoist.js to run');

  const authDir = await mkdtemp(join(tmpdir(), 'hoist-compare-'));
  const authFile = join(authDir, 'auth.json');
  await writeFile(authFile, '{"auths":{}}');
  const variants: Variant[] = positionals.flatMap((bin, i) => {
    const path = resolve(bin);
    const name = `${i + 1}:${bin}`;
    const plain: Variant = { name, command: process.execPath, args: (s, t) => [path, 'copy', s, t, '--json'], rusage: true };
    const chunkSize = values['chunk-size'];
    return chunkSize ? [plain, { ...plain, name: `${name} --chunk-size ${chunkSize}`, args: (s, t) => [...plain.args(s, t), '--chunk-size', chunkSize] }] : [plain];
  });
  variants.push({
    name: 'skopeo',
    command: SKOPEO_BINARY,
    args: (s, t) => ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--retry-times', '0', '--authfile', authFile, `docker://${s}`, `docker://${t}`],
    rusage: false,
  });

  const source = await startRegistry();
  try {
    const images: Array<BenchImage & { skopeo: boolean }> = [];
    if (values.images.includes('a')) images.push({ ...(await pushLargeLayers(source)), skopeo: true });
    if (values.images.includes('b')) images.push({ ...(await pushSmallLayers(source)), skopeo: true });
    if (values.images.includes('c')) images.push({ ...(await pushHugeLayer(source, 256 * MiB)), skopeo: false });
    const samples = new Map<string, { wall: number[]; cpu: number[]; peakKiB: number[] }>();
    for (let round = 0; round < rounds; round++) {
      for (const image of images) {
        const order = round % 2 ? [...variants].reverse() : variants;
        for (const variant of order) {
          if (variant.name === 'skopeo' && !image.skopeo) continue;
          const target: TestRegistry = await startRegistry();
          try {
            const ref = (host: string) => `${host}/${image.repository}:${image.tag}`;
            const run = await runMeasured(variant.command, variant.args(ref(source.host), ref(target.host)), { rusage: variant.rusage, timeoutMs: 5 * 60_000 });
            if (run.exitCode !== 0) throw new Error(`${variant.name} failed on ${image.title} (exit ${run.exitCode ?? run.signal}):\n${run.stderr.slice(-2000)}`);
            const problems = await verifyCopy(target, image);
            if (problems.length) throw new Error(`${variant.name} on ${image.title}: ${problems.join('; ')}`);
            const key = `${image.title} | ${variant.name}`;
            const entry = samples.get(key) ?? { wall: [], cpu: [], peakKiB: [] };
            entry.wall.push(run.wallMs);
            if (run.peakKiB !== undefined) entry.peakKiB.push(run.peakKiB);
            const cpu = variant.rusage ? run.cpuMs : run.polledCpuMs;
            if (cpu !== undefined) entry.cpu.push(cpu);
            samples.set(key, entry);
          } finally {
            await target.stop();
          }
        }
      }
      process.stderr.write(`round ${round + 1}/${rounds} done\n`);
    }
    for (const [key, { wall, cpu, peakKiB }] of samples) {
      const cpuText = cpu.length ? `, CPU ${(median(cpu) / 1000).toFixed(3)} s` : '';
      const peakText = peakKiB.length ? `, peak RSS ${(Math.max(...peakKiB) / 1024).toFixed(1)} MiB (${peakKiB.map((k) => (k / 1024).toFixed(1)).join(' ')})` : '';
      process.stdout.write(`${key}: wall ${(median(wall) / 1000).toFixed(3)} s (${wall.map((w) => (w / 1000).toFixed(3)).join(' ')})${cpuText}${peakText}\n`);
    }
  } finally {
    await source.stop();
    await rm(authDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
