/**
 * Back-off policy for the one layer that retries requests (transport.ts), and for upload chunks,
 * which only the copy engine can resend once it has asked the registry what landed: exponential
 * with jitter, honouring the registry's Retry-After.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayInMs: number;
  maxDelayInMs: number;
}

/** 5 tries from 200 ms up to 30 s, in line with regclient and oras. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayInMs: 200, maxDelayInMs: 30_000 };

/**
 * The most attempts `--retry-times` and HOIST_RETRY_ATTEMPTS accept: with back-off capped at 30 s,
 * 20 attempts already wait out about eight minutes of a registry's trouble.
 */
export const MAX_RETRY_ATTEMPTS = 20;

/** Statuses worth another try: request timeout, throttling, and server trouble. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/**
 * Socket-level failures worth another try (a reset, a refused or timed-out connection), and a
 * proxy's gateway error (it could not reach the host, which may pass).
 */
export function isRetryableNetworkError(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  return (
    (code === 'PROXY_REFUSED' && (error as { transient?: boolean }).transient === true) ||
    code === 'ECONNRESET' ||
    code === 'ECONNREFUSED' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CLOSED'
  );
}

/**
 * The three HTTP-date forms (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and asctime. Checked before
 * Date.parse, which reads almost anything (V8 takes "in 3" and "3.5" for dates in 2001): such a
 * value would make the wait 0, and the retries come at once instead of backed off.
 */
const HTTP_DATE =
  /^(?:[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT|[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})$/;

/** Reads Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  const text = value?.trim() ?? '';
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!HTTP_DATE.test(text)) return undefined;
  // asctime names no zone; HTTP dates are GMT, whatever the host's time zone.
  const date = Date.parse(text.endsWith(' GMT') ? text : `${text} GMT`);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Delay before attempt `attempt + 1` (attempt counts from 1). Retry-After wins when given. */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterInMs?: number): number {
  if (retryAfterInMs !== undefined) return Math.min(retryAfterInMs, policy.maxDelayInMs);
  const ceiling = Math.min(policy.maxDelayInMs, policy.baseDelayInMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
