/**
 * Shared pieces for the local host tests: a private Azurite per test file (the jobs tests'
 * launcher, re-exported), a host started on a free port with its log lines captured, and polling
 * until a condition holds.
 */
import path from 'node:path';
import { readHostConfig, type HostConfig } from '../../src/functions/host-config.js';
import { startLocalHost, type LocalHost, type StartLocalHostOptions } from '../../src/local/local-host.js';
import { createConsoleLogger, secretSettingValues } from '../../src/local/logger.js';

export { startAzurite as startTestAzurite, type TestAzurite } from '../jobs/azurite.js';

/** The repository root, where host.json lives. */
export const PROJECT_ROOT = path.resolve(__dirname, '../..');

/** The project's host.json with faster polling and retries, so queue tests take seconds. */
export function fastHostConfig(queues: Partial<HostConfig['queues']> = {}): HostConfig {
  const config = readHostConfig(PROJECT_ROOT);
  return { ...config, queues: { ...config.queues, maxPollingIntervalInMs: 250, visibilityTimeoutInMs: 1000, ...queues } };
}

/** A started host with the log lines it wrote. */
export interface TestHost extends LocalHost {
  readonly logs: string[];
}

/** Starts a local host on a free port, logging into an array instead of stdout. */
export async function startTestHost(options: Omit<StartLocalHostOptions, 'logger'>): Promise<TestHost> {
  const logs: string[] = [];
  const logger = createConsoleLogger({ secrets: secretSettingValues(options.settings), write: (line) => logs.push(line) });
  const host = await startLocalHost({ port: 0, projectRoot: PROJECT_ROOT, shutdownGraceInMs: 5000, ...options, logger });
  return Object.assign(host, { logs });
}

/** Polls `check` every 50 ms until it returns a value other than undefined/false, or fails after `timeoutInMs`. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutInMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutInMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutInMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Asserts a response is an error in the API's one shape, `{"error": {"code", "message",
 * "field"}}`, with this status and code (and field, when given), and returns its error object.
 */
export async function expectErrorShape(response: Response, status: number, code: string, field?: string): Promise<{ code: string; message: string; field?: string }> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: { code: string; message: string; field?: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe(code);
  expect(body.error.message).toEqual(expect.any(String));
  expect(body.error.message.length).toBeGreaterThan(10);
  if (field !== undefined) expect(body.error.field).toBe(field);
  return body.error;
}
