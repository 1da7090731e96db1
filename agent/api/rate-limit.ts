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

/**
 * The most buckets kept. Past it, full (idle) buckets are dropped, then the least recently used ones, so many remote
 * addresses cannot grow memory without end. A dropped bucket comes back full: only a key unused while MAX_BUCKETS
 * others were used is refilled early.
 */
export const MAX_BUCKETS = 10_000;

export class RateLimiter {
  /** In use order: a bucket is moved to the end when taken from, so the first ones are the least recently used. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly settings: RateLimitSettings,
    private readonly clock: () => number,
    private readonly maxBuckets = MAX_BUCKETS,
  ) {}

  /** How many buckets are kept (at most the bound). */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token from `key`'s bucket; when empty, says how many whole seconds until one is back (>= 1). */
  take(key: string): TakeResult {
    const now = this.clock();
    const { per_token_per_s: rate, burst } = this.settings;
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxBuckets) this.prune(now);
      b = { tokens: burst, at: now };
    } else {
      const elapsedS = Math.max(0, now - b.at) / 1000;
      b.tokens = Math.min(burst, b.tokens + elapsedS * rate);
      b.at = now;
      this.buckets.delete(key);
    }
    this.buckets.set(key, b);
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
    // None idle enough: the least recently used go, down to one place free.
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxBuckets) break;
      this.buckets.delete(k);
    }
  }
}
