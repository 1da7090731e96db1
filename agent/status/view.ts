/**
 * What the status page (docs/status-page.md) may show a caller: the snapshot of the fleet (`GET /v1/status/snapshot`)
 * and each journal entry as the event stream sends it (`GET /v1/status/events`). Pure functions over store reads,
 * scoped by role the way the REST API is (docs/api.md, "Policy"):
 *
 * - an admin sees every node, every instance and every journal entry, with their raw error messages;
 * - a member sees its project's instances only, no node (no node id, name, BMC word or driver name), no node entry,
 *   and error and action messages derived as the API derives them for members (agent/api/views.ts).
 *
 * Nothing secret is in the journal (agent/journal-events.ts: never `extra`), and no BMC setting is in these views.
 */
import type { PowerState } from '../../drivers/power.js';
import { memberActionMessage, memberErrorMessage } from '../api/views.js';
import type { Instance, InstanceError, JournalEntry, Node, OperationState, RequestContext, TargetPower } from '../model.js';
import type { Store } from '../store/types.js';

/** The store reads the status page needs (a SqliteStore in the agent; tests may pass anything that answers them). */
export type StatusStore = Pick<
  Store,
  'lastSeq' | 'outboxFirstSeq' | 'readJournal' | 'watchJournal' | 'listNodes' | 'listInstances' | 'lastAliveVerdict' | 'getInstance' | 'durable'
>;

/** Recent events a snapshot carries (the page's events table holds this many). */
export const SNAPSHOT_EVENTS = 50;
/** How far back a snapshot looks for a member's recent events (its project's among everyone's): bounded work. */
export const SNAPSHOT_EVENT_WINDOW = 1000;

export interface StatusNode {
  id: string;
  name: string;
  type: string;
  power_state: PowerState;
  target_power_state: TargetPower;
  maintenance: boolean;
  maintenance_reason: string | null;
  last_error: InstanceError | null;
  instance_id: string | null;
}

export interface StatusAddress {
  addr: string;
  version: 4 | 6;
  type: 'fixed' | 'floating';
  network: string;
}

export interface StatusInstance {
  id: string;
  name: string;
  project_id: string;
  /** Admins only (null for members: nodes are admin-only). */
  node_id: string | null;
  state: Instance['state'];
  operation_state: OperationState | null;
  power_state: PowerState;
  target_power_state: TargetPower;
  /** false while the verified power is off (as os-fping answers); else the last journalled verdict; null: none yet. */
  alive: boolean | null;
  addresses: StatusAddress[];
  progress: number;
  error: InstanceError | null;
}

/** A journal entry as the page receives it (the store's entry without the agent id, scoped for the caller). */
export type StatusEvent = Omit<JournalEntry, 'agent_id'>;

export interface StatusSnapshot {
  /** The last journal seq the snapshot reflects: the event stream resumes after it (`since`). */
  seq: number;
  taken_at: string;
  agent_id: string;
  role: 'admin' | 'member';
  /** The token's project (the page builds `/v2/{project_id}/servers/{id}` from it to read an install's progress). */
  project_id: string;
  /** Every node for an admin; empty for a member. */
  nodes: StatusNode[];
  /** Instances that are not terminated: all for an admin, the token's project's for a member; by name. */
  instances: StatusInstance[];
  /** The most recent events the caller may see (at most SNAPSHOT_EVENTS), oldest first. */
  events: StatusEvent[];
}

function statusNode(n: Node): StatusNode {
  return {
    id: n.id,
    name: n.name,
    type: n.type,
    power_state: n.power_state,
    target_power_state: n.target_power_state,
    maintenance: n.maintenance,
    maintenance_reason: n.maintenance_reason,
    last_error: n.last_error,
    instance_id: n.instance_id,
  };
}

function memberError(e: InstanceError | null): InstanceError | null {
  return e === null ? null : { error_code: e.error_code, error_msg: memberErrorMessage(e), error_type: e.error_type };
}

function statusInstance(i: Instance, alive: boolean | null, isAdmin: boolean): StatusInstance {
  return {
    id: i.id,
    name: i.name,
    project_id: i.project_id,
    node_id: isAdmin ? i.node_id : null,
    state: i.state,
    operation_state: i.operation_state,
    power_state: i.power_state,
    target_power_state: i.target_power_state,
    alive: i.power_state === 'off' ? false : alive,
    addresses: i.addresses.map((a) => ({ addr: a.addr, version: a.version, type: a.type, network: a.network })),
    progress: i.progress,
    error: isAdmin ? i.error : memberError(i.error),
  };
}

/** Who owns an instance (its project), or null when it is gone: one store read, cached by the caller per batch. */
export type ProjectOf = (instanceId: string) => string | null;

/**
 * A journal entry as `ctx` may see it, or null when it may not: admins see every entry as written; members see the
 * entries of their project's instances, without node ids, driver names or raw error text. Fold markers
 * (`outbox.folded`) are never shown: the stream turns them into a `reset` (agent/status/streams.ts).
 */
export function scopeEvent(e: JournalEntry, isAdmin: boolean, projectId: string, projectOf: ProjectOf): StatusEvent | null {
  if ((e.kind as string) === 'outbox.folded') return null;
  const base: StatusEvent = { seq: e.seq, at: e.at, kind: e.kind, instance_id: e.instance_id, node_id: e.node_id, cause: e.cause, data: e.data };
  if (isAdmin) return base;
  if (e.instance_id === null || e.kind.startsWith('node.')) return null;
  if (projectOf(e.instance_id) !== projectId) return null;
  return { ...base, node_id: null, data: memberData(e) };
}

/** A member's copy of an entry's data (its instance is the member's). */
function memberData(e: JournalEntry): Record<string, unknown> {
  const d = e.data;
  switch (e.kind) {
    case 'instance.created': {
      const { node_id: _node, ...rest } = d;
      return rest;
    }
    case 'instance.error':
      return { error: memberError((d['error'] ?? null) as InstanceError | null) };
    case 'action.event':
      // The step, its result and its error code; not which drivers were tried nor which node was scheduled.
      return {
        request_id: d['request_id'],
        event: d['event'],
        result: d['result'],
        ...(d['step'] !== undefined ? { step: d['step'] } : {}),
        ...(d['code'] !== undefined ? { code: d['code'] } : {}),
      };
    case 'action.finished':
      return { ...d, message: memberActionMessage((d['message'] ?? null) as string | null) };
    default:
      return d;
  }
}

/** ProjectOf over the store, cached for one batch of entries (each instance read at most once per batch). */
export function projectLookup(store: Pick<StatusStore, 'getInstance'>): ProjectOf {
  const cache = new Map<string, string | null>();
  return (id) => {
    let p = cache.get(id);
    if (p === undefined) {
      p = store.getInstance(id)?.project_id ?? null;
      cache.set(id, p);
    }
    return p;
  };
}

/**
 * The snapshot for `ctx`, read in one synchronous stretch (nothing is appended between the reads, so `seq` is exactly
 * what the rows reflect). Its cost is the fleet's (one page load), never paid per event.
 */
export function buildSnapshot(store: StatusStore, ctx: RequestContext, agentId: string, now: Date): StatusSnapshot {
  const seq = store.lastSeq();
  const isAdmin = ctx.is_admin;
  const byName = <T extends { name: string; id: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1);
  const nodes = isAdmin ? store.listNodes().map(statusNode).sort(byName) : [];
  const instances = store
    .listInstances()
    .filter((i) => i.state !== 'terminated' && (isAdmin || i.project_id === ctx.project_id))
    .map((i) => statusInstance(i, store.lastAliveVerdict(i.id), isAdmin))
    .sort(byName);
  // An admin sees every entry (fold markers aside): twice the table's rows is enough; a member's are among everyone's.
  const window = isAdmin ? SNAPSHOT_EVENTS * 2 : SNAPSHOT_EVENT_WINDOW;
  const from = Math.max(store.outboxFirstSeq(), seq - window + 1, 1);
  const projectOf = projectLookup(store);
  const events = store
    .readJournal(from, window)
    .filter((e) => e.seq <= seq)
    .map((e) => scopeEvent(e, isAdmin, ctx.project_id, projectOf))
    .filter((e): e is StatusEvent => e !== null)
    .slice(-SNAPSHOT_EVENTS);
  return { seq, taken_at: now.toISOString(), agent_id: agentId, role: isAdmin ? 'admin' : 'member', project_id: ctx.project_id, nodes, instances, events };
}
