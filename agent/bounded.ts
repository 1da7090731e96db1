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
