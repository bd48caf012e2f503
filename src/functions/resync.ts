/**
 * The `resync` timer function (issue 10): on `%HOIST_RESYNC_SCHEDULE%` (every 15 minutes unless
 * set), brings every enabled watch's target tags up to date with upstream (src/mirror/resync.ts),
 * and records when it runs next for `GET /api/watches/{name}`.
 */
import type { InvocationContext, Timer } from '@azure/functions';
import { resyncAll } from '../mirror/resync.js';
import type { FunctionDefinition } from './definition.js';
import { currentSettings, submitDeps, watchStore } from './services.js';

/** Every 15 minutes, at second 0. */
export const DEFAULT_RESYNC_SCHEDULE = '0 */15 * * * *';

export async function resyncHandler(timer: Timer, context: InvocationContext): Promise<void> {
  const settings = currentSettings();
  const store = await watchStore(settings);
  const next = timer.scheduleStatus?.next;
  // The host's placeholder for "no next occurrence" is the minimum date; only a real one is shown.
  if (next && Date.parse(next) > Date.now()) await store.setNextRun(new Date(next).toISOString());
  const result = await resyncAll({
    store,
    submit: await submitDeps(settings),
    concurrency: settings.resyncConcurrency,
    rateLimitReserve: settings.rateLimitReserve,
    log: (message) => context.warn(message),
  });
  const queued = result.watches.reduce((sum, w) => sum + w.run.jobsQueued, 0);
  const heads = result.watches.reduce((sum, w) => sum + w.run.heads, 0);
  const stopped = result.watches.filter((w) => w.run.stopped).map((w) => `${w.name} (${w.run.stopped!.code})`);
  context.log(`resync: ${result.watches.length} watch(es), ${heads} HEAD(s) upstream, ${queued} job(s) queued${stopped.length > 0 ? `; cut short: ${stopped.join(', ')}` : ''}`);
}

/** The definition both hosts register; the schedule is read when the app loads, after its settings. */
export const resyncFunction: FunctionDefinition = {
  name: 'resync',
  trigger: { type: 'timer', schedule: process.env.HOIST_RESYNC_SCHEDULE ? '%HOIST_RESYNC_SCHEDULE%' : DEFAULT_RESYNC_SCHEDULE },
  handler: resyncHandler,
};
