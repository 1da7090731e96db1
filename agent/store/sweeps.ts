/**
 * The reads of the fleet-wide loops (power sync, the liveness monitor): node ids, or one page of running instances,
 * so that a sweep never decodes every row of the fleet at once; and an instance's last journalled verdict. Prepared once per connection by ./sqlite.ts.
 */
import type Database from 'better-sqlite3';
import type { InstanceRow } from './rows.js';

/** An instance's last `instance.alive` entry: a walk of migration 6's partial index from its end (named: without statistics the planner would walk the whole journal by its primary key). */
export const LAST_ALIVE_SQL = "SELECT data FROM journal INDEXED BY journal_alive WHERE agent_id = ? AND instance_id = ? AND kind = 'instance.alive' ORDER BY seq DESC LIMIT 1";

export function prepareSweeps(db: Database.Database) {
  return {
    /** Ids of the nodes not in maintenance, in id order. */
    syncableNodeIds: db.prepare<[], { id: string }>('SELECT id FROM nodes WHERE maintenance = 0 ORDER BY id'),
    /** The running instances whose id sorts after ?, in id order, at most ? of them. */
    runningPage: db.prepare<[string, number], InstanceRow>(
      "SELECT * FROM instances WHERE state = 'running' AND id > ? ORDER BY id LIMIT ?",
    ),
    /** The data of this agent's last `instance.alive` entry of one instance (migration 6's partial index). */
    lastAlive: db.prepare<[string, string], { data: string }>(LAST_ALIVE_SQL),
  };
}

export type SweepStatements = ReturnType<typeof prepareSweeps>;
