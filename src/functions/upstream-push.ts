/**
 * The `upstreamPush` Event Grid function (issue 10): an ACR `ImagePushed` or `ChartPushed` event,
 * in the Event Grid schema or CloudEvents 1.0, queues a sync of exactly the pushed digest for each
 * watch that covers it (src/mirror/push-events.ts). A malformed or unwanted event is logged and
 * dropped (returning normally, so Event Grid does not redeliver it); a failure worth another try
 * (storage, the target registry unreachable) is thrown, and Event Grid redelivers under its retry
 * policy.
 */
import type { EventGridEvent, InvocationContext } from '@azure/functions';
import { handlePush, readAcrEvent } from '../mirror/push-events.js';
import type { FunctionDefinition } from './definition.js';
import { currentSettings, submitDeps, watchStore } from './services.js';

export async function upstreamPushHandler(event: EventGridEvent, context: InvocationContext): Promise<void> {
  const read = readAcrEvent(event);
  if ('dropped' in read) return context.warn(`upstreamPush: dropped a malformed event: ${read.dropped}`);
  if ('ignored' in read) return context.log(`upstreamPush: ignored event: ${read.ignored}`);
  const settings = currentSettings();
  const outcome = await handlePush(read, { store: await watchStore(settings), submit: await submitDeps(settings) });
  if (outcome.kind === 'queued') {
    const jobs = outcome.jobs.map((j) => `${j.watch}:${j.tag} -> job ${j.jobId}${j.replayed ? ' (already queued for this event)' : ''}`);
    context.log(`upstreamPush: event ${read.id} (${read.host}/${read.repository}:${read.tag}@${read.digest}): ${jobs.join(', ')}`);
  } else {
    context.log(`upstreamPush: event ${read.id} ignored: ${outcome.reason}`);
  }
}

/** The definition both hosts register. */
export const upstreamPushFunction: FunctionDefinition = {
  name: 'upstreamPush',
  trigger: { type: 'eventGrid' },
  handler: upstreamPushHandler,
};
