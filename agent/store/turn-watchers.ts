/**
 * Listeners woken at most once per event-loop turn (Store.watchJournal): `wake()` after an append schedules one
 * setImmediate, by which time the append's transaction has ended; what a listener throws goes to `onError`.
 */
export class TurnWatchers {
  private readonly fns = new Set<() => void>();
  private pending: NodeJS.Immediate | null = null;
  private closed = false;

  constructor(private readonly onError: (e: unknown) => void) {}

  /** Returns the unsubscribe function. */
  add(fn: () => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }

  wake(): void {
    if (this.pending !== null || this.fns.size === 0 || this.closed) return;
    this.pending = setImmediate(() => {
      this.pending = null;
      if (this.closed) return;
      for (const fn of [...this.fns]) {
        try {
          fn();
        } catch (e) {
          this.onError(e);
        }
      }
    });
  }

  /** The store closed: nothing more is woken. */
  clear(): void {
    this.closed = true;
    if (this.pending !== null) clearImmediate(this.pending);
    this.pending = null;
    this.fns.clear();
  }
}
