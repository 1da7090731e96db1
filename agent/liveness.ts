/**
 * Liveness: the monitor's verdict per instance while it is younger than the interval, otherwise a fresh probe
 * with a bounded wait. An instance is alive if any of its fixed addresses answers (nova's rule).
 *
 * A verdict is journalled when it changes: the first one after a start is compared with the last one journalled
 * (the store's), so a restart with nothing changed journals nothing.
 *
 * The monitor never holds the event loop for the whole fleet: it reads the running instances one page of
 * `batch` at a time (a store query), probes each page with one ping call, and gives the loop a turn between pages.
 */
import { yieldToLoop } from './bounded.js';
import type { Instance } from './model.js';
import type { Clock, Pinger } from './ports.js';

export interface LivenessSettings {
  interval_ms: number;
  timeout_ms: number;
  retries: number;
  /** Instances per page of the monitor's sweep (one ping call each). */
  batch: number;
}

/** One page of the running instances: those whose id sorts after `after` (null: from the first), in id order, at most `limit`. */
export type RunningPage = (after: string | null, limit: number) => LivenessTarget[];

/** What a probe needs of an instance: its id and its addresses (the monitor reads no more of the row). */
export type LivenessTarget = Pick<Instance, 'id' | 'addresses'>;

/** A verdict that changed. */
export interface AliveChange {
  instanceId: string;
  alive: boolean;
}

interface Verdict {
  alive: boolean;
  at: number;
}

export class Liveness {
  private readonly verdicts = new Map<string, Verdict>();
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;

  constructor(
    private readonly pinger: Pinger,
    private readonly clock: Clock,
    private readonly settings: () => LivenessSettings,
    /** The verdicts that changed in one probe call (a monitor page), together: journalled in one commit. */
    private readonly onChanges: (changes: readonly AliveChange[]) => void = () => undefined,
    /**
     * The last verdict journalled for an instance this process holds none for (after a start, or `forget`), or
     * null: a first verdict equal to it is no change, so a restart journals only the verdicts that changed.
     */
    private readonly journalled: (instanceId: string) => boolean | null = () => null,
  ) {}

  /** The cached verdict if fresh, else a fresh probe. */
  async check(inst: LivenessTarget): Promise<boolean> {
    const v = this.verdicts.get(inst.id);
    if (v && this.clock.now() - v.at < this.settings().interval_ms) return v.alive;
    return this.probe(inst);
  }

  /** Verdicts for many instances: fresh ones from the cache, the rest probed together in one sweep. */
  async checkMany(insts: readonly LivenessTarget[]): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    const stale: LivenessTarget[] = [];
    for (const i of insts) {
      const v = this.verdicts.get(i.id);
      if (v && this.clock.now() - v.at < this.settings().interval_ms) out.set(i.id, v.alive);
      else stale.push(i);
    }
    for (const [id, alive] of await this.probeMany(stale)) out.set(id, alive);
    return out;
  }

  /** A fresh probe of one instance's fixed addresses. */
  async probe(inst: LivenessTarget, signal?: AbortSignal): Promise<boolean> {
    return (await this.probeMany([inst], signal)).get(inst.id) ?? false;
  }

  private async probeMany(insts: readonly LivenessTarget[], signal?: AbortSignal): Promise<Map<string, boolean>> {
    const byAddr = new Map<string, string[]>();
    for (const i of insts) {
      for (const a of i.addresses) {
        if (a.type !== 'fixed') continue;
        byAddr.set(a.addr, [...(byAddr.get(a.addr) ?? []), i.id]);
      }
    }
    const out = new Map<string, boolean>(insts.map((i) => [i.id, false]));
    if (byAddr.size > 0) {
      const s = this.settings();
      const results = await this.pinger.ping([...byAddr.keys()], { timeoutMs: s.timeout_ms, retries: s.retries, ...(signal ? { signal } : {}) });
      for (const r of results) if (r.alive) for (const id of byAddr.get(r.addr) ?? []) out.set(id, true);
    }
    const now = this.clock.now();
    const changed: AliveChange[] = [];
    for (const [id, alive] of out) {
      const prev = this.verdicts.get(id)?.alive ?? this.lastJournalled(id);
      this.verdicts.set(id, { alive, at: now });
      if (prev !== alive) changed.push({ instanceId: id, alive });
    }
    if (changed.length > 0) this.onChanges(changed);
    return out;
  }

  /** The journalled verdict; null when the store cannot say (the verdict is then journalled: a repeat is harmless). */
  private lastJournalled(id: string): boolean | null {
    try {
      return this.journalled(id);
    } catch {
      return null;
    }
  }

  /** Probes every running instance, one page of `batch` at a time, the event loop getting a turn between pages. */
  async sweepOnce(page: RunningPage): Promise<void> {
    let after: string | null = null;
    for (;;) {
      const batch = Math.max(1, this.settings().batch);
      const insts = page(after, batch);
      if (insts.length > 0) await this.probeMany(insts);
      if (insts.length < batch) return;
      after = insts[insts.length - 1]!.id;
      await yieldToLoop();
    }
  }

  /** Sweeps the running instances (`page`) every interval; a sweep starts only once the previous one has ended. */
  startMonitor(page: RunningPage): void {
    const tick = () => {
      this.sweeping = this.sweepOnce(page)
        .catch(() => undefined)
        .finally(() => {
          this.sweeping = null;
          if (this.timer !== null) this.timer = setTimeout(tick, this.settings().interval_ms).unref();
        });
    };
    this.timer = setTimeout(tick, this.settings().interval_ms).unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sweeping;
  }

  forget(instanceId: string): void {
    this.verdicts.delete(instanceId);
  }
}
