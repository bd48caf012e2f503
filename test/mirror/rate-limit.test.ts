/**
 * A host's budget for one resync: the rate-limit header forms it reads, and the bound on requests
 * in flight (driven by promises the test settles, so no timing is involved).
 */
import { HostBudget, parseRateLimitCount } from '../../src/mirror/rate-limit.js';

describe('parseRateLimitCount', () => {
  it.each([
    ['76;w=21600', 76],
    ['100', 100],
    [' 5 ; w=60', 5],
    ['0;w=21600', 0],
    ['100, 50;w=60', 100],
    ['', undefined],
    ['many', undefined],
    ['-1', undefined],
    [undefined, undefined],
  ])('reads %j as %j', (value, expected) => {
    expect(parseRateLimitCount(value)).toBe(expected);
  });
});

describe('HostBudget', () => {
  it('keeps at most `concurrency` requests in flight, and starts none once the host has stopped', async () => {
    const budget = new HostBudget('upstream.example', 2, 10);
    let active = 0;
    let most = 0;
    const release: Array<() => void> = [];
    const request = () =>
      budget.run(async () => {
        active++;
        most = Math.max(most, active);
        await new Promise<void>((resolve) => release.push(resolve));
        active--;
        return { status: 200, headers: { 'ratelimit-remaining': '50' }, value: 'ok' };
      });
    const runs = Array.from({ length: 5 }, request);
    // Let every run reach its gate.
    await new Promise((resolve) => setImmediate(resolve));
    expect(active).toBe(2);
    while (release.length > 0 || active > 0) {
      release.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((await Promise.all(runs)).map((r) => r?.value)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(most).toBe(2);

    budget.observe(200, { 'ratelimit-remaining': '3;w=60', 'ratelimit-limit': '100;w=60' });
    expect(budget.stop).toMatchObject({ code: 'RATE_LIMIT_LOW' });
    let called = false;
    expect(await budget.run(async () => ((called = true), { status: 200, headers: {}, value: 'late' }))).toBeUndefined();
    expect(called).toBe(false);
  });

  it('reads a 429 Retry-After in seconds or as a date into the time to come back', () => {
    const now = new Date('2026-11-30T12:00:00Z');
    const seconds = new HostBudget('a', 1, 0, () => now);
    seconds.observe(429, { 'retry-after': '90' });
    expect(seconds.stop).toMatchObject({ code: 'TOO_MANY_REQUESTS', retryAfter: '2026-11-30T12:01:30.000Z' });
    const date = new HostBudget('b', 1, 0, () => now);
    date.observe(429, { 'retry-after': 'Mon, 30 Nov 2026 13:00:00 GMT' });
    expect(date.stop).toMatchObject({ retryAfter: '2026-11-30T13:00:00.000Z' });
  });
});
