/**
 * Power sync over a fleet (agent/operations/power-sync.ts with the real recorder and store): a sweep where nothing
 * changed writes nothing and opens no transaction; an unreachable BMC is not rewritten once its power is unknown; at
 * most `power_sync.concurrency` reads are in flight; the event loop gets turns during a sweep; sweeps never overlap.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bmc } from '../../../drivers/types.js';
import { BmcError } from '../../../drivers/errors.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { Config } from '../../../agent/config/types.js';
import type { Node } from '../../../agent/model.js';
import { TURN_BUDGET_MS } from '../../../agent/bounded.js';
import { PowerSync } from '../../../agent/operations/power-sync.js';
import { Recorder } from '../../../agent/operations/recorder.js';
import { openStore } from '../../../agent/store/sqlite.js';
import type { Store } from '../../../agent/store/types.js';
import { nodeId, writeConfig } from '../../helpers/harness.js';
import { makeInstance, makeNode } from '../api/stub-service.js';

const N = 200;

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

interface Fleet {
  sync: PowerSync;
  store: Store;
  /** Store writes (the fault injector's beforeWrite) and transactions opened, since the fleet was built. */
  counts: { writes: number; transactions: number };
  /** Reads made, and the most that were in flight at once. */
  reads: { total: number; inFlight: number; maxInFlight: number };
  unreachable: Set<string>;
}

/**
 * N nodes, powered on as their rows say, every other one holding a running instance; the BMC answers after
 * `readDelay` (a timer) or, without one, at once (microtasks only: no turn of the event loop).
 */
function fleet(opts: { concurrency: number; readDelayMs?: number; readSpinMs?: number }): Fleet {
  const { dir, configPath } = writeConfig();
  const loaded = loadConfigFile(configPath);
  const config: Config = { ...loaded, power_sync: { ...loaded.power_sync, concurrency: opts.concurrency } };
  const counts = { writes: 0, transactions: 0 };
  const real = openStore({ dir: loaded.state_dir, agentId: 'test-agent', fault: { beforeWrite: () => void counts.writes++ } });
  cleanup = () => {
    real.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const store = new Proxy(real, {
    get(target, key) {
      if (key === 'transaction') return <T>(fn: () => T): T => (counts.transactions++, target.transaction(fn));
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Store;
  real.transaction(() => {
    for (let i = 1; i <= N; i++) {
      const inst = i % 2 === 0 ? makeInstance({ node_id: nodeId(i), power_state: 'on' }) : null;
      real.putNode(makeNode({ id: nodeId(i), name: `node-${i}`, power_state: 'on', instance_id: inst?.id ?? null }));
      if (inst) real.putInstance(inst);
    }
  });
  const reads = { total: 0, inFlight: 0, maxInFlight: 0 };
  const unreachable = new Set<string>();
  const bmc = (node: Node) =>
    ({
      readPower: async () => {
        reads.total++;
        reads.inFlight++;
        reads.maxInFlight = Math.max(reads.maxInFlight, reads.inFlight);
        try {
          if (opts.readDelayMs !== undefined) await new Promise((r) => setTimeout(r, opts.readDelayMs));
          // Synchronous work per read (a driver's parsing), answered at once: the reads settle together.
          for (const end = performance.now() + (opts.readSpinMs ?? 0); performance.now() < end; );
          if (unreachable.has(node.id)) throw new BmcError('BMC_ERR_UNREACHABLE', 'fake', 'no route to the BMC');
          return { power: 'on' as const, tried: ['fake'], succeeded: 'fake' };
        } finally {
          reads.inFlight--;
        }
      },
    }) as unknown as Bmc;
  const clock = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
  const sync = new PowerSync({
    config: () => config,
    store,
    log: pino({ level: 'silent' }),
    now: () => new Date().toISOString(),
    bmc,
    isNodeBusy: () => false,
    isInstanceRunning: () => false,
    nodePower: () => Promise.resolve(true),
    completeAdoption: () => undefined,
    recorder: new Recorder({ store, ports: { clock }, liveness: { forget: () => undefined } }),
  });
  counts.writes = 0;
  counts.transactions = 0;
  return { sync, store, counts, reads, unreachable };
}

describe('power sync over a fleet', () => {
  it(`a sweep over ${N} nodes where nothing changed writes nothing and opens no transaction`, async () => {
    const f = fleet({ concurrency: 32 });
    await f.sync.powerSyncOnce();
    await f.sync.powerSyncOnce();
    expect(f.reads.total).toBe(2 * N); // it did read every node, twice
    expect(f.counts).toEqual({ writes: 0, transactions: 0 });
  });

  it('an unreachable BMC is written until its power is unknown, then no more while nothing changes', async () => {
    const f = fleet({ concurrency: 32 });
    f.unreachable.add(nodeId(2));
    await f.sync.powerSyncOnce(); // failure 1 of 2 (the harness config: failures_before_unknown 2)
    await f.sync.powerSyncOnce(); // failure 2: power unknown, bmc_unreachable_error
    expect(f.store.getNode(nodeId(2))).toMatchObject({ power_state: 'unknown', consecutive_power_failures: 2, last_error: { error_type: 'bmc_unreachable_error' } });
    expect(f.counts.writes).toBeGreaterThan(0);
    const before = { ...f.counts };
    await f.sync.powerSyncOnce();
    await f.sync.powerSyncOnce();
    expect(f.counts.writes).toBe(before.writes);
    f.unreachable.clear();
    await f.sync.powerSyncOnce(); // a good read is a change: written
    expect(f.store.getNode(nodeId(2))).toMatchObject({ power_state: 'on', consecutive_power_failures: 0, last_error: null });
    expect(f.counts.writes).toBeGreaterThan(before.writes);
  });

  it('has at most power_sync.concurrency reads in flight at once', async () => {
    const f = fleet({ concurrency: 8, readDelayMs: 1 });
    await f.sync.powerSyncOnce();
    expect(f.reads.total).toBe(N);
    expect(f.reads.maxInFlight).toBe(8);
  });

  it('gives the event loop a turn whenever a turn\'s work reaches the budget, however many reads settle together', async () => {
    // 0.5 ms of work per read, answered at once, 32 at a time: counted by item, a turn would hold 16 ms of it.
    const f = fleet({ concurrency: 32, readSpinMs: 0.5 });
    // Counted in reads per turn, not in wall time (a preempted test makes reads slower, never more per turn).
    const perTurn: number[] = [];
    let atLastTurn = 0;
    let on = true;
    const tick = (): void => {
      perTurn.push(f.reads.total - atLastTurn);
      atLastTurn = f.reads.total;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    await f.sync.powerSyncOnce();
    on = false;
    expect(f.reads.total).toBe(N);
    // At most a budget's worth of reads (plus the one that crosses it, and the node's own bookkeeping) per turn.
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(Math.ceil(TURN_BUDGET_MS / 0.5) + 1);
    expect(perTurn.filter((n) => n > 0).length).toBeGreaterThan(5);
  });

  it('a sweep asked for while one runs starts after it ends (never overlapping)', async () => {
    const f = fleet({ concurrency: 8, readDelayMs: 1 });
    await Promise.all([f.sync.powerSyncOnce(), f.sync.powerSyncOnce()]);
    expect(f.reads.total).toBe(2 * N);
    expect(f.reads.maxInFlight).toBe(8);
  });
});
