/**
 * The store's after-commit hooks (Store.afterCommit). One list of hooks per open transaction level, outermost first:
 * a level that succeeds hands its hooks to the level below it, and the outermost level runs them, in the order they
 * were queued, once its COMMIT has returned. A level that throws (its savepoint, or the whole transaction, rolled
 * back) drops its own hooks and those its inner levels handed it. A hook's failure is reported, never thrown: the
 * commit stands and the other hooks still run.
 */
import { describe, isThenable } from './util.js';

export type AfterCommitErrorHandler = (err: unknown) => void;

/** The default handler: a process warning (wire `onAfterCommitError` to the logger instead). */
export function warnAfterCommitError(err: unknown): void {
  process.emitWarning(`an after-commit hook failed; its transaction stays committed: ${describe(err)}`, {
    type: 'MetaldStoreWarning',
    code: 'METALD_AFTER_COMMIT_HOOK_FAILED',
  });
}

export class AfterCommitHooks {
  private readonly levels: Array<Array<() => void>> = [];

  constructor(private readonly onError: AfterCommitErrorHandler = warnAfterCommitError) {}

  /**
   * Runs `run` as one transaction level: `run` opens the transaction (or savepoint) and commits it when it returns,
   * or rolls it back and throws. Hooks queued meanwhile are kept (outermost: run) on return, dropped on a throw.
   */
  level<T>(run: () => T): T {
    this.levels.push([]);
    let result: T;
    try {
      result = run();
    } catch (e) {
      this.levels.pop();
      throw e;
    }
    const mine = this.levels.pop()!;
    const below = this.levels[this.levels.length - 1];
    if (below) below.push(...mine);
    else for (const fn of mine) this.runOne(fn);
    return result;
  }

  /** Queues fn on the innermost open level; with no level open, runs it at once. */
  add(fn: () => void): void {
    const top = this.levels[this.levels.length - 1];
    if (top) top.push(fn);
    else this.runOne(fn);
  }

  private runOne(fn: () => void): void {
    try {
      // typed () => void, but an async function fits that type: its rejection is reported too
      const result: unknown = fn();
      if (isThenable(result)) Promise.resolve(result).catch((e: unknown) => this.report(e));
    } catch (e) {
      this.report(e);
    }
  }

  /** Reports what a hook (or another listener the store calls after a commit) threw; never throws. */
  report(err: unknown): void {
    try {
      this.onError(err);
    } catch {
      // the handler failed as well; nothing else can be told, and the commit stands either way
    }
  }
}
