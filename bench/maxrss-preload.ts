/**
 * Preloaded into a measured Node process (`node -r dist/bench/maxrss-preload.js …`): when the
 * process exits, it writes its peak resident set size and CPU time (user + system) to the file
 * named by BENCH_RUSAGE_FILE.
 *
 * The peak is VmHWM from /proc/self/status, the high-water mark of this process image's own
 * memory. getrusage's maxRSS is written too but is not used: Linux carries the RSS of the
 * pre-exec image into it, and a child forked from a big parent (the bench itself holds the
 * test images) starts out as a copy of that parent, so maxRSS reports the parent's size.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.BENCH_RUSAGE_FILE;
if (file) {
  process.on('exit', () => {
    try {
      const status = readFileSync('/proc/self/status', 'utf8');
      const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
      const usage = process.resourceUsage();
      writeFileSync(file, JSON.stringify({ vmHwmKiB: hwm ? Number(hwm[1]) : undefined, maxRssKiB: usage.maxRSS, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000 }));
    } catch {
      // The parent reports the missing figure.
    }
  });
}
