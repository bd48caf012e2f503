/**
 * boundProcessMemory: a young-generation collection after every 8 MiB streamed, so dead socket
 * Buffers are freed at that pace instead of when V8's external-memory accounting gets to them
 * (37–64 MiB later). What that does to peak RSS is measured in the benchmarks; here, that the
 * collections happen. Run in child processes, since the settings are process-wide.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const MODULE = join(__dirname, '..', '..', 'dist', 'src', 'registry', 'process-memory.js');
const MiB = 1024 * 1024;

/** Young-generation collections in a child that streams `reads` (bytes each) and allocates nothing else. */
function youngCollections(bound: boolean, reads: number[]): number {
  const script = `
    const { PerformanceObserver, constants } = require('node:perf_hooks');
    const { boundProcessMemory, noteStreamed } = require(${JSON.stringify(MODULE)});
    if (${bound}) boundProcessMemory();
    let young = 0;
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) young++;
    });
    observer.observe({ entryTypes: ['gc'] });
    for (const bytes of ${JSON.stringify(reads)}) noteStreamed(bytes);
    // GC entries reach observers a turn or two of the event loop later; twenty is plenty.
    let turns = 0;
    const report = () => {
      if (++turns < 20) return setImmediate(report);
      observer.disconnect();
      process.stdout.write(String(young));
    };
    setImmediate(report);`;
  return Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
}

describe('boundProcessMemory', () => {
  it('collects young garbage once per 8 MiB streamed', () => {
    // 64 MiB in 64 KiB reads: eight budgets spent.
    expect(youngCollections(true, Array.from({ length: 1024 }, () => 64 * 1024))).toBe(8);
  });

  it('does not collect before the budget is spent', () => {
    expect(youngCollections(true, [8 * MiB - 1])).toBe(0);
  });

  it('leaves a process that did not ask for it alone', () => {
    expect(youngCollections(false, Array.from({ length: 1024 }, () => 64 * 1024))).toBe(0);
  });
});
