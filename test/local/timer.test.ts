import type { InvocationContext, Timer } from '@azure/functions';
import type { TimerDefinition } from '../../src/local/timer-scheduler.js';
import { ImportsApi } from '../e2e/support.js';
import { startTestAzurite, startTestHost, waitFor, type TestAzurite, type TestHost } from './support.js';

interface Tick {
  host: string;
  at: number;
  timer: Timer;
  context: InvocationContext;
}

describe('local host timer trigger', () => {
  let azurite: TestAzurite;
  const hosts: TestHost[] = [];
  let functionCounter = 0;

  beforeAll(async () => {
    azurite = await startTestAzurite();
  });
  afterEach(async () => {
    await Promise.all(hosts.splice(0).map((h) => h.stop()));
  });
  afterAll(async () => {
    await azurite?.stop();
  });

  /** A timer function recording its ticks; a fresh name per test keeps the stored status apart. */
  function timerFunction(ticks: Tick[], hostName: string, schedule: string, name: string, runOnStartup = false): TimerDefinition {
    return {
      name,
      trigger: { type: 'timer', schedule, runOnStartup },
      handler: async (timer, context) => {
        ticks.push({ host: hostName, at: Date.now(), timer, context });
      },
    };
  }

  async function startHost(definition: TimerDefinition, settings: Record<string, string> = {}, timerClock?: () => number): Promise<TestHost> {
    const host = await startTestHost({ definitions: [definition], settings: { AzureWebJobsStorage: azurite.connectionString, ...settings }, ...(timerClock && { timerClock }) });
    hosts.push(host);
    return host;
  }

  it('fires every second on */1 * * * * *, with isPastDue and scheduleStatus', async () => {
    const ticks: Tick[] = [];
    await startHost(timerFunction(ticks, 'A', '*/1 * * * * *', `everySecond${++functionCounter}`));
    await waitFor(() => ticks.length >= 3, 20_000, 'three ticks');
    const [first, second, third] = ticks as [Tick, Tick, Tick];
    // The occurrences, not the wall clock: each tick names the previous occurrence (`last`) and
    // the next one (`next`); they are whole seconds apart, and the next one named lies after the
    // occurrence that ran and no later than the one that ran next. (The same one, unless the run,
    // claim and handler, lasted past it on a loaded machine: the scheduler then skips it, as the
    // Functions host does, so equality would depend on the machine's speed.)
    const [firstRan, secondRan] = [Date.parse(second.timer.scheduleStatus.last), Date.parse(third.timer.scheduleStatus.last)];
    const firstNext = Date.parse(first.timer.scheduleStatus.next);
    expect(firstRan % 1000).toBe(0);
    expect(secondRan % 1000).toBe(0);
    expect(secondRan).toBeGreaterThanOrEqual(firstRan + 1000);
    expect(firstNext).toBeGreaterThan(firstRan);
    expect(firstNext).toBeLessThanOrEqual(secondRan);
    expect(first.timer.isPastDue).toBe(false);
    expect(first.timer.scheduleStatus.last).toBe('0001-01-01T00:00:00.000Z');
    expect(new Date(second.timer.scheduleStatus.last).getTime()).toBeGreaterThan(0);
    expect(new Date(first.timer.scheduleStatus.next).getTime() % 1000).toBe(0);
    expect(first.context.functionName).toMatch(/^everySecond/);
    expect(first.context.triggerMetadata).toBeUndefined();
  });

  it('reads the schedule from an app setting and runs on startup', async () => {
    const ticks: Tick[] = [];
    // Once a day at midnight: only runOnStartup can fire within this test.
    await startHost(timerFunction(ticks, 'A', '%TEST_SCHEDULE%', `fromSetting${++functionCounter}`, true), { TEST_SCHEDULE: '0 0 0 * * *' });
    await waitFor(() => ticks.length === 1, 20_000, 'the startup run');
    expect(ticks[0]!.timer.isPastDue).toBe(false);
    expect(new Date(ticks[0]!.timer.scheduleStatus.next).toISOString()).toMatch(/T00:00:00\.000Z$/);
  });

  it('runs each occurrence on one instance only when two hosts share storage', { tags: ['slow'] }, async () => {
    const ticks: Tick[] = [];
    const name = `shared${++functionCounter}`;
    const started = Date.now();
    await startHost(timerFunction(ticks, 'A', '*/1 * * * * *', name));
    await startHost(timerFunction(ticks, 'B', '*/1 * * * * *', name));
    await waitFor(() => ticks.length >= 4, 20_000, 'four ticks');
    // No occurrence before the start, and none fires before its time: run once each, the n-th
    // tick can come no earlier than the n-th whole second after the start, however late the
    // machine runs it. An occurrence run by both hosts puts two ticks on one second and breaks
    // that. (Rounding each tick's time to a second, as this test once did, took a tick run
    // half a second late for the next occurrence.)
    const ats = ticks.map((t) => t.at).sort((a, b) => a - b);
    ats.forEach((at, i) => expect(at, `tick ${i + 1}`).toBeGreaterThanOrEqual((Math.floor(started / 1000) + i + 1) * 1000));
  });

  it('runs a missed occurrence at the next start, with isPastDue', async () => {
    const ticks: Tick[] = [];
    const name = `missed${++functionCounter}`;
    const first = await startHost(timerFunction(ticks, 'A', '*/1 * * * * *', name));
    await waitFor(() => ticks.length >= 1, 20_000, 'a first tick');
    await first.stop();
    hosts.splice(hosts.indexOf(first), 1);
    ticks.length = 0;
    // B starts 3 s "later" by its clock, instead of after a wait: the occurrence A left as next
    // (a second after its last run) is then well past due, with no instance having run it.
    await startHost(timerFunction(ticks, 'B', '*/1 * * * * *', name), {}, () => Date.now() + 3000);
    await waitFor(() => ticks.length >= 2, 20_000, 'the past-due run and a regular one');
    expect(ticks[0]!.timer.isPastDue).toBe(true);
    expect(ticks[1]!.timer.isPastDue).toBe(false);
  });

  it('refuses an invalid schedule at start-up', async () => {
    await expect(startHost(timerFunction([], 'A', '0 */5 * * *', `invalid${++functionCounter}`))).rejects.toThrow(/needs 6/);
  });
  it('runs a timer function on POST /admin/functions/{name}, as the Functions host does, behind HOIST_API_KEY', async () => {
    const ticks: Tick[] = [];
    const name = `onDemand${++functionCounter}`;
    // Once a day at midnight: only the admin call runs it within this test.
    const host = await startHost(timerFunction(ticks, 'A', '0 0 0 * * *', name), { HOIST_API_KEY: 'admin-key-123' });
    // Through the OpenAPI checker, as every e2e call: each answer, errors included, must be one the
    // document describes (the one error shape).
    const api = ImportsApi.of(host);
    const post = (path: string, headers: Record<string, string> = {}) => api.request('POST', path, { json: { input: '' }, headers });

    const unauthorized = await post(`/admin/functions/${name}`);
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.body.error.code).toBe('UNAUTHORIZED');
    expect((await post(`/admin/functions/${name}`, { 'x-functions-key': 'wrong' })).status).toBe(401);
    const missing = await post('/admin/functions/noSuchFunction', { 'x-functions-key': 'admin-key-123' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'FUNCTION_NOT_FOUND', field: 'name' });
    // A name whose percent-encoding is malformed names no function either (not a host failure).
    const malformed = await post('/admin/functions/%E0%A4%A', { 'x-functions-key': 'admin-key-123' });
    expect(malformed.status).toBe(404);
    expect(malformed.body.error).toMatchObject({ code: 'FUNCTION_NOT_FOUND', field: 'name' });
    expect(ticks).toHaveLength(0);

    const accepted = await post(`/admin/functions/${name.toLowerCase()}`, { 'x-functions-key': 'admin-key-123' });
    expect(accepted.status).toBe(202);
    await waitFor(() => ticks.length === 1, 20_000, 'the run asked for');
    expect(ticks[0]!.timer.isPastDue).toBe(false);
    expect(ticks[0]!.context.functionName).toBe(name);
    const notPost = await api.request('GET', `/admin/functions/${name}?code=admin-key-123`);
    expect(notPost.status).toBe(405);
    expect(notPost.headers.get('allow')).toBe('POST');
    expect(notPost.body.error.code).toBe('METHOD_NOT_ALLOWED');
  });
});
