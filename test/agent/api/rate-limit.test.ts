/** The rate limiter's buckets are bounded: past the bound, idle buckets go first, then the least recently used. */
import { describe, expect, it } from 'vitest';
import { MAX_BUCKETS, RateLimiter } from '../../../agent/api/rate-limit.js';

describe('RateLimiter bound', () => {
  it('keeps at most the bound when every bucket is in use (none idle), dropping the least recently used', () => {
    const now = 0;
    const limiter = new RateLimiter({ per_token_per_s: 1, burst: 2 }, () => now, 3);
    for (const k of ['a', 'b', 'c']) expect(limiter.take(k).ok).toBe(true);
    expect(limiter.take('a').ok).toBe(true); // a: newest use, now empty
    for (const k of ['d', 'e', 'f', 'g']) limiter.take(k);
    expect(limiter.size).toBe(3);
    // 'a' was dropped (less recently used than d..g): it comes back full.
    expect(limiter.take('g').ok).toBe(true);
    expect(limiter.take('g').ok).toBe(false); // g (newest) was kept: its second token is gone
    expect(limiter.take('a').ok).toBe(true); // empty before, full again: it was the one dropped
  });

  it('keeps the most recently used bucket past the bound, its count intact', () => {
    const now = 0;
    const limiter = new RateLimiter({ per_token_per_s: 1, burst: 1 }, () => now, 2);
    expect(limiter.take('hot').ok).toBe(true);
    for (let i = 0; i < 50; i++) {
      limiter.take(`addr:${i}`);
      expect(limiter.take('hot').ok).toBe(false); // still empty: never dropped, as it is used between each new key
      expect(limiter.size).toBeLessThanOrEqual(2);
    }
  });

  it('defaults to MAX_BUCKETS and never holds more', () => {
    const now = 0;
    const limiter = new RateLimiter({ per_token_per_s: 0.001, burst: 5 }, () => now);
    for (let i = 0; i < MAX_BUCKETS + 500; i++) limiter.take(`addr:10.0.${i}`);
    expect(limiter.size).toBe(MAX_BUCKETS);
  });
});
