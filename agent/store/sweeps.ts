/**
 * The reads of the fleet-wide loops (power sync, the liveness monitor): node ids, or one page of running instances,
 * so that a sweep never decodes every row of the fleet at once. Prepared once per connection by ./sqlite.ts.
 */
import type Database from 'better-sqlite3';
import type { InstanceRow } from './rows.js';

export function prepareSweeps(db: Database.Database) {
  return {
    /** Ids of the nodes not in maintenance, in id order. */
    syncableNodeIds: db.prepare<[], { id: string }>('SELECT id FROM nodes WHERE maintenance = 0 ORDER BY id'),
    /** The running instances whose id sorts after ?, in id order, at most ? of them. */
    runningPage: db.prepare<[string, number], InstanceRow>(
      "SELECT * FROM instances WHERE state = 'running' AND id > ? ORDER BY id LIMIT ?",
    ),
  };
}

export type SweepStatements = ReturnType<typeof prepareSweeps>;
