/**
 * What a resync may still ask of each upstream host: the rate-limit headers registries send
 * (`ratelimit-remaining` / `ratelimit-limit`, Docker Hub's `N;w=SECONDS` form included), a 429's
 * Retry-After, and a bound on requests in flight per host. Once little remains, or the host said
 * 429, the host's work stops for this run and the reason is kept for the watches it cut short.
 */
import { parseRetryAfter } from '../registry/retry.js';

/** Why a host's work stopped in this run. */
export interface HostStop {
  code: 'RATE_LIMIT_LOW' | 'TOO_MANY_REQUESTS';
  reason: string;
  /** With a 429: when the host said to come back (ISO time). */
  retryAfter?: string;
}

/** `76;w=21600` → 76; a bare number as is; undefined for anything else. */
export function parseRateLimitCount(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^\s*(\d{1,12})\s*(?:[;,]|$)/.exec(value);
  return match ? Number(match[1]) : undefined;
}

/** One host's budget for one resync run: a concurrency gate, plus the stop once limits say so. */
export class HostBudget {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  stop: HostStop | undefined;
  /** The last `ratelimit-remaining` seen. */
  remaining: number | undefined;
  limit: number | undefined;

  constructor(
    readonly host: string,
    private readonly concurrency: number,
    /** Stop once this many requests or fewer remain. */
    private readonly reserve: number,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Runs `request` when a slot is free, unless the host's work has stopped (then undefined,
   * without a request). `request` hands back the response headers and status it got.
   */
  async run<T>(request: () => Promise<{ status: number; headers: Record<string, string | undefined>; value: T }>): Promise<{ status: number; value: T } | undefined> {
    if (this.stop) return undefined;
    if (this.active >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      if (this.stop) return undefined;
      const answer = await request();
      this.observe(answer.status, answer.headers);
      return answer;
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  /** Reads an answer's limit headers and 429, stopping the host's work when they say so. */
  observe(status: number, headers: Record<string, string | undefined>): void {
    const remaining = parseRateLimitCount(headers['ratelimit-remaining']);
    const limit = parseRateLimitCount(headers['ratelimit-limit']);
    if (limit !== undefined) this.limit = limit;
    if (remaining !== undefined) this.remaining = remaining;
    if (status === 429) {
      const delay = parseRetryAfter(headers['retry-after'], this.now().getTime());
      const retryAfter = delay === undefined ? undefined : new Date(this.now().getTime() + delay).toISOString();
      this.stop ??= {
        code: 'TOO_MANY_REQUESTS',
        reason: `${this.host} answered 429 Too Many Requests${retryAfter ? `; it asked to wait until ${retryAfter}` : ''}: the rest waits for the next run`,
        ...(retryAfter && { retryAfter }),
      };
      return;
    }
    if (remaining !== undefined && remaining <= this.reserve) {
      this.stop ??= {
        code: 'RATE_LIMIT_LOW',
        reason: `${this.host} has ${remaining} of ${this.limit ?? '?'} requests left in its rate limit (a reserve of ${this.reserve} is kept): the rest waits for the next run`,
      };
    }
  }
}

/** The budgets of one run, one per API host. */
export class HostBudgets {
  private readonly budgets = new Map<string, HostBudget>();

  constructor(
    private readonly concurrency: number,
    private readonly reserve: number,
    private readonly now: () => Date = () => new Date(),
    /** Hosts an earlier run's 429 told to leave alone until the given ISO time. */
    private readonly cooldowns: ReadonlyMap<string, string> = new Map(),
  ) {}

  for(host: string): HostBudget {
    let budget = this.budgets.get(host);
    if (!budget) {
      budget = new HostBudget(host, this.concurrency, this.reserve, this.now);
      const until = this.cooldowns.get(host);
      if (until !== undefined) {
        budget.stop = { code: 'TOO_MANY_REQUESTS', reason: `${host} answered 429 in an earlier run and asked to wait until ${until}: nothing is asked of it before then`, retryAfter: until };
      }
      this.budgets.set(host, budget);
    }
    return budget;
  }

  /** The hosts whose 429 in this run named a time to come back. */
  newCooldowns(): Array<{ host: string; until: string }> {
    return [...this.budgets.values()]
      .filter((b) => b.stop?.code === 'TOO_MANY_REQUESTS' && b.stop.retryAfter !== undefined && b.stop.retryAfter !== this.cooldowns.get(b.host))
      .map((b) => ({ host: b.host, until: b.stop!.retryAfter! }));
  }
}
