/**
 * Process-wide memory settings for a process that streams blobs. Each entry point (the CLI, the
 * local host, the Functions registration) calls `boundProcessMemory` once; library code never
 * does, since both settings change the whole process.
 *
 * Measured on a 4-platform copy, these two were most of Hoist's peak RSS above Node's own:
 * 1. undici parses HTTP/1.1 with llhttp compiled to WebAssembly. V8 first compiles it with its
 *    baseline compiler (Liftoff) and, once the parser is hot, recompiles its one large
 *    state-machine function with TurboFan on a background thread, whose working memory lifted
 *    the peak by about 30 MiB. The parser only frames requests: blob bytes pass it by reference,
 *    so Liftoff's code costs no measurable time, and `--liftoff-only` keeps the peak down.
 * 2. Every socket read allocates a fresh Buffer outside V8's heap. V8 learns of them only
 *    through its external-memory accounting, which lets about 64 MiB of dead ones pile up before
 *    it collects them. A young-generation collection (a scavenge, well under a millisecond with
 *    a heap this small) frees them; one runs after every GARBAGE_BUDGET bytes streamed
 *    (`noteStreamed`, called by the stream every copied byte passes through: blob-stream.ts).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Bytes streamed between two young-generation collections: the dead Buffers allowed at most.
 * 8 MiB took 4–10 MiB off the peaks that 16 MiB left (4 × 64 MiB layers: 84–88 → 77–78 MiB
 * monolithic). 4 MiB raised them again: Buffers still in flight at a collection survive it, and
 * those that survive two are moved to the old generation, which only a full collection empties.
 */
const GARBAGE_BUDGET = 8 * 1024 * 1024;

type GarbageCollector = (options: { type: 'minor' }) => void;

// Process-wide on purpose: the heap these settings manage is the process's, not a copy's.
let collectYoung: (() => void) | undefined;
let streamedSinceCollection = 0;

/** Applies both settings to this process; later calls do nothing. */
export function boundProcessMemory(): void {
  if (collectYoung) return;
  // bin/hoist.js sets this one too, before it compiles the CLI: V8's code cache is keyed by flags.
  setFlagsFromString('--liftoff-only');
  // A flag set after start-up takes effect in contexts made afterwards: this one's global `gc`
  // is the only handle kept, so the main context gains no `gc` global.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as GarbageCollector;
  setFlagsFromString('--no-expose-gc');
  collectYoung = () => gc({ type: 'minor' });
}

/** Counts `bytes` just read from a socket; collects young garbage once the budget is spent. */
export function noteStreamed(bytes: number): void {
  if (!collectYoung) return;
  streamedSinceCollection += bytes;
  if (streamedSinceCollection < GARBAGE_BUDGET) return;
  streamedSinceCollection = 0;
  collectYoung();
}
