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
import Database from 'better-sqlite3';
import type { Action, ActionEvent, ActionPlan, Instance, JournalEntry, Node } from '../model.js';
import type { StoreFaultInjector, StoreWriteOp } from './fault.js';
import { AfterCommitHooks } from './after-commit.js';
import { GroupCommit } from './group-commit.js';
import { heldByInstance, heldByNode, IndexQueries, sameHolding, type NodeCursor } from './index-queries.js';
import { SqliteListQueries, type ActionPageQuery, type InstancePageQuery, type PageQuery } from './list-queries.js';
import { LATEST_SCHEMA_VERSION } from './migrations.js';
import {
  instanceToRow,
  json,
  nodeToRow,
  rowToInstance,
  rowToNode,
} from './rows.js';
import { prepareAll, type Statements } from './statements.js';
import { prepareSweeps, targetOfRow, verdictOfRow, viewOfRow, type SweepStatements } from './sweeps.js';
import { ActionTable } from './actions.js';
import { JournalTable } from './journal.js';
import { BootJobTable } from './boot-jobs.js';
import { CommandResults } from './command-results.js';
import { openDatabase } from './open-db.js';
import { TurnWatchers } from './turn-watchers.js';
import { DEFAULT_OUTBOX_BOUNDS, Outbox, scheduleImmediate, warnOutboxStuck, type OutboxBounds, type OutboxDepth } from './outbox.js';
import { StoreError, type JournalInput, type PowerSyncView, type Store, type StoredCommandResult } from './types.js';
import { describe, isThenable } from './util.js';
import type { WalSyncPort } from './wal-sync.js';

import type { OpenStoreOptions } from './options.js';

export { STORE_WRITE_OPS, type StoreFaultInjector, type StoreWriteOp } from './fault.js';
export { DB_FILE_NAME } from './open-db.js';
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
  private readonly walSync: WalSyncPort;
  private readonly group: GroupCommit;
  private readonly commands: CommandResults;
  readonly bootJobs: BootJobTable;
  private readonly actions: ActionTable;
  private readonly journal: JournalTable;
  private readonly watchers: TurnWatchers;
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
    this.actions = new ActionTable(this.stmts);
    this.lists = new SqliteListQueries(db, (r) => this.actions.fromRow(r));
    this.sweeps = prepareSweeps(db);
    this.commands = new CommandResults(db);
    this.bootJobs = new BootJobTable(db, { read: (op, fn) => this.read(op, fn), write: (fn) => this.write('putBootJob', fn) });
    this.watchers = new TurnWatchers((e) => this.hooks.report(e));
    this.tx = db.transaction((fn: () => unknown) => fn());
    this.journal = new JournalTable(this.stmts, this.agentId, {
      afterCommit: (fn) => this.hooks.add(fn),
      appended: (bytes) => this.outbox.appended(bytes),
      measureTrim: (through) => this.outbox.measureTrim(through),
      trimmed: (removed) => this.outbox.trimmed(removed),
      wake: () => this.watchers.wake(),
    });
    this.outbox = new Outbox(db, this.agentId, opts.outbox ?? DEFAULT_OUTBOX_BOUNDS, {
      write: (fn) => this.write('appendJournal', fn),
      now: this.now,
      schedule: scheduleImmediate,
      onStuck: opts.onOutboxStuck ?? warnOutboxStuck,
      onError: (e) => this.hooks.report(e),
    });
  }

  static open(opts: OpenStoreOptions): SqliteStore {
    const { file, db, walSync } = openDatabase(opts);
    return new SqliteStore(file, db, opts, walSync);
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

  /** fn in one transaction level (outermost: BEGIN IMMEDIATE; nested: a savepoint); keeps the journal's seq right. */
  private atomically<T>(fn: () => T): T {
    try {
      return this.tx.immediate(fn) as T;
    } catch (e) {
      this.journal.forgetSeq();
      throw e;
    } finally {
      if (!this.db.inTransaction) this.journal.forgetSeq();
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
    this.write('insertAction', () => this.actions.insert(action));
  }

  putAction(action: Action): void {
    this.write('putAction', () => this.actions.put(action));
  }

  finishAction(requestId: string, finishTime: string, message: string | null): { instance_id: string; action: string } | null {
    return this.write('putAction', () => this.actions.finish(requestId, finishTime, message));
  }

  getAction(requestId: string): Action | null {
    return this.read('getAction', () => this.actions.get(requestId));
  }

  listActions(instanceId: string): Action[] {
    return this.read('listActions', () => this.actions.list(instanceId));
  }

  listUnfinishedActions(): Action[] {
    return this.read('listUnfinishedActions', () => this.actions.unfinished());
  }

  appendActionEvent(requestId: string, event: ActionEvent): number {
    return this.write('appendActionEvent', () => this.actions.appendEvent(requestId, event));
  }

  updateActionEvent(requestId: string, index: number, event: ActionEvent): void {
    this.write('updateActionEvent', () => this.actions.updateEvent(requestId, index, event));
  }

  setActionPlan(requestId: string, plan: ActionPlan): void {
    if (typeof plan !== 'object' || plan === null) throw new StoreError('setActionPlan: plan must be {step, data}');
    this.write('setActionPlan', () => this.actions.setPlan(requestId, plan));
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
    return this.write('appendJournal', () => this.journal.append(entry, data, at));
  }

  readJournal(fromSeq: number, limit: number): JournalEntry[] {
    return this.read('readJournal', () => this.journal.read(fromSeq, limit));
  }

  lastSeq(): number {
    return this.read('lastSeq', () => this.journal.lastSeq());
  }

  outboxFirstSeq(): number {
    return this.read('outboxFirstSeq', () => this.journal.firstSeq());
  }

  trimJournal(throughSeq: number): number {
    return this.write('trimJournal', () => this.journal.trim(throughSeq));
  }

  outboxDepth(): OutboxDepth {
    return this.outbox.depth();
  }

  setOutboxBounds(bounds: OutboxBounds): void {
    this.assertOpen();
    this.outbox.setBounds(bounds);
  }

  watchJournal(fn: () => void): () => void {
    return this.watchers.add(fn);
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
    this.watchers.clear();
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
