import { createConsoleLogger, secretSettingValues } from '../../src/local/logger.js';

describe('createConsoleLogger', () => {
  const settings = {
    HOIST_TARGET_PASSWORD: 'hunter2-password',
    HOIST_SECRET_KEY: 'c2VjcmV0LWtleS1ieXRlcw==',
    HOIST_API_KEY: 'api-key-value',
    HOIST_TARGET_REGISTRY: 'myregistry.azurecr.io',
  };

  it('masks secret settings and inline storage keys, keeping everything else', () => {
    const lines: string[] = [];
    const logger = createConsoleLogger({ secrets: secretSettingValues(settings), write: (line) => lines.push(line) });
    logger.log('error', 'Functions.worker[1234]', 'login with', settings.HOIST_TARGET_PASSWORD, 'to', settings.HOIST_TARGET_REGISTRY, {
      key: settings.HOIST_SECRET_KEY,
      connection: 'AccountName=a;AccountKey=abc123==;QueueEndpoint=x',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\S+Z error \[Functions\.worker\[1234\]\] login with \*\*\* to myregistry\.azurecr\.io/);
    expect(lines[0]).toContain('AccountKey=***');
    for (const secret of [settings.HOIST_TARGET_PASSWORD, settings.HOIST_SECRET_KEY, 'abc123==']) expect(lines[0]).not.toContain(secret);
  });

  it('drops entries below the minimum level', () => {
    const lines: string[] = [];
    const logger = createConsoleLogger({ minimumLevel: 'warning', write: (line) => lines.push(line) });
    logger.log('information', 'host', 'quiet');
    logger.log('warning', 'host', 'loud');
    expect(lines).toEqual([expect.stringMatching(/warn {2}\[host\] loud$/)]);
  });
});
