import { defineConfig } from 'vitest/config';

// Tests start real registries and Azurite processes: give them time, and run files in
// separate forks so each file owns its servers.
export default defineConfig({
  test: {
    // HOIST_TEST_FILES (comma-separated globs) narrows the run, for a partial mutation run.
    include: process.env.HOIST_TEST_FILES?.split(',') ?? ['test/**/*.test.ts'],
    // Globals, so test files (CommonJS TypeScript like src/) need no import of the ESM-only vitest.
    globals: true,
    testTimeout: 120_000,
    // Hooks start registries and Azurite, and some compile the whole app with tsc (24-30 s alone on
    // 2 cores, more beside another worker): 300 s is a safety net for a loaded machine, no goal.
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    // `npm run test:fast` leaves these out (`--tags-filter='!slow'`); docs/architecture.md (Tests)
    // says what each costs.
    tags: [{ name: 'slow', description: 'a stress or crash case taking about 4 s or more of test time on 2 cores' }],
    // The JSON report gives .ci/run the counts for its closing "N passed, N failed" line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results.json' },
  },
});
