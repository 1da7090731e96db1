/**
 * The durable store (agent/store/sqlite.ts): SQLite in state_dir, WAL, synchronous=NORMAL with group commit (one
 * WAL fdatasync off the loop for the commits of a turn; `durable()` waits for it), a schema version with migrations. All methods are synchronous (better-sqlite3); `transaction` makes a group of writes atomic.
 * Every write throws StoreError on failure; callers turn that into a 5xx with nothing accepted.
 */
import type { Action, ActionEvent, ActionPlan, Instance, InstanceState, JournalEntry, JournalKind, Node, OperationKind, PowerState } from '../model.js';
import type { NodeCursor } from './index-queries.js';
import type { OutboxBounds, OutboxDepth } from './outbox.js';

export type { OutboxBounds, OutboxDepth } from './outbox.js';

export type { NodeCursor } from './index-queries.js';
import type { ListQueries } from './list-queries.js';

export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/** A new action was given a request id that already names an action: actions are unique by request id. */
export class DuplicateActionError extends StoreError {
  constructor(readonly requestId: string) {
    super(`an action with request id ${requestId.slice(0, 64)} already exists; a repeated request id never replaces it`);
    this.name = 'DuplicateActionError';
  }
}

export interface JournalInput {
  kind: JournalKind;
  instance_id?: string | null;
  node_id?: string | null;
  cause: string;
  data: Record<string, unknown>;
}

/** The paged list reads (ListQueries) are in ./list-queries.ts. */
export interface Store extends ListQueries {
  /** Runs fn in one IMMEDIATE transaction; rolls back if it throws. Nested calls join the outer one. */
  transaction<T>(fn: () => T): T;
  /**
   * Runs fn once the outermost transaction now open commits; dropped if it rolls back. Outside a transaction fn runs
   * at once. fn runs synchronously after COMMIT returns; what it throws is logged by the store and never reaches
   * the committing caller (the commit stands). This is how an accepted operation is launched only once its records
   * are durable.
   */
  afterCommit(fn: () => void): void;
  /**
   * The durability barrier of group commit: resolves once every commit made before the call is on disk; null when
   * none is pending. Nothing may be acknowledged before it (a 2xx of a write, a BMC command, a deployer call, an
   * upstream event). Rejects with StoreError once a WAL sync failed (the store is then failed until a restart).
   */
  durable(): Promise<void> | null;

  getNode(id: string): Node | null;
  listNodes(): Node[];
  /** The ids of the nodes not in maintenance, in id order (power sync reads each node afresh). */
  syncableNodeIds(): string[];
  /**
   * What power sync decides a node by, read without decoding its rows (null: no such node). `instance` is null when
   * the node holds none.
   */
  powerSyncView(nodeId: string): PowerSyncView | null;
  /** Insert or replace by id. */
  putNode(node: Node): void;
  deleteNode(id: string): void;

  getInstance(id: string): Instance | null;
  /** Every instance, terminated included, ordered by created_at. */
  listInstances(): Instance[];
  /**
   * One page of the running instances' ids, addresses, task and power (the liveness monitor's): those whose id sorts after `after`
   * (null: from the first), in id order, at most `limit`.
   */
  listRunningInstances(after: string | null, limit: number): Pick<Instance, 'id' | 'addresses' | 'task' | 'power_state'>[];
  /**
   * The verdict of this agent's last `instance.alive` journal entry of the instance, or null if there is none (never
   * journalled, trimmed, or a fold marker of the instance is newer than it: ./outbox.ts): what the liveness monitor
   * compares its first verdict after a start with.
   */
  lastAliveVerdict(instanceId: string): boolean | null;
  putInstance(instance: Instance): void;
  /** Removes terminated instances whose terminated_at is before the cutoff (ISO); returns how many. */
  purgeTerminated(beforeIso: string): number;

  /** Records a new action (with its events). Throws DuplicateActionError if the request id already names one. */
  insertAction(action: Action): void;
  /**
   * Updates an action: its finish_time, message and events (closing it), and its plan when `plan` is given (an
   * action whose `plan` is undefined keeps the stored one). Creates it if the request id is unknown;
   * throws DuplicateActionError if the request id names a different action (another instance, name, user, project
   * or start time): a repeated request id never replaces an action.
   */
  putAction(action: Action): void;
  /** Closes an open action (finish_time, message), its events untouched; null when it is missing or closed already. */
  finishAction(requestId: string, finishTime: string, message: string | null): { instance_id: string; action: string } | null;
  getAction(requestId: string): Action | null;
  /** Ordered by start_time. */
  listActions(instanceId: string): Action[];
  /** Actions whose finish_time is null (in flight at a crash). */
  listUnfinishedActions(): Action[];
  /** Appends one event to an action; returns its index. */
  appendActionEvent(requestId: string, event: ActionEvent): number;
  updateActionEvent(requestId: string, index: number, event: ActionEvent): void;
  /** Stores an action's plan position (Action.plan). Throws StoreError if the action does not exist. */
  setActionPlan(requestId: string, plan: ActionPlan): void;

  /** Appends to the journal (the outbox) with the next per-agent sequence number; returns the entry. */
  appendJournal(entry: JournalInput): JournalEntry;
  /** Entries with seq >= fromSeq, in order, at most limit. */
  readJournal(fromSeq: number, limit: number): JournalEntry[];
  /** The last sequence number handed out for this agent (0 if none); unaffected by trimJournal. */
  lastSeq(): number;
  /** The oldest seq the journal still holds (what the upstream hello calls outbox_first_seq); lastSeq() + 1 when empty. */
  outboxFirstSeq(): number;
  /**
   * Deletes this agent's journal entries with seq <= throughSeq (acknowledged upstream); returns how many. Sequence
   * numbers are never reused afterwards.
   */
  trimJournal(throughSeq: number): number;
  /**
   * The outbox's depth, O(1) (counters kept in memory: /metrics reads it every scrape): entries (markers included),
   * their bytes, and the entries removed by folding over the store's life (docs/protocol.md, "The outbox policy").
   */
  outboxDepth(): OutboxDepth;
  /** New outbox bounds, applied at once (SIGHUP): the journal is folded now if it is over them. @throws RangeError on a bound that is not a positive integer. */
  setOutboxBounds(bounds: OutboxBounds): void;
  /**
   * Calls fn after journal entries were appended: at most once per event-loop turn (a setImmediate after the turn's
   * first append), so a burst of commits wakes the listener once. fn reads what is there (lastSeq, readJournal): an
   * append rolled back wakes it for nothing. Returns the unsubscribe function.
   */
  watchJournal(fn: () => void): () => void;

  /** The store's id: a UUID made once when the store was created (the upstream hello's store_id). */
  storeId(): string;
  /** A command's first result by command_id (agent/upstream/commands.ts), null if none was stored. */
  getCommandResult(commandId: string): StoredCommandResult | null;
  /** Stores a command's first result; throws StoreError if command_id already has one (a result is never replaced). */
  putCommandResult(r: StoredCommandResult): void;

  // --- indexed lookups (./index-queries.ts): each costs its answer, not the fleet ---------------------------------
  // Held addresses: a live instance's addresses, its modify-ip reservation while an operation runs, a waiting
  // adoption's addresses; kept by the writes above in their own transaction. Addresses are compared normalised.

  /** The live instance holding addr (its own address first, else its reservation), or null. Adoptions are not instances. */
  addressHolder(addr: string): { instance_id: string; node_id: string } | null;
  /** Whether anything holds addr; the instance `exceptInstanceId` does not count (an adoption always does). */
  isAddressHeld(addr: string, exceptInstanceId?: string): boolean;
  /** Every held address, normalised, distinct, in text order; `exceptInstanceId` as isAddressHeld. Reads the whole index: diagnostics and tests, not the request path. */
  heldAddresses(exceptInstanceId?: string): string[];
  /**
   * The lowest address of the inclusive range [first, last] (IPv4 or IPv6, one family) that nothing holds
   * (`exceptInstanceId`'s own addresses count as free), normalised; null when the range is full or invalid.
   */
  firstFreeAddress(first: string, last: string, exceptInstanceId?: string): string | null;
  /**
   * Up to `limit` free nodes (no instance, not in maintenance, no adoption waiting), of `type` unless null, in
   * (name, id) byte order, starting after `after`. Node-level operations in flight are the caller's to skip.
   */
  freeNodes(type: string | null, limit: number, after?: NodeCursor): Node[];

  /** Small durable settings by key (the upstream generation: `upstream.generation`). */
  getMeta(key: string): string | null;
  setMeta(key: string, value: string): void;

  /** The boot server's installer jobs (agent/store/boot-jobs.ts; agent/boot/). */
  readonly bootJobs: BootJobStore;

  schemaVersion(): number;
  close(): void;
}

/** docs/boot-protocol.md, "A job". */
export type BootJobState = 'issued' | 'fetched' | 'succeeded' | 'failed' | 'revoked' | 'expired';
export const OPEN_BOOT_JOB_STATES: readonly BootJobState[] = ['issued', 'fetched'];

/** One installer job as stored (Store.bootJobs). */
export interface BootJob {
  job_id: string;
  /** The one-time token that names it in the boot server's URLs (a secret: never logged). */
  token: string;
  node_id: string;
  instance_id: string;
  operation: string;
  /** The node's provisioning MACs, lower case: what the iPXE script and the lookup find it by. */
  macs: string[];
  /** The job document but its URLs and expiry (docs/boot-protocol.md; holds the password hash and keys). */
  document: Record<string, unknown>;
  state: BootJobState;
  /** 0-100, never lower than before. */
  progress: number;
  /** The last progress message, the result's message, or why it was revoked. */
  message: string | null;
  /** ms since the epoch. */
  deadline_at: number;
  created_at: string;
  updated_at: string;
}

/** Store.bootJobs: each lookup by an index (a job's id, token, instance or MAC), none by a scan of the fleet. */
export interface BootJobStore {
  get(jobId: string): BootJob | null;
  byToken(token: string): BootJob | null;
  /** The newest job in state `issued` of a node with this MAC (lower case). */
  issuedForMac(mac: string): BootJob | null;
  /** The instance's jobs in `issued` or `fetched` state. */
  openOfInstance(instanceId: string): BootJob[];
  /** The node's jobs in `issued` or `fetched` state. */
  openOfNode(nodeId: string): BootJob[];
  /**
   * Inserts or replaces the job (its MACs only at insert). A new job removes the node's finished jobs but its newest
   * few (boot-jobs.ts KEEP_PER_NODE; a late report of a removed one is answered NO_JOB): bounded per node.
   */
  put(job: BootJob): void;
}

/** A command's first result (Store.getCommandResult). */
export interface StoredCommandResult {
  command_id: string;
  /** The command's op (command.op). */
  op: string;
  /** The command-result message's fields but type, version and repeat. */
  result: Record<string, unknown>;
  created_at: string;
}

/** Store.powerSyncView. */
export interface PowerSyncView {
  maintenance: boolean;
  power_state: PowerState;
  consecutive_power_failures: number;
  /** The node's last_error's error_type, if it has one. */
  node_error_type: string | null;
  /** The node waits for an adoption (adopt set, no instance yet). */
  adopting: boolean;
  instance: { id: string; state: InstanceState; task: OperationKind | null; power_state: PowerState; error_type: string | null } | null;
}
