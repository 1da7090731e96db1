/**
 * The reads of the fleet-wide loops (power sync, the liveness monitor): node ids, or one page of running instances,
 * so that a sweep never decodes every row of the fleet at once; and an instance's last journalled verdict. Prepared once per connection by ./sqlite.ts.
 */
import type Database from 'better-sqlite3';
import type { Instance, InstanceState, OperationKind, PowerState } from '../model.js';
import type { InstanceRow } from './rows.js';
import type { PowerSyncView } from './types.js';

/** An instance's last `instance.alive` entry, or a fold marker newer than it: a walk of migration 6's partial index (migration 8: markers too) from its end (named: without statistics the planner would walk the whole journal by its primary key). */
export const LAST_ALIVE_SQL = "SELECT kind, data FROM journal INDEXED BY journal_alive WHERE agent_id = ? AND instance_id = ? AND kind IN ('instance.alive', 'outbox.folded') ORDER BY seq DESC LIMIT 1";

/** A node's power-sync view: the few fields a sync decides by, its instance's joined (LEFT JOIN: null without one). */
export interface PowerSyncViewRow {
  maintenance: number;
  power_state: string;
  consecutive_power_failures: number;
  node_error_type: string | null;
  adopting: number;
  instance_id: string | null;
  inst_state: string | null;
  inst_task: string | null;
  inst_power_state: string | null;
  inst_error_type: string | null;
}

export function prepareSweeps(db: Database.Database) {
  return {
    /** Ids of the nodes not in maintenance, in id order. */
    syncableNodeIds: db.prepare<[], { id: string }>('SELECT id FROM nodes WHERE maintenance = 0 ORDER BY id'),
    /** The ids, addresses, task and power of the running instances whose id sorts after ?, in id order, at most ? of them. */
    runningPage: db.prepare<[string, number], Pick<InstanceRow, 'id' | 'addresses' | 'task' | 'power_state'>>(
      "SELECT id, addresses, task, power_state FROM instances WHERE state = 'running' AND id > ? ORDER BY id LIMIT ?",
    ),
    /** One node's power-sync view (narrow: no JSON column decoded but the error types). */
    powerSyncView: db.prepare<[string], PowerSyncViewRow>(
      `SELECT n.maintenance, n.power_state, n.consecutive_power_failures, json_extract(n.last_error, '$.error_type') AS node_error_type,
              (n.adopt IS NOT NULL AND n.instance_id IS NULL) AS adopting, n.instance_id, i.state AS inst_state, i.task AS inst_task,
              i.power_state AS inst_power_state, json_extract(i.error, '$.error_type') AS inst_error_type
         FROM nodes n LEFT JOIN instances i ON i.id = n.instance_id WHERE n.id = ?`,
    ),
    /** The data of this agent's last `instance.alive` entry of one instance (migration 6's partial index). */
    lastAlive: db.prepare<[string, string], { kind: string; data: string }>(LAST_ALIVE_SQL),
  };
}

export type SweepStatements = ReturnType<typeof prepareSweeps>;

export function viewOfRow(r: PowerSyncViewRow | undefined): PowerSyncView | null {
  if (!r) return null;
  return {
    maintenance: r.maintenance !== 0,
    power_state: r.power_state as PowerState,
    consecutive_power_failures: r.consecutive_power_failures,
    node_error_type: r.node_error_type,
    adopting: r.adopting !== 0,
    instance:
      r.instance_id !== null && r.inst_state !== null
        ? { id: r.instance_id, state: r.inst_state as InstanceState, task: r.inst_task as OperationKind | null, power_state: r.inst_power_state as PowerState, error_type: r.inst_error_type }
        : null,
  };
}

/** The verdict of an `instance.alive` entry's data; null when there is no entry (or it says nothing). */
export function verdictOfRow(r: { kind: string; data: string } | undefined): boolean | null {
  // A fold marker newer than every verdict (migration 8): the last verdict was folded, or may have been.
  if (!r || r.kind === 'outbox.folded') return null;
  const alive = (JSON.parse(r.data) as { alive?: unknown }).alive;
  return typeof alive === 'boolean' ? alive : null;
}

/** A running-page row: the instance's id and its addresses (JSON), decoded, its task and power (liveness's powered-off). */
export function targetOfRow(r: Pick<InstanceRow, 'id' | 'addresses' | 'task' | 'power_state'>): Pick<Instance, 'id' | 'addresses' | 'task' | 'power_state'> {
  return { id: r.id, addresses: JSON.parse(r.addresses) as Instance['addresses'], task: r.task as OperationKind | null, power_state: r.power_state as PowerState };
}
