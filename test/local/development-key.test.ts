/**
 * The development key under two `npm start`s at once: one key, written once, and both read it
 * whole. The race is real: two processes generate into the same fresh project root, released
 * together by a file-system barrier, round after round.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildSync } from 'esbuild';
import { DEVELOPMENT_KEY_FILE } from '../../src/local/development-key.js';
import { PROJECT_ROOT } from '../cli/support.js';

const ROUNDS = 300;
let work: string;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'hoist-dev-key-'));
  buildSync({ entryPoints: [path.join(PROJECT_ROOT, 'src/local/development-key.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: path.join(work, 'development-key.cjs'), logLevel: 'silent' });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** One `npm start`'s key generation per round, each round started together with the other's. */
const generator = `
  const fs = require('node:fs');
  const path = require('node:path');
  const { withDevelopmentSecretKey } = require(process.argv[1]);
  const [me, other, base, rounds] = process.argv.slice(2);
  const keys = [];
  for (let i = 0; i < Number(rounds); i++) {
    const root = path.join(base, String(i));
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'ready-' + me), '');
    while (!fs.existsSync(path.join(root, 'ready-' + other))) {}
    keys.push(withDevelopmentSecretKey({}, root).settings.HOIST_SECRET_KEY);
  }
  process.stdout.write(JSON.stringify(keys));
`;

it('gives two simultaneous generations one key, which both read whole', async () => {
  const base = path.join(work, 'roots');
  const run = (me: string, other: string) => promisify(execFile)(process.execPath, ['-e', generator, path.join(work, 'development-key.cjs'), me, other, base, String(ROUNDS)], { maxBuffer: 1024 * 1024 });
  const [a, b] = await Promise.all([run('a', 'b'), run('b', 'a')]);
  const keysA = JSON.parse(a.stdout) as string[];
  const keysB = JSON.parse(b.stdout) as string[];
  for (let round = 0; round < ROUNDS; round++) {
    const written = readFileSync(path.join(base, String(round), DEVELOPMENT_KEY_FILE), 'utf8').trim();
    expect(Buffer.from(written, 'base64')).toHaveLength(32);
    expect([round, keysA[round], keysB[round]]).toEqual([round, written, written]);
    // Nothing left beside the key.
    expect(readdirSync(path.join(base, String(round), path.dirname(DEVELOPMENT_KEY_FILE)))).toEqual([path.basename(DEVELOPMENT_KEY_FILE)]);
  }
});
