/**
 * A WalSyncPort for tests: counts every sync, can hold them (each waits until `release`), can fail them; the syncs
 * it lets through are real (FdWalSync: fdatasync on the pool).
 */
import { FdWalSync, type WalSyncPort } from '../../../agent/store/wal-sync.js';

export class HeldWalSync implements WalSyncPort {
  readonly real = new FdWalSync();
  /** sync() calls so far (syncNow not counted). */
  calls = 0;
  /** The file each sync() named. */
  readonly files: string[] = [];
  held = false;
  /** The next syncs reject with this (null: they succeed). */
  failWith: Error | null = null;
  private queue: Array<{ file: string; resolve: () => void; reject: (e: Error) => void }> = [];

  get waiting(): number {
    return this.queue.length;
  }

  sync(walFile: string): Promise<void> {
    this.calls += 1;
    this.files.push(walFile);
    if (this.failWith) return Promise.reject(this.failWith);
    if (!this.held) return this.real.sync(walFile);
    return new Promise((resolve, reject) => this.queue.push({ file: walFile, resolve, reject }));
  }

  syncNow(walFile: string): void {
    this.real.syncNow(walFile);
  }

  /** Lets the held syncs run (really); `andStop` also stops holding the next ones. */
  release(andStop = false): void {
    if (andStop) this.held = false;
    for (const q of this.queue.splice(0)) this.real.sync(q.file).then(q.resolve, q.reject);
  }

  /** Lets only the newest held sync run (really); the older ones stay held. */
  releaseNewest(): void {
    const q = this.queue.pop();
    if (q) this.real.sync(q.file).then(q.resolve, q.reject);
  }

  /** Fails the held syncs with `err`. */
  failHeld(err: Error): void {
    for (const q of this.queue.splice(0)) q.reject(err);
  }

  close(): void {
    this.real.close();
  }
}
