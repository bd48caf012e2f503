import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  applySettingsToEnvironment,
  describeStartup,
  isDevelopmentStorage,
  readLocalSettings,
  resolveSettingReferences,
  resolveStorageConnection,
} from '../../src/local/settings.js';
import { PROJECT_ROOT } from './support.js';

describe('readLocalSettings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hoist-settings-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (document: unknown) => writeFileSync(path.join(dir, 'local.settings.json'), typeof document === 'string' ? document : JSON.stringify(document));

  it('reads Values, lets the environment override them, and turns numbers into text', () => {
    write({ IsEncrypted: false, Values: { A: 'from-file', B: 'from-file', N: 5, FLAG: true }, Host: { LocalHttpPort: 7071 } });
    expect(readLocalSettings(dir, { B: 'from-env', C: 'env-only' })).toEqual({ A: 'from-file', B: 'from-env', N: '5', FLAG: 'true', C: 'env-only' });
  });

  it('works without a settings file', () => {
    expect(readLocalSettings(dir, { X: '1' })).toEqual({ X: '1' });
  });

  it('falls back to the committed sample, so a fresh clone starts', () => {
    writeFileSync(path.join(dir, 'local.settings.sample.json'), JSON.stringify({ Values: { AzureWebJobsStorage: 'UseDevelopmentStorage=true', A: 'sample' } }));
    expect(readLocalSettings(dir, {})).toEqual({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', A: 'sample' });
    write({ Values: { A: 'mine' } });
    expect(readLocalSettings(dir, {})).toEqual({ A: 'mine' });
  });

  it.each([
    ['invalid JSON', '{ "Values": ', /not valid JSON/],
    ['an encrypted file', { IsEncrypted: true, Values: { A: 'x' } }, /encrypted/],
  ])('refuses %s', (_, document, message) => {
    write(document);
    expect(() => readLocalSettings(dir, {})).toThrow(message);
  });
});

describe('describeStartup (what npm start says first)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hoist-startup-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const describeFor = (env: NodeJS.ProcessEnv) => describeStartup(dir, readLocalSettings(dir, env), env);

  it('names the sample when local.settings.json is missing, and the target registry it sets', () => {
    writeFileSync(path.join(dir, 'local.settings.sample.json'), JSON.stringify({ Values: { HOIST_TARGET_REGISTRY: 'localhost:5000' } }));
    expect(describeFor({})).toEqual([
      `settings: ${path.join(dir, 'local.settings.sample.json')} (there is no local.settings.json: copy the sample to it to change them), then the environment`,
      'target registry: localhost:5000 (HOIST_TARGET_REGISTRY, from local.settings.sample.json): every import writes there',
    ]);
  });

  it('names local.settings.json when there is one, and the environment when it sets the target', () => {
    writeFileSync(path.join(dir, 'local.settings.sample.json'), JSON.stringify({ Values: {} }));
    writeFileSync(path.join(dir, 'local.settings.json'), JSON.stringify({ Values: { HOIST_TARGET_REGISTRY: 'mine.azurecr.io' } }));
    expect(describeFor({})).toEqual([`settings: ${path.join(dir, 'local.settings.json')}, then the environment`, 'target registry: mine.azurecr.io (HOIST_TARGET_REGISTRY, from local.settings.json): every import writes there']);
    expect(describeFor({ HOIST_TARGET_REGISTRY: 'env.example:5000' })[1]).toBe('target registry: env.example:5000 (HOIST_TARGET_REGISTRY, from the environment): every import writes there');
  });

  it('says when there is no settings file and no target registry', () => {
    expect(describeFor({})).toEqual([
      `settings: the environment only (neither local.settings.json nor local.settings.sample.json is in ${dir})`,
      'target registry: none (HOIST_TARGET_REGISTRY is not set): imports land in local OCI image layouts, as said below',
    ]);
  });
});

describe('applySettingsToEnvironment', () => {
  it('adds missing settings and keeps what the environment has', () => {
    const env: NodeJS.ProcessEnv = { KEEP: 'env' };
    applySettingsToEnvironment({ KEEP: 'file', ADD: 'file' }, env);
    expect(env).toEqual({ KEEP: 'env', ADD: 'file' });
  });
});

describe('resolveSettingReferences', () => {
  it('replaces %NAME% and leaves other text alone', () => {
    expect(resolveSettingReferences('%A%-%B%', { A: 'x', B: 'y' })).toBe('x-y');
    expect(resolveSettingReferences('0 */5 * * * *', {})).toBe('0 */5 * * * *');
  });
});

describe('resolveStorageConnection', () => {
  it.each([
    [{ AzureWebJobsStorage: 'conn' }, '', 'conn'],
    [{ AzureWebJobsStorage: 'conn' }, 'AzureWebJobsStorage', 'conn'],
    [{ MyStorage: 'mine' }, 'MyStorage', 'mine'],
    [{ AzureWebJobsOther: 'prefixed' }, 'Other', 'prefixed'],
  ])('%j with connection "%s" gives %s', (settings, connection, expected) => {
    expect(resolveStorageConnection(settings, connection)).toEqual({ connectionString: expected });
  });

  it('names the missing setting', () => {
    expect(() => resolveStorageConnection({}, 'MyStorage')).toThrow(/"MyStorage" is not set/);
  });

  it('reads an identity-based connection, as the host does', () => {
    expect(resolveStorageConnection({ AzureWebJobsStorage__accountName: 'hoiststore', AzureWebJobsStorage__credential: 'managedidentity' }, '')).toEqual({
      identity: { queueServiceUri: 'https://hoiststore.queue.core.windows.net', tableServiceUri: 'https://hoiststore.table.core.windows.net', credential: 'managedidentity' },
    });
    expect(() => resolveStorageConnection({ AzureWebJobsStorage__clientId: 'abc' }, '')).toThrow(/AzureWebJobsStorage is not set: give a storage connection string/);
  });
});

describe('isDevelopmentStorage', () => {
  it.each([
    ['UseDevelopmentStorage=true', true],
    ['usedevelopmentstorage=TRUE;', true],
    ['UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1', true],
    ['DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1', false],
    ['UseDevelopmentStorage=false', false],
  ])('%s is %s', (connection, expected) => {
    expect(isDevelopmentStorage(connection)).toBe(expected);
  });
});

describe('local.settings.sample.json', () => {
  const sample = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'local.settings.sample.json'), 'utf8')) as {
    IsEncrypted: boolean;
    Values: Record<string, string>;
  };

  it('is a valid settings file for func start and npm start', () => {
    expect(sample.IsEncrypted).toBe(false);
    expect(sample.Values).toMatchObject({ FUNCTIONS_WORKER_RUNTIME: 'node', AzureWebJobsStorage: 'UseDevelopmentStorage=true' });
    for (const value of Object.values(sample.Values)) expect(typeof value).toBe('string');
  });

  it('lists every HOIST_* setting the app reads', () => {
    // The app's settings: everything under src/ except the CLI (its own variables) and this host.
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => {
        const full = path.join(dir, name);
        return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : [];
      });
    const appFiles = files(path.join(PROJECT_ROOT, 'src')).filter((f) => !/[\\/]src[\\/](cli|local)[\\/]/.test(f));
    const read = new Set(appFiles.flatMap((f) => readFileSync(f, 'utf8').match(/\bHOIST_[A-Z0-9_]*[A-Z0-9]\b/g) ?? []));
    expect([...read].filter((name) => !(name in sample.Values))).toEqual([]);
  });
});
