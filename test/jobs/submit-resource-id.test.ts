/**
 * A source registry given by resource ID is resolved through Resource Manager while the caller
 * waits: an ARM that accepts the connection and never answers must not hold the POST. Real tables
 * and queue in Azurite, the real ARM lookup (azure/arm.ts) against a silent loopback server; only
 * the Entra token comes from a scripted source (no identity endpoint is needed to reach ARM).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolveRegistryResourceId } from '../../src/azure/arm.js';
import { AzureError } from '../../src/azure/errors.js';
import { findExistingTags, resolveDigest } from '../../src/copy/engine.js';
import { submitImport, type SubmitImportDeps } from '../../src/jobs/submit-import.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { useJobStorage } from './azurite.js';

const env = useJobStorage();
const RESOURCE_ID = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-images/providers/Microsoft.ContainerRegistry/registries/silent';
let silent: Server;
const held: ServerResponse[] = [];
let armUrl: string;

beforeAll(async () => {
  // Reads each request and never answers it.
  silent = createServer((req, res) => {
    req.resume();
    held.push(res);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  armUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of held) res.destroy();
  silent.closeAllConnections();
  await new Promise((resolve) => silent.close(resolve));
});

describe('a source registry by resource ID at submit', () => {
  it('gives up on a Resource Manager that never answers within the bound: ARM_ERROR, retryable, and no job', async () => {
    const { jobs, idempotency, queue } = env.storage;
    const hosts = new RegistryHosts();
    const deps: SubmitImportDeps = {
      jobs,
      idempotency,
      queue,
      targetRegistries: ['localhost:5000'],
      hosts,
      findExistingTags,
      resolveDigest,
      resolveRegistry: (resourceId, signal) =>
        resolveRegistryResourceId(resourceId, {
          identity: { getToken: () => Promise.resolve({ token: 'arm-token', expiresOnTimestamp: Date.now() + 3_600_000 }) },
          armEndpoint: armUrl,
          connection: { retry: hosts.retry, connections: hosts.connections },
          signal,
        }),
      resolveRegistryTimeoutInMs: 300,
    };
    const error = await submitImport({ registry: RESOURCE_ID, source: 'team/app:1' }, {}, deps).catch((e: unknown) => e);
    expect(held.length).toBeGreaterThan(0);
    expect(error).toBeInstanceOf(AzureError);
    expect(error).toMatchObject({ code: 'ARM_ERROR', permanent: false });
    expect((error as Error).message).not.toContain('arm-token');
    expect((await jobs.list()).jobs).toEqual([]);
  });
});
