/**
 * Group commit: the store counts its commits; after one, a WAL sync (WalSyncPort) is started in the next check
 * phase of the event loop (setImmediate), so every commit of that loop turn shares it. Syncs overlap, up to
 * MAX_SYNCS_IN_FLIGHT: a commit made while one runs gets its own sync in the next turn instead of waiting for the
 * running one to end first (an fdatasync covers every byte written before it was called, so each sync covers the
 * commits counted when it started, whichever ends first). On this VM's disk that cut the commit-to-durable p99 at
 * 1,000 commits/s from 7.5 ms to 1.3 ms (one sync at a time: the wait is the rest of the running sync plus a whole
 * next one). `durable()` is the barrier: it resolves once
 * every commit made before the call is synced. Nothing is acknowledged before it (docs/decisions.md, "Group
 * commit"): the API's answers, the BMC command after a power step's `sent` commit, every other step's BMC or
 * deployer call, and (when it exists) the upstream link's sends of journal entries.
 *
 * A failed sync fails the group for good: what reached the disk is unknown, and a retried fsync may report success
 * for pages the kernel already dropped. Every waiter and every later `durable()` rejects with the StoreError.
 */
import { StoreError } from './types.js';
import { describe } from './util.js';
import type { WalSyncPort } from './wal-sync.js';

/**
 * At most this many WAL syncs run at once: libuv's pool has 4 threads (UV_THREADPOOL_SIZE), shared with every other
 * fs call, DNS lookups and crypto; one is left for them.
 */
export const MAX_SYNCS_IN_FLIGHT = 3;

interface Waiter {
  target: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: StoreError) => void;
}

export class GroupCommit {
  /** Commits made so far. */
  private committed = 0;
  /** Commits known to be on disk. */
  private synced = 0;
  /** Syncs running now. */
  private inFlight = 0;
  /** The greatest commit count a sync was started for. */
  private started = 0;
  private scheduled = false;
  private failure: StoreError | null = null;
  /** In ascending target order. */
  private waiters: Waiter[] = [];
  /** Syncs started (diagnostics and tests). */
  syncs = 0;

  constructor(
    private readonly port: WalSyncPort,
    private readonly walFile: string,
    private readonly onFailure: (err: StoreError) => void,
  ) {}

  /** The StoreError of a failed sync, or null. */
  get failed(): StoreError | null {
    return this.failure;
  }

  /** Whether a commit is not known to be on disk yet. */
  get pending(): boolean {
    return this.committed !== this.synced;
  }

  /** Called after each outermost COMMIT. */
  committedOne(): void {
    this.committed += 1;
    if (this.inFlight < MAX_SYNCS_IN_FLIGHT && !this.scheduled && this.failure === null) {
      this.scheduled = true;
      setImmediate(this.kick);
    }
  }

  /**
   * Resolves once every commit made so far is on disk; null when there is nothing to wait for (no promise to
   * allocate on the hot path: `await` of null is fine). Rejects with StoreError when a sync failed.
   */
  durable(): Promise<void> | null {
    if (this.failure) return Promise.reject(this.failure);
    if (this.committed === this.synced) return null;
    const target = this.committed;
    const last = this.waiters[this.waiters.length - 1];
    if (last && last.target === target) return last.promise;
    let resolve!: () => void;
    let reject!: (e: StoreError) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.waiters.push({ target, promise, resolve, reject });
    return promise;
  }

  /** Blocking: syncs what is pending now (the store's close), then settles every waiter. */
  flushNow(): void {
    if (this.failure || !this.pending) return;
    const target = this.committed;
    try {
      this.syncs += 1;
      this.port.syncNow(this.walFile);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.done(target);
  }

  private readonly kick = (): void => {
    this.scheduled = false;
    if (this.inFlight >= MAX_SYNCS_IN_FLIGHT || this.failure || this.committed === this.started) return;
    const target = this.committed;
    this.started = target;
    this.inFlight += 1;
    this.syncs += 1;
    this.port.sync(this.walFile).then(
      () => {
        this.inFlight -= 1;
        if (this.failure) return;
        this.done(target);
        // Commits counted after the last sync started (made while the syncs in flight were full) get one now.
        if (this.committed !== this.started) this.kick();
      },
      (e: unknown) => {
        this.inFlight -= 1;
        this.fail(e);
      },
    );
  };

  private done(target: number): void {
    if (target > this.synced) this.synced = target;
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.target <= this.synced) n += 1;
    if (n === 0) return;
    const ready = this.waiters.splice(0, n);
    for (const w of ready) w.resolve();
  }

  private fail(e: unknown): void {
    if (this.failure) return;
    this.failure = new StoreError(`the WAL could not be synced to disk (${describe(e)}); the store is failed until metald restarts`, { cause: e });
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) w.reject(this.failure);
    try {
      this.onFailure(this.failure);
    } catch {
      // the handler failed too; the store is failed either way
    }
  }
}
