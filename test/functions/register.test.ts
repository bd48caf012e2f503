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
});
