/** The store's connection settings and open options (agent/store/sqlite.ts opens with them). */
import type { StoreFaultInjector } from './fault.js';
import type { AfterCommitErrorHandler } from './after-commit.js';
import type { WalSyncPort } from './wal-sync.js';
import type { OutboxBounds } from './outbox.js';

/**
 * Connection settings applied at open, in order (journal_mode first: it cannot change inside a transaction).
 * Exported so tests (e.g. the SIGKILL child process) open the file exactly the same way.
 * `synchronous = NORMAL`: a COMMIT writes the WAL without syncing it; the store's group commit (./group-commit.ts)
 * fdatasyncs the WAL off the event loop, once for every commit made meanwhile, and nothing is acknowledged before
 * (Store.durable). Checkpoints still sync the WAL and then the database file themselves (docs/decisions.md).
 */
export const CONNECTION_PRAGMAS: readonly string[] = [
  'journal_mode = WAL',
  'synchronous = NORMAL',
  'foreign_keys = ON',
  'busy_timeout = 5000',
];

export interface OpenStoreOptions {
  /** state_dir; created (0700) if missing. */
  dir: string;
  /** Stamped on every journal entry; the journal sequence is per agent. */
  agentId: string;
  /**
   * TEST-ONLY fault injection; none by default. Production never sets it: the only ways in are this option (tests
   * building an agent in-process) and the test-only daemon entry point scripts/test-metald-store-faults.ts.
   */
  fault?: StoreFaultInjector | undefined;
  /** Clock for journal `at` (tests); defaults to the system clock. */
  now?: (() => Date) | undefined;
  /** How long a write waits for another connection's lock before failing (default 5000 ms). */
  busyTimeoutMs?: number | undefined;
  /**
   * Told what an afterCommit hook threw (or its promise rejected with); the commit stands and the other hooks run.
   * Default: a process warning (MetaldStoreWarning). The agent passes its logger here.
   */
  onAfterCommitError?: AfterCommitErrorHandler | undefined;
  /** How the WAL is made durable (tests hold or fail it); default: fdatasync on libuv's pool (./wal-sync.ts). */
  walSync?: WalSyncPort | undefined;
  /**
   * Told once when a WAL sync failed: the store is then failed for good (every write and `durable()` throw
   * StoreError: what reached the disk is unknown, and a retried fsync can report success for lost pages); only a
   * restart, which reads what is on disk, recovers. The agent logs it as fatal. Default: a process warning.
   */
  onSyncFailure?: ((err: Error) => void) | undefined;
  /** The outbox's bounds (./outbox.ts); default DEFAULT_OUTBOX_BOUNDS. Changed live by Store.setOutboxBounds. */
  outbox?: OutboxBounds | undefined;
  /** Told when the outbox is over its bounds and nothing more can be folded (every object holds one entry). Default: a process warning. */
  onOutboxStuck?: ((info: { events: number; bytes: number; bounds: OutboxBounds }) => void) | undefined;
}
