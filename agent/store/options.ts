/** The store's connection settings and open options (agent/store/sqlite.ts opens with them). */
import type { StoreFaultInjector } from './fault.js';
import type { AfterCommitErrorHandler } from './after-commit.js';

/**
 * Connection settings applied at open, in order (journal_mode first: it cannot change inside a transaction).
 * Exported so tests (e.g. the SIGKILL child process) open the file exactly the same way.
 */
export const CONNECTION_PRAGMAS: readonly string[] = [
  'journal_mode = WAL',
  'synchronous = FULL',
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
}
