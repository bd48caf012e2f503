import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureDevelopmentStorage, type AzuritePorts } from '../../src/local/azurite.js';
import { freePort } from '../helpers/ports.js';
import { spawnTracked } from '../helpers/processes.js';
import { startTestAzurite } from './support.js';

// ensureDevelopmentStorage normally checks 10000-10002; these tests give it free ports instead, so
// they never touch a developer's own emulator.
describe('ensureDevelopmentStorage', () => {
  let projectRoot: string;
  beforeEach(() => {
    projectRoot = mkdtempSync(path.join(os.tmpdir(), 'hoist-project-'));
  });
  afterEach(() => {
    rmSync(projectRoot, { recursive: true, force: true });
  });

  async function freePorts(): Promise<AzuritePorts> {
    const ports = new Set<number>();
    while (ports.size < 3) ports.add(await freePort());
    const [blob, queue, table] = [...ports] as [number, number, number];
    return { blob, queue, table };
  }

  it('starts Azurite with its data under .azurite when nothing listens', async () => {
    const ports = await freePorts();
    const result = await ensureDevelopmentStorage(projectRoot, ports, (command, args, options) => spawnTracked(command, args, options));
    try {
      expect('started' in result).toBe(true);
      if (!('started' in result)) return;
      expect(result.started.connectionString).toContain(`QueueEndpoint=http://127.0.0.1:${ports.queue}/devstoreaccount1`);
      const { QueueServiceClient } = await import('@azure/storage-queue');
      await QueueServiceClient.fromConnectionString(result.started.connectionString).getQueueClient('probe').createIfNotExists();
      const { readdirSync } = await import('node:fs');
      expect(readdirSync(path.join(projectRoot, '.azurite')).some((f) => f.includes('queue'))).toBe(true);
    } finally {
      if ('started' in result) await result.started.stop();
    }
  });

  it('uses an emulator that already listens on all three ports', async () => {
    const azurite = await startTestAzurite();
    try {
      expect(await ensureDevelopmentStorage(projectRoot, azurite.ports)).toEqual({ alreadyRunning: true });
    } finally {
      await azurite.stop();
    }
  });

  it('refuses when only some of the ports are taken', async () => {
    const ports = await freePorts();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(ports.queue, '127.0.0.1', resolve));
    try {
      await expect(ensureDevelopmentStorage(projectRoot, ports)).rejects.toThrow(new RegExp(`ports ${ports.queue} are in use`));
    } finally {
      squatter.close();
    }
  });
});
