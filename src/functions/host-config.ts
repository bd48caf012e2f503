/**
 * The parts of host.json Hoist reads: the queue trigger's `extensions.queues`, the HTTP
 * `extensions.http.routePrefix` and `functionTimeout`. Each default is the host's own, so a
 * host.json that omits a setting behaves here as it would on Azure. As on Azure, an app setting
 * `AzureFunctionsJobHost__path__to__key` overrides the host.json value at that path.
 *
 * One reader for both hosts: the local host runs its queue trigger from it, and the worker learns
 * from it which delivery is the last (maxDequeueCount), so the two cannot disagree.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as v from 'valibot';
import { jsonObject } from '../copy/json-object.js';
import { parseTimeSpanInMs } from './timespan.js';

/** Where `AzureFunctionsJobHost__…` overrides are looked up: `process.env`, or the local host's settings. */
type SettingValues = Readonly<Record<string, string | undefined>>;

/** Queue trigger behaviour, from host.json `extensions.queues`. */
export interface QueueTriggerOptions {
  /** Messages fetched per poll (1-32; a storage queue returns at most 32). Host default 16. */
  batchSize: number;
  /** Fetch the next batch once this few messages are still running. Host default batchSize/2 × cores. */
  newBatchThreshold: number;
  /** The longest wait between polls of an idle queue. Host default 1 minute. */
  maxPollingIntervalInMs: number;
  /** How long a FAILED message stays invisible before its retry. Host default 0. */
  visibilityTimeoutInMs: number;
  /** Attempts before a message moves to `<queue>-poison`. Host default 5. */
  maxDequeueCount: number;
  /** `base64` (the default) expects base64 message text; `none` takes the text as it is. */
  messageEncoding: 'base64' | 'none';
}

/** The host.json settings the local host uses. */
export interface HostConfig {
  queues: QueueTriggerOptions;
  /** `extensions.http.routePrefix`; default `api`. An empty string serves routes at the root. */
  routePrefix: string;
  /** `functionTimeout`, when set; the local host warns about invocations that outlive it. */
  functionTimeoutInMs?: number;
}

const timeSpan = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      // functionTimeout "-1" means no limit (Premium and Dedicated plans).
      return dataset.value.trim() === '-1' ? undefined : parseTimeSpanInMs(dataset.value);
    } catch (error) {
      addIssue({ message: (error as Error).message });
      return NEVER;
    }
  }),
);

const DEFAULT_MAX_DEQUEUE_COUNT = 5;
const dequeueCount = v.pipe(v.number(), v.safeInteger(), v.minValue(1));

const HostJson = jsonObject(v.object({
  functionTimeout: v.optional(timeSpan),
  extensions: v.optional(jsonObject(v.object({
    queues: v.optional(jsonObject(v.object({
      batchSize: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(32))),
      newBatchThreshold: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0))),
      maxPollingInterval: v.optional(timeSpan),
      visibilityTimeout: v.optional(timeSpan),
      maxDequeueCount: v.optional(dequeueCount),
      // The host binds enums without regard to case.
      messageEncoding: v.optional(v.pipe(v.string(), v.toLowerCase(), v.picklist(['base64', 'none']))),
    }))),
    http: v.optional(jsonObject(v.object({ routePrefix: v.optional(v.string()) }))),
  }))),
}));

/**
 * Builds the configuration from a parsed host.json document, applying the host's defaults.
 *
 * @throws Error listing what is invalid (e.g. `batchSize: 64`), as the host refuses to start.
 */
export function hostConfigFromJson(document: unknown): HostConfig {
  // One problem per setting: a batchSize of 0.5 is not an integer, and is not also reported as below 1.
  const parsed = v.safeParse(HostJson, document, { abortPipeEarly: true });
  if (!parsed.success) {
    throw new Error(`host.json is invalid: ${parsed.issues.map((i) => `${v.getDotPath(i) ?? ''}: ${i.message}`).join('; ')}`);
  }
  const queues = parsed.output.extensions?.queues ?? {};
  const batchSize = queues.batchSize ?? 16;
  return {
    queues: {
      batchSize,
      newBatchThreshold: queues.newBatchThreshold ?? Math.floor(batchSize / 2) * os.availableParallelism(),
      maxPollingIntervalInMs: queues.maxPollingInterval ?? 60_000,
      visibilityTimeoutInMs: queues.visibilityTimeout ?? 0,
      maxDequeueCount: queues.maxDequeueCount ?? DEFAULT_MAX_DEQUEUE_COUNT,
      messageEncoding: queues.messageEncoding ?? 'base64',
    },
    routePrefix: (parsed.output.extensions?.http?.routePrefix ?? 'api').replace(/^\/+|\/+$/g, ''),
    functionTimeoutInMs: parsed.output.functionTimeout,
  };
}

/**
 * Reads `host.json` from the project root and applies `AzureFunctionsJobHost__…` overrides from
 * `settings`.
 *
 * @throws Error when the file is missing or invalid: `func start` refuses to run without it too.
 */
export function readHostConfig(projectRoot: string, settings: SettingValues = {}): HostConfig {
  return hostConfigFromJson(applyHostOverrides(readHostJson(projectRoot), settings));
}

/** The parsed host.json in `directory`; throws saying which file could not be read. */
function readHostJson(directory: string): unknown {
  const file = path.join(directory, 'host.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

const OVERRIDE_PREFIX = 'AzureFunctionsJobHost__';

/**
 * A copy of a host.json document with each `AzureFunctionsJobHost__a__b` setting written at path
 * a.b. Keys match case-insensitively, as .NET configuration does; numeric and boolean text becomes
 * a number or boolean, since configuration values are all strings.
 */
export function applyHostOverrides(document: unknown, settings: SettingValues): unknown {
  const root = structuredClone((document ?? {}) as Record<string, unknown>);
  for (const [name, raw] of Object.entries(settings)) {
    if (!name.startsWith(OVERRIDE_PREFIX) || raw === undefined) continue;
    const keys = name.slice(OVERRIDE_PREFIX.length).split('__').filter(Boolean);
    const value: unknown = /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : /^(true|false)$/i.test(raw) ? raw.toLowerCase() === 'true' : raw;
    let node = root;
    keys.forEach((key, i) => {
      // host.json keys are camelCase; a new key is written that way so the schema recognises it.
      const existing = Object.keys(node).find((k) => k.toLowerCase() === key.toLowerCase()) ?? key.charAt(0).toLowerCase() + key.slice(1);
      if (i === keys.length - 1) {
        node[existing] = value;
      } else {
        if (typeof node[existing] !== 'object' || node[existing] === null) node[existing] = {};
        node = node[existing] as Record<string, unknown>;
      }
    });
  }
  return root;
}

/**
 * The maxDequeueCount the Functions host delivers the app's queue messages with: host.json's
 * (the nearest above this module: the package root, from src/ or from dist/src/) under the
 * overrides in `env`, as the host reads it. The worker needs it to know a last attempt. Unlike the
 * local host, which refuses an invalid host.json as `func start` does, this never fails: on Azure
 * the host has accepted the file already, so a value it cannot read means the host's default.
 */
export function appMaxDequeueCount(env: SettingValues = process.env): number {
  const document = applyHostOverrides(appHostJson(), env) as { extensions?: { queues?: { maxDequeueCount?: unknown } } };
  const parsed = v.safeParse(dequeueCount, document.extensions?.queues?.maxDequeueCount);
  return parsed.success ? parsed.output : DEFAULT_MAX_DEQUEUE_COUNT;
}

/** host.json as the app ships it, read once per process; `{}` when there is none to read. */
let appDocument: unknown;
function appHostJson(): unknown {
  if (appDocument === undefined) {
    try {
      appDocument = readHostJson(appRoot());
    } catch {
      appDocument = {};
    }
  }
  return appDocument;
}

function appRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'host.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no host.json in ${__dirname} or any directory above it`);
  }
}
