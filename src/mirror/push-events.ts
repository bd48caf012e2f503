/**
 * Push events from upstream registries, turned into syncs: ACR's `ImagePushed`/`ChartPushed` in
 * the Event Grid schema or CloudEvents 1.0, and CNCF distribution's notification envelope (v1 from
 * 2.x, v2 from 3.x). Each event is read into one shape, matched against the watches by host,
 * repository and tag, and queues an import of exactly the pushed digest. Events for tags no watch
 * covers, and events from the target registry itself (Hoist's own pushes), are ignored; two events
 * for one digest, or an event racing the timer, queue one job (syncTag's Idempotency-Key per
 * watch, tag and digest). An event no newer than what a watch last observed of the tag upstream
 * (TrackedTag.observedAt) is skipped: senders deliver out of order and retry for up to a day, so a
 * late event for an older digest would otherwise move the target tag back, and the same event
 * delivered again after its job ended would queue another. A malformed event is dropped with its
 * reason, never thrown, so no sender retries it for ever.
 */
import * as v from 'valibot';
import { parseReference } from '../registry/reference.js';
import { redact } from '../jobs/source-credentials.js';
import type { SubmitImportDeps } from '../jobs/submit-import.js';
import { MAX_TRACKED_TAGS, syncTag, targetCheckCredentials, watchCredentials } from './resync.js';
import { selectTags } from './tag-filter.js';
import { seenLater, type WatchRecord, type WatchStore } from './watch-store.js';

/** A push, whatever the sender's format. */
export interface PushEvent {
  id: string;
  /** The registry host the push went to (`myregistry.azurecr.io`, `127.0.0.1:5000`). */
  host: string;
  repository: string;
  tag?: string;
  digest: string;
  /** When the push happened by the sender's clock (ISO 8601, to the millisecond); absent when it sent none. */
  time?: string;
}

/** What became of one event. */
export type PushOutcome =
  | { kind: 'queued'; jobs: Array<{ watch: string; tag: string; jobId: string; replayed: boolean }> }
  | { kind: 'ignored'; reason: string }
  | { kind: 'dropped'; reason: string };

const ACR_PUSH_TYPES = ['Microsoft.ContainerRegistry.ImagePushed', 'Microsoft.ContainerRegistry.ChartPushed'];
const DIGEST = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
/** Event ids become part of an Idempotency-Key (at most 255 printable characters in all). */
const EVENT_ID = /^[\x21-\x7e]{1,128}$/;

const text = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const target = v.object({
  digest: v.pipe(text(200), v.regex(DIGEST, 'not a sha256 or sha512 digest')),
  repository: text(256),
  tag: v.optional(v.pipe(v.string(), v.maxLength(128))),
});
const acrData = v.object({
  action: v.optional(v.string()),
  target,
  request: v.optional(v.object({ host: v.optional(text(256)) })),
});
const eventGridEvent = v.object({ id: text(256), eventType: v.string(), topic: v.optional(v.string()), eventTime: v.optional(text(64)), data: acrData });
const cloudEvent = v.object({ id: text(256), specversion: v.literal('1.0'), type: v.string(), source: v.optional(v.string()), time: v.optional(text(64)), data: acrData });
const distributionEvent = v.object({
  id: text(256),
  action: v.string(),
  timestamp: v.optional(text(64)),
  target,
  request: v.object({ host: text(256) }),
});
/** Most events accepted in one distribution envelope (its default batch is far smaller). */
export const MAX_ENVELOPE_EVENTS = 1000;
const distributionEnvelope = v.object({ events: v.pipe(v.array(v.unknown()), v.maxLength(MAX_ENVELOPE_EVENTS)) });

/**
 * Reads one ACR event, Event Grid schema or CloudEvents 1.0. Returns a reason instead when the
 * event is malformed or not a push.
 */
export function readAcrEvent(input: unknown): PushEvent | { ignored: string } | { dropped: string } {
  const isCloud = typeof input === 'object' && input !== null && 'specversion' in input;
  const parsed = isCloud ? v.safeParse(cloudEvent, input) : v.safeParse(eventGridEvent, input);
  if (!parsed.success) return { dropped: `not an ACR push event in the ${isCloud ? 'CloudEvents 1.0' : 'Event Grid'} schema: ${describeIssues(parsed.issues)}` };
  const event = parsed.output;
  const type = 'specversion' in event ? event.type : event.eventType;
  if (!ACR_PUSH_TYPES.includes(type)) return { ignored: `event type ${type.slice(0, 100)} is not a push` };
  const scope = 'specversion' in event ? event.source : event.topic;
  const host = event.data.request?.host ?? registryFromTopic(scope);
  if (host === undefined) return { dropped: 'the event names no registry host (data.request.host) and no registry topic' };
  return finish(event.id, host, event.data.target, 'specversion' in event ? event.time : event.eventTime);
}

/** Reads a distribution notification envelope: one result per event in it. */
export function readDistributionEnvelope(input: unknown): Array<PushEvent | { ignored: string } | { dropped: string }> | { dropped: string } {
  const envelope = v.safeParse(distributionEnvelope, input);
  if (!envelope.success) return { dropped: `not a distribution notification envelope ({"events": [...]}, at most ${MAX_ENVELOPE_EVENTS} events): ${describeIssues(envelope.issues)}` };
  return envelope.output.events.map((item) => {
    const parsed = v.safeParse(distributionEvent, item);
    if (!parsed.success) return { dropped: `not a distribution event: ${describeIssues(parsed.issues)}` };
    const event = parsed.output;
    if (event.action !== 'push') return { ignored: `action ${event.action.slice(0, 20)} is not a push` };
    return finish(event.id, event.request.host, event.target, event.timestamp);
  });
}

function finish(id: string, host: string, t: v.InferOutput<typeof target>, time: string | undefined): PushEvent | { ignored: string } | { dropped: string } {
  if (!EVENT_ID.test(id)) return { dropped: 'the event id is not 1 to 128 printable characters' };
  // Distribution also reports each blob pushed; those, like manifests pushed by digest, carry no tag.
  if (!t.tag) return { ignored: `a push of ${t.digest} without a tag: watches follow tags` };
  const when = time === undefined ? undefined : readTime(time);
  if (when === null) return { dropped: 'the event time (eventTime, time or timestamp) is not an RFC 3339 date-time such as 2026-11-30T20:00:00.123Z' };
  return { id, host: host.toLowerCase(), repository: t.repository, tag: t.tag, digest: t.digest, ...(when !== undefined && { time: when }) };
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time (Event Grid sends 7 fractional digits, distribution 9) as ISO to the millisecond; null when it is not one. */
function readTime(time: string): string | null {
  const ms = RFC3339.test(time) ? Date.parse(time) : NaN;
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** `…/registries/NAME` → `name.azurecr.io` (Azure public cloud; other clouds send data.request.host). */
function registryFromTopic(topic: string | undefined): string | undefined {
  const name = topic === undefined ? undefined : /\/registries\/([A-Za-z0-9]{5,50})$/i.exec(topic)?.[1];
  return name === undefined ? undefined : `${name.toLowerCase()}.azurecr.io`;
}

function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const first = issues[0]!;
  const path = first.path?.map((p) => String(p.key)).join('.') ?? '(the event)';
  return `${path}: ${first.message}`;
}

export interface PushDeps {
  store: WatchStore;
  submit: SubmitImportDeps;
  now?: () => Date;
}

/** Queues the syncs one push event asks for. Throws only for failures worth a redelivery (storage, target unreachable). */
export async function handlePush(event: PushEvent, deps: PushDeps): Promise<PushOutcome> {
  // Watches write to the default (first) target registry; a push to any target is Hoist's own.
  if (deps.submit.targetRegistries.some((r) => r.toLowerCase() === event.host)) return { kind: 'ignored', reason: `the push went to the target registry ${event.host} itself (Hoist's own pushes are not synced again)` };
  const watches = (await deps.store.list()).filter((w) => w.enabled && covers(w, event));
  if (watches.length === 0) return { kind: 'ignored', reason: `no enabled watch covers ${event.host}/${event.repository}:${event.tag}` };
  const jobs: Array<{ watch: string; tag: string; jobId: string; replayed: boolean }> = [];
  // Why watches that cover the event left it to the next resync, for the log line.
  const deferred: string[] = [];
  for (const watch of watches) {
    const tag = event.tag!;
    const { value: state } = await deps.store.state(watch.name, watch.createdAt);
    const tracked = state.tags[tag];
    if (event.time !== undefined && tracked?.observedAt !== undefined && !seenLater(event.time, tracked.observedAt)) {
      // Keeps "exactly the pushed digest" honest: the pushed digest is synced only while it can
      // still be the tag's newest. An older push, or this one delivered again, waits for nothing:
      // the tag's current digest was seen later, and the resync repairs a target changed by hand.
      deferred.push(`watch ${watch.name} saw ${tag} at ${tracked.digest} upstream at ${tracked.observedAt}, not before this push of ${event.time}: a late or repeated event`);
      continue;
    }
    if (tracked === undefined) {
      if (watch.tags.latest !== undefined) {
        deferred.push(`watch ${watch.name} follows its newest ${watch.tags.latest} tags, which only the next resync can tell`);
        continue;
      }
      // The state holds at most what a resync follows (its entity must stay within Azure Tables'
      // 1 MiB); a tag beyond that waits for the resync to choose.
      if (Object.keys(state.tags).length >= MAX_TRACKED_TAGS) {
        deferred.push(`watch ${watch.name} already tracks ${MAX_TRACKED_TAGS} tags, the most a watch follows; the next resync chooses which`);
        continue;
      }
    }
    const credentials = watchCredentials(watch, deps.submit.secretBox);
    try {
      const targetHosts = deps.submit.hosts.withCredentials(targetCheckCredentials(event.host, deps.submit));
      // An event without a time was observed when it arrived.
      const observedAt = event.time ?? (deps.now ?? (() => new Date()))().toISOString();
      const outcome = await syncTag({ watch, tag, digest: event.digest, tracked, observedAt, epoch: state.epoch ?? 0, trigger: `event:${event.id}`, credentials, targetHosts }, deps);
      await deps.store.updateState(watch.name, watch.createdAt, (s) => {
        s.tags[tag] = outcome.tracked;
      });
      if (outcome.jobId !== undefined) jobs.push({ watch: watch.name, tag, jobId: outcome.jobId, replayed: !outcome.queued });
    } catch (error) {
      if (error instanceof Error) error.message = redact(error.message, [credentials?.password]);
      throw error;
    }
  }
  if (jobs.length === 0) {
    const synced = watches.length > deferred.length ? [`the target already holds ${event.digest} or a job for it is pending`] : [];
    return { kind: 'ignored', reason: [...synced, ...deferred].join('; ') };
  }
  return { kind: 'queued', jobs };
}

/** Whether a watch follows the pushed tag of that host and repository. */
function covers(watch: WatchRecord, event: PushEvent): boolean {
  const source = parseReference(watch.source);
  const hosts = [source.registry.name.toLowerCase(), source.registry.apiHost.toLowerCase()];
  if (!hosts.includes(event.host) || source.repository !== event.repository) return false;
  if (watch.sourceTag !== undefined) return watch.sourceTag === event.tag;
  // `latest` is left out here: one tag cannot say whether it is among the newest N.
  return selectTags([event.tag!], { ...watch.tags, latest: undefined }).tags.length === 1;
}
