/**
 * The held-address index (agent/store/index-queries.ts, migration 4): after any sequence of writes, and after a
 * migration from v3, the table and every answer of the indexed queries equal a from-scratch computation over the
 * instance and node rows (the full scans the queries replace).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Address, Instance, InstanceState, Node } from '../../../agent/model.js';
import { formatIp, normaliseIp, parseIp, type Ip } from '../../../agent/net.js';
import { LATEST_SCHEMA_VERSION, migrate, MIGRATIONS } from '../../../agent/store/migrations.js';
import { instanceToRow, nodeToRow } from '../../../agent/store/rows.js';
import { DB_FILE_NAME, openStore, type SqliteStore } from '../../../agent/store/sqlite.js';
import { prepareAll } from '../../../agent/store/statements.js';
import { instance, node, useStoreDir } from './fixtures.js';

/** A small universe, written in several ways, so that collisions, runs and gaps are frequent. */
const ADDRS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.255', 'fd00::1', 'FD00:0::2', 'fd00::3', 'fd00::ffff'];
const POOLS: [string, string][] = [
  ['10.0.0.1', '10.0.0.5'],
  ['10.0.0.3', '10.0.0.4'],
  ['10.0.0.255', '10.0.0.255'],
  ['fd00::1', 'fd00::3'],
  ['fd00::2', 'fd00::ffff'],
];
const INSTANCE_IDS = ['i1', 'i2', 'i3', 'i4'];
const NODE_IDS = ['n1', 'n2', 'n3'];
const norm = (a: string) => normaliseIp(a) ?? a;

const address = (a: string): Address => ({ addr: a, mac: 'aa:bb:cc:dd:ee:01', version: a.includes(':') ? 6 : 4, type: 'fixed', network: 'private' });
const addrsArb = fc.subarray(ADDRS, { maxLength: 3 }).map((xs) => xs.map(address));

const instanceArb = fc
  .record({
    id: fc.constantFrom(...INSTANCE_IDS),
    node_id: fc.constantFrom(...NODE_IDS),
    state: fc.constantFrom<InstanceState>('pending', 'running', 'stopped', 'error', 'terminated'),
    task: fc.constantFrom(null, 'modify-ip' as const),
    addresses: addrsArb,
    pending: fc.option(addrsArb),
  })
  .map(({ pending, ...r }) =>
    instance({
      ...r,
      terminated_at: r.state === 'terminated' ? '2024-01-05T00:00:00.000Z' : null,
      extra: pending ? { pending_ip: { networks: [{ uuid: 'net-1' }], addresses: pending } } : {},
    }),
  );

const nodeArb = fc
  .record({ id: fc.constantFrom(...NODE_IDS), adopt: fc.option(fc.record({ instance_id: fc.constantFrom(...INSTANCE_IDS), addresses: addrsArb })) })
  .map(({ id, adopt }) => node({ id, name: id, adopt: adopt ? { ...adopt, project_id: 'p', user_id: 'u', name: 'x' } : null }));

type Op =
  | { op: 'putInstance'; instance: Instance }
  | { op: 'putNode'; node: Node }
  | { op: 'deleteNode'; id: string }
  | { op: 'purge' }
  | { op: 'rolledBack'; instance: Instance; node: Node };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: instanceArb.map((instance) => ({ op: 'putInstance' as const, instance })) },
  { weight: 2, arbitrary: nodeArb.map((n) => ({ op: 'putNode' as const, node: n })) },
  fc.constantFrom(...NODE_IDS).map((id) => ({ op: 'deleteNode' as const, id })),
  fc.constant({ op: 'purge' as const }),
  fc.record({ instance: instanceArb, node: nodeArb }).map((r) => ({ op: 'rolledBack' as const, ...r })),
);

function apply(s: SqliteStore, o: Op): void {
  if (o.op === 'putInstance') s.putInstance(o.instance);
  else if (o.op === 'putNode') s.putNode(o.node);
  else if (o.op === 'deleteNode') s.deleteNode(o.id);
  else if (o.op === 'purge') s.purgeTerminated('2030-01-01T00:00:00.000Z');
  else {
    expect(() =>
      s.transaction(() => {
        s.putInstance(o.instance);
        s.putNode(o.node);
        throw new Error('roll back');
      }),
    ).toThrow('roll back');
  }
}

/** The held rows as the table has them. */
function tableRows(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare<[], { addr: string; holder_kind: string; instance_id: string; node_id: string }>('SELECT * FROM held_addresses')
      .all()
      .map((r) => `${r.addr} ${r.holder_kind} ${r.instance_id} ${r.node_id}`)
      .sort();
  } finally {
    db.close();
  }
}

/** The runs of consecutive held addresses as the table has them, as address ranges. */
function tableRuns(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare<[], { first_key: string; last_key: string }>('SELECT * FROM held_runs ORDER BY first_key')
      .all()
      .map((r) => `${fromKey(r.first_key)}-${fromKey(r.last_key)}`);
  } finally {
    db.close();
  }
}

const fromKey = (k: string) => formatIp({ version: k[0] === '6' ? 6 : 4, value: BigInt(`0x${k.slice(1)}`) });

/** The maximal runs of consecutive held addresses, from scratch: every held address, sorted, grouped. */
function expectedRuns(s: SqliteStore): string[] {
  const ips = [...used(s)].map((a) => parseIp(a)!).sort((a, b) => a.version - b.version || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  const runs: { first: Ip; last: Ip }[] = [];
  for (const ip of ips) {
    const cur = runs[runs.length - 1];
    if (cur && cur.last.version === ip.version && cur.last.value + 1n === ip.value) cur.last = ip;
    else runs.push({ first: ip, last: ip });
  }
  return runs.map((r) => `${formatIp(r.first)}-${formatIp(r.last)}`);
}

/** The held rows computed from scratch from every instance and node (the rule of design section 3 / issue 7). */
function expectedRows(s: SqliteStore): string[] {
  const rows = new Set<string>();
  for (const i of s.listInstances()) {
    if (i.state === 'terminated') continue;
    for (const a of i.addresses) rows.add(`${norm(a.addr)} instance ${i.id} ${i.node_id}`);
    if (i.task !== null) for (const a of i.extra.pending_ip?.addresses ?? []) rows.add(`${norm(a.addr)} reservation ${i.id} ${i.node_id}`);
  }
  for (const n of s.listNodes()) for (const a of n.adopt?.addresses ?? []) rows.add(`${norm(a.addr)} adoption ${n.adopt!.instance_id} ${n.id}`);
  return [...rows].sort();
}

/** The full-scan answers the queries replace (the former usedAddresses, ownerOfAddress and firstFreeInPool). */
function used(s: SqliteStore, except?: string): Set<string> {
  const out = new Set<string>();
  for (const i of s.listInstances()) {
    if (i.state === 'terminated' || i.id === except) continue;
    for (const a of i.addresses) out.add(norm(a.addr));
    if (i.task !== null) for (const a of i.extra.pending_ip?.addresses ?? []) out.add(norm(a.addr));
  }
  for (const n of s.listNodes()) for (const a of n.adopt?.addresses ?? []) out.add(norm(a.addr));
  return out;
}

function checkQueries(s: SqliteStore): void {
  const live = s.listInstances().filter((i) => i.state !== 'terminated');
  for (const a of ADDRS) {
    const own = live.filter((i) => i.addresses.some((x) => norm(x.addr) === norm(a)));
    const reserving = live.filter((i) => i.task !== null && (i.extra.pending_ip?.addresses ?? []).some((x) => norm(x.addr) === norm(a)));
    const holders = (own.length > 0 ? own : reserving).map((i) => ({ instance_id: i.id, node_id: i.node_id }));
    const got = s.addressHolder(a);
    if (holders.length === 0) expect(got, a).toBeNull();
    else expect(holders, a).toContainEqual(got);
  }
  for (const except of [undefined, ...INSTANCE_IDS]) {
    const u = used(s, except);
    for (const a of ADDRS) expect(s.isAddressHeld(a, except), `${a} except ${except}`).toBe(u.has(norm(a)));
    for (const [first, last] of POOLS) {
      let want: string | null = null;
      for (const candidate of enumerate(first, last)) {
        if (!u.has(candidate)) {
          want = candidate;
          break;
        }
      }
      expect(s.firstFreeAddress(first, last, except), `${first}-${last} except ${except}`).toBe(want);
    }
  }
}

/** Every address of a small range, normalised, in order (the walk firstFreeInPool did). */
function* enumerate(first: string, last: string): Generator<string> {
  const v6 = first.includes(':');
  const num = (a: string) => (v6 ? BigInt(`0x${norm(a).split(':').pop()}`) : BigInt(Number(a.split('.')[3])));
  for (let v = num(first); v <= num(last); v++) yield v6 ? norm(`fd00::${v.toString(16)}`) : `10.0.0.${v}`;
}

function withDir<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metald-held-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('held addresses', () => {
  it('after any sequence of puts, deletes, purges and rolled-back transactions, equal a from-scratch computation', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), (ops) =>
        withDir((dir) => {
          const s = openStore({ dir, agentId: 'a' });
          try {
            for (const o of ops) {
              apply(s, o);
              expect(tableRows(s.file)).toEqual(expectedRows(s));
              expect(tableRuns(s.file)).toEqual(expectedRuns(s));
            }
            checkQueries(s);
          } finally {
            s.close();
          }
        }),
      ),
      { numRuns: 25 },
    );
  });

  it('are backfilled from the existing rows by the migration from v3', () => {
    fc.assert(
      fc.property(fc.array(instanceArb, { maxLength: 8 }), fc.array(nodeArb, { maxLength: 4 }), (instances, nodes) =>
        withDir((dir) => {
          const raw = new Database(path.join(dir, DB_FILE_NAME));
          migrate(raw, MIGRATIONS.slice(0, 3));
          const st = prepareAll(raw);
          for (const i of instances) st.putInstance.run(instanceToRow(i));
          for (const n of nodes) st.putNode.run(nodeToRow(n));
          raw.close();
          const s = openStore({ dir, agentId: 'a' });
          try {
            expect(s.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
            expect(tableRows(s.file)).toEqual(expectedRows(s));
            expect(tableRuns(s.file)).toEqual(expectedRuns(s));
            checkQueries(s);
          } finally {
            s.close();
          }
        }),
      ),
      { numRuns: 15 },
    );
  });
});

describe('held addresses: a write that keeps the holding', () => {
  const stores = useStoreDir();
  const reserving = (pending: string[]): Instance =>
    instance({ id: 'i1', node_id: 'n1', state: 'stopped', task: 'modify-ip', addresses: [address('10.0.0.1')], extra: { pending_ip: { networks: [{ uuid: 'net-1' }], addresses: pending.map(address) } } });

  it('the same addresses with a changed reservation, the operation still in flight: the new reservation is held, the old one freed', () => {
    const s = stores.open();
    s.putInstance(reserving(['10.0.0.2']));
    expect([s.isAddressHeld('10.0.0.1'), s.isAddressHeld('10.0.0.2'), s.isAddressHeld('10.0.0.3')]).toEqual([true, true, false]);
    s.putInstance(reserving(['10.0.0.3']));
    expect([s.isAddressHeld('10.0.0.1'), s.isAddressHeld('10.0.0.2'), s.isAddressHeld('10.0.0.3')]).toEqual([true, false, true]);
    // Only the power changes: the holding stays.
    s.putInstance({ ...reserving(['10.0.0.3']), power_state: 'on' });
    expect(s.heldAddresses()).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(s.firstFreeAddress('10.0.0.1', '10.0.0.5')).toBe('10.0.0.2');
  });

  it('the same row but the lock taken or released: a reservation is held only while an operation is in flight', () => {
    const s = stores.open();
    // A stale reservation (no operation) holds nothing; the lock taken with the same `extra` holds it; released, frees it.
    s.putInstance({ ...reserving(['10.0.0.2']), task: null });
    expect(s.heldAddresses()).toEqual(['10.0.0.1']);
    s.putInstance(reserving(['10.0.0.2']));
    expect(s.heldAddresses()).toEqual(['10.0.0.1', '10.0.0.2']);
    s.putInstance({ ...reserving(['10.0.0.2']), task: null });
    expect(s.heldAddresses()).toEqual(['10.0.0.1']);
  });
});
