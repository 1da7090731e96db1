/** Small helpers shared by the store's modules. */

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

/** An error's message (or the thrown value as a string), for StoreError messages and warnings. */
export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
