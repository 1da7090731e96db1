/**
 * The upstream commands' first results, by command_id (migration 7), and the store's id. Prepared apart from
 * ./statements.ts so that a database of an older schema can still have those prepared (the migration tests do).
 */
import type Database from 'better-sqlite3';
import { json } from './rows.js';
import { StoreError, type StoredCommandResult } from './types.js';

export class CommandResults {
  private readonly getStmt;
  private readonly insertStmt;
  private readonly storeIdStmt;

  constructor(db: Database.Database) {
    this.getStmt = db.prepare<[string], { command_id: string; op: string; result: string; created_at: string }>(
      'SELECT command_id, op, result, created_at FROM command_results WHERE command_id = ?',
    );
    this.insertStmt = db.prepare<[string, string, string, string]>(
      'INSERT INTO command_results (command_id, op, result, created_at) VALUES (?, ?, ?, ?)',
    );
    this.storeIdStmt = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'store_id'");
  }

  storeId(): string {
    const id = this.storeIdStmt.get()?.value;
    if (!id) throw new StoreError('the store has no store_id (migration 7 did not run)');
    return id;
  }

  get(commandId: string): StoredCommandResult | null {
    const r = this.getStmt.get(commandId);
    return r ? { command_id: r.command_id, op: r.op, result: JSON.parse(r.result) as Record<string, unknown>, created_at: r.created_at } : null;
  }

  /** @throws StoreError when command_id already has a result (a result is never replaced). */
  insert(r: StoredCommandResult): void {
    try {
      this.insertStmt.run(r.command_id, r.op, json(r.result), r.created_at);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new StoreError(`command ${r.command_id.slice(0, 64)} already has a result; a result is never replaced`, { cause: e });
      }
      throw e;
    }
  }
}
