// Mutation testing (`npm run mutate`): does the suite notice when the copy engine, the registry
// client or the job model is broken? Too slow for CI on 2 cores; see docs/mutation-testing.md.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.config.mts', related: true },
  mutate: [
    'src/copy/**/*.ts',
    'src/registry/**/*.ts',
    'src/jobs/job-record.ts',
    'src/jobs/job-store.ts',
    'src/jobs/checkpoint-store.ts',
    'src/jobs/job-lease.ts',
    'src/jobs/status-document.ts',
    'src/jobs/import-request.ts',
    'src/jobs/run-import.ts',
  ],
  // The CLI tests run dist/, built from the unmutated sources: they can fail a mutant only
  // through code they load in-process. Build once so the sandbox has dist/ at all.
  buildCommand: 'npm run build',
  coverageAnalysis: 'perTest',
  // Tests start real registries and Azurite: a mutant that hangs one must time out, not stall.
  timeoutMS: 60_000,
  concurrency: 1,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
