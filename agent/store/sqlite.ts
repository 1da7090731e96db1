/**
 * The durable store: one SQLite file `metald.db` in state_dir, opened with WAL and synchronous=FULL so a committed
 * transaction survives a crash or power loss. Schema versions and migrations: ./migrations.ts.
 *
 * Every failure (SQLite errors, a closed database, a corrupt JSON column, an injected fault) surfaces as StoreError
 * with the original error as `cause`. Errors thrown by the caller's own function inside `transaction` pass through
 * unchanged (after the rollback).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type {
  Action,
  ActionPlan,
  ActionEvent,
  ActionEventResult,
  ActionName,
  AdoptRequest,
  BmcSettings,
  BootMode,
  Instance,
  InstanceError,
  InstanceExtra,
  InstanceState,
  JournalEntry,
  JournalKind,
  Node,
  NodeMac,
  OperationKind,
  OperationState,
  PowerState,
  TargetPower,
} from '../model.js';
import { LATEST_SCHEMA_VERSION, migrate, SchemaTooNewError } from './migrations.js';
import { DuplicateActionError, StoreError, type JournalInput, type Store } from './types.js';

export const DB_FILE_NAME = 'metald.db';

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

/** Names passed to StoreFaultInjector.beforeWrite: one per writing method of the store. */
export const STORE_WRITE_OPS = [
  'putNode',
  'deleteNode',
  'putInstance',
  'purgeTerminated',
  'insertAction',
  'putAction',
  'appendActionEvent',
  'updateActionEvent',
  'appendJournal',
  'trimJournal',
  'setMeta',
] as const;
export type StoreWriteOp = (typeof STORE_WRITE_OPS)[number];

/**
 * TEST-ONLY fault injection. `beforeWrite(op, at)` is called before every write (op is one of STORE_WRITE_OPS) and
 * may throw; the write is then not performed and the caller gets a StoreError (a non-StoreError is wrapped). Inside a
 * `transaction`, the throw rolls the whole transaction back unless the caller catches it. `at.transaction` numbers
 * the outermost transaction the write would commit with (1, 2, ... per store), so a test can tell the writes of one
 * commit (an API call's acceptance) from the ones after it.
 */
export interface StoreFaultInjector {
  beforeWrite(op: StoreWriteOp, at: { transaction: number }): void;
}

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
}

export function openStore(opts: OpenStoreOptions): SqliteStore {
  return SqliteStore.open(opts);
}

// ---------------------------------------------------------------------------------------------------------------
// Row shapes

interface NodeRow {
  id: string;
  name: string;
  type: string;
  boot_mode: string;
  macs: string;
  bmc: string;
  maintenance: number;
  maintenance_reason: string | null;
  power_state: string;
  target_power_state: string | null;
  last_error: string | null;
  consecutive_power_failures: number;
  instance_id: string | null;
  adopt: string | null;
  enforce_power: number;
  source: string;
  created_at: string;
  updated_at: string;
}

interface InstanceRow {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string | null;
  node_id: string;
  instance_type_uuid: string | null;
  image_uuid: string | null;
  availability_zone: string | null;
  networks: string;
  addresses: string;
  metadata: string;
  extra: string;
  state: string;
  operation_state: string | null;
  error: string | null;
  power_state: string;
  target_power_state: string | null;
  task: string | null;
  task_request_id: string | null;
  progress: number;
  failed_operation: string | null;
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  terminated_at: string | null;
}

interface ActionRow {
  request_id: string;
  instance_id: string;
  project_id: string;
  user_id: string;
  action: string;
  start_time: string;
  finish_time: string | null;
  message: string | null;
}

interface EventRow {
  request_id: string;
  idx: number;
  event: string;
  start_time: string;
  finish_time: string | null;
  result: string | null;
  traceback: string | null;
}

interface JournalRow {
  agent_id: string;
  seq: number;
  at: string;
  kind: string;
  instance_id: string | null;
  node_id: string | null;
  cause: string;
  data: string;
}

type Params = Record<string, string | number | null>;

const json = (v: unknown): string => JSON.stringify(v);
const jsonOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(s: string): T => JSON.parse(s) as T;
const parseOrNull = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));
const bool = (b: boolean): number => (b ? 1 : 0);

function nodeToRow(n: Node): Params {
  return {
    id: n.id,
    name: n.name,
    type: n.type,
    boot_mode: n.boot_mode,
    macs: json(n.macs ?? []),
    bmc: json(n.bmc),
    maintenance: bool(n.maintenance),
    maintenance_reason: n.maintenance_reason ?? null,
    power_state: n.power_state,
    target_power_state: n.target_power_state ?? null,
    last_error: jsonOrNull(n.last_error),
    consecutive_power_failures: n.consecutive_power_failures,
    instance_id: n.instance_id ?? null,
    adopt: jsonOrNull(n.adopt),
    enforce_power: bool(n.enforce_power),
    source: n.source,
    created_at: n.created_at,
    updated_at: n.updated_at,
  };
}

function rowToNode(r: NodeRow): Node {
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    boot_mode: r.boot_mode as BootMode,
    macs: parse<NodeMac[]>(r.macs),
    bmc: parse<BmcSettings>(r.bmc),
    maintenance: r.maintenance !== 0,
    maintenance_reason: r.maintenance_reason,
    power_state: r.power_state as PowerState,
    target_power_state: r.target_power_state as TargetPower,
    last_error: parseOrNull<InstanceError>(r.last_error),
    consecutive_power_failures: r.consecutive_power_failures,
    instance_id: r.instance_id,
    adopt: parseOrNull<AdoptRequest>(r.adopt),
    enforce_power: r.enforce_power !== 0,
    source: r.source as Node['source'],
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

function instanceToRow(i: Instance): Params {
  return {
    id: i.id,
    project_id: i.project_id,
    user_id: i.user_id,
    name: i.name,
    description: i.description ?? null,
    node_id: i.node_id,
    instance_type_uuid: i.instance_type_uuid ?? null,
    image_uuid: i.image_uuid ?? null,
    availability_zone: i.availability_zone ?? null,
    networks: json(i.networks ?? []),
    addresses: json(i.addresses ?? []),
    metadata: json(i.metadata ?? {}),
    extra: json(i.extra ?? {}),
    state: i.state,
    operation_state: i.operation_state ?? null,
    error: jsonOrNull(i.error),
    power_state: i.power_state,
    target_power_state: i.target_power_state ?? null,
    task: i.task ?? null,
    task_request_id: i.task_request_id ?? null,
    progress: i.progress,
    failed_operation: jsonOrNull(i.failed_operation),
    created_at: i.created_at,
    updated_at: i.updated_at,
    launched_at: i.launched_at ?? null,
    terminated_at: i.terminated_at ?? null,
  };
}

function rowToInstance(r: InstanceRow): Instance {
  return {
    id: r.id,
    project_id: r.project_id,
    user_id: r.user_id,
    name: r.name,
    description: r.description,
    node_id: r.node_id,
    instance_type_uuid: r.instance_type_uuid,
    image_uuid: r.image_uuid,
    availability_zone: r.availability_zone,
    networks: parse<Instance['networks']>(r.networks),
    addresses: parse<Instance['addresses']>(r.addresses),
    metadata: parse<Record<string, string>>(r.metadata),
    extra: parse<InstanceExtra>(r.extra),
    state: r.state as InstanceState,
    operation_state: r.operation_state as OperationState | null,
    error: parseOrNull<InstanceError>(r.error),
    power_state: r.power_state as PowerState,
    target_power_state: r.target_power_state as TargetPower,
    task: r.task as OperationKind | null,
    task_request_id: r.task_request_id,
    progress: r.progress,
    failed_operation: parseOrNull<NonNullable<Instance['failed_operation']>>(r.failed_operation),
    created_at: r.created_at,
    updated_at: r.updated_at,
    launched_at: r.launched_at,
    terminated_at: r.terminated_at,
  };
}

function eventToRow(requestId: string, idx: number, e: ActionEvent): Params {
  return {
    request_id: requestId,
    idx,
    event: e.event,
    start_time: e.start_time,
    finish_time: e.finish_time ?? null,
    result: e.result ?? null,
    traceback: e.traceback ?? null,
  };
}

function actionHeader(a: Action): Params {
  return {
    request_id: a.request_id,
    instance_id: a.instance_id,
    project_id: a.project_id,
    user_id: a.user_id,
    action: a.action,
    start_time: a.start_time,
    finish_time: a.finish_time ?? null,
    message: a.message ?? null,
  };
}

function rowToEvent(r: EventRow): ActionEvent {
  return {
    event: r.event,
    start_time: r.start_time,
    finish_time: r.finish_time,
    result: r.result as ActionEventResult | null,
    traceback: r.traceback,
  };
}

function rowToJournal(r: JournalRow): JournalEntry {
  return {
    seq: r.seq,
    agent_id: r.agent_id,
    at: r.at,
    kind: r.kind as JournalKind,
    instance_id: r.instance_id,
    node_id: r.node_id,
    cause: r.cause,
    data: parse<Record<string, unknown>>(r.data),
  };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------------------------

function prepareAll(db: Database.Database) {
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
      `INSERT INTO actions (request_id, instance_id, project_id, user_id, action, start_time, finish_time, message)
       VALUES (@request_id, @instance_id, @project_id, @user_id, @action, @start_time, @finish_time, @message)`,
    ),
    // An existing request id is updated only when the row is the same action (the one it was created as).
    putActionHeader: p(
      `INSERT INTO actions (request_id, instance_id, project_id, user_id, action, start_time, finish_time, message)
       VALUES (@request_id, @instance_id, @project_id, @user_id, @action, @start_time, @finish_time, @message)
       ON CONFLICT(request_id) DO UPDATE SET finish_time = excluded.finish_time, message = excluded.message
       WHERE actions.instance_id = excluded.instance_id AND actions.project_id = excluded.project_id
         AND actions.user_id = excluded.user_id AND actions.action = excluded.action
         AND actions.start_time = excluded.start_time`,
    ),
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

    bumpSeq: q<[string], { last_seq: number }>(
      `INSERT INTO journal_seq (agent_id, last_seq) VALUES (?, 1)
       ON CONFLICT(agent_id) DO UPDATE SET last_seq = last_seq + 1
       RETURNING last_seq`,
    ),
    lastSeq: q<[string], { last_seq: number }>('SELECT last_seq FROM journal_seq WHERE agent_id = ?'),
    insertJournal: p(
      `INSERT INTO journal (agent_id, seq, at, kind, instance_id, node_id, cause, data)
       VALUES (@agent_id, @seq, @at, @kind, @instance_id, @node_id, @cause, @data)`,
    ),
    readJournal: q<[string, number, number], JournalRow>(
      'SELECT * FROM journal WHERE agent_id = ? AND seq >= ? ORDER BY seq LIMIT ?',
    ),
    trimJournal: q<[string, number]>('DELETE FROM journal WHERE agent_id = ? AND seq <= ?'),

    getMeta: q<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: q<[string, string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    ),
  };
}

type Statements = ReturnType<typeof prepareAll>;

export class SqliteStore implements Store {
  /** Absolute path of the database file. */
  readonly file: string;
  readonly agentId: string;
  private readonly db: Database.Database;
  private readonly stmts: Statements;
  private readonly fault: StoreFaultInjector | undefined;
  private readonly now: () => Date;
  private closed = false;
  /** Outermost transactions begun so far (for the fault injector's `at.transaction`). */
  private transactions = 0;

  private constructor(file: string, db: Database.Database, opts: OpenStoreOptions) {
    this.file = file;
    this.db = db;
    this.agentId = opts.agentId;
    this.fault = opts.fault;
    this.now = opts.now ?? (() => new Date());
    this.stmts = prepareAll(db);
  }

  static open(opts: OpenStoreOptions): SqliteStore {
    if (!opts.agentId) throw new StoreError('openStore: agentId is required');
    const dir = path.resolve(opts.dir);
    const file = path.join(dir, DB_FILE_NAME);
    let db: Database.Database | undefined;
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
      return new SqliteStore(file, db, opts);
    } catch (e) {
      try {
        db?.close();
      } catch {
        // already failing; the original error matters
      }
      if (e instanceof StoreError) throw e;
      if (e instanceof SchemaTooNewError) throw new StoreError(`cannot open ${file}: ${e.message}`, { cause: e });
      throw new StoreError(`cannot open store ${file}: ${describe(e)}`, { cause: e });
    }
  }

  // --- plumbing --------------------------------------------------------------------------------------------------

  /** Runs a read; any failure becomes StoreError. */
  private read<T>(op: string, fn: () => T): T {
    try {
      this.assertOpen();
      return fn();
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError(`store ${op} failed: ${describe(e)}`, { cause: e });
    }
  }

  /** Runs a write: fault hook first, then fn atomically (joining an outer transaction); failures become StoreError. */
  private write<T>(op: StoreWriteOp, fn: () => T): T {
    try {
      this.assertOpen();
      if (!this.db.inTransaction) this.transactions += 1;
      if (this.fault) {
        try {
          this.fault.beforeWrite(op, { transaction: this.transactions });
        } catch (e) {
          if (e instanceof StoreError) throw e;
          throw new StoreError(`injected fault (${op}): ${describe(e)}`, { cause: e });
        }
      }
      return this.db.transaction(fn).immediate();
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError(`store ${op} failed: ${describe(e)}`, { cause: e });
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('store is closed');
  }

  afterCommit(_fn: () => void): void {
    throw new StoreError('afterCommit: not implemented yet');
  }

  setActionPlan(_requestId: string, _plan: ActionPlan): void {
    throw new StoreError('setActionPlan: not implemented yet');
  }

  transaction<T>(fn: () => T): T {
    this.assertOpen();
    if (!this.db.inTransaction) this.transactions += 1;
    let fromCaller = false;
    const body = this.db.transaction(() => {
      let result: T;
      try {
        result = fn();
      } catch (e) {
        fromCaller = true;
        throw e;
      }
      if (isThenable(result)) {
        // An async fn would run its tail outside the transaction: refuse, and roll back what it did so far.
        Promise.resolve(result).catch(() => undefined);
        throw new StoreError('transaction function must be synchronous (it returned a promise); rolled back');
      }
      return result;
    });
    try {
      // Outermost: BEGIN IMMEDIATE. Nested: better-sqlite3 uses a SAVEPOINT inside the outer transaction, so the
      // inner work commits with the outer one, and an inner throw caught by the outer undoes only the inner work.
      return body.immediate();
    } catch (e) {
      if (fromCaller || e instanceof StoreError) throw e;
      throw new StoreError(`store transaction failed: ${describe(e)}`, { cause: e });
    }
  }

  // --- nodes -----------------------------------------------------------------------------------------------------

  getNode(id: string): Node | null {
    return this.read('getNode', () => {
      const r = this.stmts.getNode.get(id);
      return r ? rowToNode(r) : null;
    });
  }

  listNodes(): Node[] {
    return this.read('listNodes', () => this.stmts.listNodes.all().map(rowToNode));
  }

  putNode(node: Node): void {
    const row = nodeToRow(node);
    this.write('putNode', () => this.stmts.putNode.run(row));
  }

  deleteNode(id: string): void {
    this.write('deleteNode', () => this.stmts.deleteNode.run(id));
  }

  // --- instances -------------------------------------------------------------------------------------------------

  getInstance(id: string): Instance | null {
    return this.read('getInstance', () => {
      const r = this.stmts.getInstance.get(id);
      return r ? rowToInstance(r) : null;
    });
  }

  listInstances(): Instance[] {
    return this.read('listInstances', () => this.stmts.listInstances.all().map(rowToInstance));
  }

  putInstance(instance: Instance): void {
    const row = instanceToRow(instance);
    this.write('putInstance', () => this.stmts.putInstance.run(row));
  }

  /** Also removes the purged instances' actions (and their events). */
  purgeTerminated(beforeIso: string): number {
    return this.write('purgeTerminated', () => {
      const ids = this.stmts.purgeableInstances.all(beforeIso).map((r) => r.id);
      for (const id of ids) {
        this.stmts.deleteActionsOf.run(id);
        this.stmts.deleteInstance.run(id);
      }
      return ids.length;
    });
  }

  // --- actions ---------------------------------------------------------------------------------------------------

  insertAction(action: Action): void {
    const header = actionHeader(action);
    const events = (action.events ?? []).map((e, i) => eventToRow(action.request_id, i, e));
    this.write('insertAction', () => {
      if (this.stmts.actionExists.get(action.request_id)) throw new DuplicateActionError(action.request_id);
      this.stmts.insertActionHeader.run(header);
      for (const e of events) this.stmts.insertEvent.run(e);
    });
  }

  putAction(action: Action): void {
    const header = actionHeader(action);
    const events = (action.events ?? []).map((e, i) => eventToRow(action.request_id, i, e));
    this.write('putAction', () => {
      if (this.stmts.putActionHeader.run(header).changes === 0) throw new DuplicateActionError(action.request_id);
      this.stmts.deleteEvents.run(action.request_id);
      for (const e of events) this.stmts.insertEvent.run(e);
    });
  }

  getAction(requestId: string): Action | null {
    return this.read('getAction', () => {
      const r = this.stmts.getAction.get(requestId);
      return r ? this.rowToAction(r) : null;
    });
  }

  listActions(instanceId: string): Action[] {
    return this.read('listActions', () => this.stmts.listActions.all(instanceId).map((r) => this.rowToAction(r)));
  }

  listUnfinishedActions(): Action[] {
    return this.read('listUnfinishedActions', () =>
      this.stmts.listUnfinishedActions.all().map((r) => this.rowToAction(r)),
    );
  }

  appendActionEvent(requestId: string, event: ActionEvent): number {
    return this.write('appendActionEvent', () => {
      if (!this.stmts.actionExists.get(requestId)) throw new StoreError(`no action ${requestId}`);
      const idx = this.stmts.nextEventIdx.get(requestId)!.next;
      this.stmts.insertEvent.run(eventToRow(requestId, idx, event));
      return idx;
    });
  }

  updateActionEvent(requestId: string, index: number, event: ActionEvent): void {
    this.write('updateActionEvent', () => {
      const res = this.stmts.updateEvent.run(eventToRow(requestId, index, event));
      if (res.changes === 0) throw new StoreError(`action ${requestId} has no event at index ${index}`);
    });
  }

  private rowToAction(r: ActionRow): Action {
    return {
      request_id: r.request_id,
      instance_id: r.instance_id,
      project_id: r.project_id,
      user_id: r.user_id,
      action: r.action as ActionName,
      start_time: r.start_time,
      finish_time: r.finish_time,
      message: r.message,
      events: this.stmts.listEvents.all(r.request_id).map(rowToEvent),
    };
  }

  // --- journal ---------------------------------------------------------------------------------------------------

  appendJournal(entry: JournalInput): JournalEntry {
    const data = json(entry.data ?? {});
    const at = this.now().toISOString();
    return this.write('appendJournal', () => {
      const seq = this.stmts.bumpSeq.get(this.agentId)!.last_seq;
      const row: JournalRow = {
        agent_id: this.agentId,
        seq,
        at,
        kind: entry.kind,
        instance_id: entry.instance_id ?? null,
        node_id: entry.node_id ?? null,
        cause: entry.cause,
        data,
      };
      this.stmts.insertJournal.run(row as unknown as Params);
      return rowToJournal(row);
    });
  }

  readJournal(fromSeq: number, limit: number): JournalEntry[] {
    return this.read('readJournal', () => {
      if (!(limit > 0)) return [];
      return this.stmts.readJournal.all(this.agentId, fromSeq, Math.floor(limit)).map(rowToJournal);
    });
  }

  /** The last sequence number handed out for this agent (0 if none); unaffected by trimJournal. */
  lastSeq(): number {
    return this.read('lastSeq', () => this.stmts.lastSeq.get(this.agentId)?.last_seq ?? 0);
  }

  /**
   * Not in the Store interface: deletes this agent's journal entries with seq <= throughSeq (acknowledged upstream);
   * returns how many. Sequence numbers are never reused afterwards.
   */
  trimJournal(throughSeq: number): number {
    return this.write('trimJournal', () => this.stmts.trimJournal.run(this.agentId, throughSeq).changes);
  }

  // --- meta ------------------------------------------------------------------------------------------------------

  getMeta(key: string): string | null {
    return this.read('getMeta', () => this.stmts.getMeta.get(key)?.value ?? null);
  }

  setMeta(key: string, value: string): void {
    this.write('setMeta', () => this.stmts.setMeta.run(key, value));
  }

  // --- admin -----------------------------------------------------------------------------------------------------

  schemaVersion(): number {
    return this.read('schemaVersion', () => this.db.pragma('user_version', { simple: true }) as number);
  }

  /** Not in the Store interface: the connection's effective settings (diagnostics and tests). */
  pragmas(): { journal_mode: string; synchronous: number; foreign_keys: number; busy_timeout: number } {
    return this.read('pragmas', () => ({
      journal_mode: this.db.pragma('journal_mode', { simple: true }) as string,
      synchronous: this.db.pragma('synchronous', { simple: true }) as number,
      foreign_keys: this.db.pragma('foreign_keys', { simple: true }) as number,
      busy_timeout: this.db.pragma('busy_timeout', { simple: true }) as number,
    }));
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.close();
    } catch (e) {
      throw new StoreError(`store close failed: ${describe(e)}`, { cause: e });
    }
  }
}

/** The schema version this build writes (re-exported for diagnostics). */
export { LATEST_SCHEMA_VERSION };
