/**
 * Liveness: the monitor's verdict while it is younger than the interval, else a fresh probe; alive if any fixed
 * address answers (nova's rule); floating addresses are not probed; changes are reported once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Liveness } from '../../agent/liveness.js';
import type { Instance } from '../../agent/model.js';
import type { Clock, PingResult, Pinger } from '../../agent/ports.js';
import Database from 'better-sqlite3';
import { DB_FILE_NAME, openStore, type SqliteStore } from '../../agent/store/sqlite.js';
import { LAST_ALIVE_SQL } from '../../agent/store/sweeps.js';
import { makeInstance } from './api/stub-service.js';

class ScriptedPinger implements Pinger {
  readonly engine = 'scripted';
  alive = new Set<string>();
  calls: string[][] = [];
  async ping(addrs: readonly string[]): Promise<PingResult[]> {
    this.calls.push([...addrs]);
    return addrs.map((addr) => ({ addr, alive: this.alive.has(addr), rtt_ms: this.alive.has(addr) ? 0.1 : null }));
  }
}

function instance(id: string, addrs: { addr: string; type?: 'fixed' | 'floating' }[]): Instance {
  return {
    id,
    addresses: addrs.map((a) => ({ addr: a.addr, mac: 'fa:16:3e:00:00:01', version: 4, type: a.type ?? 'fixed', network: 'n' })),
  } as Instance;
}

function setup(batch = 256) {
  let now = 1_000_000;
  const clock: Clock = { now: () => now, sleep: async () => undefined };
  const pinger = new ScriptedPinger();
  const changes: [string, boolean][] = [];
  const calls: number[] = [];
  const live = new Liveness(pinger, clock, () => ({ interval_ms: 30_000, timeout_ms: 100, retries: 0, batch }), (list) => {
    calls.push(list.length);
    for (const c of list) changes.push([c.instanceId, c.alive]);
  });
  return { live, pinger, changes, calls, advance: (ms: number) => (now += ms) };
}

describe('Liveness', () => {
  it('is alive when any fixed address answers; floating addresses are not probed', async () => {
    const { live, pinger } = setup();
    pinger.alive.add('127.0.0.2');
    const i = instance('a', [{ addr: '127.0.0.1' }, { addr: '127.0.0.2' }, { addr: '127.0.0.3', type: 'floating' }]);
    expect((await live.check(i)).alive).toBe(true);
    expect(pinger.calls).toEqual([['127.0.0.1', '127.0.0.2']]);
    expect((await live.check(instance('b', [{ addr: '127.0.0.9' }]))).alive).toBe(false);
    expect((await live.check(instance('c', []))).alive).toBe(false);
  });

  it('answers from a verdict younger than the interval, probes afresh after it', async () => {
    const { live, pinger, advance } = setup();
    const i = instance('a', [{ addr: '127.0.0.1' }]);
    pinger.alive.add('127.0.0.1');
    expect((await live.check(i)).alive).toBe(true);
    pinger.alive.clear();
    advance(29_999);
    expect((await live.check(i)).alive).toBe(true);
    expect(pinger.calls).toHaveLength(1);
    advance(2);
    expect((await live.check(i)).alive).toBe(false);
    expect(pinger.calls).toHaveLength(2);
  });

  it('forget() drops a verdict so the next check probes', async () => {
    const { live, pinger } = setup();
    const i = instance('a', [{ addr: '127.0.0.1' }]);
    pinger.alive.add('127.0.0.1');
    await live.check(i);
    pinger.alive.clear();
    live.forget('a');
    expect((await live.check(i)).alive).toBe(false);
  });

  it('checkMany probes only the stale ones, in one sweep, and reports each change once', async () => {
    const { live, pinger, changes } = setup();
    pinger.alive.add('127.0.0.1');
    const a = instance('a', [{ addr: '127.0.0.1' }]);
    const b = instance('b', [{ addr: '127.0.0.2' }]);
    await live.check(a);
    const res = await live.checkMany([a, b]);
    expect(new Map([...res].map(([id, v]) => [id, v.alive]))).toEqual(new Map([['a', true], ['b', false]]));
    expect(pinger.calls).toEqual([['127.0.0.1'], ['127.0.0.2']]);
    await live.probe(a);
    expect(changes).toEqual([['a', true], ['b', false]]);
  });
});

describe('the liveness monitor over a fleet', () => {
  let store: SqliteStore | null = null;
  let dir = '';
  afterEach(() => {
    store?.close();
    store = null;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A store with `running` running instances (one fixed address each), plus a stopped and a terminated one. */
  function fleet(running: number): SqliteStore {
    dir = mkdtempSync(join(tmpdir(), 'metald-liveness-'));
    const s = openStore({ dir, agentId: 'test-agent' });
    const addr = (i: number) => [{ addr: `10.9.${i >> 8}.${i & 255}`, mac: 'fa:16:3e:00:00:01', version: 4 as const, type: 'fixed' as const, network: 'n' }];
    s.transaction(() => {
      for (let i = 1; i <= running; i++) s.putInstance(makeInstance({ state: 'running', addresses: addr(i) }));
      s.putInstance(makeInstance({ state: 'stopped', addresses: addr(1001) }));
      s.putInstance(makeInstance({ state: 'terminated', addresses: addr(1002) }));
    });
    store = s;
    return s;
  }

  it('reports the verdicts one page changed in one call (journalled in one commit), and nothing when none changed', async () => {
    const s = fleet(25);
    const { live, pinger, changes, calls } = setup(10);
    for (const i of s.listInstances()) if (i.state === 'running') pinger.alive.add(i.addresses[0]!.addr);
    const page = (after: string | null, limit: number) => s.listRunningInstances(after, limit);
    await live.sweepOnce(page);
    expect(calls).toEqual([10, 10, 5]);
    expect(changes).toHaveLength(25);
    await live.sweepOnce(page);
    expect(calls).toEqual([10, 10, 5]);
  });

  it('after a restart journals only the verdicts that changed: the first verdict is compared with the last one journalled', async () => {
    const s = fleet(25);
    const pinger = new ScriptedPinger();
    const running = s.listInstances().filter((i) => i.state === 'running');
    for (const i of running) pinger.alive.add(i.addresses[0]!.addr);
    const clock: Clock = { now: () => 1_000_000, sleep: async () => undefined };
    // A process: its own Liveness, journalling to the store as the engine does (one commit per page).
    const start = () =>
      new Liveness(pinger, clock, () => ({ interval_ms: 30_000, timeout_ms: 100, retries: 0, batch: 10 }), (list) => {
        s.transaction(() => {
          for (const c of list) s.appendJournal({ kind: 'instance.alive', instance_id: c.instanceId, cause: 'monitor', data: { alive: c.alive } });
        });
      }, (id) => s.lastAliveVerdict(id));
    const page = (after: string | null, limit: number) => s.listRunningInstances(after, limit);
    const alive = () => s.readJournal(1, 1000).filter((e) => e.kind === 'instance.alive');
    expect(s.lastAliveVerdict(running[0]!.id)).toBeNull();
    await start().sweepOnce(page);
    expect(alive()).toHaveLength(25);
    // The next start: nothing changed but one instance that went silent.
    pinger.alive.delete(running[3]!.addresses[0]!.addr);
    await start().sweepOnce(page);
    const after = alive().slice(25);
    expect(after.map((e) => [e.instance_id, e.data])).toEqual([[running[3]!.id, { alive: false }]]);
    expect(s.lastAliveVerdict(running[3]!.id)).toBe(false);
    expect(s.lastAliveVerdict(running[4]!.id)).toBe(true);
    // One instance's entries through the partial index, newest first: no scan of the journal, no sort.
    const db = new Database(join(dir, DB_FILE_NAME), { readonly: true });
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${LAST_ALIVE_SQL}`).all('test-agent', 'x') as { detail: string }[]).map((r) => r.detail).join('; ');
    db.close();
    expect(plan).toMatch(/SEARCH journal USING (COVERING )?INDEX journal_alive \(agent_id=\? AND instance_id=\?\)/);
    expect(plan).not.toMatch(/TEMP B-TREE/);
  });

  it('probes every running instance (and only those), one page of `batch` per ping call, read from the store by page', async () => {
    const s = fleet(25);
    const { live, pinger } = setup(10);
    const pages: [string | null, number][] = [];
    await live.sweepOnce((after, limit) => {
      pages.push([after, limit]);
      return s.listRunningInstances(after, limit);
    });
    expect(pinger.calls.map((c) => c.length)).toEqual([10, 10, 5]);
    const probed = pinger.calls.flat().sort();
    const want = s.listInstances().filter((i) => i.state === 'running').map((i) => i.addresses[0]!.addr).sort();
    expect(probed).toEqual(want);
    expect(pages.map(([, limit]) => limit)).toEqual([10, 10, 10]);
    expect(pages[0]![0]).toBeNull();
  });

  it('gives the event loop a turn between pages', async () => {
    const s = fleet(50);
    const { live, pinger } = setup(10);
    const order: string[] = [];
    let callsAtTurn = -1;
    setImmediate(() => {
      callsAtTurn = pinger.calls.length;
      order.push('turn');
    });
    await live.sweepOnce((after, limit) => s.listRunningInstances(after, limit)).then(() => order.push('sweep ended'));
    expect(order).toEqual(['turn', 'sweep ended']);
    expect(callsAtTurn).toBe(1);
    expect(pinger.calls).toHaveLength(5);
  });
});
