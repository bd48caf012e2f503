/**
 * The Event Grid webhook the Functions host exposes at
 * `/runtime/webhooks/eventgrid?functionName=NAME`: the subscription handshakes (Event Grid schema
 * validation event; CloudEvents OPTIONS preflight) and deliveries, which are JSON arrays run
 * through the function one element at a time.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventGridEvent } from '@azure/functions';
import type { FunctionDefinition } from '../functions/definition.js';
import { isAuthorized, presentedKey } from './function-keys.js';
import { writeError } from './http-conversion.js';
import type { InvocationRunner } from './invocation-runner.js';

/** A definition with an Event Grid trigger. */
export type EventGridDefinition = Extract<FunctionDefinition, { trigger: { type: 'eventGrid' } }>;

/** The path the host serves Event Grid deliveries on. */
export const EVENT_GRID_WEBHOOK_PATH = '/runtime/webhooks/eventgrid';

/**
 * Event Grid sends at most 1 MB per event and batches up to 1 MB (preferredBatchSizeInKilobytes);
 * twice that leaves headroom while refusing an unbounded read.
 */
export const MAX_DELIVERY_BYTES = 2 * 1024 * 1024;

const VALIDATION_EVENT = 'Microsoft.EventGrid.SubscriptionValidationEvent';

/** What the webhook needs from the host. */
export interface EventGridWebhookDeps {
  functions: ReadonlyMap<string, EventGridDefinition>;
  /** HOIST_API_KEY; when set, every webhook request must carry it (`?code=` or `x-functions-key`). */
  apiKey: string | undefined;
  runner: InvocationRunner;
}

/** Answers one request to the Event Grid webhook path. */
export async function handleEventGridWebhook(req: IncomingMessage, res: ServerResponse, url: URL, deps: EventGridWebhookDeps): Promise<void> {
  if (!isAuthorized(deps.apiKey, req.headers, url)) {
    const presented = presentedKey(req.headers, url) !== undefined;
    return writeError(res, 401, 'UNAUTHORIZED', presented ? 'the key presented is not valid for this webhook' : 'this webhook requires a key: send it in the x-functions-key header or the code query parameter');
  }
  const functionName = url.searchParams.get('functionName');
  if (!functionName) return writeError(res, 400, 'INVALID_QUERY', 'the functionName query parameter is required: name the Event Grid function to deliver to', { field: 'functionName' });
  // Function names are case-insensitive on Azure.
  const definition = [...deps.functions.values()].find((d) => d.name.toLowerCase() === functionName.toLowerCase());
  if (!definition) {
    const known = [...deps.functions.values()].map((d) => d.name);
    return writeError(res, 404, 'FUNCTION_NOT_FOUND', `no Event Grid function is named "${functionName}"${known.length > 0 ? `: this app has ${known.join(', ')}` : ': this app has none'}`, { field: 'functionName' });
  }

  if (req.method === 'OPTIONS') return answerCloudEventsHandshake(req, res);
  if (req.method !== 'POST') {
    return writeError(res, 405, 'METHOD_NOT_ALLOWED', `${req.method ?? 'this method'} is not supported here: POST a delivery, or OPTIONS for the CloudEvents handshake`, { headers: { allow: 'POST, OPTIONS' } });
  }

  const body = await readBoundedBody(req, MAX_DELIVERY_BYTES);
  if (body === undefined) {
    return writeError(res, 413, 'PAYLOAD_TOO_LARGE', `the delivery is more than ${MAX_DELIVERY_BYTES} bytes; at most ${MAX_DELIVERY_BYTES} bytes (${MAX_DELIVERY_BYTES / 1024 / 1024} MiB) are accepted`, { headers: { connection: 'close' } });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return writeError(res, 400, 'INVALID_JSON', 'the delivery is not valid JSON: send an array of Event Grid events or one CloudEvent');
  }
  // Event Grid always sends an array; a CloudEvents publisher in structured mode sends one object.
  const events: unknown[] = Array.isArray(parsed) ? parsed : [parsed];

  const eventType = header(req, 'aeg-event-type') ?? 'Notification';
  if (eventType === 'SubscriptionValidation') {
    const validation = events.find((e) => (e as EventGridEvent | undefined)?.eventType === VALIDATION_EVENT) as EventGridEvent | undefined;
    const code = validation?.data?.['validationCode'];
    if (typeof code !== 'string') return writeError(res, 400, 'INVALID_EVENT', `a SubscriptionValidation delivery needs a ${VALIDATION_EVENT} event with data.validationCode, a string`, { field: 'data.validationCode' });
    return answer(res, 200, { validationResponse: code });
  }
  if (eventType === 'SubscriptionDeletion') return answer(res, 202);
  if (eventType !== 'Notification') {
    return writeError(res, 400, 'INVALID_HEADER', `aeg-event-type "${eventType}" is not one Event Grid sends: Notification, SubscriptionValidation or SubscriptionDeletion`, { field: 'aeg-event-type' });
  }

  // One invocation per element, in order, like the host; a failure answers 500 so Event Grid
  // redelivers the batch under its retry policy.
  let failed = 0;
  for (const event of events) {
    try {
      await invokeEventGridFunction(definition, event, deps.runner, 'EventGrid trigger fired');
    } catch {
      failed += 1; // already logged by the runner
    }
  }
  if (failed > 0) return writeError(res, 500, 'EVENTS_FAILED', `${failed} of ${events.length} events failed; Event Grid delivers the batch again under its retry policy`);
  return answer(res, 202);
}

/**
 * The event an admin call's `input` carries (`POST /admin/functions/{name}`: one event, Event
 * Grid schema or CloudEvent, as a JSON string), or why it is refused.
 */
export function eventFromAdminInput(input: string | undefined): { event: unknown } | { invalidInput: string } {
  const wanted = 'an Event Grid function runs on one event: send {"input": "<the event as JSON>"}';
  if (input === undefined) return { invalidInput: `"input" is missing: ${wanted}` };
  let event: unknown;
  try {
    event = JSON.parse(input);
  } catch {
    return { invalidInput: `"input" is not valid JSON: ${wanted}` };
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return { invalidInput: `"input" is not a JSON object: ${wanted}` };
  return { event };
}

/**
 * Runs an Event Grid function on one event, as the host does for each element of a delivery (and
 * for the input of `POST /admin/functions/{name}`). Rejects with the handler's error, logged.
 */
export async function invokeEventGridFunction(definition: EventGridDefinition, event: unknown, runner: InvocationRunner, reason: string): Promise<void> {
  await runner.invoke({
    functionName: definition.name,
    triggerType: 'eventGridTrigger',
    reason,
    triggerMetadata: eventMetadata(event),
    run: async (context) => {
      await definition.handler(event as EventGridEvent, context);
    },
  });
}

/** CloudEvents 1.0 webhook validation (abuse protection): echo the origin as allowed. */
function answerCloudEventsHandshake(req: IncomingMessage, res: ServerResponse): void {
  const origin = header(req, 'webhook-request-origin');
  if (!origin) return writeError(res, 400, 'INVALID_HEADER', 'the CloudEvents handshake (OPTIONS) needs a WebHook-Request-Origin header naming the sender', { field: 'WebHook-Request-Origin' });
  res.writeHead(200, { 'WebHook-Allowed-Origin': origin, 'WebHook-Allowed-Rate': '*', Allow: 'POST, OPTIONS' }).end();
}

/** Top-level scalar fields of the event (id, subject, eventType or type…), never its `data`. */
function eventMetadata(event: unknown): Record<string, unknown> {
  const metadata: Record<string, unknown> = {};
  if (event && typeof event === 'object') {
    for (const [key, value] of Object.entries(event)) {
      if (key !== 'data' && (typeof value === 'string' || typeof value === 'number')) metadata[key] = value;
    }
  }
  return metadata;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function answer(res: ServerResponse, status: number, json?: unknown): void {
  if (json === undefined) {
    res.writeHead(status).end();
  } else {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(json));
  }
}

/**
 * Reads the whole body, or resolves undefined once it exceeds `limit`; the rest is then discarded
 * as it arrives (the answer carries `Connection: close`), never buffered.
 */
export function readBoundedBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData).off('end', onEnd);
      req.resume();
      resolve(undefined);
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
}
