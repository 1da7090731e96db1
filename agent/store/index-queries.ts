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
 * family digit, then 32 hex digits), `next_key` is the key of the address after it, for the gap search.
 */
import type Database from 'better-sqlite3';
import type { Address, Instance, Node } from '../model.js';
import { formatIp, normaliseIp, parseIp, type Ip } from '../net.js';
import { rowToInstance, rowToNode, type InstanceRow, type NodeRow } from './rows.js';

export type HolderKind = 'instance' | 'reservation' | 'adoption';

export interface HeldRow {
  addr: string;
  ip_key: string | null;
  next_key: string | null;
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
    next_key     TEXT,                                   -- ip_key of the next address
    network_uuid TEXT,
    holder_kind  TEXT NOT NULL CHECK (holder_kind IN ('instance', 'reservation', 'adoption')),
    instance_id  TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    PRIMARY KEY (addr, holder_kind, instance_id, node_id)
  ) WITHOUT ROWID;
  CREATE INDEX held_addresses_key ON held_addresses(ip_key);
  CREATE INDEX held_addresses_instance ON held_addresses(instance_id);
  CREATE INDEX held_addresses_node ON held_addresses(node_id);
  CREATE INDEX nodes_free ON nodes(name, id) WHERE instance_id IS NULL AND maintenance = 0 AND adopt IS NULL;
  CREATE INDEX nodes_free_by_type ON nodes(type, name, id) WHERE instance_id IS NULL AND maintenance = 0 AND adopt IS NULL;
`;

/** The sortable key of an address: numeric order within a family, v4 before v6. */
export function ipKey(ip: Ip): string {
  return `${ip.version}${ip.value.toString(16).padStart(32, '0')}`;
}

function keyToIp(key: string): Ip {
  return { version: key[0] === '6' ? 6 : 4, value: BigInt(`0x${key.slice(1)}`) };
}

function heldRows(addresses: readonly Address[], kind: HolderKind, instanceId: string, nodeId: string): HeldRow[] {
  return addresses.map((a) => {
    const ip = parseIp(a.addr);
    return {
      addr: ip ? formatIp(ip) : a.addr,
      ip_key: ip ? ipKey(ip) : null,
      next_key: ip ? ipKey({ version: ip.version, value: ip.value + 1n }) : null,
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

/** The addresses a node's waiting adoption holds. */
export function heldByNode(n: Pick<Node, 'id' | 'adopt'>): HeldRow[] {
  return n.adopt ? heldRows(n.adopt.addresses, 'adoption', n.adopt.instance_id, n.id) : [];
}

/** Migration 4's backfill: what every existing instance and node holds, by the same rule as the writes. */
export function backfillHeldAddresses(db: Database.Database): void {
  const insert = prepareIndexQueries(db).insertHeld;
  for (const r of db.prepare<[], InstanceRow>('SELECT * FROM instances').all()) {
    for (const h of heldByInstance(rowToInstance(r))) insert.run(h);
  }
  for (const r of db.prepare<[], NodeRow>('SELECT * FROM nodes WHERE adopt IS NOT NULL').all()) {
    for (const h of heldByNode(rowToNode(r))) insert.run(h);
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
      `INSERT OR IGNORE INTO held_addresses (addr, ip_key, next_key, network_uuid, holder_kind, instance_id, node_id)
       VALUES (@addr, @ip_key, @next_key, @network_uuid, @holder_kind, @instance_id, @node_id)`,
    ),
    clearInstance: q<[string]>(`DELETE FROM held_addresses WHERE instance_id = ? AND holder_kind <> 'adoption'`),
    clearNode: q<[string]>(`DELETE FROM held_addresses WHERE node_id = ? AND holder_kind = 'adoption'`),
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
    // The first held address in [first, last) whose successor is not held: that successor is the first free one
    // after a held run starting at `first` (the caller checked `first` itself).
    gapAfter: q<[{ first: string; last: string; except: string | null }], { next_key: string }>(
      `SELECT a.next_key FROM held_addresses a
       WHERE a.ip_key >= @first AND a.ip_key < @last AND ${COUNTS('a')}
         AND NOT EXISTS (SELECT 1 FROM held_addresses b WHERE b.ip_key = a.next_key AND ${COUNTS('b')})
       ORDER BY a.ip_key LIMIT 1`,
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

  constructor(db: Database.Database) {
    this.s = prepareIndexQueries(db);
  }

  /** Replaces what the instance holds (call inside the transaction that writes it). */
  syncInstance(id: string, rows: readonly HeldRow[]): void {
    this.s.clearInstance.run(id);
    for (const r of rows) this.s.insertHeld.run(r);
  }

  /** Replaces what the node's adoption holds (call inside the transaction that writes or deletes it). */
  syncNode(id: string, rows: readonly HeldRow[]): void {
    this.s.clearNode.run(id);
    for (const r of rows) this.s.insertHeld.run(r);
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
    const except = exceptInstanceId ?? null;
    const firstKey = ipKey(f);
    if (this.s.keyHeld.get({ key: firstKey, except }) === undefined) return formatIp(f);
    const gap = this.s.gapAfter.get({ first: firstKey, last: ipKey(l), except });
    return gap ? formatIp(keyToIp(gap.next_key)) : null;
  }

  freeNodes(type: string | null, limit: number, after?: NodeCursor): Node[] {
    const page = { name: after?.name ?? '', id: after?.id ?? '', limit: Math.max(0, Math.floor(limit)) };
    const rows = type === null ? this.s.freeNodes.all(page) : this.s.freeNodesOfType.all({ ...page, type });
    return rows.map(rowToNode);
  }
}
