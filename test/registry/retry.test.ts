/**
 * The back-off policy, unit by unit: which statuses and socket failures are worth another try,
 * Retry-After read as seconds or a date (against an injected clock), the delay's bounds with the
 * jitter pinned, and `sleep` on fake timers: resolved after its time, cut short by an abort, and
 * leaving no listener on a long-lived signal.
 */
import { getEventListeners } from 'node:events';
import { backoffDelay, DEFAULT_RETRY, isRetryableNetworkError, isRetryableStatus, parseRetryAfter, sleep } from '../../src/registry/retry.js';

describe('isRetryableStatus', () => {
  it.each([408, 429, 500, 502, 503, 504, 599])('retries %i', (status) => {
    expect(isRetryableStatus(status)).toBe(true);
  });

  // 501 Not Implemented and 505 HTTP Version Not Supported will not change on a second try.
  it.each([200, 400, 401, 403, 404, 407, 409, 416, 499, 501, 505])('does not retry %i', (status) => {
    expect(isRetryableStatus(status)).toBe(false);
  });
});

describe('isRetryableNetworkError', () => {
  it.each(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED'])('retries %s', (code) => {
    expect(isRetryableNetworkError(Object.assign(new Error(code), { code }))).toBe(true);
  });

  it('retries a proxy refusal only when it is a gateway error', () => {
    expect(isRetryableNetworkError({ code: 'PROXY_REFUSED', transient: true })).toBe(true);
    expect(isRetryableNetworkError({ code: 'PROXY_REFUSED', transient: false })).toBe(false);
    expect(isRetryableNetworkError({ code: 'PROXY_REFUSED' })).toBe(false);
    // A gateway flag on another error does not make it retryable.
    expect(isRetryableNetworkError({ code: 'ADDRESS_REFUSED', transient: true })).toBe(false);
  });

  it.each([['ENOTFOUND'], ['ADDRESS_REFUSED'], ['PROXY_INVALID'], ['econnreset'], [undefined]])('does not retry %s', (code) => {
    expect(isRetryableNetworkError({ code })).toBe(false);
  });

  it.each([undefined, null, new Error('no code')])('does not retry %s', (error) => {
    expect(isRetryableNetworkError(error)).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-30T12:00:00Z');

  it.each([
    ['3', 3000],
    [' 3 ', 3000],
    ['0', 0],
    ['120', 120_000],
    ['Mon, 30 Nov 2026 12:00:05 GMT', 5000],
    ['Mon, 30 Nov 2026 11:59:00 GMT', 0],
  ])('reads %j as %i ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  // The three HTTP-date forms of RFC 9110 §5.6.7; asctime has no zone and is GMT, whatever the host's.
  it.each([
    ['IMF-fixdate', 'Mon, 30 Nov 2026 12:00:05 GMT'],
    ['RFC 850', 'Monday, 30-Nov-26 12:00:05 GMT'],
    ['asctime', 'Mon Nov 30 12:00:05 2026'],
  ])("reads the %s form, as GMT whatever the host's time zone", (_form, value) => {
    const zone = process.env.TZ;
    // Node reads a change of TZ at once: a zone five hours off GMT shows a date read as local time.
    process.env.TZ = 'America/New_York';
    try {
      expect(parseRetryAfter(value, now)).toBe(5000);
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  // V8's Date.parse reads "in 3" and "3.5" as dates in 2001, which made the wait 0: a registry
  // sending either got its retries at once instead of backed off.
  it.each([undefined, '', 'soon', 'in 3 seconds', 'in 3', 'after 3', '3.5', '-1', '3 4', '2026-11-30T12:00:05Z', 'x Mon, 30 Nov 2026 12:00:05 GMT', 'Mon, 30 Nov 2026 12:00:05 GMT GMT'])('reads %j as nothing, leaving the back-off to Hoist', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});

describe('backoffDelay', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('takes Retry-After when given, up to the policy ceiling', () => {
    expect(backoffDelay(DEFAULT_RETRY, 1, 1500)).toBe(1500);
    expect(backoffDelay(DEFAULT_RETRY, 1, 0)).toBe(0);
    expect(backoffDelay(DEFAULT_RETRY, 4, 60_000)).toBe(30_000);
  });

  it.each([
    [1, 0, 100],
    [1, 0.5, 150],
    [1, 1, 200],
    [2, 0, 200],
    [3, 0.5, 600],
    [4, 1, 1600],
    // 200 ms × 2^9 is past 30 s: the ceiling holds.
    [10, 0, 15_000],
    [10, 1, 30_000],
  ])('before attempt %i + 1, with jitter %d, waits %i ms (between half and all of the doubled ceiling)', (attempt, jitter, ms) => {
    vi.spyOn(Math, 'random').mockReturnValue(jitter);
    expect(backoffDelay(DEFAULT_RETRY, attempt)).toBe(ms);
  });
});

describe('sleep', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Whether `promise` has settled, and how, once pending microtasks ran. */
  async function state(promise: Promise<unknown>): Promise<'pending' | 'resolved' | unknown> {
    let outcome: unknown = 'pending';
    promise.then(
      () => (outcome = 'resolved'),
      (error: unknown) => (outcome = error),
    );
    await vi.advanceTimersByTimeAsync(0);
    return outcome;
  }

  it('resolves after its time, and leaves no listener on the signal', async () => {
    const controller = new AbortController();
    const done = sleep(1000, controller.signal);
    await vi.advanceTimersByTimeAsync(999);
    expect(await state(done)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await state(done)).toBe('resolved');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('rejects with the reason at once when the signal is already aborted', async () => {
    const reason = new Error('stopped');
    expect(await state(sleep(1000, AbortSignal.abort(reason)))).toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with the reason when aborted while waiting, and clears its timer', async () => {
    const controller = new AbortController();
    const done = sleep(1000, controller.signal);
    await vi.advanceTimersByTimeAsync(500);
    const reason = new Error('stopped');
    controller.abort(reason);
    expect(await state(done)).toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sleeps without a signal', async () => {
    const done = sleep(10);
    await vi.advanceTimersByTimeAsync(10);
    expect(await state(done)).toBe('resolved');
  });
});
