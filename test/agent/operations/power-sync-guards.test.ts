/**
 * PowerSync (agent/operations/power-sync.ts) on its own, with a real store and a BMC that records its reads: what
 * the engine has in flight (its isNodeBusy / isInstanceRunning callbacks) is never read, halt() ends the loop, sweeps
 * start one interval apart however long they take, each sweep reads the oldest read first, and the lag is the age
 * of the oldest good read.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bmc } from '../../../drivers/types.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { Config } from '../../../agent/config/types.js';
import type { Node } from '../../../agent/model.js';
import { BmcError } from '../../../drivers/errors.js';
import { PowerSync, readChanges } from '../../../agent/operations/power-sync.js';
import { openStore, type SqliteStore } from '../../../agent/store/sqlite.js';
import type { PowerSyncView } from '../../../agent/store/types.js';
import { waitFor } from '../../helpers/daemon.js';
import { sleep } from '../../helpers/engine.js';
import { nodeId, startHarness, writeConfig } from '../../helpers/harness.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { makeInstance, makeNode } from '../api/stub-service.js';

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

interface Setup {
  sync: PowerSync;
  store: SqliteStore;
  /** Node ids whose power was read, in order. */
  reads: string[];
  /** Node ids whose reading was recorded (acted upon), in order. */
  recorded: string[];
}

/** A PowerSync over nodes 1..n (free, powered on, reading off), `busy` and `running` being what the engine has in flight. */
function setup(
  opts: {
    busy?: string[];
    running?: string[];
    intervalMs?: number;
    concurrency?: number;
    whileReading?: (nodeId: string) => Promise<void>;
    /** The current time, ms (default Date.now). */
    nowMs?: () => number;
    /** Nodes whose BMC does not answer. */
    failing?: Set<string>;
  } = {},
): Setup {
  const { dir, configPath } = writeConfig();
  const loaded = loadConfigFile(configPath);
  const ps = loaded.power_sync;
  const config: Config = { ...loaded, power_sync: { ...ps, interval_ms: opts.intervalMs ?? ps.interval_ms, concurrency: opts.concurrency ?? ps.concurrency } };
  const store = openStore({ dir: loaded.state_dir, agentId: 'test-agent' });
  cleanup = () => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const reads: string[] = [];
  const recorded: string[] = [];
  const bmc = (node: Node) =>
    ({
      readPower: async () => {
        reads.push(node.id);
        await opts.whileReading?.(node.id);
        if (opts.failing?.has(node.id)) throw new BmcError('BMC_ERR_UNREACHABLE', 'fake', 'no route to the BMC');
        // Off, on nodes recorded on: each reading is a change to record (one that changes nothing is not recorded).
        return { power: 'off' as const, tried: ['fake'], succeeded: 'fake' };
      },
    }) as unknown as Bmc;
  const sync = new PowerSync({
    config: () => config,
    store,
    log: pino({ level: 'silent' }),
    now: () => new Date(opts.nowMs?.() ?? Date.now()).toISOString(),
    bmc,
    isNodeBusy: (id) => (opts.busy ?? []).includes(id),
    isInstanceRunning: (id) => (opts.running ?? []).includes(id),
    nodePower: () => Promise.resolve(true),
    completeAdoption: () => undefined,
    recorder: { journal: () => undefined, mutate: (id) => store.getInstance(id)!, putNode: (n) => store.putNode(n), recordPower: (n) => (recorded.push(typeof n === 'string' ? n : n.id), null), setNodeTarget: () => undefined },
  });
  return { sync, store, reads, recorded };
}

describe('power sync leaves alone what the engine has in flight', () => {
  it('does not read a node with a node-level operation in flight; reads the others', async () => {
    const { sync, store, reads } = setup({ busy: [nodeId(1)] });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01' }));
    store.putNode(makeNode({ id: nodeId(2), name: 'node-02' }));
    await sync.powerSyncOnce();
    expect(reads).toEqual([nodeId(2)]);
  });

  it('does not read the node of an instance whose operation runs in this process, even before its task is stored', async () => {
    const running = makeInstance({ node_id: nodeId(1), task: null });
    const { sync, store, reads } = setup({ running: [running.id] });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01', instance_id: running.id }));
    store.putInstance(running);
    store.putNode(makeNode({ id: nodeId(2), name: 'node-02' }));
    await sync.powerSyncOnce();
    expect(reads).toEqual([nodeId(2)]);
  });

  it('does not act on a reading when the instance’s operation started while the power was read', async () => {
    const inst = makeInstance({ node_id: nodeId(1), task: null });
    const running: string[] = [];
    const { sync, store, reads, recorded } = setup({
      running,
      whileReading: (id) => {
        if (id === nodeId(1)) running.push(inst.id);
        return Promise.resolve();
      },
    });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01', instance_id: inst.id }));
    store.putInstance(inst);
    store.putNode(makeNode({ id: nodeId(2), name: 'node-02' }));
    await sync.powerSyncOnce();
    expect(reads.sort()).toEqual([nodeId(1), nodeId(2)]);
    expect(recorded).toEqual([nodeId(2)]);
  });
});

describe('power sync loop', () => {
  it('syncs every interval; halt() cancels the next one', async () => {
    const { sync, store, reads } = setup({ intervalMs: 5 });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01' }));
    sync.schedulePowerSync();
    await waitFor(() => reads.length >= 2, 1000, 'a second sync');
    sync.halt();
    await sync.settled();
    const after = reads.length;
    await sleep(40);
    expect(reads.length).toBe(after);
  });

  it('halt() during a sync: that sync finishes (settled() waits for it) and schedules no other', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((r) => (release = r));
    const { sync, store, reads, recorded } = setup({ intervalMs: 5, whileReading: () => held });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01' }));
    sync.schedulePowerSync();
    await waitFor(() => reads.length > 0, 1000, 'the first sync');
    sync.halt();
    const settled = sync.settled();
    release();
    await settled;
    expect(recorded).toEqual([nodeId(1)]);
    await sleep(40);
    expect(reads).toEqual([nodeId(1)]);
  });
});

describe('power sync order, pace and lag', () => {
  const T0 = Date.UTC(2026, 0, 1);
  const ids = (...n: number[]): string[] => n.map(nodeId);

  it('reads the oldest read first: never-read nodes first (id order), then by the time of their last good read', async () => {
    let t = T0;
    const failing = new Set<string>();
    const { sync, store, reads } = setup({ concurrency: 1, nowMs: () => t, failing, whileReading: () => Promise.resolve(void (t += 1000)) });
    for (let i = 1; i <= 4; i++) store.putNode(makeNode({ id: nodeId(i), name: `node-0${i}` }));
    await sync.powerSyncOnce();
    expect(reads).toEqual(ids(1, 2, 3, 4));
    store.putNode(makeNode({ id: nodeId(5), name: 'node-05' }));
    failing.add(nodeId(1));
    reads.length = 0;
    await sync.powerSyncOnce();
    expect(reads).toEqual(ids(5, 1, 2, 3, 4)); // never read first
    failing.clear();
    reads.length = 0;
    await sync.powerSyncOnce();
    // Node 1's read failed: its last good read (the first sweep's) is the oldest; then 5, read before 2, 3, 4.
    expect(reads).toEqual(ids(1, 5, 2, 3, 4));
  });

  it('the lag is the age of the oldest good read: a silent BMC keeps ageing it; a node with an operation in flight is not counted', async () => {
    let t = T0;
    const failing = new Set([nodeId(2)]);
    const busy: string[] = [];
    const { sync, store } = setup({ nowMs: () => t, failing, busy });
    expect(sync.lagSeconds()).toBe(0); // no sweep yet
    for (let i = 1; i <= 3; i++) store.putNode(makeNode({ id: nodeId(i), name: `node-0${i}` }));
    await sync.powerSyncOnce(); // T0: 1 and 3 read, 2 silent (known since T0)
    t += 30_000;
    expect(sync.lagSeconds()).toBe(30);
    await sync.powerSyncOnce(); // T0+30: 1 and 3 read again, 2 still silent
    t += 10_000;
    expect(sync.lagSeconds()).toBe(40);
    failing.clear();
    await sync.powerSyncOnce(); // T0+40: all read
    t += 5_000;
    expect(sync.lagSeconds()).toBe(5);
    busy.push(nodeId(3));
    await sync.powerSyncOnce(); // T0+45: 1 and 2 read; 3 skipped (last read T0+40)
    t += 5_000;
    expect(sync.lagSeconds()).toBe(5);
  });

  it('starts each sweep one interval after the previous one started, however long the sweep took', async () => {
    const starts: number[] = [];
    const { sync, store } = setup({ intervalMs: 200, whileReading: async () => (starts.push(performance.now()), sleep(150)) });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01' }));
    sync.schedulePowerSync();
    await waitFor(() => starts.length >= 3, 5000, 'three sweeps');
    sync.halt();
    await sync.settled();
    // Scheduled after each sweep's end instead, the gaps would be 200 ms + the 150 ms read.
    for (const gap of [starts[1]! - starts[0]!, starts[2]! - starts[1]!]) {
      expect(gap).toBeGreaterThanOrEqual(190);
      expect(gap).toBeLessThan(330);
    }
  });

  it('the first scheduled sweep starts one interval after the start-up sweep started, not after it ended', async () => {
    const starts: number[] = [];
    const { sync, store } = setup({ intervalMs: 200, whileReading: async () => (starts.push(performance.now()), sleep(150)) });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01' }));
    await sync.powerSyncOnce(); // the engine's start-up sweep, before it schedules the loop
    sync.schedulePowerSync();
    await waitFor(() => starts.length >= 2, 5000, 'the first scheduled sweep');
    sync.halt();
    await sync.settled();
    const gap = starts[1]! - starts[0]!;
    expect(gap).toBeGreaterThanOrEqual(190);
    expect(gap).toBeLessThan(330); // from the start-up sweep's end: 150 + 200 ms
  });

  it('GET /metrics has the lag, the last sweep\'s time and the sweeps and reads counted, read at each scrape', async () => {
    const clock = new ManualClock(T0);
    // Start-up reads the 3 nodes at T0; the next power sync is an hour away, and so is the liveness monitor's sweep
    // (it sleeps on the same clock), so the clock's next timer is the test's own 90 s.
    const h = await startHarness({ clock, liveness: '{engine: fake, interval: 1h, timeout: 100ms, retries: 0}' });
    try {
      const metric = async (name: string): Promise<number> => {
        const body = (await h.agent.api.inject({ method: 'GET', url: '/metrics' })).body;
        const m = new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(body);
        if (!m) throw new Error(`${name} is not in /metrics`);
        return Number(m[1]);
      };
      expect(await metric('metald_power_sync_lag_seconds')).toBe(0);
      void clock.sleep(90_000);
      clock.next();
      expect(await metric('metald_power_sync_lag_seconds')).toBe(90);
      expect(await metric('metald_power_sync_sweeps_total')).toBe(1);
      expect(await metric('metald_power_sync_reads_total{result="ok"}')).toBe(3);
      expect(await metric('metald_power_sync_last_sweep_seconds')).toBeGreaterThan(0);
      h.agent.lab!.setFaults(nodeId(1), { unreachable: true });
      await h.agent.engine.powerSyncOnce();
      expect(await metric('metald_power_sync_sweeps_total')).toBe(2);
      expect(await metric('metald_power_sync_reads_total{result="ok"}')).toBe(5);
      expect(await metric('metald_power_sync_reads_total{result="failed"}')).toBe(1);
      expect(await metric('metald_power_sync_lag_seconds')).toBe(90); // node 1's good read is still T0's
    } finally {
      await h.close();
    }
  });
});

describe('the power-sync view and what a read changes', () => {
  const unreachable = { error_code: 'BMC_ERR_UNREACHABLE', error_msg: 'x', error_type: 'bmc_unreachable_error' } as const;

  it('the store view carries what the rows say, the instance joined', () => {
    const { store } = setup();
    const inst = makeInstance({ node_id: nodeId(1), state: 'stopped', power_state: 'off', task: 'power-on', error: unreachable });
    store.putNode(makeNode({ id: nodeId(1), name: 'node-01', instance_id: inst.id, power_state: 'off', consecutive_power_failures: 2, last_error: unreachable }));
    store.putInstance(inst);
    store.putNode(makeNode({ id: nodeId(2), name: 'node-02', maintenance: true, adopt: { instance_id: 'cbce6087-0000-4000-8000-00000000aaaa', project_id: 'p', user_id: 'u', name: 'vm', addresses: [] } }));
    expect(store.powerSyncView(nodeId(1))).toEqual({
      maintenance: false,
      power_state: 'off',
      consecutive_power_failures: 2,
      node_error_type: 'bmc_unreachable_error',
      adopting: false,
      instance: { id: inst.id, state: 'stopped', task: 'power-on', power_state: 'off', error_type: 'bmc_unreachable_error' },
    });
    expect(store.powerSyncView(nodeId(2))).toMatchObject({ maintenance: true, adopting: true, instance: null, node_error_type: null });
    expect(store.powerSyncView(nodeId(3))).toBeNull();
  });

  it('readChanges: only a read that differs from the rows, or clears a failure, or is drift', () => {
    const v = (o: Partial<PowerSyncView> = {}, i: Partial<NonNullable<PowerSyncView['instance']>> | null = {}): PowerSyncView => ({
      maintenance: false,
      power_state: 'on',
      consecutive_power_failures: 0,
      node_error_type: null,
      adopting: false,
      instance: i === null ? null : { id: 'i', state: 'running', task: null, power_state: 'on', error_type: null, ...i },
      ...o,
    });
    expect(readChanges(v(), 'on')).toBe(false);
    expect(readChanges(v({}, null), 'on')).toBe(false);
    expect(readChanges(v({}, { state: 'terminated', power_state: 'off' }), 'on')).toBe(false);
    expect(readChanges(v({ power_state: 'off' }), 'on')).toBe(true);
    expect(readChanges(v({ consecutive_power_failures: 1 }), 'on')).toBe(true);
    expect(readChanges(v({ node_error_type: 'bmc_unreachable_error' }), 'on')).toBe(true);
    expect(readChanges(v({ node_error_type: 'other_error' }), 'on')).toBe(false);
    expect(readChanges(v({}, { power_state: 'off' }), 'on')).toBe(true);
    expect(readChanges(v({}, { error_type: 'bmc_unreachable_error' }), 'on')).toBe(true);
    // Drift: the rows already say off, but the instance is still running (and stopped but on).
    expect(readChanges(v({ power_state: 'off' }, { power_state: 'off' }), 'off')).toBe(true);
    expect(readChanges(v({}, { state: 'stopped' }), 'on')).toBe(true);
    expect(readChanges(v({ power_state: 'off' }, { state: 'stopped', power_state: 'off' }), 'off')).toBe(false);
  });
});
