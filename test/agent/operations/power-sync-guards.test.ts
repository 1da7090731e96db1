/**
 * PowerSync (agent/operations/power-sync.ts) on its own, with a real store and a BMC that records its reads: what
 * the engine has in flight (its isNodeBusy / isInstanceRunning callbacks) is never read, and halt() ends the loop.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bmc } from '../../../drivers/types.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { Config } from '../../../agent/config/types.js';
import type { Node } from '../../../agent/model.js';
import { PowerSync, readChanges } from '../../../agent/operations/power-sync.js';
import { openStore, type SqliteStore } from '../../../agent/store/sqlite.js';
import type { PowerSyncView } from '../../../agent/store/types.js';
import { waitFor } from '../../helpers/daemon.js';
import { sleep } from '../../helpers/engine.js';
import { nodeId, writeConfig } from '../../helpers/harness.js';
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
function setup(opts: { busy?: string[]; running?: string[]; intervalMs?: number; whileReading?: (nodeId: string) => Promise<void> } = {}): Setup {
  const { dir, configPath } = writeConfig();
  const loaded = loadConfigFile(configPath);
  const config: Config = { ...loaded, power_sync: { ...loaded.power_sync, interval_ms: opts.intervalMs ?? loaded.power_sync.interval_ms } };
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
        // Off, on nodes recorded on: each reading is a change to record (one that changes nothing is not recorded).
        return { power: 'off' as const, tried: ['fake'], succeeded: 'fake' };
      },
    }) as unknown as Bmc;
  const sync = new PowerSync({
    config: () => config,
    store,
    log: pino({ level: 'silent' }),
    now: () => new Date().toISOString(),
    bmc,
    isNodeBusy: (id) => (opts.busy ?? []).includes(id),
    isInstanceRunning: (id) => (opts.running ?? []).includes(id),
    nodePower: () => Promise.resolve(true),
    completeAdoption: () => undefined,
    recorder: { journal: () => undefined, mutate: (id) => store.getInstance(id)!, putNode: (n) => store.putNode(n), recordPower: (n) => void recorded.push(typeof n === 'string' ? n : n.id), setNodeTarget: () => undefined },
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
