/** agent/bounded.ts: fleet-wide loops hold the event loop for about one turn budget at a time, whatever their items cost. */
import { describe, expect, it } from 'vitest';
import { forEachBounded, TurnBudget } from '../../agent/bounded.js';

/** Busy-waits `ms` (synchronous work). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // burn
  }
}

describe('forEachBounded', () => {
  it('runs every item, at most `limit` at once', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachBounded([1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      seen.push(i);
      inFlight--;
    });
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('items that settle together (1 ms of work each, 32 at once) give the loop a turn every budget, not every 32 items', async () => {
    // Counted in items per turn, not in wall time: a machine that preempts the test makes items slower, never more.
    let done = 0;
    const perTurn: number[] = [];
    let atLastTurn = 0;
    let on = true;
    const tick = (): void => {
      perTurn.push(done - atLastTurn);
      atLastTurn = done;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    await forEachBounded(Array.from({ length: 200 }, (_, i) => i), 32, async () => {
      spin(1);
      done++;
    }, new TurnBudget(5));
    on = false;
    perTurn.push(done - atLastTurn);
    expect(done).toBe(200);
    // 5 ms of budget at 1 ms an item: the item that crosses it and no more (counted by item it would be 32).
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(6);
    expect(perTurn.filter((n) => n > 0).length).toBeGreaterThanOrEqual(200 / 6);
  });

  it('rethrows the first failure once the calls in flight have ended', async () => {
    const ended: number[] = [];
    const run = forEachBounded([1, 2, 3], 3, async (i) => {
      await new Promise((r) => setTimeout(r, i));
      ended.push(i);
      if (i === 1) throw new Error('first');
    });
    await expect(run).rejects.toThrow('first');
    expect(ended.sort()).toEqual([1, 2, 3]);
  });
});
