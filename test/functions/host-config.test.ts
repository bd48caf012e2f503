import { appMaxDequeueCount, applyHostOverrides, hostConfigFromJson, readHostConfig } from '../../src/functions/host-config.js';
import { PROJECT_ROOT } from '../local/support.js';

describe('host.json', () => {
  it('reads the project host.json', () => {
    expect(readHostConfig(PROJECT_ROOT)).toEqual({
      queues: { batchSize: 4, newBatchThreshold: 2, maxPollingIntervalInMs: 5000, visibilityTimeoutInMs: 10_000, maxDequeueCount: 5, messageEncoding: 'base64' },
      routePrefix: 'api',
      functionTimeoutInMs: 600_000,
    });
  });

  it("gives the worker the local host's maxDequeueCount, with the same overrides", () => {
    expect(appMaxDequeueCount({})).toBe(readHostConfig(PROJECT_ROOT).queues.maxDequeueCount);
    const overridden = { AzureFunctionsJobHost__extensions__queues__maxDequeueCount: '3' };
    expect(appMaxDequeueCount(overridden)).toBe(3);
    expect(readHostConfig(PROJECT_ROOT, overridden).queues.maxDequeueCount).toBe(3);
    // What the worker cannot read leaves the host's default; it never fails an invocation.
    expect(appMaxDequeueCount({ AzureFunctionsJobHost__extensions__queues__maxDequeueCount: 'many' })).toBe(5);
  });

  it('takes what the Functions host takes: an unlimited functionTimeout, enums in any case', () => {
    const config = hostConfigFromJson({ functionTimeout: '-1', extensions: { queues: { messageEncoding: 'None' } } });
    expect(config.functionTimeoutInMs).toBeUndefined();
    expect(config.queues.messageEncoding).toBe('none');
  });

  it("applies the host's defaults to an empty host.json", () => {
    const config = hostConfigFromJson({ version: '2.0' });
    expect(config.queues).toMatchObject({ batchSize: 16, maxPollingIntervalInMs: 60_000, visibilityTimeoutInMs: 0, maxDequeueCount: 5, messageEncoding: 'base64' });
    expect(config.queues.newBatchThreshold % 8).toBe(0);
    expect(config.routePrefix).toBe('api');
    expect(config.functionTimeoutInMs).toBeUndefined();
  });

  it('honours AzureFunctionsJobHost__ overrides from app settings, as Azure does', () => {
    const document = applyHostOverrides(
      { extensions: { queues: { maxDequeueCount: 5, batchSize: 4 } } },
      { AzureFunctionsJobHost__extensions__queues__maxDequeueCount: '2', AzureFunctionsJobHost__Extensions__Http__RoutePrefix: 'v1', OTHER: 'x' },
    );
    const config = hostConfigFromJson(document);
    expect(config.queues).toMatchObject({ maxDequeueCount: 2, batchSize: 4 });
    expect(config.routePrefix).toBe('v1');
  });

  it.each([
    [{ extensions: { queues: { batchSize: 64 } } }, /batchSize/],
    [{ extensions: { queues: { maxPollingInterval: 'often' } } }, /maxPollingInterval/],
    [{ functionTimeout: '00:99:00' }, /functionTimeout/],
  ])('refuses %j', (document, message) => {
    expect(() => hostConfigFromJson(document)).toThrow(message);
  });
});
