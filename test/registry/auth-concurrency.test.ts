/**
 * Authentication under concurrency, against real registries: requests that meet the first 401
 * together must all succeed, whichever of them teaches the client the challenge first.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { RegistryClient } from '../../src/registry/client.js';
import { forRegistry } from '../../src/registry/credentials.js';
import { parseReference } from '../../src/registry/reference.js';
import { pushImage } from '../helpers/fixtures.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../helpers/registry.js';

describe.each<RegistryAuth>(['basic', 'token'])('concurrent first requests, %s auth', (auth) => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('all succeed', async () => {
    const image = await pushImage(registry, 'conc/app', 'v1', { layers: [100] });
    const client = RegistryClient.for(parseReference(`${registry.host}/conc/app`).registry, new RegistryHosts({ credentials: forRegistry(registry.host, registry.credentials!) }));
    const heads = await Promise.all(Array.from({ length: 8 }, () => client.headManifest(parseReference(`${registry.host}/conc/app:v1`))));
    expect(heads.map((h) => h?.digest)).toEqual(Array(8).fill(image.digest));
  });

  it('still fails at once for wrong credentials', async () => {
    const client = RegistryClient.for(parseReference(`${registry.host}/conc/app`).registry, new RegistryHosts({ credentials: forRegistry(registry.host, { username: 'alice', password: 'wrong' }) }));
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => client.headManifest(parseReference(`${registry.host}/conc/app:v1`))));
    expect(results.map((r) => r.status)).toEqual(Array(4).fill('rejected'));
    expect(results.map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(Array(4).fill('UNAUTHORIZED'));
  });
});
