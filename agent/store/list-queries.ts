/**
 * Paged list queries (issue 7): the lists the API answers are filtered, ordered and cut into pages in SQL, so a
 * page costs what its rows cost, not what the fleet costs. Paging is by keyset, nova's `marker`: the id of the last
 * item of the previous page; its sort key is read, and the page is the `limit` items after it in the list's order.
 *
 * Orders (ties in the order the rows were recorded, by rowid: stable, as rows are updated in place):
 * - instances: created_at, oldest or newest first (the caller says which); index instances_created_at, or
 *   instances_project_id for one project's;
 * - actions of an instance: start_time, newest first (nova's order); index actions_instance_id;
 * - nodes: name, then id (byte order).
 *
 * An instance page's statement holds only the conditions its query uses (a filter left out is not in the SQL, not
 * a `@x IS NULL OR ...` evaluated on every row), and it reads its rows as arrays (better-sqlite3's raw mode) of the
 * columns listed below: building each row as an object in the driver cost three times the rest of the read
 * (N=1,000, a page of 100: 1,048 us -> 292 us).
 */
import type Database from 'better-sqlite3';
import type { Action, Instance, Node } from '../model.js';
import { rowToInstance, rowToNode, type ActionRow, type InstanceRow, type NodeRow } from './rows.js';

export interface PageQuery {
  /** How many items at most (the API checks 1..max). */
  limit: number;
  /** The id of the last item of the previous page; none for the first page. */
  marker?: string | undefined;
}

export interface InstancePageQuery extends PageQuery {
  /** One project's instances, or null for every project's (admins). The marker must be in this scope. */
  projectId: string | null;
  includeTerminated: boolean;
  order: 'oldest-first' | 'newest-first';
  /** Only these ids (os-fping `include`). */
  include?: readonly string[] | undefined;
  /** Not these ids (os-fping `exclude`). */
  exclude?: readonly string[] | undefined;
}

export interface ActionPageQuery extends PageQuery {
  instanceId: string;
}

/** The paged reads of the store. Each answers null when the marker names no item of the query's scope. */
export interface ListQueries {
  /**
   * Deeply frozen (array and instances): a page is kept and answered again, the same objects, while the database
   * has not changed (PageMemo), so callers may keep them but never change them.
   */
  instancePage(q: InstancePageQuery): Instance[] | null;
  /** Newest first. */
  actionPage(q: ActionPageQuery): Action[] | null;
  /** By name. */
  nodePage(q: PageQuery): Node[] | null;
}

interface SortKey {
  key: string;
  rid: number;
}

type Statement<R> = Database.Statement<[Record<string, unknown>], R>;

/** The columns an instance page reads, in the order instanceRowOf takes them. */
const INSTANCE_COLUMNS = [
  'id', 'project_id', 'user_id', 'name', 'description', 'node_id', 'instance_type_uuid', 'image_uuid',
  'availability_zone', 'networks', 'addresses', 'metadata', 'extra', 'state', 'operation_state', 'error',
  'power_state', 'target_power_state', 'task', 'task_request_id', 'progress', 'failed_operation', 'created_at',
  'updated_at', 'launched_at', 'terminated_at',
] as const satisfies readonly (keyof InstanceRow)[];

/** A raw row of INSTANCE_COLUMNS as the row object rowToInstance maps (a literal: one shape for every row). */
function instanceRowOf(v: unknown[]): InstanceRow {
  return {
    id: v[0] as string,
    project_id: v[1] as string,
    user_id: v[2] as string,
    name: v[3] as string,
    description: v[4] as string | null,
    node_id: v[5] as string,
    instance_type_uuid: v[6] as string | null,
    image_uuid: v[7] as string | null,
    availability_zone: v[8] as string | null,
    networks: v[9] as string,
    addresses: v[10] as string,
    metadata: v[11] as string,
    extra: v[12] as string,
    state: v[13] as string,
    operation_state: v[14] as string | null,
    error: v[15] as string | null,
    power_state: v[16] as string,
    target_power_state: v[17] as string | null,
    task: v[18] as string | null,
    task_request_id: v[19] as string | null,
    progress: v[20] as number,
    failed_operation: v[21] as string | null,
    created_at: v[22] as string,
    updated_at: v[23] as string,
    launched_at: v[24] as string | null,
    terminated_at: v[25] as string | null,
  };
}

/** Which conditions an instance page's SQL holds besides its scope and marker. */
export interface InstanceFilters {
  excludeTerminated: boolean;
  include: boolean;
  exclude: boolean;
}

const filtersOf = (q: InstancePageQuery): InstanceFilters => ({
  excludeTerminated: !q.includeTerminated,
  include: q.include !== undefined,
  exclude: q.exclude !== undefined,
});

/** At most this many instances in all the pages PageMemo keeps (a larger page is not kept). */
export const PAGE_MEMO_ROWS = 2_000;

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * Instance pages answered again while the database is unchanged. The version is SQLite's own: `total_changes()`
 * (every row this connection inserted, updated or deleted, counted as the statement runs, also in a transaction
 * later rolled back) with `data_version` (moves when another connection commits). Equal versions mean the same
 * rows, so nothing has to invalidate the memo: every write moves the version. Not read or kept inside a
 * transaction, where a read can see what a rollback takes back. Oldest pages leave first beyond PAGE_MEMO_ROWS.
 */
class PageMemo {
  private readonly pages = new Map<string, { version: string; rows: Instance[] | null }>();
  private rows = 0;
  private readonly versionStmt: Database.Statement<[], [number, number]>;

  constructor(
    private readonly db: Database.Database,
    private readonly maxRows: number,
  ) {
    this.versionStmt = db.prepare<[], [number, number]>('SELECT total_changes(), data_version FROM pragma_data_version()').raw(true);
  }

  /** The page of `key`, read by `read` unless the memo holds it at the current version. */
  page(key: string, read: () => Instance[] | null): Instance[] | null {
    if (this.db.inTransaction) return read();
    const [changes, data] = this.versionStmt.get()!;
    const version = `${changes}/${data}`;
    const kept = this.pages.get(key);
    if (kept?.version === version) return kept.rows;
    const rows = deepFreeze(read());
    this.forget(key);
    const n = rows?.length ?? 0;
    if (n > this.maxRows) return rows;
    for (const k of this.pages.keys()) {
      if (this.rows + n <= this.maxRows) break;
      this.forget(k);
    }
    this.pages.set(key, { version, rows });
    this.rows += n;
    return rows;
  }

  private forget(key: string): void {
    const kept = this.pages.get(key);
    if (kept === undefined) return;
    this.pages.delete(key);
    this.rows -= kept.rows?.length ?? 0;
  }
}

/**
 * The instances of the rows read last, by id, each with its row's values: a row read again with every value equal
 * is answered with the same frozen instance (so its rendered JSON is reused too, agent/api/rendered.ts), a row with
 * one value changed is mapped afresh. Keyed by content, so no write has to invalidate it; this is what a page read
 * after a write (PageMemo missed) still saves. The oldest row leaves first beyond `maxRows`.
 */
class RowMemo {
  private readonly rows = new Map<string, { values: unknown[]; inst: Instance }>();

  constructor(private readonly maxRows: number) {}

  instanceOf(values: unknown[]): Instance {
    const id = values[0] as string;
    const kept = this.rows.get(id);
    if (kept !== undefined && sameValues(kept.values, values)) return kept.inst;
    const inst = deepFreeze(rowToInstance(instanceRowOf(values)));
    this.rows.delete(id);
    if (this.rows.size >= this.maxRows) {
      const oldest = this.rows.keys().next();
      if (oldest.done !== true) this.rows.delete(oldest.value);
    }
    this.rows.set(id, { values, inst });
    return inst;
  }
}

/** Column values are strings, integers or null: `===` is equality. */
function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const idList = (ids: readonly string[] | undefined): string | null => (ids === undefined ? null : JSON.stringify(ids));

/**
 * Prepared once per connection; `toAction` reads an action's events (the store's own row mapping); `memoRows` bounds
 * the instance pages kept (PageMemo) and the rows (RowMemo).
 */
export class SqliteListQueries implements ListQueries {
  private readonly instanceStmts = new Map<string, Statement<unknown[]>>();
  private readonly instanceKey: Database.Statement<[string], SortKey & { project_id: string }>;
  private readonly actionFirst: Statement<ActionRow>;
  private readonly actionAfter: Statement<ActionRow>;
  private readonly actionKey: Database.Statement<[string], SortKey & { instance_id: string }>;
  private readonly nodeFirst: Statement<NodeRow>;
  private readonly nodeAfter: Statement<NodeRow>;
  private readonly nodeKey: Database.Statement<[string], { name: string; id: string }>;
  private readonly memo: PageMemo;
  private readonly rowMemo: RowMemo;

  constructor(
    private readonly db: Database.Database,
    private readonly toAction: (r: ActionRow) => Action,
    memoRows = PAGE_MEMO_ROWS,
  ) {
    this.memo = new PageMemo(db, memoRows);
    this.rowMemo = new RowMemo(memoRows);
    this.instanceKey = db.prepare('SELECT created_at AS key, rowid AS rid, project_id FROM instances WHERE id = ?');
    const actions = (after: string) =>
      db.prepare<[Record<string, unknown>], ActionRow>(
        `SELECT * FROM actions WHERE instance_id = @instance ${after} ORDER BY start_time DESC, rowid DESC LIMIT @limit`,
      );
    this.actionFirst = actions('');
    this.actionAfter = actions('AND (start_time, rowid) < (@key, @rid)');
    this.actionKey = db.prepare('SELECT start_time AS key, rowid AS rid, instance_id FROM actions WHERE request_id = ?');
    const nodes = (after: string) =>
      db.prepare<[Record<string, unknown>], NodeRow>(`SELECT * FROM nodes ${after} ORDER BY name, id LIMIT @limit`);
    this.nodeFirst = nodes('');
    this.nodeAfter = nodes('WHERE (name, id) > (@name, @id)');
    this.nodeKey = db.prepare('SELECT name, id FROM nodes WHERE id = ?');
  }

  instancePage(q: InstancePageQuery): Instance[] | null {
    const key = JSON.stringify([q.projectId, q.includeTerminated, q.order, q.include, q.exclude, q.limit, q.marker]);
    return this.memo.page(key, () => this.readInstancePage(q));
  }

  private readInstancePage(q: InstancePageQuery): Instance[] | null {
    let after: SortKey | undefined;
    if (q.marker !== undefined) {
      const k = this.instanceKey.get(q.marker);
      if (k === undefined || (q.projectId !== null && k.project_id !== q.projectId)) return null;
      after = k;
    }
    const filters = filtersOf(q);
    const params: Record<string, unknown> = { limit: q.limit };
    if (q.projectId !== null) params['project'] = q.projectId;
    if (filters.include) params['include'] = idList(q.include);
    if (filters.exclude) params['exclude'] = idList(q.exclude);
    if (after !== undefined) Object.assign(params, { key: after.key, rid: after.rid });
    const rows = this.instanceStatement(q.projectId !== null, q.order, after !== undefined, filters).all(params);
    return rows.map((v) => this.rowMemo.instanceOf(v));
  }

  actionPage(q: ActionPageQuery): Action[] | null {
    if (q.marker === undefined) return this.actionFirst.all({ instance: q.instanceId, limit: q.limit }).map(this.toAction);
    const k = this.actionKey.get(q.marker);
    if (k === undefined || k.instance_id !== q.instanceId) return null;
    return this.actionAfter.all({ instance: q.instanceId, limit: q.limit, key: k.key, rid: k.rid }).map(this.toAction);
  }

  nodePage(q: PageQuery): Node[] | null {
    if (q.marker === undefined) return this.nodeFirst.all({ limit: q.limit }).map(rowToNode);
    const k = this.nodeKey.get(q.marker);
    if (k === undefined) return null;
    return this.nodeAfter.all({ limit: q.limit, name: k.name, id: k.id }).map(rowToNode);
  }

  /** One of 64 statements (scope x order x first page or after a marker x filters), prepared on first use. */
  private instanceStatement(
    oneProject: boolean,
    order: InstancePageQuery['order'],
    afterMarker: boolean,
    f: InstanceFilters,
  ): Statement<unknown[]> {
    const name = `${oneProject ? 'project' : 'all'}/${order}/${afterMarker ? 'after' : 'first'}/${+f.excludeTerminated}${+f.include}${+f.exclude}`;
    let stmt = this.instanceStmts.get(name);
    if (stmt === undefined) {
      stmt = this.db.prepare<[Record<string, unknown>], unknown[]>(instancePageSql(oneProject, order, afterMarker, f)).raw(true);
      this.instanceStmts.set(name, stmt);
    }
    return stmt;
  }
}

/**
 * The SQL of an instance page (exported for the query-plan test): INSTANCE_COLUMNS of the rows, with only the
 * conditions used. Parameters: @limit; @project with oneProject; @include / @exclude (JSON arrays of ids) with those
 * filters; after a marker its @key (created_at) and @rid.
 */
export function instancePageSql(oneProject: boolean, order: InstancePageQuery['order'], afterMarker: boolean, f: InstanceFilters): string {
  const desc = order === 'newest-first';
  const where = [
    ...(oneProject ? ['project_id = @project'] : []),
    ...(f.excludeTerminated ? ["state <> 'terminated'"] : []),
    ...(f.include ? ['id IN (SELECT value FROM json_each(@include))'] : []),
    ...(f.exclude ? ['id NOT IN (SELECT value FROM json_each(@exclude))'] : []),
    ...(afterMarker ? [`(created_at, rowid) ${desc ? '<' : '>'} (@key, @rid)`] : []),
  ];
  const dir = desc ? 'DESC' : 'ASC';
  const cond = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  return `SELECT ${INSTANCE_COLUMNS.join(', ')} FROM instances${cond} ORDER BY created_at ${dir}, rowid ${dir} LIMIT @limit`;
}
