/**
 * What the handlers need, built from the app settings in `process.env` when first asked for: the
 * settings, the job storage (opened once per connection string and table names) and the copy
 * engine. Tests swap the engine with `setEngine`.
 */
import { copy, findExistingTags, resolveDigest } from '../copy/index.js';
import { openJobStorage, type JobStorage } from '../jobs/job-storage.js';
import { SecretBox } from '../jobs/secret-box.js';
import { Settings } from '../jobs/settings.js';

/** The engine entry points the functions call. */
export interface Engine {
  copy: typeof copy;
  findExistingTags: typeof findExistingTags;
  resolveDigest: typeof resolveDigest;
}

const defaultEngine: Engine = { copy, findExistingTags, resolveDigest };
let engine: Engine = defaultEngine;
const storages = new Map<string, Promise<JobStorage>>();

/** The settings as they are now (read on every invocation; cheap). */
export function currentSettings(): Settings {
  return new Settings(process.env);
}

/** The job storage for the current settings, opened (tables created) on first use. */
export function jobStorage(settings: Settings = currentSettings()): Promise<JobStorage> {
  const connectionString = settings.storageConnectionString;
  const jobsTable = settings.jobsTable;
  const checkpointsTable = settings.checkpointsTable;
  const key = JSON.stringify([connectionString, jobsTable, checkpointsTable]);
  let storage = storages.get(key);
  if (!storage) {
    storage = openJobStorage(connectionString, { jobsTable, checkpointsTable });
    // A failed open (storage not up yet) is retried by the next invocation rather than cached.
    storage.catch(() => storages.delete(key));
    storages.set(key, storage);
  }
  return storage;
}

/** The box for HOIST_SECRET_KEY, or undefined when it is not set. Throws when it is malformed. */
export function secretBox(settings: Settings = currentSettings()): SecretBox | undefined {
  return SecretBox.fromSetting(settings.secretKey);
}

/** The copy engine in use. */
export function currentEngine(): Engine {
  return engine;
}

/** Replaces engine entry points (tests); call with no argument to restore the real engine. */
export function setEngine(replacement?: Partial<Engine>): void {
  engine = { ...defaultEngine, ...replacement };
}
