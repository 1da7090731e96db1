/**
 * Token buckets, one per key (an API token, or `addr:<remote address>` for requests without a valid token):
 * `burst` capacity, refilled at `per_token_per_s`. In memory only; a restart refills every bucket.
 */

export interface RateLimitSettings {
  per_token_per_s: number;
  burst: number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterS: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** Above this many buckets, full (idle) ones are dropped so that many remote addresses cannot grow memory without end. */
const MAX_BUCKETS = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly settings: RateLimitSettings,
    private readonly clock: () => number,
  ) {}

  /** Takes one token from `key`'s bucket; when empty, says how many whole seconds until one is back (>= 1). */
  take(key: string): TakeResult {
    const now = this.clock();
    const { per_token_per_s: rate, burst } = this.settings;
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(now);
      b = { tokens: burst, at: now };
      this.buckets.set(key, b);
    } else {
      const elapsedS = Math.max(0, now - b.at) / 1000;
      b.tokens = Math.min(burst, b.tokens + elapsedS * rate);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    const waitS = rate > 0 ? (1 - b.tokens) / rate : 3600;
    return { ok: false, retryAfterS: Math.max(1, Math.ceil(waitS)) };
  }

  private prune(now: number): void {
    const { per_token_per_s: rate, burst } = this.settings;
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * rate >= burst) this.buckets.delete(k);
    }
  }
}
