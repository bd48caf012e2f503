import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { definitions } from '../../src/functions/definitions.js';
import { register } from '../../src/functions/register.js';

describe('definitions', () => {
  it('list the imports HTTP function and the imports queue worker', () => {
    expect(definitions.map((d) => [d.name, d.trigger])).toEqual([
      ['imports', { type: 'http', methods: ['GET', 'POST'], route: 'imports/{id?}', authLevel: 'function' }],
      ['importWorker', { type: 'storageQueue', queueName: 'imports', connection: 'AzureWebJobsStorage' }],
      ['sweepImports', { type: 'timer', schedule: '0 */5 * * * *' }],
    ]);
    for (const d of definitions) expect(typeof d.handler).toBe('function');
  });

  it('register with app.* without throwing (the package skips them outside the runtime)', () => {
    expect(() => register(definitions)).not.toThrow();
  });

  it('report a malformed HOIST_SECRET_KEY once as the app loads (from the build, as Azure loads it)', () => {
    const entry = path.resolve(__dirname, '../../dist/src/functions/register.js');
    const malformed = 'not-a-key-3f9c2a';
    const loaded = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(entry)})`], { env: { PATH: process.env.PATH, HOIST_SECRET_KEY: malformed }, encoding: 'utf8' });
    expect(loaded.status).toBe(0);
    expect(loaded.stderr.split('HOIST_SECRET_KEY must be base64 of exactly 32 random bytes').length - 1).toBe(1);
    expect(loaded.stderr).toContain('until it is fixed, imports with credentials are refused');
    expect(loaded.stderr).not.toContain(malformed);
  });
});
