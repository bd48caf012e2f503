/**
 * App settings for the local host, read the way `func start` reads them: the `Values` of
 * `local.settings.json`, with the process environment taking precedence (on Azure, app settings
 * ARE environment variables, so code reading `process.env` sees the same thing in both places).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readStorageConnection, type StorageConnection } from '../jobs/storage-connection.js';

/** App settings by name; values are always strings, as on Azure. */
export type AppSettings = Readonly<Record<string, string>>;

/** The settings file `func start` reads; it holds secrets, so .gitignore keeps it out of git. */
export const LOCAL_SETTINGS_FILE = 'local.settings.json';
/**
 * The committed defaults, read when there is no local.settings.json, so that a fresh clone runs
 * with `npm install && npm start` (Azurite storage, a loopback target registry).
 */
export const SAMPLE_SETTINGS_FILE = 'local.settings.sample.json';

/** The connection setting the host uses when a trigger names none. */
export const DEFAULT_STORAGE_SETTING = 'AzureWebJobsStorage';

/**
 * Reads `local.settings.json` from `projectRoot` (or, when it is absent, the committed sample)
 * and overlays `env`.
 *
 * @throws Error when the file is not valid JSON, or is encrypted (`IsEncrypted: true`, which only
 *   Core Tools can decrypt).
 */
export function readLocalSettings(projectRoot: string, env: NodeJS.ProcessEnv = process.env): AppSettings {
  const file = localSettingsFile(projectRoot);
  const values: Record<string, string> = file ? readValues(file) : {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined) values[name] = value;
  }
  return Object.freeze(values);
}

/** The settings file {@link readLocalSettings} reads in `projectRoot`: local.settings.json, else the sample, else none. */
export function localSettingsFile(projectRoot: string): string | undefined {
  return [LOCAL_SETTINGS_FILE, SAMPLE_SETTINGS_FILE].map((name) => path.join(projectRoot, name)).find((candidate) => existsSync(candidate));
}

/**
 * What `npm start` says before it starts: which settings file it read (the sample when
 * local.settings.json is missing, so the caller knows where to change them) and which registry
 * imports write to, and where that came from.
 */
export function describeStartup(projectRoot: string, settings: AppSettings, env: NodeJS.ProcessEnv = process.env): string[] {
  const file = localSettingsFile(projectRoot);
  const lines = [
    file === undefined
      ? `settings: the environment only (neither ${LOCAL_SETTINGS_FILE} nor ${SAMPLE_SETTINGS_FILE} is in ${projectRoot})`
      : path.basename(file) === SAMPLE_SETTINGS_FILE
        ? `settings: ${file} (there is no ${LOCAL_SETTINGS_FILE}: copy the sample to it to change them), then the environment`
        : `settings: ${file}, then the environment`,
  ];
  const target = settings.HOIST_TARGET_REGISTRY;
  const from = env.HOIST_TARGET_REGISTRY !== undefined ? 'from the environment' : `from ${file === undefined ? 'nowhere' : path.basename(file)}`;
  lines.push(target ? `target registry: ${target} (HOIST_TARGET_REGISTRY, ${from}): every import writes there` : 'target registry: none (HOIST_TARGET_REGISTRY is not set): imports land in local OCI image layouts, as said below');
  return lines;
}

function readValues(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const document = (parsed ?? {}) as { IsEncrypted?: unknown; Values?: unknown };
  if (document.IsEncrypted === true) {
    throw new Error(`${file} is encrypted; decrypt it with "func settings decrypt" or set IsEncrypted to false`);
  }
  const values: Record<string, string> = {};
  if (document.Values && typeof document.Values === 'object') {
    for (const [name, value] of Object.entries(document.Values)) {
      // Core Tools accepts numbers and booleans here and passes them on as text; so do we.
      if (value !== null && value !== undefined && typeof value !== 'object') values[name] = String(value);
    }
  }
  return values;
}

/**
 * Copies settings the environment lacks into it, so handlers that read `process.env` see
 * `local.settings.json` values, as they do under `func start`. Existing variables are kept.
 */
export function applySettingsToEnvironment(settings: AppSettings, env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, value] of Object.entries(settings)) {
    if (env[name] === undefined) env[name] = value;
  }
}

/**
 * Replaces each `%NAME%` in `text` with the setting `NAME`, the host's binding-expression
 * indirection (e.g. `schedule: '%HOIST_RESYNC_SCHEDULE%'`).
 *
 * @throws Error naming the missing setting, as the host refuses to start such a function.
 */
export function resolveSettingReferences(text: string, settings: AppSettings): string {
  return text.replace(/%([^%\s]+)%/g, (_, name: string) => {
    const value = settings[name];
    if (value === undefined) throw new Error(`"${text}" refers to the app setting ${name}, which is not set`);
    return value;
  });
}

/**
 * The storage connection a trigger's `connection` names. Like the host: an empty name means
 * `AzureWebJobsStorage`, and `X` also finds `AzureWebJobsX`; each is a connection string or an
 * identity-based connection (`X__accountName`, `X__queueServiceUri`, …).
 *
 * @throws Error naming the setting when it is missing, ConfigurationError when it is malformed.
 */
export function resolveStorageConnection(settings: AppSettings, connection: string | undefined): StorageConnection {
  const name = connection && connection.length > 0 ? connection : DEFAULT_STORAGE_SETTING;
  const found = findStorageConnection(settings, name) ?? findStorageConnection(settings, `AzureWebJobs${name}`);
  if (!found) {
    throw new Error(
      `the storage connection setting "${name}" is not set; add it to ${LOCAL_SETTINGS_FILE} Values ` +
        `(UseDevelopmentStorage=true runs against Azurite, ${name}__accountName connects with your Azure identity) or to the environment`,
    );
  }
  return found;
}

/** The connection `name` gives, when any of its settings is set (the host's own storage is optional here). */
export function findStorageConnection(settings: AppSettings, name: string): StorageConnection | undefined {
  const prefix = `${name}__`;
  const given = Object.keys(settings).some((key) => (key === name || key.startsWith(prefix)) && settings[key]?.trim());
  return given ? readStorageConnection(settings, name) : undefined;
}

/** Tells whether a connection string asks for the local storage emulator. */
export function isDevelopmentStorage(connectionString: string | undefined): boolean {
  return /(^|;)\s*UseDevelopmentStorage\s*=\s*true\s*(;|$)/i.test(connectionString ?? '');
}
