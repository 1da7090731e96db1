/**
 * Opening the store's database file (SqliteStore.open): the directory 0700 and the file 0600, the connection's
 * pragmas, WAL checked, the migrations, and the WAL made durable before anything is served.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { migrate, SchemaTooNewError } from './migrations.js';
import { CONNECTION_PRAGMAS, type OpenStoreOptions } from './options.js';
import { StoreError } from './types.js';
import { describe } from './util.js';
import { FdWalSync, type WalSyncPort } from './wal-sync.js';

export const DB_FILE_NAME = 'metald.db';

/** @throws StoreError naming the file and why it cannot be opened (what was opened is closed again). */
export function openDatabase(opts: OpenStoreOptions): { file: string; db: Database.Database; walSync: WalSyncPort } {
  if (!opts.agentId) throw new StoreError('openStore: agentId is required');
  const dir = path.resolve(opts.dir);
  const file = path.join(dir, DB_FILE_NAME);
  let db: Database.Database | undefined;
  const walSync = opts.walSync ?? new FdWalSync();
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Create the file 0600 ourselves: it holds password hashes and user data; SQLite gives -wal/-shm the same mode.
    fs.closeSync(fs.openSync(file, 'a', 0o600));
    db = new Database(file, { timeout: 5000 });
    for (const pragma of CONNECTION_PRAGMAS) db.pragma(pragma);
    if (opts.busyTimeoutMs !== undefined) db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
    const mode = db.pragma('journal_mode', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL could not be enabled`);
    migrate(db);
    // What the migrations (or a previous run) left in the WAL is made durable before anything is served.
    walSync.syncNow(`${file}-wal`);
    return { file, db, walSync };
  } catch (e) {
    try {
      db?.close();
    } catch {
      // already failing; the original error matters
    }
    walSync.close();
    if (e instanceof StoreError) throw e;
    if (e instanceof SchemaTooNewError) throw new StoreError(`cannot open ${file}: ${e.message}`, { cause: e });
    throw new StoreError(`cannot open store ${file}: ${describe(e)}`, { cause: e });
  }
}
