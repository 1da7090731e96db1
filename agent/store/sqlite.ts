/**
 * The durable store: one SQLite file `metald.db` in state_dir, opened with WAL and synchronous=NORMAL, its WAL made
 * durable by group commit (./group-commit.ts): a commit survives a crash or power loss once `durable()` has
 * resolved after it, and nothing is acknowledged before that. Schema versions and migrations: ./migrations.ts.
 *
 * Every failure (SQLite errors, a closed database, a corrupt JSON column, an injected fault) surfaces as StoreError
 * with the original error as `cause`. Errors thrown by the caller's own function inside `transaction` pass through
 * unchanged (after the rollback).
 *
 * Pieces: row shapes and JSON columns ./rows.ts, SQL statements ./statements.ts, the test-only fault injector's
 * types ./fault.ts (re-exported here).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Action, ActionEvent, ActionPlan, Instance, JournalEntry, Node } from '../model.js';
import type { StoreFaultInjector, StoreWriteOp } from './fault.js';
import { AfterCommitHooks } from './after-commit.js';
import { GroupCommit } from './group-commit.js';
import { heldByInstance, heldByNode, IndexQueries, sameHolding, type NodeCursor } from './index-queries.js';
import { SqliteListQueries, type ActionPageQuery, type InstancePageQuery, type PageQuery } from './list-queries.js';
import { LATEST_SCHEMA_VERSION, migrate, SchemaTooNewError } from './migrations.js';
import {
  actionHeader,
  eventToRow,
  instanceToRow,
  json,
  nodeToRow,
  planToColumns,
  rowToAction,
  rowToEvent,
  rowToInstance,
  rowToJournal,
  rowToNode,
  type ActionRow,
  type JournalRow,
  type Params,
} from './rows.js';
import { prepareAll, type Statements } from './statements.js';
import { prepareSweeps, targetOfRow, verdictOfRow, viewOfRow, type SweepStatements } from './sweeps.js';
import { CommandResults } from './command-results.js';
import { DEFAULT_OUTBOX_BOUNDS, entryBytes, Outbox, scheduleImmediate, warnOutboxStuck, type OutboxBounds, type OutboxDepth } from './outbox.js';
import { DuplicateActionError, StoreError, type JournalInput, type PowerSyncView, type Store, type StoredCommandResult } from './types.js';
import { describe, isThenable } from './util.js';
import { FdWalSync, type WalSyncPort } from './wal-sync.js';

export { STORE_WRITE_OPS, type StoreFaultInjector, type StoreWriteOp } from './fault.js';

export const DB_FILE_NAME = 'metald.db';

import { CONNECTION_PRAGMAS, type OpenStoreOptions } from './options.js';

export { CONNECTION_PRAGMAS, type OpenStoreOptions } from './options.js';

export function openStore(opts: OpenStoreOptions): SqliteStore {
  return SqliteStore.open(opts);
}

export class SqliteStore implements Store {
  /** Absolute path of the database file. */
  readonly file: string;
  readonly agentId: string;
  private readonly db: Database.Database;
  private readonly stmts: Statements;
  private readonly lists: SqliteListQueries;
  private readonly sweeps: SweepStatements;
  private readonly fault: StoreFaultInjector | undefined;
  private readonly now: () => Date;
  private closed = false;
  /** Outermost transactions begun so far (for the fault injector's `at.transaction`). */
  private transactions = 0;
  private readonly hooks: AfterCommitHooks;
  private readonly index: IndexQueries;
  /** One transaction wrapper for every write and `transaction` (better-sqlite3 builds one per call otherwise). */
  private readonly tx: Database.Transaction<(fn: () => unknown) => unknown>;
  /**
   * The last journal seq handed out in the transaction open now (null: not read yet in it). Read once per
   * transaction under its write lock, then counted on in memory; forgotten when the transaction ends and when any
   * level of it rolls back (the next append reads it again, so a rolled-back entry's seq is handed out again).
   */
  private txSeq: number | null = null;
  private readonly walSync: WalSyncPort;
  private readonly group: GroupCommit;
  private readonly commands: CommandResults;
  private readonly journalWatchers = new Set<() => void>();
  private journalWake: NodeJS.Immediate | null = null;
  private readonly outbox: Outbox;

  private constructor(file: string, db: Database.Database, opts: OpenStoreOptions, walSync: WalSyncPort) {
    this.file = file;
    this.walSync = walSync;
    const onSyncFailure = opts.onSyncFailure ?? ((err: Error) => process.emitWarning(err.message, { type: 'MetaldStoreWarning', code: 'METALD_WAL_SYNC_FAILED' }));
    this.group = new GroupCommit(walSync, `${file}-wal`, onSyncFailure);
    this.db = db;
    this.agentId = opts.agentId;
    this.fault = opts.fault;
    this.now = opts.now ?? (() => new Date());
    this.hooks = new AfterCommitHooks(opts.onAfterCommitError);
    this.stmts = prepareAll(db);
    this.index = new IndexQueries(db);
    this.lists = new SqliteListQueries(db, (r) => this.rowToAction(r));
    this.sweeps = prepareSweeps(db);
    this.commands = new CommandResults(db);
    this.tx = db.transaction((fn: () => unknown) => fn());
    this.outbox = new Outbox(db, this.agentId, opts.outbox ?? DEFAULT_OUTBOX_BOUNDS, {
      write: (fn) => this.write('appendJournal', fn),
      now: this.now,
      schedule: scheduleImmediate,
      onStuck: opts.onOutboxStuck ?? warnOutboxStuck,
      onError: (e) => this.hooks.report(e),
    });
  }

  static open(opts: OpenStoreOptions): SqliteStore {
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
      return new SqliteStore(file, db, opts, walSync);
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
      this.assertWritable();
      const outermost = !this.db.inTransaction;
      if (outermost) this.transactions += 1;
      if (this.fault) {
        try {
          this.fault.beforeWrite(op, { transaction: this.transactions });
        } catch (e) {
          if (e instanceof StoreError) throw e;
          throw new StoreError(`injected fault (${op}): ${describe(e)}`, { cause: e });
        }
      }
      // A level of after-commit hooks: the outbox counters follow a write once it committed.
      return this.hooks.level(() => {
        const result = this.atomically(fn);
        if (outermost) this.group.committedOne();
        return result;
      });
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError(`store ${op} failed: ${describe(e)}`, { cause: e });
    }
  }

  /** fn in one transaction level (outermost: BEGIN IMMEDIATE; nested: a savepoint); keeps txSeq right. */
  private atomically<T>(fn: () => T): T {
    try {
      return this.tx.immediate(fn) as T;
    } catch (e) {
      this.txSeq = null;
      throw e;
    } finally {
      if (!this.db.inTransaction) this.txSeq = null;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('store is closed');
  }

  /** Open, and no WAL sync has failed (after one, nothing more is written: docs/decisions.md, "Group commit"). */
  private assertWritable(): void {
    this.assertOpen();
    const failed = this.group.failed;
    if (failed) throw failed;
  }

  /**
   * Resolves once every commit made so far is on disk (one WAL sync per loop turn covers all of that turn's
   * commits); null when nothing is pending. Rejects with StoreError once a sync has failed.
   */
  durable(): Promise<void> | null {
    if (this.closed) return null;
    return this.group.durable();
  }

  /** Not in the Store interface: WAL syncs started so far (tests, diagnostics). */
  walSyncs(): number {
    return this.group.syncs;
  }

  /**
   * Queued on the transaction open now and run, in order, right after the outermost COMMIT returns; dropped with a
   * rolled-back transaction or savepoint. Outside a transaction fn runs at once. (A write outside `transaction`
   * opens its own, but runs no caller code inside it, so nothing can be queued there.)
   * What fn throws goes to `onAfterCommitError`, never to the caller. A hook may use the store (its own
   * transactions run their own hooks after they commit).
   */
  afterCommit(fn: () => void): void {
    this.assertOpen();
    this.hooks.add(fn);
  }

  transaction<T>(fn: () => T): T {
    this.assertWritable();
    const outermost = !this.db.inTransaction;
    if (outermost) this.transactions += 1;
    let fromCaller = false;
    const body = () => {
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
    };
    try {
      // Outermost: BEGIN IMMEDIATE. Nested: better-sqlite3 uses a SAVEPOINT inside the outer transaction, so the
      // inner work commits with the outer one, and an inner throw caught by the outer undoes only the inner work.
      return this.hooks.level(() => {
        const result = this.atomically(body);
        // Counted before the after-commit hooks run: a hook's `durable()` covers this commit.
        if (outermost) this.group.committedOne();
        return result;
      });
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

  syncableNodeIds(): string[] {
    return this.read('syncableNodeIds', () => this.sweeps.syncableNodeIds.all().map((r) => r.id));
  }

  putNode(node: Node): void {
    const row = nodeToRow(node);
    this.write('putNode', () => {
      const old = this.stmts.adoptOf.get(node.id);
      // Unchanged instance_id: an UPDATE that leaves its index alone (one WAL page less per commit).
      if (old && old.instance_id === row['instance_id']) this.stmts.updateNodeUnindexed.run(row);
      else this.stmts.putNode.run(row);
      // What a node holds is its waiting adoption's addresses: unchanged adoption, unchanged holding.
      if (!old || old.adopt !== row['adopt']) this.index.syncNode(node.id, heldByNode(node));
    });
  }

  deleteNode(id: string): void {
    this.write('deleteNode', () => {
      this.stmts.deleteNode.run(id);
      this.index.syncNode(id, []);
    });
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

  listRunningInstances(after: string | null, limit: number): Pick<Instance, 'id' | 'addresses' | 'task' | 'power_state'>[] {
    return this.read('listRunningInstances', () => this.sweeps.runningPage.all(after ?? '', Math.max(1, Math.floor(limit))).map(targetOfRow));
  }

  powerSyncView(nodeId: string): PowerSyncView | null {
    return this.read('powerSyncView', () => viewOfRow(this.sweeps.powerSyncView.get(nodeId)));
  }

  lastAliveVerdict(instanceId: string): boolean | null {
    return this.read('lastAliveVerdict', () => verdictOfRow(this.sweeps.lastAlive.get(this.agentId, instanceId)));
  }


  putInstance(instance: Instance): void {
    const row = instanceToRow(instance);
    this.write('putInstance', () => {
      const old = this.stmts.holdingOf.get(instance.id);
      // Same node, project and creation time: an UPDATE that leaves the indexes alone, but instances_state when the
      // state changed (statements.ts updateInstanceSameKeys).
      const sameKeys = old && old.node_id === row['node_id'] && old.project_id === row['project_id'] && old.created_at === row['created_at'];
      if (sameKeys && old.state === row['state'] && old.terminated_at === row['terminated_at']) this.stmts.updateInstanceSameKeys.run(row);
      else if (sameKeys) this.stmts.updateInstanceState.run(row);
      else this.stmts.putInstance.run(row);
      if (!old || !sameHolding(old, row)) this.index.syncInstance(instance.id, heldByInstance(instance));
    });
  }

  /** Also removes the purged instances' actions (and their events). */
  purgeTerminated(beforeIso: string): number {
    return this.write('purgeTerminated', () => {
      const ids = this.stmts.purgeableInstances.all(beforeIso).map((r) => r.id);
      for (const id of ids) {
        this.stmts.deleteActionsOf.run(id);
        this.stmts.deleteInstance.run(id);
        this.index.syncInstance(id, []);
      }
      return ids.length;
    });
  }

  // --- indexed lookups (./index-queries.ts) ----------------------------------------------------------------------

  addressHolder(addr: string): { instance_id: string; node_id: string } | null {
    return this.read('addressHolder', () => this.index.addressHolder(addr));
  }

  isAddressHeld(addr: string, exceptInstanceId?: string): boolean {
    return this.read('isAddressHeld', () => this.index.isAddressHeld(addr, exceptInstanceId));
  }

  heldAddresses(exceptInstanceId?: string): string[] {
    return this.read('heldAddresses', () => this.index.heldAddresses(exceptInstanceId));
  }

  firstFreeAddress(first: string, last: string, exceptInstanceId?: string): string | null {
    return this.read('firstFreeAddress', () => this.index.firstFreeAddress(first, last, exceptInstanceId));
  }

  freeNodes(type: string | null, limit: number, after?: NodeCursor): Node[] {
    return this.read('freeNodes', () => this.index.freeNodes(type, limit, after));
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

  finishAction(requestId: string, finishTime: string, message: string | null): { instance_id: string; action: string } | null {
    return this.write('putAction', () => this.stmts.finishAction.get(finishTime, message, requestId) ?? null);
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

  setActionPlan(requestId: string, plan: ActionPlan): void {
    if (typeof plan !== 'object' || plan === null) throw new StoreError('setActionPlan: plan must be {step, data}');
    const { plan_step, plan_data } = planToColumns(plan);
    this.write('setActionPlan', () => {
      if (this.stmts.setActionPlan.run(plan_step!, plan_data!, requestId).changes === 0) {
        throw new StoreError(`no action ${requestId.slice(0, 64)}`);
      }
    });
  }

  private rowToAction(r: ActionRow): Action {
    return rowToAction(r, this.stmts.listEvents.all(r.request_id).map(rowToEvent));
  }

  // --- paged lists (./list-queries.ts) ---------------------------------------------------------------------------

  instancePage(q: InstancePageQuery): Instance[] | null {
    return this.read('instancePage', () => this.lists.instancePage(q));
  }

  actionPage(q: ActionPageQuery): Action[] | null {
    return this.read('actionPage', () => this.lists.actionPage(q));
  }

  nodePage(q: PageQuery): Node[] | null {
    return this.read('nodePage', () => this.lists.nodePage(q));
  }

  // --- journal ---------------------------------------------------------------------------------------------------

  appendJournal(entry: JournalInput): JournalEntry {
    const data = json(entry.data ?? {});
    const at = this.now().toISOString();
    return this.write('appendJournal', () => {
      const seq = (this.txSeq ??= this.stmts.lastSeq.get(this.agentId, this.agentId)!.last_seq) + 1;
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
      this.txSeq = seq;
      const bytes = entryBytes(row);
      this.hooks.add(() => this.outbox.appended(bytes));
      this.wakeJournalWatchers();
      // The entry as written, its data the caller's (not parsed back from the row just stringified).
      const { data: _json, ...fields } = row;
      return { ...fields, kind: entry.kind, data: entry.data ?? {} };
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
    return this.read('lastSeq', () => this.stmts.lastSeq.get(this.agentId, this.agentId)!.last_seq);
  }

  outboxFirstSeq(): number {
    return this.read('outboxFirstSeq', () => this.stmts.firstSeq.get(this.agentId)?.first_seq ?? this.stmts.lastSeq.get(this.agentId, this.agentId)!.last_seq + 1);
  }

  trimJournal(throughSeq: number): number {
    return this.write('trimJournal', () => {
      // The last seq outlives the entries it numbered: kept in journal_seq before they go.
      this.stmts.saveSeq.run(this.agentId, this.stmts.lastSeq.get(this.agentId, this.agentId)!.last_seq);
      const removed = this.outbox.measureTrim(throughSeq);
      this.hooks.add(() => this.outbox.trimmed(removed));
      return this.stmts.trimJournal.run(this.agentId, throughSeq).changes;
    });
  }

  outboxDepth(): OutboxDepth {
    return this.outbox.depth();
  }

  setOutboxBounds(bounds: OutboxBounds): void {
    this.assertOpen();
    this.outbox.setBounds(bounds);
  }

  watchJournal(fn: () => void): () => void {
    this.journalWatchers.add(fn);
    return () => this.journalWatchers.delete(fn);
  }

  /** After an append: wakes the watchers once, on the next turn (the append's transaction has ended by then). */
  private wakeJournalWatchers(): void {
    if (this.journalWake !== null || this.journalWatchers.size === 0) return;
    this.journalWake = setImmediate(() => {
      this.journalWake = null;
      if (this.closed) return;
      for (const w of [...this.journalWatchers]) {
        try {
          w();
        } catch (e) {
          this.hooks.report(e);
        }
      }
    });
  }

  // --- upstream commands (./command-results.ts) ------------------------------------------------------------------

  storeId(): string {
    return this.read('storeId', () => this.commands.storeId());
  }

  getCommandResult(commandId: string): StoredCommandResult | null {
    return this.read('getCommandResult', () => this.commands.get(commandId));
  }

  putCommandResult(r: StoredCommandResult): void {
    this.write('putCommandResult', () => this.commands.insert(r));
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
    // The commits not synced yet are synced now (blocking), and their waiters settled, before the connection goes.
    this.group.flushNow();
    this.closed = true;
    this.outbox.close();
    if (this.journalWake !== null) clearImmediate(this.journalWake);
    this.journalWatchers.clear();
    try {
      this.db.close();
    } catch (e) {
      throw new StoreError(`store close failed: ${describe(e)}`, { cause: e });
    } finally {
      this.walSync.close();
    }
  }
}

/** The schema version this build writes (re-exported for diagnostics). */
export { LATEST_SCHEMA_VERSION };
