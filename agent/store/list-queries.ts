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

const idList = (ids: readonly string[] | undefined): string | null => (ids === undefined ? null : JSON.stringify(ids));

/** Prepared once per connection; `toAction` reads an action's events (the store's own row mapping). */
export class SqliteListQueries implements ListQueries {
  private readonly instanceStmts = new Map<string, Statement<InstanceRow>>();
  private readonly instanceKey: Database.Statement<[string], SortKey & { project_id: string }>;
  private readonly actionFirst: Statement<ActionRow>;
  private readonly actionAfter: Statement<ActionRow>;
  private readonly actionKey: Database.Statement<[string], SortKey & { instance_id: string }>;
  private readonly nodeFirst: Statement<NodeRow>;
  private readonly nodeAfter: Statement<NodeRow>;
  private readonly nodeKey: Database.Statement<[string], { name: string; id: string }>;

  constructor(
    private readonly db: Database.Database,
    private readonly toAction: (r: ActionRow) => Action,
  ) {
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
    let after: SortKey | undefined;
    if (q.marker !== undefined) {
      const k = this.instanceKey.get(q.marker);
      if (k === undefined || (q.projectId !== null && k.project_id !== q.projectId)) return null;
      after = k;
    }
    const params = {
      project: q.projectId,
      terminated: q.includeTerminated ? 1 : 0,
      include: idList(q.include),
      exclude: idList(q.exclude),
      limit: q.limit,
      ...(after !== undefined ? { key: after.key, rid: after.rid } : {}),
    };
    return this.instanceStatement(q.projectId !== null, q.order, after !== undefined).all(params).map(rowToInstance);
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

  /** One of eight statements (scope x order x first page or after a marker), prepared on first use. */
  private instanceStatement(oneProject: boolean, order: InstancePageQuery['order'], afterMarker: boolean): Statement<InstanceRow> {
    const name = `${oneProject ? 'project' : 'all'}/${order}/${afterMarker ? 'after' : 'first'}`;
    let stmt = this.instanceStmts.get(name);
    if (stmt === undefined) {
      stmt = this.db.prepare<[Record<string, unknown>], InstanceRow>(instancePageSql(oneProject, order, afterMarker));
      this.instanceStmts.set(name, stmt);
    }
    return stmt;
  }
}

/**
 * The SQL of an instance page (exported for the query-plan test). Parameters: @project, @terminated (0/1),
 * @include and @exclude (JSON arrays of ids, or null), @limit, and after a marker its @key (created_at) and @rid.
 */
export function instancePageSql(oneProject: boolean, order: InstancePageQuery['order'], afterMarker: boolean): string {
  const desc = order === 'newest-first';
  const where = [
    oneProject ? 'project_id = @project' : '@project IS NULL',
    "(@terminated = 1 OR state <> 'terminated')",
    '(@include IS NULL OR id IN (SELECT value FROM json_each(@include)))',
    '(@exclude IS NULL OR id NOT IN (SELECT value FROM json_each(@exclude)))',
    ...(afterMarker ? [`(created_at, rowid) ${desc ? '<' : '>'} (@key, @rid)`] : []),
  ];
  const dir = desc ? 'DESC' : 'ASC';
  return `SELECT * FROM instances WHERE ${where.join(' AND ')} ORDER BY created_at ${dir}, rowid ${dir} LIMIT @limit`;
}
