/**
 * Power sync: every `power_sync.interval` the power of each idle node (not in maintenance, no operation in flight) is
 * read from its BMC; drift is followed (the state machine's power-on/power-off edges) or, on a node with
 * `enforce_power`, corrected; repeated failed reads make the power `unknown` and set bmc_unreachable_error; a waiting
 * adoption completes on a verified read. It writes only through the recorder functions it is given.
 *
 * At a thousand nodes a sweep must not hold the event loop: at most `power_sync.concurrency` nodes are read at once
 * (each through its own BMC, which its lock serialises), the loop gets a turn after each node, sweeps never overlap,
 * and a node is written (and journalled) only when a read changes something: an idle fleet costs no write.
 *
 * Each sweep reads the oldest read first (never-read nodes first, then by the time of their last good read), and
 * sweeps start one `interval` after the previous one started (at once when it took longer): every node is read once
 * per interval. The last good read of each node is kept in memory, not in the store (a read that changes nothing
 * still writes nothing); `lagSeconds()` is the age of the oldest one, the `metald_power_sync_lag_seconds` gauge.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { PowerAction, PowerReading } from '../../drivers/power.js';
import type { Bmc } from '../../drivers/types.js';
import { forEachBounded, yieldToLoop } from '../bounded.js';
import type { Config } from '../config/types.js';
import type { Instance, InstanceError, Node } from '../model.js';
import type { PowerSyncView, Store } from '../store/types.js';
import { codeOf, messageOf } from './errors.js';
import type { Recorder } from './recorder.js';

/** The recorder's methods power sync writes through (agent/operations/recorder.ts, the only writer). */
export type PowerSyncRecorder = Pick<Recorder, 'journal' | 'mutate' | 'putNode' | 'recordPower' | 'setNodeTarget'>;

export interface PowerSyncDeps {
  config: () => Config;
  store: Store;
  log: Logger;
  /** The current time, ISO 8601. */
  now: () => string;
  bmc: (node: Node) => Bmc;
  /** A node-level operation (no instance) is in flight on the node: it is not synced. */
  isNodeBusy: (nodeId: string) => boolean;
  /** An operation of the instance is running in this process: its node is not synced. */
  isInstanceRunning: (instanceId: string) => boolean;
  /** A verified node-level power command that records its outcome and never throws (enforcement uses it). */
  nodePower: (node: Node, action: PowerAction, deadlineMs: number, cause: string, what: string) => Promise<boolean>;
  /** Completes a node's waiting adoption from a verified power read (agent/operations/adoption.ts). */
  completeAdoption: (nodeId: string, power: PowerReading) => void;
  recorder: PowerSyncRecorder;
}

/** Adoptions completed per transaction at the end of a sweep (each ~10 rows, ~0.7-1 ms of CPU here: 8 stay under ~10 ms). */
export const ADOPTIONS_PER_COMMIT = 8;

/** Power sync's figures for /metrics (agent/api/metrics.ts createPowerSyncMetrics). */
export interface PowerSyncStats {
  /** The age of the oldest good read, seconds (lagSeconds). */
  lagSeconds: number;
  /** Sweeps ended since start (the start-up sweep included). */
  sweeps: number;
  /** Wall time of the last sweep that ended, seconds; null before one has. */
  lastSweepSeconds: number | null;
  /** BMC power reads made by power sync since start, good and failed. */
  reads: { ok: number; failed: number };
}

/** What power sync knows of a node's reads: its last good read and since when it knows the node (clock ms). */
interface ReadAge {
  readAtMs: number | null;
  sinceMs: number;
  /** Skipped at its last visit (an operation in flight): its power is the operation's, not counted in the lag. */
  skipped: boolean;
}

export class PowerSync {
  private stopping = false;
  /** Per node id of the last sweep: its last good read (the sweep's order, the lag). */
  private readonly ages = new Map<string, ReadAge>();
  private syncTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  /** The sweep in flight or last ended (never rejects): the next sweep starts after it. */
  private lastSweep: Promise<void> = Promise.resolve();
  /** When the last sweep started (performance.now()); the next one is scheduled an interval after it. */
  private lastSweepStart: number | null = null;
  private readonly counts = { sweeps: 0, lastSweepMs: null as number | null, ok: 0, failed: 0 };

  constructor(private readonly deps: PowerSyncDeps) {}

  private get cfg(): Config {
    return this.deps.config();
  }
  private get store(): Store {
    return this.deps.store;
  }
  private get log(): Logger {
    return this.deps.log;
  }
  private get rec(): PowerSyncRecorder {
    return this.deps.recorder;
  }
  private now(): string {
    return this.deps.now();
  }
  private nowMs(): number {
    return Date.parse(this.deps.now());
  }

  /**
   * The age of the oldest good read, in seconds, over the nodes of the last sweep that had no operation in flight
   * (a node never read counts from when power sync first saw it; one whose BMC does not answer keeps ageing); 0
   * before the first sweep or with no node.
   */
  lagSeconds(): number {
    const now = this.nowMs();
    let oldest = now;
    for (const a of this.ages.values()) if (!a.skipped) oldest = Math.min(oldest, a.readAtMs ?? a.sinceMs);
    return Math.max(0, now - oldest) / 1000;
  }

  stats(): PowerSyncStats {
    const c = this.counts;
    return { lagSeconds: this.lagSeconds(), sweeps: c.sweeps, lastSweepSeconds: c.lastSweepMs === null ? null : c.lastSweepMs / 1000, reads: { ok: c.ok, failed: c.failed } };
  }

  /** The sweep's order: never read first (in id order), then the oldest good read first. Forgets removed nodes. */
  private oldestReadFirst(ids: string[]): string[] {
    const now = this.nowMs();
    const current = new Set(ids);
    for (const id of this.ages.keys()) if (!current.has(id)) this.ages.delete(id);
    for (const id of ids) if (!this.ages.has(id)) this.ages.set(id, { readAtMs: null, sinceMs: now, skipped: false });
    const key = (id: string): number => this.ages.get(id)?.readAtMs ?? -Infinity;
    // Array.prototype.sort is stable: equal keys (never read) keep the store's id order.
    return [...ids].sort((a, b) => key(a) - key(b));
  }

  /** No sync is scheduled from now on (one in flight finishes: `settled()` waits for it). */
  halt(): void {
    this.stopping = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
  }

  /**
   * After a reload that changed `power_sync.interval`: the sync waiting for its timer is scheduled again by the new
   * interval (from the last sweep's start, as always); a sync in flight schedules the next by it when it ends.
   */
  reschedule(): void {
    if (this.stopping || this.syncTimer === null) return;
    clearTimeout(this.syncTimer);
    this.syncTimer = null;
    this.schedulePowerSync();
  }

  /** Waits for the sync in flight, if any; never throws. */
  async settled(): Promise<void> {
    if (this.syncing) await this.syncing.catch(() => undefined);
    await this.lastSweep;
  }

  /**
   * Schedules a sync `power_sync.interval` after the last sweep started (the start-up sweep included; at once when
   * that is past, an interval from now when none ran), and after each sync the next likewise, until `halt()`.
   */
  schedulePowerSync(): void {
    if (this.stopping) return;
    const interval = this.cfg.power_sync.interval_ms;
    const delay = this.lastSweepStart === null ? interval : Math.max(0, interval - (performance.now() - this.lastSweepStart));
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.syncing = this.powerSyncOnce()
        .catch((e: unknown) => this.log.error({ err: e }, 'power sync failed'))
        .finally(() => {
          this.syncing = null;
          this.schedulePowerSync();
        });
    }, delay);
    this.syncTimer.unref();
  }

  /**
   * Reads every idle node's power; follows drift (or enforces, per node); completes waiting adoptions. A call made
   * while a sweep runs starts its own once that one has ended (sweeps never overlap).
   * @throws what a node's bookkeeping threw (a store failure), once the nodes in flight have ended
   */
  powerSyncOnce(): Promise<void> {
    const sweep = this.lastSweep.then(() => this.sweep());
    this.lastSweep = sweep.catch(() => undefined);
    return sweep;
  }

  /**
   * One sweep. The nodes waiting for an adoption have their reads recorded and their adoptions completed together
   * at its end, `ADOPTIONS_PER_COMMIT` nodes per transaction, the loop getting a turn between them: a first start
   * that adopts a fleet costs a few commits, not one per node, and never holds the loop (the API listens) for the
   * whole fleet's writes (~0.5 s at 1,000 nodes in one transaction).
   */
  private async sweep(): Promise<void> {
    const started = performance.now();
    this.lastSweepStart = started;
    const adoptions: [string, PowerReading][] = [];
    try {
      const ids = this.oldestReadFirst(this.store.syncableNodeIds());
      await forEachBounded(ids, this.cfg.power_sync.concurrency, (id) => this.syncNode(id, adoptions));
      this.counts.sweeps++;
      this.counts.lastSweepMs = performance.now() - started;
    } finally {
      for (let i = 0; i < adoptions.length; i += ADOPTIONS_PER_COMMIT) {
        if (i > 0) await yieldToLoop();
        this.store.transaction(() => {
          for (const [nodeId, power] of adoptions.slice(i, i + ADOPTIONS_PER_COMMIT)) {
            const n = this.store.getNode(nodeId);
            if (!n) continue;
            this.recordRead(n, n.instance_id ? this.store.getInstance(n.instance_id) : null, power);
            this.deps.completeAdoption(nodeId, power);
          }
        });
      }
    }
  }

  /**
   * One node: decided by its narrow view (Store.powerSyncView: no row decoded), read through its BMC, and written
   * through the recorder only when the read changes something.
   */
  private async syncNode(nodeId: string, adoptions: [string, PowerReading][]): Promise<void> {
    const age = this.ages.get(nodeId);
    const before = this.store.powerSyncView(nodeId);
    const skip = !before || before.maintenance || this.deps.isNodeBusy(nodeId) || this.instanceBusy(before);
    if (age) age.skipped = skip;
    if (skip) return;
    const node = this.store.getNode(nodeId);
    if (!node) return;
    let power: PowerReading;
    try {
      power = (await this.deps.bmc(node).readPower({ timeoutMs: this.cfg.timeouts.bmc_call_ms })).power;
    } catch (e) {
      this.counts.failed++;
      this.powerReadFailed(nodeId, e);
      return;
    }
    this.counts.ok++;
    if (age) age.readAtMs = this.nowMs();
    // Anything may have started while we read: only act on what is still idle.
    const v = this.store.powerSyncView(nodeId);
    if (!v || this.instanceBusy(v)) return;
    if (v.adopting) {
      adoptions.push([nodeId, power]);
      return;
    }
    if (!readChanges(v, power)) return;
    const n = this.store.getNode(nodeId);
    if (!n) return;
    this.recordRead(n, n.instance_id ? this.store.getInstance(n.instance_id) : null, power);
    const cur = n.instance_id ? this.store.getInstance(n.instance_id) : null;
    if (!cur) return;
    if (cur.state === 'running' && power === 'off') {
      if (n.enforce_power) await this.enforce(n, 'on');
      else this.rec.mutate(cur.id, {}, { event: 'power-off', cause: 'drift' });
    } else if (cur.state === 'stopped' && power === 'on') {
      if (n.enforce_power) await this.enforce(n, 'off');
      else this.rec.mutate(cur.id, {}, { event: 'power-on', cause: 'drift' });
    }
  }

  /** An operation of the node's instance is in flight (recorded, or running in this process). */
  private instanceBusy(v: PowerSyncView): boolean {
    return v.instance !== null && (v.instance.task !== null || this.deps.isInstanceRunning(v.instance.id));
  }

  private async enforce(node: Node, want: PowerReading): Promise<void> {
    this.rec.setNodeTarget(node.id, want, 'enforce');
    await this.deps.nodePower(node, want, this.cfg.timeouts.power_ms, 'enforce', `enforcing power ${want}`);
  }

  /** Records a good read. Written only when it changes something: an idle poll opens no transaction and costs no fsync. */
  private recordRead(n: Node, inst: Instance | null, power: PowerReading): void {
    if (n.last_error?.error_type === 'bmc_unreachable_error' || n.consecutive_power_failures !== 0 || inst?.error?.error_type === 'bmc_unreachable_error') {
      this.readRecovered(n.id);
    }
    this.rec.recordPower(n.id, power, 'poll');
  }

  /** A good read after failed ones: the failure count is reset and the unreachable errors cleared. */
  private readRecovered(nodeId: string): void {
    this.store.transaction(() => {
      const cur = this.store.getNode(nodeId);
      if (!cur) return;
      const wasUnreachable = cur.last_error?.error_type === 'bmc_unreachable_error';
      if (wasUnreachable || cur.consecutive_power_failures !== 0) {
        this.rec.putNode({ ...cur, consecutive_power_failures: 0, last_error: wasUnreachable ? null : cur.last_error, updated_at: this.now() });
      }
      if (wasUnreachable) this.rec.journal('node.error', { node_id: nodeId, cause: 'poll', data: { error: null } });
      const inst = cur.instance_id ? this.store.getInstance(cur.instance_id) : null;
      if (inst && inst.error?.error_type === 'bmc_unreachable_error') this.rec.mutate(inst.id, { error: null }, { cause: 'poll' });
    });
  }

  /**
   * A failed read. The failure count stops at the threshold (power unknown): a BMC that stays unreachable is not
   * rewritten at every sweep, only when its error changes.
   */
  private powerReadFailed(nodeId: string, e: unknown): void {
    this.store.transaction(() => {
      const cur = this.store.getNode(nodeId);
      if (!cur) return;
      const threshold = this.cfg.power_sync.failures_before_unknown;
      const failures = Math.min(cur.consecutive_power_failures + 1, threshold);
      const error: InstanceError = { error_code: codeOf(e), error_msg: `the BMC of node ${cur.name} could not be read: ${messageOf(e)}`, error_type: 'bmc_unreachable_error' };
      const unknown = failures >= threshold;
      const setError = unknown || (cur.adopt !== null && cur.instance_id === null);
      const errorChanged = setError && JSON.stringify(cur.last_error) !== JSON.stringify(error);
      if (failures !== cur.consecutive_power_failures || errorChanged) {
        this.rec.putNode({ ...cur, consecutive_power_failures: failures, ...(setError ? { last_error: error } : {}), updated_at: this.now() });
      }
      if (errorChanged) this.rec.journal('node.error', { node_id: nodeId, cause: 'poll', data: { error } });
      if (unknown) {
        this.rec.recordPower(nodeId, 'unknown', 'poll');
        const inst = cur.instance_id ? this.store.getInstance(cur.instance_id) : null;
        if (inst && inst.state !== 'terminated' && inst.error?.error_type !== 'bmc_unreachable_error' && inst.error === null) {
          this.rec.mutate(inst.id, { error }, { cause: 'poll' });
        }
      }
    });
  }
}

/**
 * Whether a good read changes anything a sync writes: the node's or its live instance's power, a failure count or
 * an unreachable error to clear, or drift of a running/stopped instance (followed or enforced).
 */
export function readChanges(v: PowerSyncView, power: PowerReading): boolean {
  const unreachable = 'bmc_unreachable_error';
  if (v.power_state !== power || v.consecutive_power_failures !== 0 || v.node_error_type === unreachable) return true;
  const i = v.instance;
  if (!i || i.state === 'terminated') return false;
  if (i.power_state !== power || i.error_type === unreachable) return true;
  return (i.state === 'running' && power === 'off') || (i.state === 'stopped' && power === 'on');
}
