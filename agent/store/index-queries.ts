/**
 * The store's indexed lookups: who holds an address, the first free address of a pool, the free nodes. Each costs
 * the answer's size (an index probe or a short index range), not the fleet's.
 *
 * Held addresses live in `held_addresses` (migration 4), maintained by the store itself inside the same transaction
 * as the row that causes them (putInstance, putNode, deleteNode, purgeTerminated), so they never drift from the
 * rows. What holds an address (the one rule, `heldByInstance`/`heldByNode`, used by the writes and the backfill):
 * - an instance not terminated: its `addresses` (holder_kind `instance`);
 * - an instance with an operation in flight (`task !== null`): its modify-ip reservation `extra.pending_ip.addresses`
 *   (`reservation`; a stale reservation with no operation holds nothing);
 * - a node with an adoption waiting: `adopt.addresses` (`adoption`; instance_id is the instance to be adopted).
 * Addresses are stored normalised (agent/net.ts normaliseIp); `ip_key` sorts numerically within a family (the
 * family digit, then 32 hex digits); ./held-runs.ts keeps the runs of consecutive held addresses for the pool search.
 */
import type Database from 'better-sqlite3';
import type { Address, Instance, Node } from '../model.js';
import { formatIp, normaliseIp, parseIp } from '../net.js';
import { HELD_RUNS_DDL, HeldRuns, ipKey, keyToIp, nextKey } from './held-runs.js';
import { rowToInstance, rowToNode, type InstanceRow, type NodeRow, type Params } from './rows.js';

export { ipKey } from './held-runs.js';

export type HolderKind = 'instance' | 'reservation' | 'adoption';

export interface HeldRow {
  addr: string;
  ip_key: string | null;
  network_uuid: string | null;
  holder_kind: HolderKind;
  instance_id: string;
  node_id: string;
}

/** Where free-node paging resumes: after this node in (name, id) order. */
export interface NodeCursor {
  name: string;
  id: string;
}

/** The schema of migration 4: the held-address table and the indexes of the free-node query. */
export const HELD_ADDRESSES_DDL = `
  CREATE TABLE held_addresses (
    addr         TEXT NOT NULL,                          -- normalised (normaliseIp), or as stored if not an IP
    ip_key       TEXT,                                   -- family digit + 32 hex digits; NULL if not an IP
    network_uuid TEXT,
    holder_kind  TEXT NOT NULL CHECK (holder_kind IN ('instance', 'reservation', 'adoption')),
    instance_id  TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    PRIMARY KEY (addr, holder_kind, instance_id, node_id)
  ) WITHOUT ROWID;
  CREATE INDEX held_addresses_key ON held_addresses(ip_key);
  CREATE INDEX held_addresses_instance ON held_addresses(instance_id, ip_key);
  CREATE INDEX held_addresses_node ON held_addresses(node_id);
  CREATE INDEX nodes_free ON nodes(name, id) WHERE instance_id IS NULL AND maintenance = 0 AND adopt IS NULL;
  CREATE INDEX nodes_free_by_type ON nodes(type, name, id) WHERE instance_id IS NULL AND maintenance = 0 AND adopt IS NULL;
${HELD_RUNS_DDL}`;

function heldRows(addresses: readonly Address[], kind: HolderKind, instanceId: string, nodeId: string): HeldRow[] {
  return addresses.map((a) => {
    const ip = parseIp(a.addr);
    return {
      addr: ip ? formatIp(ip) : a.addr,
      ip_key: ip ? ipKey(ip) : null,
      network_uuid: a.network_uuid ?? null,
      holder_kind: kind,
      instance_id: instanceId,
      node_id: nodeId,
    };
  });
}

/** The addresses an instance holds (see the module comment). */
export function heldByInstance(i: Pick<Instance, 'id' | 'node_id' | 'state' | 'task' | 'addresses' | 'extra'>): HeldRow[] {
  if (i.state === 'terminated') return [];
  const own = heldRows(i.addresses, 'instance', i.id, i.node_id);
  const reserved = i.task !== null ? heldRows(i.extra.pending_ip?.addresses ?? [], 'reservation', i.id, i.node_id) : [];
  return [...own, ...reserved];
}

/**
 * Whether two rows of an instance hold the same addresses (heldByInstance reads only these columns): then
 * a write leaves `held_addresses` as it is.
 */
export function sameHolding(old: Pick<InstanceRow, 'node_id' | 'state' | 'task' | 'addresses' | 'extra'>, row: Params): boolean {
  if (old.node_id !== row['node_id'] || old.addresses !== row['addresses']) return false;
  if ((old.state === 'terminated') !== (row['state'] === 'terminated')) return false;
  // With an operation in flight, its modify-ip reservation (`extra.pending_ip`) is held too: the same `extra`, or
  // none on either side (a power operation taking or releasing the lock holds nothing more).
  const reservation = (task: unknown, extra: unknown) => (task !== null && typeof extra === 'string' && extra.includes('"pending_ip"') ? extra : '');
  return reservation(old.task, old.extra) === reservation(row['task'], row['extra']);
}

/** The addresses a node's waiting adoption holds. */
export function heldByNode(n: Pick<Node, 'id' | 'adopt'>): HeldRow[] {
  return n.adopt ? heldRows(n.adopt.addresses, 'adoption', n.adopt.instance_id, n.id) : [];
}

/** Migration 4's backfill: what every existing instance and node holds, by the same rule as the writes. */
export function backfillHeldAddresses(db: Database.Database): void {
  const index = new IndexQueries(db);
  for (const r of db.prepare<[], InstanceRow>('SELECT * FROM instances').all()) {
    const i = rowToInstance(r);
    index.syncInstance(i.id, heldByInstance(i));
  }
  for (const r of db.prepare<[], NodeRow>('SELECT * FROM nodes WHERE adopt IS NOT NULL').all()) {
    const n = rowToNode(r);
    index.syncNode(n.id, heldByNode(n));
  }
}

const FREE = 'instance_id IS NULL AND maintenance = 0 AND adopt IS NULL';
/** A held row that counts for the caller: adoptions always, an instance's own rows unless it is the one asking. */
const COUNTS = (t: string) => `(${t}.holder_kind = 'adoption' OR @except IS NULL OR ${t}.instance_id <> @except)`;

/** Prepares the index statements on a connection whose schema is at least version 4. */
export function prepareIndexQueries(db: Database.Database) {
  const q = <A extends unknown[], R = unknown>(sql: string) => db.prepare<A, R>(sql);
  return {
    insertHeld: db.prepare<[HeldRow]>(
      `INSERT OR IGNORE INTO held_addresses (addr, ip_key, network_uuid, holder_kind, instance_id, node_id)
       VALUES (@addr, @ip_key, @network_uuid, @holder_kind, @instance_id, @node_id)`,
    ),
    clearInstance: q<[string], { ip_key: string | null }>(
      `DELETE FROM held_addresses WHERE instance_id = ? AND holder_kind <> 'adoption' RETURNING ip_key`,
    ),
    clearNode: q<[string], { ip_key: string | null }>(
      `DELETE FROM held_addresses WHERE node_id = ? AND holder_kind = 'adoption' RETURNING ip_key`,
    ),
    holder: q<[string], { instance_id: string; node_id: string }>(
      `SELECT instance_id, node_id FROM held_addresses WHERE addr = ? AND holder_kind IN ('instance', 'reservation')
       ORDER BY holder_kind LIMIT 1`,
    ),
    isHeld: q<[{ addr: string; except: string | null }], { one: number }>(
      `SELECT 1 AS one FROM held_addresses h WHERE h.addr = @addr AND ${COUNTS('h')} LIMIT 1`,
    ),
    heldAll: q<[{ except: string | null }], { addr: string }>(
      `SELECT DISTINCT h.addr FROM held_addresses h WHERE ${COUNTS('h')} ORDER BY h.addr`,
    ),
    keyHeld: q<[{ key: string; except: string | null }], { one: number }>(
      `SELECT 1 AS one FROM held_addresses h WHERE h.ip_key = @key AND ${COUNTS('h')} LIMIT 1`,
    ),
    // The asker's own held addresses in a range: free for it unless something else holds them too.
    ownKeys: q<[{ except: string; first: string; upto: string }], { ip_key: string }>(
      `SELECT DISTINCT ip_key FROM held_addresses INDEXED BY held_addresses_instance
       WHERE instance_id = @except AND holder_kind <> 'adoption' AND ip_key >= @first AND ip_key <= @upto ORDER BY ip_key`,
    ),
    freeNodes: q<[{ name: string; id: string; limit: number }], NodeRow>(
      `SELECT * FROM nodes INDEXED BY nodes_free WHERE ${FREE} AND (name, id) > (@name, @id) ORDER BY name, id LIMIT @limit`,
    ),
    freeNodesOfType: q<[{ type: string; name: string; id: string; limit: number }], NodeRow>(
      `SELECT * FROM nodes INDEXED BY nodes_free_by_type WHERE ${FREE} AND type = @type AND (name, id) > (@name, @id) ORDER BY name, id LIMIT @limit`,
    ),
  };
}

/** The index statements with the operations the store exposes; every method runs inside the store's read/write. */
export class IndexQueries {
  private readonly s: ReturnType<typeof prepareIndexQueries>;
  private readonly runs: HeldRuns;

  constructor(db: Database.Database) {
    this.s = prepareIndexQueries(db);
    this.runs = new HeldRuns(db);
  }

  /** Replaces what the instance holds (call inside the transaction that writes it). */
  syncInstance(id: string, rows: readonly HeldRow[]): void {
    this.replace(this.s.clearInstance.all(id), rows);
  }

  /** Replaces what the node's adoption holds (call inside the transaction that writes or deletes it). */
  syncNode(id: string, rows: readonly HeldRow[]): void {
    this.replace(this.s.clearNode.all(id), rows);
  }

  /** After a holder's old rows were deleted: inserts its new ones, and updates the runs of the keys that changed. */
  private replace(removed: readonly { ip_key: string | null }[], rows: readonly HeldRow[]): void {
    for (const r of rows) this.s.insertHeld.run(r);
    for (const { ip_key } of removed) {
      if (ip_key !== null && this.s.keyHeld.get({ key: ip_key, except: null }) === undefined) this.runs.drop(ip_key);
    }
    for (const { ip_key } of rows) if (ip_key !== null) this.runs.add(ip_key);
  }

  addressHolder(addr: string): { instance_id: string; node_id: string } | null {
    const r = this.s.holder.get(normaliseIp(addr) ?? addr);
    return r ? { instance_id: r.instance_id, node_id: r.node_id } : null;
  }

  isAddressHeld(addr: string, exceptInstanceId?: string): boolean {
    return this.s.isHeld.get({ addr: normaliseIp(addr) ?? addr, except: exceptInstanceId ?? null }) !== undefined;
  }

  heldAddresses(exceptInstanceId?: string): string[] {
    return this.s.heldAll.all({ except: exceptInstanceId ?? null }).map((r) => r.addr);
  }

  firstFreeAddress(first: string, last: string, exceptInstanceId?: string): string | null {
    const f = parseIp(first);
    const l = parseIp(last);
    if (!f || !l || f.version !== l.version || f.value > l.value) return null;
    const firstKey = ipKey(f);
    const lastKey = ipKey(l);
    const run = this.runs.containing(firstKey);
    if (!run) return formatIp(f);
    // Everything from the pool's first address to the run's end is held; the address after it is free.
    const after = run.last_key < lastKey ? nextKey(run.last_key) : null;
    if (exceptInstanceId !== undefined) {
      const upto = after ?? lastKey;
      for (const { ip_key } of this.s.ownKeys.all({ except: exceptInstanceId, first: firstKey, upto })) {
        if (this.s.keyHeld.get({ key: ip_key, except: exceptInstanceId }) === undefined) return formatIp(keyToIp(ip_key));
      }
    }
    return after === null ? null : formatIp(keyToIp(after));
  }

  freeNodes(type: string | null, limit: number, after?: NodeCursor): Node[] {
    const page = { name: after?.name ?? '', id: after?.id ?? '', limit: Math.max(0, Math.floor(limit)) };
    const rows = type === null ? this.s.freeNodes.all(page) : this.s.freeNodesOfType.all({ ...page, type });
    return rows.map(rowToNode);
  }
}
