/**
 * A store fault injector for "no 201/202 before commit, per write": armed for one API call, it fails exactly the
 * n-th write of the first transaction that call commits (its acceptance), and no other write. Writes of later
 * transactions (the operation's first steps, which the engine starts before it answers) are never failed: they
 * happen after the acceptance committed, when a 202 is right.
 */
import type { StoreFaultInjector, StoreWriteOp } from '../../agent/store/sqlite.js';
import { StoreError } from '../../agent/store/types.js';

export class AcceptanceFault implements StoreFaultInjector {
  private armed: { index: number; seen: number; transaction: number | null } | null = null;
  /** The write that was failed by the last armed call, or null if it had fewer writes. */
  failed: StoreWriteOp | null = null;

  /** Fails the `index`-th (0-based) write of the next transaction, then disarms. */
  arm(index: number): void {
    this.armed = { index, seen: 0, transaction: null };
    this.failed = null;
  }

  disarm(): void {
    this.armed = null;
  }

  beforeWrite(op: StoreWriteOp, at: { transaction: number }): void {
    const a = this.armed;
    if (!a) return;
    a.transaction ??= at.transaction;
    if (at.transaction !== a.transaction) return;
    if (a.seen++ !== a.index) return;
    this.failed = op;
    throw new StoreError(`injected fault in ${op}`);
  }
}

/**
 * Counts the store's commits: the outermost transactions that wrote something (each is one COMMIT, one fsync with
 * synchronous=FULL), with the writes of each, in order. It never fails a write.
 */
export class CommitCounter implements StoreFaultInjector {
  private last: number | null = null;
  /** The writes of each commit counted so far, one array per commit. */
  readonly commits: StoreWriteOp[][] = [];

  get count(): number {
    return this.commits.length;
  }

  beforeWrite(op: StoreWriteOp, at: { transaction: number }): void {
    if (at.transaction !== this.last) {
      this.last = at.transaction;
      this.commits.push([]);
    }
    this.commits[this.commits.length - 1]!.push(op);
  }
}
