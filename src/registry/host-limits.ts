/**
 * What one registry host allows: a cap on the requests in flight to it, and the pause its last
 * 429 asked for. The pause is the host's, not the request's: once one request is told to slow
 * down, every request to that host waits it out, instead of each one hitting the registry to be
 * told again. Token services are hosts like any other (auth.ts requestSmall): a realm on its own
 * host (auth.docker.io) has its own limits, one on the registry's host (ACR) shares the registry's.
 */
import { sleep } from './retry.js';

/**
 * Requests in flight to one host at once, by default: generous (the engine moves 4 large and 8
 * small blobs at a time), so it bounds a runaway rather than shaping a normal copy.
 */
export const DEFAULT_MAX_REQUESTS_PER_HOST = 32;

/** The time source of the pauses; tests give their own. */
export interface LimitsClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const systemClock: LimitsClock = { now: () => Date.now(), sleep };

/** The limits of one registry host (a RegistryHost's `limits`). */
export class HostLimits {
  private active = 0;
  /** Requests waiting for a slot, first come first served. */
  private readonly waiting = new Set<() => void>();
  private pausedUntil = 0;

  constructor(
    /**
     * Requests in flight at most; a request holds its slot until its response's headers arrive.
     * A request whose body is a stream (an upload) gives its slot back once its body is opened
     * (transport.ts says why).
     */
    readonly maxRequests: number = DEFAULT_MAX_REQUESTS_PER_HOST,
    private readonly clock: LimitsClock = systemClock,
  ) {}

  /**
   * Waits until the host's pause (if any) is over and a slot is free.
   * @returns the function that frees the slot (calling it again does nothing)
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    await this.waitOutPause(signal);
    if (this.active < this.maxRequests) {
      this.active++;
    } else {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.waiting.delete(wake);
          reject(signal?.reason);
        };
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) return reject(signal.reason);
        this.waiting.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot goes straight to the first waiter, so `active` never dips below the cap meanwhile.
      const next = this.waiting.values().next();
      if (next.done) {
        this.active--;
      } else {
        this.waiting.delete(next.value);
        next.value();
      }
    };
  }

  /** Makes every request to the host wait `ms` from now (a 429), unless a longer pause is on already. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + ms);
  }

  /** The requests holding a slot now. */
  get inFlight(): number {
    return this.active;
  }

  /** The requests waiting for a slot now. */
  get queued(): number {
    return this.waiting.size;
  }

  private async waitOutPause(signal?: AbortSignal): Promise<void> {
    // A pause may be lengthened while a request sleeps, so it looks again when it wakes.
    for (let wait = this.pausedUntil - this.clock.now(); wait > 0; wait = this.pausedUntil - this.clock.now()) {
      await this.clock.sleep(wait, signal);
    }
  }
}

/** The limits of every host a RegistryHosts talks to, registries and token services alike, by `host[:port]`. */
export class LimitsByHost {
  private readonly byHost = new Map<string, HostLimits>();

  constructor(
    private readonly maxRequests: number = DEFAULT_MAX_REQUESTS_PER_HOST,
    private readonly clock?: LimitsClock,
  ) {}

  /** The limits of `host` (`host[:port]`, as URL.host writes it), made on first use. */
  for(host: string): HostLimits {
    const key = host.toLowerCase();
    let limits = this.byHost.get(key);
    if (!limits) {
      limits = new HostLimits(this.maxRequests, this.clock);
      this.byHost.set(key, limits);
    }
    return limits;
  }
}
