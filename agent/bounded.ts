/**
 * Work over the whole fleet without holding the event loop: at most `limit` items in flight, and a turn of the loop
 * (timers, I/O, API requests) whenever the synchronous work since the last turn reaches `TURN_BUDGET_MS`, so no turn
 * holds the loop much longer than that, whatever the number of items or their cost.
 */
import { performance } from 'node:perf_hooks';

/** The synchronous work of a fleet-wide loop between two turns of the event loop, about at most. */
export const TURN_BUDGET_MS = 5;

/** Resolves on the next turn of the event loop, after pending I/O callbacks. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A time budget per turn of the loop, shared by the workers of one loop. Items that settle together (a fake BMC, many
 * reads answered at once) continue in one phase of the loop, back to back: counting items would let `limit` of them
 * run in one turn; this counts time. The first worker over budget schedules the start of the next turn's budget,
 * then every worker over budget waits for that turn (in order).
 */
export class TurnBudget {
  private turnStart = performance.now();
  private resetPending = false;

  constructor(private readonly budgetMs: number = TURN_BUDGET_MS) {}

  /** Whether this turn's work is still under budget (read right before the work it would admit). */
  hasTime(): boolean {
    return performance.now() - this.turnStart < this.budgetMs;
  }

  /** Resolves on a later turn of the loop, whose budget starts afresh. */
  nextTurn(): Promise<void> {
    if (!this.resetPending) {
      this.resetPending = true;
      setImmediate(() => {
        this.resetPending = false;
        this.turnStart = performance.now();
      });
    }
    return yieldToLoop();
  }
}

/**
 * Runs `fn` on every item with at most `limit` calls in flight, a turn of the loop whenever this turn's work reaches
 * the budget (TurnBudget). After a call rejects no new item is started; once
 * the calls in flight have ended, the first rejection is thrown. Never resolves while a call is still running.
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>, budget: TurnBudget = new TurnBudget()): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      // Checked right before the item runs, in the same breath: workers resumed together are admitted one by one.
      while (!budget.hasTime()) await budget.nextTurn();
      if (failed !== null || next >= items.length) break;
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { error: e };
      }
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(limit), items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failed !== null) throw (failed as { error: unknown }).error;
}

/**
 * At most `limit()` holders at once; the others wait their turn in arrival order. `acquire` resolves with the
 * release function (idempotent), or rejects with the signal's reason if it is aborted while waiting.
 */
export class Slots {
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: () => number) {}

  /** How many holders now. */
  get size(): number {
    return this.held;
  }

  async acquire(signal: AbortSignal): Promise<() => void> {
    while (this.held >= Math.max(1, this.limit())) {
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.waiting.indexOf(wake);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal.reason);
        };
        this.waiting.push(wake);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held--;
      this.waiting.shift()?.();
    };
  }
}
