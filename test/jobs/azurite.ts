/**
 * Job storage on a private Azurite for one test file (the Azurite itself: test/helpers/azurite.ts,
 * which benchmarks use too, so it carries no test-runner globals).
 */
import { openJobStorage, type JobStorage } from '../../src/jobs/job-storage.js';
import { startAzurite, type TestAzurite } from '../helpers/azurite.js';

export { startAzurite, type TestAzurite } from '../helpers/azurite.js';

/**
 * Starts a private Azurite for the calling test file, with the job tables and queue opened on it.
 * Read `.storage` inside tests (it is set in beforeAll).
 */
export function useJobStorage(): { storage: JobStorage } {
  const holder = {} as { storage: JobStorage };
  let azurite: TestAzurite | undefined;
  beforeAll(async () => {
    azurite = await startAzurite();
    holder.storage = await openJobStorage(azurite.connectionString);
  });
  afterAll(async () => {
    await azurite?.stop();
  });
  return holder;
}
