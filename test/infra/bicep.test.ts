/**
 * infra/main.bicep, read as text (the Bicep CLI cannot be installed here): the Function App's
 * app settings are exactly the settings the code reads, and the template keeps what the code
 * assumes (Node 22 on Flex Consumption, identity-only storage, a time budget inside host.json's
 * functionTimeout).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Settings } from '../../src/jobs/settings.js';

const ROOT = path.join(__dirname, '..', '..');
const bicep = readFileSync(path.join(ROOT, 'infra', 'main.bicep'), 'utf8');

/** The text between the `[` after `key:` and its matching `]`. */
function arrayBlock(text: string, key: string): string {
  const start = text.indexOf(`${key}: [`);
  expect(start, `${key} in main.bicep`).toBeGreaterThan(-1);
  let depth = 0;
  for (let i = text.indexOf('[', start); i < text.length; i++) {
    if (text[i] === '[') depth++;
    if (text[i] === ']' && --depth === 0) return text.slice(text.indexOf('[', start) + 1, i);
  }
  throw new Error(`unbalanced ${key}`);
}

const appSettings = [...arrayBlock(bicep, 'appSettings').matchAll(/\{\s*name:\s*'([^']+)'\s*,\s*value:\s*([^}]+?)\s*\}/g)].map((m) => ({ name: m[1], value: m[2] }));
const setNames = appSettings.map((s) => s.name);

/** Every setting name the Settings getters ask the environment for, with `env` as the base. */
function namesSettingsRead(base: Record<string, string>): Set<string> {
  const read = new Set<string>();
  const env = new Proxy(base, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return target[name as string];
    },
  });
  const settings = new Settings(env);
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(Settings.prototype))) {
    if (!descriptor.get) continue;
    try {
      void (settings as unknown as Record<string, unknown>)[name];
    } catch {
      // Unset required settings throw once read: the name is recorded all the same.
    }
  }
  return read;
}

/** Names read straight from an environment object elsewhere in the service (not the CLI, not the local host). */
function namesReadDirectly(): Set<string> {
  const found = new Set<string>();
  for (const folder of ['functions', 'jobs', 'copy', 'registry']) {
    const dir = path.join(ROOT, 'src', folder);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      for (const m of text.matchAll(/\benv(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[['"]([A-Za-z_][A-Za-z0-9_]*)['"]\])/g)) found.add(m[1] ?? m[2]);
    }
  }
  return found;
}

/** Settings read by the Functions host or a library, not by Hoist's code: each with its reader. */
const PLATFORM_SETTINGS: Record<string, string> = {
  AZURE_CLIENT_ID: "@azure/identity's DefaultAzureCredential: which user-assigned identity",
};

describe('infra/main.bicep app settings', () => {
  const codeNames = new Set([...namesSettingsRead({}), ...namesSettingsRead({ AzureWebJobsStorage__accountName: 'hoiststore' }), ...namesReadDirectly()]);

  it('sets each setting once', () => {
    expect(setNames.length).toBeGreaterThan(10);
    expect(new Set(setNames).size).toBe(setNames.length);
  });

  it('sets exactly the HOIST_* settings the code reads', () => {
    const hoist = (names: Iterable<string>) => [...names].filter((n) => n.startsWith('HOIST_')).sort();
    expect(hoist(setNames)).toEqual(hoist(codeNames));
  });

  it('sets no other setting that neither the code nor the platform reads', () => {
    const unknown = setNames.filter((n) => !n.startsWith('HOIST_') && !codeNames.has(n) && !(n in PLATFORM_SETTINGS));
    expect(unknown).toEqual([]);
  });

  it('reaches storage with the identity, never a connection string or key', () => {
    expect(setNames).not.toContain('AzureWebJobsStorage');
    expect(setNames).toEqual(expect.arrayContaining(['AzureWebJobsStorage__accountName', 'AzureWebJobsStorage__credential', 'AzureWebJobsStorage__clientId']));
    expect(bicep).toMatch(/allowSharedKeyAccess:\s*false/);
    expect(bicep).not.toMatch(/listKeys\(/);
  });

  it('keeps secrets in Key Vault: their settings are references, never parameters', () => {
    for (const name of ['HOIST_TARGET_PASSWORD', 'HOIST_SECRET_KEY', 'HOIST_API_KEY']) {
      const value = appSettings.find((s) => s.name === name)!.value;
      const reference = new RegExp(`var ${value}\\s*=\\s*empty\\(\\w+\\) \\? '' : '@Microsoft\\.KeyVault\\(VaultName=`);
      expect(bicep, name).toMatch(reference);
    }
  });

  it('runs Node 22 on Flex Consumption, with a time budget inside host.json functionTimeout', () => {
    expect(bicep).toMatch(/sku:\s*\{\s*name:\s*'FC1'\s*tier:\s*'FlexConsumption'/);
    expect(bicep).toMatch(/runtime:\s*\{\s*name:\s*'node'\s*version:\s*'22'/);
    const host = JSON.parse(readFileSync(path.join(ROOT, 'host.json'), 'utf8')) as { functionTimeout: string };
    const [h, m, s] = host.functionTimeout.split(':').map(Number);
    const budget = Number(/param timeBudgetSeconds string = '(\d+)'/.exec(bicep)![1]);
    // Two minutes left to save checkpoints and queue the continuation, as the default assumes.
    expect(budget + 120).toBeLessThanOrEqual(h * 3600 + m * 60 + s);
  });
});
