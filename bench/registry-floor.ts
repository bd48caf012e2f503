/**
 * `node dist/bench/registry-floor.js`: what uploading costs the registry alone, so the chunked
 * mode's overhead can be split between Hoist and docker-registry.
 *
 * Four 64 MiB blobs (the shape of image (a)) are held in memory and uploaded to a new, empty
 * registry, four at a time, through Hoist's registry client: no source registry, no reading, no
 * hashing by the client. Once as one streamed PUT per blob, once as 4 MiB PATCHes with the last
 * chunk in the closing PUT (what `hoist copy --chunk-size 4MiB` sends). The modes alternate;
 * BENCH_FLOOR_RUNS (default 7) runs of each; medians are printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { RegistryClient } from '../src/registry/client.js';
import { RegistryHosts } from '../src/registry/hosts.js';
import { parseReference } from '../src/registry/reference.js';
import { startRegistry } from '../test/helpers/registry.js';
import { intEnv, median, MiB } from './measure.js';

const RUNS = intEnv('BENCH_FLOOR_RUNS', 7, 1);
const CHUNK = 4 * MiB;
type Mode = 'one PUT per blob' | '4 MiB PATCHes';

const blobs = Array.from({ length: 4 }, () => {
  const bytes = randomBytes(64 * MiB);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
});

async function uploadAll(mode: Mode): Promise<number> {
  const registry = await startRegistry();
  try {
    const ref = parseReference(`${registry.host}/floor/blobs:v1`);
    const client = RegistryClient.for(ref.registry, new RegistryHosts());
    const started = process.hrtime.bigint();
    await Promise.all(
      blobs.map(async ({ bytes, digest }) => {
        const session = await client.startUpload(ref);
        if (session === 'mounted') throw new Error('a new registry cannot mount');
        if (mode === 'one PUT per blob') return client.completeUpload(ref, session, digest, { stream: Readable.from([bytes]), length: bytes.length });
        let current = session;
        for (let offset = 0; offset + CHUNK < bytes.length; offset += CHUNK) current = await client.patchChunk(ref, current, bytes.subarray(offset, offset + CHUNK));
        return client.completeUpload(ref, current, digest, bytes.subarray(current.offset));
      }),
    );
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    await registry.stop();
  }
}

async function main(): Promise<void> {
  const times: Record<Mode, number[]> = { 'one PUT per blob': [], '4 MiB PATCHes': [] };
  for (let run = 0; run < RUNS; run++) {
    const order: Mode[] = run % 2 ? ['4 MiB PATCHes', 'one PUT per blob'] : ['one PUT per blob', '4 MiB PATCHes'];
    for (const mode of order) times[mode].push(await uploadAll(mode));
  }
  for (const [mode, list] of Object.entries(times)) {
    process.stdout.write(`${mode}: median ${(median(list) / 1000).toFixed(3)} s (${list.map((t) => (t / 1000).toFixed(3)).join(' ')})\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
