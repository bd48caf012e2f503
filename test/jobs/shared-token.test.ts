/**
 * SharedTokenCredential's own rules, on an injected clock: a token shared until shortly before it
 * expires, one request in flight for all callers, no failure kept. The credential under it is a
 * scripted one (the rules are about time and concurrency, which the real endpoint cannot be told
 * to show on cue); storage-identity.test.ts shows the effect with the real @azure/identity.
 */
import { SharedTokenCredential, SHARED_TOKEN_RENEW_BEFORE_MS } from '../../src/jobs/shared-token.js';

describe('SharedTokenCredential', () => {
  /** A credential answering tokens that live `lifetimeMs` on the injected clock, counting what it is asked. */
  function countingCredential(clock: { now: number }, lifetimeMs: number) {
    const asked: Array<{ scopes: string | string[]; aborted: boolean }> = [];
    let answer: (() => void) | undefined;
    return {
      asked,
      release: () => answer?.(),
      hold: false,
      async getToken(scopes: string | string[], options?: { abortSignal?: AbortSignal }) {
        asked.push({ scopes, aborted: options?.abortSignal !== undefined });
        if (this.hold) await new Promise<void>((resolve) => (answer = resolve));
        return { token: `token-${asked.length}`, expiresOnTimestamp: clock.now + lifetimeMs };
      },
    };
  }

  it('shares a token until five minutes before it expires, then asks once more', async () => {
    const clock = { now: 1_000_000 };
    const inner = countingCredential(clock, 60 * 60 * 1000);
    const shared = new SharedTokenCredential(inner, () => clock.now);
    expect((await shared.getToken('https://storage.azure.com/.default'))?.token).toBe('token-1');
    clock.now += 60 * 60 * 1000 - SHARED_TOKEN_RENEW_BEFORE_MS - 1;
    expect((await shared.getToken(['https://storage.azure.com/.default']))?.token).toBe('token-1');
    clock.now += 1;
    expect((await shared.getToken('https://storage.azure.com/.default'))?.token).toBe('token-2');
    expect(inner.asked).toHaveLength(2);
  });

  it('joins callers to one request in flight, which one caller giving up does not abort', async () => {
    const clock = { now: 1_000_000 };
    const inner = countingCredential(clock, 60 * 60 * 1000);
    inner.hold = true;
    const shared = new SharedTokenCredential(inner, () => clock.now);
    const quitter = new AbortController();
    const first = shared.getToken('https://storage.azure.com/.default', { abortSignal: quitter.signal });
    const second = shared.getToken('https://storage.azure.com/.default');
    quitter.abort();
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    inner.release();
    expect((await second)?.token).toBe('token-1');
    expect(inner.asked).toEqual([{ scopes: 'https://storage.azure.com/.default', aborted: false }]);
  });

  it('keeps no failed answer: the next caller asks again', async () => {
    let calls = 0;
    const shared = new SharedTokenCredential({
      getToken: () => (++calls === 1 ? Promise.reject(new Error('endpoint down')) : Promise.resolve({ token: 'later', expiresOnTimestamp: Date.now() + 3_600_000 })),
    });
    await expect(shared.getToken('scope')).rejects.toThrow('endpoint down');
    expect((await shared.getToken('scope'))?.token).toBe('later');
  });
});
