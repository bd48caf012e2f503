/**
 * `POST /api/hooks/distribution` (function key; issue 10): CNCF distribution's notification
 * envelope (`application/vnd.docker.distribution.events.v1+json` from 2.x, `…v2+json` from 3.x).
 * Each manifest push to a watched tag queues a sync of exactly that digest. Distribution retries a
 * delivery until it gets a 2xx, so malformed and unwanted events are answered 200 with their
 * reasons (and logged), never with an error that would bring them back; only failures worth a
 * redelivery (storage, the target registry unreachable) answer 5xx.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { handlePush, readDistributionEnvelope, type PushOutcome } from '../mirror/push-events.js';
import { requireApiKey } from './api-key.js';
import type { FunctionDefinition } from './definition.js';
import { responseForError } from './http-errors.js';
import { readJsonBody } from './json-body.js';
import { currentSettings, submitDeps, watchStore } from './services.js';

/** Distribution batches events (its threshold); a few hundred fit easily. */
const MAX_ENVELOPE_BYTES = 1024 * 1024;

/** One line per event of the answer: what became of it. */
type EventResult = { id?: string } & ({ outcome: 'queued'; jobs: Array<{ watch: string; tag: string; jobId: string }> } | { outcome: 'ignored' | 'dropped'; reason: string });

export async function distributionHookHandler(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const settings = currentSettings();
    requireApiKey(request, settings.apiKey);
    const read = readDistributionEnvelope(await readJsonBody(request, MAX_ENVELOPE_BYTES));
    if ('dropped' in read) {
      context.warn(`distribution hook: dropped a malformed envelope: ${read.dropped}`);
      return { status: 200, jsonBody: { events: [{ outcome: 'dropped', reason: read.dropped }] } };
    }
    const results: EventResult[] = [];
    for (const event of read) {
      if ('dropped' in event) {
        context.warn(`distribution hook: dropped a malformed event: ${event.dropped}`);
        results.push({ outcome: 'dropped', reason: event.dropped });
      } else if ('ignored' in event) {
        results.push({ outcome: 'ignored', reason: event.ignored });
      } else {
        const outcome: PushOutcome = await handlePush(event, { store: await watchStore(settings), submit: await submitDeps(settings) });
        if (outcome.kind === 'queued') {
          context.log(`distribution hook: event ${event.id} (${event.host}/${event.repository}:${event.tag}@${event.digest}) queued ${outcome.jobs.map((j) => `job ${j.jobId} for ${j.watch}:${j.tag}`).join(', ')}`);
          results.push({ id: event.id, outcome: 'queued', jobs: outcome.jobs.map(({ watch, tag, jobId }) => ({ watch, tag, jobId })) });
        } else {
          results.push({ id: event.id, outcome: 'ignored', reason: outcome.reason });
        }
      }
    }
    return { status: 200, jsonBody: { events: results }, headers: { 'content-type': 'application/json; charset=utf-8' } };
  } catch (error) {
    const response = responseForError(error);
    if (!response) throw error;
    if (response.status !== undefined && response.status >= 500) context.error(`distribution hook: ${(error as Error).message}`);
    return response;
  }
}

/** The definition both hosts register. */
export const distributionHookFunction: FunctionDefinition = {
  name: 'distributionHook',
  trigger: { type: 'http', methods: ['POST'], route: 'hooks/distribution', authLevel: 'function' },
  handler: distributionHookHandler,
};
