/** The store's prepared SQL statements, prepared once per connection. */
import type Database from 'better-sqlite3';
import type { ActionRow, EventRow, InstanceRow, JournalRow, NodeRow, Params } from './rows.js';

/** The instance columns no index holds (statements updateInstanceSameKeys, updateInstanceState). */
const INSTANCE_UNINDEXED = `user_id = @user_id, name = @name, description = @description,
  instance_type_uuid = @instance_type_uuid, image_uuid = @image_uuid, availability_zone = @availability_zone,
  networks = @networks, addresses = @addresses, metadata = @metadata, extra = @extra,
  operation_state = @operation_state, error = @error, power_state = @power_state,
  target_power_state = @target_power_state, task = @task, task_request_id = @task_request_id, progress = @progress,
  failed_operation = @failed_operation, updated_at = @updated_at, launched_at = @launched_at`;

export function prepareAll(db: Database.Database) {
  const p = <R = unknown>(sql: string) => db.prepare<[Params] | [], R>(sql);
  const q = <A extends unknown[], R = unknown>(sql: string) => db.prepare<A, R>(sql);
  return {
    getNode: q<[string], NodeRow>('SELECT * FROM nodes WHERE id = ?'),
    listNodes: q<[], NodeRow>('SELECT * FROM nodes ORDER BY created_at, id'),
    putNode: p(
      `INSERT INTO nodes (id, name, type, boot_mode, macs, bmc, maintenance, maintenance_reason, power_state,
         target_power_state, last_error, consecutive_power_failures, instance_id, adopt, enforce_power, source,
         created_at, updated_at)
       VALUES (@id, @name, @type, @boot_mode, @macs, @bmc, @maintenance, @maintenance_reason, @power_state,
         @target_power_state, @last_error, @consecutive_power_failures, @instance_id, @adopt, @enforce_power, @source,
         @created_at, @updated_at)
       ON CONFLICT(id) DO UPDATE SET name = excluded.name, type = excluded.type, boot_mode = excluded.boot_mode,
         macs = excluded.macs, bmc = excluded.bmc, maintenance = excluded.maintenance,
         maintenance_reason = excluded.maintenance_reason, power_state = excluded.power_state,
         target_power_state = excluded.target_power_state,
         last_error = excluded.last_error, consecutive_power_failures = excluded.consecutive_power_failures,
         instance_id = excluded.instance_id, adopt = excluded.adopt, enforce_power = excluded.enforce_power,
         source = excluded.source, created_at = excluded.created_at, updated_at = excluded.updated_at`,
    ),
    deleteNode: q<[string]>('DELETE FROM nodes WHERE id = ?'),

    getInstance: q<[string], InstanceRow>('SELECT * FROM instances WHERE id = ?'),
    listInstances: q<[], InstanceRow>('SELECT * FROM instances ORDER BY created_at, id'),
    putInstance: p(
      `INSERT INTO instances (id, project_id, user_id, name, description, node_id, instance_type_uuid, image_uuid,
         availability_zone, networks, addresses, metadata, extra, state, operation_state, error, power_state,
         target_power_state, task, task_request_id, progress, failed_operation, created_at, updated_at, launched_at,
         terminated_at)
       VALUES (@id, @project_id, @user_id, @name, @description, @node_id, @instance_type_uuid, @image_uuid,
         @availability_zone, @networks, @addresses, @metadata, @extra, @state, @operation_state, @error, @power_state,
         @target_power_state, @task, @task_request_id, @progress, @failed_operation, @created_at, @updated_at,
         @launched_at, @terminated_at)
       ON CONFLICT(id) DO UPDATE SET project_id = excluded.project_id, user_id = excluded.user_id,
         name = excluded.name, description = excluded.description, node_id = excluded.node_id,
         instance_type_uuid = excluded.instance_type_uuid, image_uuid = excluded.image_uuid,
         availability_zone = excluded.availability_zone, networks = excluded.networks,
         addresses = excluded.addresses, metadata = excluded.metadata, extra = excluded.extra,
         state = excluded.state, operation_state = excluded.operation_state, error = excluded.error,
         power_state = excluded.power_state, target_power_state = excluded.target_power_state,
         task = excluded.task, task_request_id = excluded.task_request_id, progress = excluded.progress,
         failed_operation = excluded.failed_operation, created_at = excluded.created_at,
         updated_at = excluded.updated_at, launched_at = excluded.launched_at, terminated_at = excluded.terminated_at`,
    ),
    /**
     * An existing instance whose project_id, node_id and created_at are unchanged: the other columns. The upsert
     * above assigns every column, and SQLite rewrites the entries of every index holding an assigned column (all
     * five); these assign none of those (`…State`: state and terminated_at, so instances_state too). A power
     * operation's instance writes cost one WAL frame each, or two with a state edge, instead of six.
     */
    updateInstanceSameKeys: p(`UPDATE instances SET ${INSTANCE_UNINDEXED} WHERE id = @id`),
    updateInstanceState: p(`UPDATE instances SET ${INSTANCE_UNINDEXED}, state = @state, terminated_at = @terminated_at WHERE id = @id`),
    // What decides the addresses an instance holds (index-queries.ts heldByInstance), to skip an unchanged holding;
    // and its indexed columns (updateInstanceUnindexed).
    holdingOf: q<[string], Pick<InstanceRow, 'node_id' | 'state' | 'task' | 'addresses' | 'extra' | 'project_id' | 'terminated_at' | 'created_at'>>(
      'SELECT node_id, state, task, addresses, extra, project_id, terminated_at, created_at FROM instances WHERE id = ?',
    ),
    adoptOf: q<[string], Pick<NodeRow, 'adopt' | 'instance_id'>>('SELECT adopt, instance_id FROM nodes WHERE id = ?'),
    /**
     * An existing node whose instance_id is unchanged: the other columns (nodes_instance_id untouched; the free-node
     * partial indexes only for a node without an instance). SQLite keeps every index right whatever an UPDATE
     * assigns: these statements only decide how many index pages a write dirties.
     */
    updateNodeUnindexed: p(
      `UPDATE nodes SET name = @name, type = @type, boot_mode = @boot_mode, macs = @macs, bmc = @bmc,
         maintenance = @maintenance, maintenance_reason = @maintenance_reason, power_state = @power_state,
         target_power_state = @target_power_state, last_error = @last_error,
         consecutive_power_failures = @consecutive_power_failures, adopt = @adopt, enforce_power = @enforce_power,
         source = @source, created_at = @created_at, updated_at = @updated_at
       WHERE id = @id`,
    ),
    purgeableInstances: q<[string], { id: string }>(
      `SELECT id FROM instances WHERE state = 'terminated' AND terminated_at IS NOT NULL AND terminated_at < ?`,
    ),
    deleteInstance: q<[string]>('DELETE FROM instances WHERE id = ?'),
    deleteActionsOf: q<[string]>('DELETE FROM actions WHERE instance_id = ?'),

    getAction: q<[string], ActionRow>('SELECT * FROM actions WHERE request_id = ?'),
    listActions: q<[string], ActionRow>(
      'SELECT * FROM actions WHERE instance_id = ? ORDER BY start_time, rowid',
    ),
    listUnfinishedActions: q<[], ActionRow>(
      'SELECT * FROM actions WHERE finish_time IS NULL ORDER BY start_time, rowid',
    ),
    insertActionHeader: p(
      `INSERT INTO actions (request_id, instance_id, project_id, user_id, action, start_time, finish_time, message,
         plan_step, plan_data)
       VALUES (@request_id, @instance_id, @project_id, @user_id, @action, @start_time, @finish_time, @message,
         @plan_step, @plan_data)`,
    ),
    // An existing request id is updated only when the row is the same action (the one it was created as). Its plan
    // is replaced only when the caller gave one (@plan_given = 1): an action read before the plan moved keeps it.
    putActionHeader: p(
      `INSERT INTO actions (request_id, instance_id, project_id, user_id, action, start_time, finish_time, message,
         plan_step, plan_data)
       VALUES (@request_id, @instance_id, @project_id, @user_id, @action, @start_time, @finish_time, @message,
         @plan_step, @plan_data)
       ON CONFLICT(request_id) DO UPDATE SET finish_time = excluded.finish_time, message = excluded.message,
         plan_step = CASE WHEN @plan_given = 1 THEN excluded.plan_step ELSE actions.plan_step END,
         plan_data = CASE WHEN @plan_given = 1 THEN excluded.plan_data ELSE actions.plan_data END
       WHERE actions.instance_id = excluded.instance_id AND actions.project_id = excluded.project_id
         AND actions.user_id = excluded.user_id AND actions.action = excluded.action
         AND actions.start_time = excluded.start_time`,
    ),
    finishAction: q<[string, string | null, string], { instance_id: string; action: string }>(
      'UPDATE actions SET finish_time = ?, message = ? WHERE request_id = ? AND finish_time IS NULL RETURNING instance_id, action',
    ),
    setActionPlan: q<[number, string, string]>('UPDATE actions SET plan_step = ?, plan_data = ? WHERE request_id = ?'),
    actionExists: q<[string], { one: number }>('SELECT 1 AS one FROM actions WHERE request_id = ?'),
    listEvents: q<[string], EventRow>('SELECT * FROM action_events WHERE request_id = ? ORDER BY idx'),
    deleteEvents: q<[string]>('DELETE FROM action_events WHERE request_id = ?'),
    nextEventIdx: q<[string], { next: number }>(
      'SELECT COALESCE(MAX(idx) + 1, 0) AS next FROM action_events WHERE request_id = ?',
    ),
    insertEvent: p(
      `INSERT INTO action_events (request_id, idx, event, start_time, finish_time, result, traceback)
       VALUES (@request_id, @idx, @event, @start_time, @finish_time, @result, @traceback)`,
    ),
    updateEvent: p(
      `UPDATE action_events SET event = @event, start_time = @start_time, finish_time = @finish_time,
         result = @result, traceback = @traceback
       WHERE request_id = @request_id AND idx = @idx`,
    ),

    // The last seq handed out: journal_seq keeps it across trims (trimJournal saves it there before deleting), the
    // journal's own rows since. Read once per transaction (appendJournal counts on in memory), under its write lock.
    lastSeq: q<[string, string], { last_seq: number }>(
      `SELECT MAX(COALESCE((SELECT last_seq FROM journal_seq WHERE agent_id = ?), 0),
                  COALESCE((SELECT MAX(seq) FROM journal WHERE agent_id = ?), 0)) AS last_seq`,
    ),
    saveSeq: q<[string, number]>(
      `INSERT INTO journal_seq (agent_id, last_seq) VALUES (?, ?)
       ON CONFLICT(agent_id) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)`,
    ),
    insertJournal: p(
      `INSERT INTO journal (agent_id, seq, at, kind, instance_id, node_id, cause, data)
       VALUES (@agent_id, @seq, @at, @kind, @instance_id, @node_id, @cause, @data)`,
    ),
    readJournal: q<[string, number, number], JournalRow>(
      'SELECT * FROM journal WHERE agent_id = ? AND seq >= ? ORDER BY seq LIMIT ?',
    ),
    trimJournal: q<[string, number]>('DELETE FROM journal WHERE agent_id = ? AND seq <= ?'),
    firstSeq: q<[string], { first_seq: number | null }>('SELECT MIN(seq) AS first_seq FROM journal WHERE agent_id = ?'),
    getMeta: q<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: q<[string, string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    ),
  };
}

export type Statements = ReturnType<typeof prepareAll>;
