/**
 * Work over the whole fleet without holding the event loop: at most `limit` items in flight, and a turn of the loop
 * (timers, I/O, API requests) after each item, so the synchronous work done between two turns is bounded by
 * `limit` items, whatever the number of items.
 */

/** Resolves on the next turn of the event loop, after pending I/O callbacks. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs `fn` on every item with at most `limit` calls in flight. After a call rejects no new item is started; once
 * the calls in flight have ended, the first rejection is thrown. Never resolves while a call is still running.
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { error: e };
      }
      await yieldToLoop();
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
