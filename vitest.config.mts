import { defineConfig } from 'vitest/config';

// Tests start real registries and Azurite processes: give them time, and run files in
// separate forks so each file owns its servers.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Globals, so test files (CommonJS TypeScript like src/) need no import of the ESM-only vitest.
    globals: true,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    // The JSON report gives .ci/run the counts for its closing "N passed, N failed" line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results.json' },
  },
});
