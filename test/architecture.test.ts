/**
 * The layers of docs/architecture.md, enforced: each folder of src/ may import only the layers
 * below it (registry ← copy ← azure ← jobs ← mirror ← functions ← local; cli beside jobs, on azure).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const SRC = join(__dirname, '..', 'src');

const ALLOWED: Record<string, string[]> = {
  registry: [],
  copy: ['registry'],
  azure: ['registry', 'copy'],
  jobs: ['registry', 'copy', 'azure'],
  mirror: ['registry', 'copy', 'azure', 'jobs'],
  functions: ['registry', 'copy', 'azure', 'jobs', 'mirror'],
  local: ['registry', 'copy', 'azure', 'jobs', 'mirror', 'functions'],
  cli: ['registry', 'copy', 'azure'],
};

function importsOf(folder: string): Array<{ file: string; layer: string }> {
  const found: Array<{ file: string; layer: string }> = [];
  for (const file of readdirSync(join(SRC, folder)).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(join(SRC, folder, file), 'utf8');
    for (const m of text.matchAll(/(?:from|import\()\s*'\.\.\/([a-z]+)\//g)) found.push({ file: `${folder}/${file}`, layer: m[1] });
  }
  return found;
}

describe('layering', () => {
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);

  it('knows every folder of src/', () => {
    expect(folders.filter((f) => !(f in ALLOWED))).toEqual([]);
  });

  it.each(folders)('src/%s imports only the layers below it', (folder) => {
    const violations = importsOf(folder).filter((i) => !ALLOWED[folder].includes(i.layer));
    expect(violations).toEqual([]);
  });

  it.each(['registry', 'copy'])('src/%s imports no Azure SDK package (Azure lives in src/azure and above)', (folder) => {
    const files = readdirSync(join(SRC, folder)).filter((f) => f.endsWith('.ts'));
    const azure = files.filter((file) => /(?:from|import\()\s*'@azure\//.test(readFileSync(join(SRC, folder, file), 'utf8')));
    expect(azure).toEqual([]);
  });
});

describe('the engine on its stores', () => {
  // The graph walk, the plan and the tag writes reach registries only through store.ts, so a
  // layout or memory serves as well: only registry-store.ts builds a RegistryClient.
  it.each(['engine.ts', 'source-graph.ts', 'referrers.ts'])('src/copy/%s uses the registry client only for its types', (file) => {
    const text = readFileSync(join(SRC, 'copy', file), 'utf8');
    expect(text).not.toMatch(/^import (?!type )[^;]*'\.\.\/registry\/client\.js'/m);
    expect(text).not.toMatch(/RegistryClient\b/);
  });
});
