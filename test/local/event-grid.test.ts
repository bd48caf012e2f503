import type { EventGridEvent, InvocationContext } from '@azure/functions';
import type { EventGridDefinition } from '../../src/local/event-grid-webhook.js';
import { ImportsApi } from '../e2e/support.js';
import { expectErrorShape, startTestHost, waitFor, type TestHost } from './support.js';

const API_KEY = 'eventgrid-test-key-51c2';

function imagePushed(id: string, tag: string): EventGridEvent {
  return {
    id,
    topic: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg',
    subject: `hello-world:${tag}`,
    eventType: 'Microsoft.ContainerRegistry.ImagePushed',
    eventTime: '2025-03-10T12:00:00Z',
    data: { action: 'push', target: { repository: 'hello-world', tag, digest: 'sha256:abc' } },
    dataVersion: '1.0',
    metadataVersion: '1',
  };
}

describe('local host Event Grid webhook', () => {
  const received: Array<{ event: EventGridEvent; context: InvocationContext }> = [];
  let failNext = false;
  const definitions: EventGridDefinition[] = [
    {
      name: 'onImagePushed',
      trigger: { type: 'eventGrid' },
      handler: async (event, context) => {
        if (failNext) {
          failNext = false;
          throw new Error('handler failed');
        }
        received.push({ event, context });
      },
    },
  ];
  let host: TestHost;
  const webhook = (query: string) => `${host.url}/runtime/webhooks/eventgrid?${query}`;

  beforeAll(async () => {
    host = await startTestHost({ definitions, settings: { HOIST_API_KEY: API_KEY } });
  });
  afterAll(async () => {
    await host?.stop();
  });
  beforeEach(() => {
    received.length = 0;
  });

  it('answers the Event Grid subscription validation handshake', async () => {
    const response = await fetch(webhook(`functionName=onImagePushed&code=${API_KEY}`), {
      method: 'POST',
      headers: { 'aeg-event-type': 'SubscriptionValidation', 'content-type': 'application/json' },
      body: JSON.stringify([
        {
          id: 'v1',
          topic: '/subscriptions/0000',
          subject: '',
          eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
          eventTime: '2025-03-10T12:00:00Z',
          data: { validationCode: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6', validationUrl: 'https://example.invalid/validate' },
          dataVersion: '1',
          metadataVersion: '1',
        },
      ]),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ validationResponse: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6' });
    expect(received).toHaveLength(0);
  });

  it('answers the CloudEvents OPTIONS handshake', async () => {
    const response = await fetch(webhook(`functionName=onImagePushed&code=${API_KEY}`), {
      method: 'OPTIONS',
      headers: { 'WebHook-Request-Origin': 'eventemitter.example.com' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('webhook-allowed-origin')).toBe('eventemitter.example.com');
  });

  it('runs the function once per event of a delivery', async () => {
    const events = [imagePushed('e1', 'v1'), imagePushed('e2', 'v2')];
    const response = await fetch(webhook(`functionName=onImagePushed&code=${API_KEY}`), {
      method: 'POST',
      headers: { 'aeg-event-type': 'Notification', 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    expect(response.status).toBe(202);
    expect(received.map((r) => r.event)).toEqual(events);
    expect(received.map((r) => r.context.functionName)).toEqual(['onImagePushed', 'onImagePushed']);
    expect(received[0]!.context.triggerMetadata).toMatchObject({ id: 'e1', subject: 'hello-world:v1', eventType: 'Microsoft.ContainerRegistry.ImagePushed' });
    expect(received[0]!.context.invocationId).not.toBe(received[1]!.context.invocationId);
  });

  it('answers 500 when an event fails, so Event Grid retries the delivery', async () => {
    failNext = true;
    const response = await fetch(webhook(`functionName=onImagePushed&code=${API_KEY}`), {
      method: 'POST',
      headers: { 'aeg-event-type': 'Notification' },
      body: JSON.stringify([imagePushed('e3', 'v3'), imagePushed('e4', 'v4')]),
    });
    await expectErrorShape(response, 500, 'EVENTS_FAILED');
    expect(received.map((r) => r.event.id)).toEqual(['e4']);
  });

  it.each([
    ['no key', 'functionName=onImagePushed', 'POST', {}, 401, 'UNAUTHORIZED', undefined],
    ['a wrong key', 'functionName=onImagePushed&code=nope', 'POST', {}, 401, 'UNAUTHORIZED', undefined],
    ['no key on the OPTIONS handshake', 'functionName=onImagePushed', 'OPTIONS', {}, 401, 'UNAUTHORIZED', undefined],
    ['no functionName', `code=${API_KEY}`, 'POST', {}, 400, 'INVALID_QUERY', 'functionName'],
    ['an unknown function', `functionName=other&code=${API_KEY}`, 'POST', {}, 404, 'FUNCTION_NOT_FOUND', 'functionName'],
    ['a GET', `functionName=onImagePushed&code=${API_KEY}`, 'GET', {}, 405, 'METHOD_NOT_ALLOWED', undefined],
    ['an unknown aeg-event-type', `functionName=onImagePushed&code=${API_KEY}`, 'POST', { 'aeg-event-type': 'Surprise' }, 400, 'INVALID_HEADER', 'aeg-event-type'],
    ['an OPTIONS handshake without WebHook-Request-Origin', `functionName=onImagePushed&code=${API_KEY}`, 'OPTIONS', { 'WebHook-Request-Origin': '' }, 400, 'INVALID_HEADER', 'WebHook-Request-Origin'],
  ])('answers %s with %i in the error shape', async (_, query, method, headers, status, code, field) => {
    const response = await fetch(webhook(query), {
      method,
      headers: { 'aeg-event-type': 'Notification', 'WebHook-Request-Origin': 'x', ...headers },
      body: method === 'POST' ? JSON.stringify([imagePushed('e5', 'v5')]) : undefined,
    });
    await expectErrorShape(response, status, code, field);
    if (status === 405) expect(response.headers.get('allow')).toBe('POST, OPTIONS');
    expect(received).toHaveLength(0);
  });

  it('runs the function on the event in the input of POST /admin/functions/{name}, as the Functions host does', async () => {
    // Through the OpenAPI checker, as every e2e call: each answer, errors included, must be one the document describes.
    const api = ImportsApi.of(host, API_KEY);
    const event = imagePushed('admin-1', 'v9');
    expect((await api.request('POST', '/admin/functions/onimagepushed', { json: { input: JSON.stringify(event) } })).status).toBe(202);
    await waitFor(() => received.length === 1, 10_000, 'the run asked for');
    expect(received[0]!.event).toEqual(event);
    expect(received[0]!.context.functionName).toBe('onImagePushed');
    expect(received[0]!.context.triggerMetadata).toMatchObject({ id: 'admin-1', eventType: 'Microsoft.ContainerRegistry.ImagePushed' });

    // An Event Grid function needs its one event; the refusals name `input`.
    for (const json of [{}, { input: 'not json' }, { input: JSON.stringify([event]) }, { input: 42 }]) {
      const refused = await api.request('POST', '/admin/functions/onImagePushed', { json });
      expect(refused.status, JSON.stringify(json)).toBe(400);
      expect(refused.body.error).toMatchObject({ code: 'INVALID_FIELD', field: 'input' });
    }
    const notJson = await api.request('POST', '/admin/functions/onImagePushed', { body: '{"input":', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('INVALID_JSON');
    const unauthorized = await ImportsApi.of(host).request('POST', '/admin/functions/onImagePushed', { json: { input: JSON.stringify(event) } });
    expect(unauthorized.status).toBe(401);
    expect(received).toHaveLength(1);
  });

  it('refuses a delivery that is not JSON', async () => {
    const response = await fetch(webhook(`functionName=onImagePushed&code=${API_KEY}`), { method: 'POST', body: 'not json' });
    await expectErrorShape(response, 400, 'INVALID_JSON');
  });

  it('refuses a delivery over 2 MiB with 413 in the error shape', async () => {
    const response = await fetch(webhook(`functionName=onImagePushed&code=${API_KEY}`), { method: 'POST', body: 'x'.repeat(3 * 1024 * 1024) });
    await expectErrorShape(response, 413, 'PAYLOAD_TOO_LARGE');
    expect(received).toHaveLength(0);
  });
});
