/**
 * BlobStream against a real registry: a stream dropped while its GET is still on the way lets the
 * response go quietly (undici's AbortError must not surface as an uncaught exception, which
 * vitest reports as an error of the run).
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { pushImage } from '../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let proxy: TestProxy;

beforeAll(async () => {
  registry = await startRegistry();
  // Blob GETs answer after 300 ms.
  proxy = await startProxy(registry.url, [(request) => (request.method === 'GET' && request.pathname.includes('/blobs/') ? { type: 'forward', delayMs: 300 } : undefined)]);
});
afterAll(async () => {
  await Promise.all([proxy?.stop(), registry?.stop()]);
});

it('drops a response that arrives after the stream was destroyed, without an uncaught error', async () => {
  const image = await pushImage(registry, 'dropped/blob', 'v1', { layers: [50_000] });
  const layer = image.blobs.find((b) => b.size === 50_000)!;
  const ref = parseReference(`${proxy.host}/dropped/blob:v1`);
  const stream = RegistryClient.for(ref.registry, new RegistryHosts()).openBlob(ref, layer.digest, layer.size);
  const errors: Error[] = [];
  stream.on('error', (e) => errors.push(e));
  stream.read(0);
  stream.destroy();
  // The GET reaches the proxy (however slowly the machine runs), then its answer, held 300 ms,
  // has had time to come back to a stream that is gone; an uncaught error would fail the run.
  const gets = () => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(layer.digest));
  await vi.waitFor(() => expect(gets()).toHaveLength(1), { timeout: 30_000 });
  await new Promise((resolve) => setTimeout(resolve, 800));
  expect(gets()).toHaveLength(1);
  expect(errors).toEqual([]);
});
