/**
 * The port through which the store makes its WAL durable (synchronous=NORMAL leaves that to us): `sync` must not
 * resolve before every byte written to the file so far is on stable storage. The default runs fdatasync on libuv's
 * thread pool, so the event loop never waits for the disk.
 *
 * Which file: SQLite keeps one -wal file open for the life of a connection. A checkpoint copies it into the database
 * file and syncs both itself; the WAL is then restarted from offset 0 (or truncated, with wal_checkpoint(TRUNCATE)),
 * but never replaced while the connection is open (only the last connection's close deletes it). So one descriptor,
 * opened once the WAL exists (after the store's first read), is the same inode SQLite writes to for as long as the
 * store is open (test/agent/store/group-commit.test.ts checkpoints and truncates under it).
 */
import fs from 'node:fs';

export interface WalSyncPort {
  /** Resolves once everything written to `walFile` before the call is durable; rejects when it could not be made so. */
  sync(walFile: string): Promise<void>;
  /** The same, blocking (the store's open and close). @throws when it could not. */
  syncNow(walFile: string): void;
  /** Releases what the port holds; after the syncs in flight end. Idempotent. */
  close(): void;
}

/** The default port: one descriptor per WAL file, fdatasync on the pool. */
export class FdWalSync implements WalSyncPort {
  private readonly fds = new Map<string, number>();
  private inFlight = 0;
  private closing = false;

  /** The descriptor of walFile (opened on first use). @throws when the file is missing. */
  fdOf(walFile: string): number {
    let fd = this.fds.get(walFile);
    if (fd === undefined) {
      fd = fs.openSync(walFile, 'r');
      this.fds.set(walFile, fd);
    }
    return fd;
  }

  sync(walFile: string): Promise<void> {
    let fd: number;
    try {
      fd = this.fdOf(walFile);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    this.inFlight += 1;
    return new Promise<void>((resolve, reject) => {
      fs.fdatasync(fd, (err) => {
        this.inFlight -= 1;
        if (this.closing && this.inFlight === 0) this.closeFds();
        if (err) reject(err);
        else resolve();
      });
    });
  }

  syncNow(walFile: string): void {
    fs.fdatasyncSync(this.fdOf(walFile));
  }

  close(): void {
    this.closing = true;
    if (this.inFlight === 0) this.closeFds();
  }

  private closeFds(): void {
    for (const fd of this.fds.values()) {
      try {
        fs.closeSync(fd);
      } catch {
        // closing a descriptor we own cannot lose data; nothing to report
      }
    }
    this.fds.clear();
  }
}

/**
 * fdatasync on the calling thread, settled before `sync` returns (its promise is already resolved): for tests on a
 * manual clock, where a sync on the pool would finish at a moment the test does not control. Blocks the loop.
 */
export class InlineWalSync extends FdWalSync {
  override sync(walFile: string): Promise<void> {
    try {
      this.syncNow(walFile);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }
}
