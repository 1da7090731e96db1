/**
 * Liveness: the monitor probes every running instance's fixed addresses on `interval` (with jitter), in pages of
 * `batch`; an instance is alive if any of its fixed addresses answers (nova's rule). os-fping answers the monitor's
 * verdict while it is younger than the interval, otherwise a fresh probe with a bounded wait.
 *
 * The verdict (docs/liveness-monitor.md):
 * - `alive` changes only after `hysteresis` results in a row disagree with it (1: at once). Every result counts,
 *   the monitor's and os-fping's fresh probes alike, so one fresh probe flips a verdict only when the results before
 *   it already disagreed: what os-fping answers is always the verdict journalled.
 * - A first verdict is compared with the last one journalled (the store's), so a restart with nothing changed
 *   journals nothing, and a restart does not restart the hysteresis from nothing; with none journalled (a new
 *   instance), the first result is the verdict at once.
 * - While an OS operation holds the instance (its plan powers the tenant's server off first and boots the installed
 *   system last), or while its verified power is off, the verdict is `powered-off`: nothing is probed for it, no
 *   result counts, nothing is journalled, and what the monitor held is dropped, so that probing resumes afterwards
 *   from the journalled verdict (no "dead" flip for an operation).
 * - Each change is reported through `onChanges`, one call per probe call (a monitor page): one commit.
 *
 * The monitor never holds the event loop for the whole fleet: it reads the running instances one page of `batch`
 * at a time (a store query), probes each page with one ping call (up to PAGES_IN_FLIGHT at once), and gives the
 * loop a turn between pages.
 */
import { yieldToLoop } from './bounded.js';
import type { Instance, OperationKind } from './model.js';
import { RULES } from './operations/rules.js';
import type { Clock, PingOptions, Pinger } from './ports.js';

export interface LivenessSettings {
  interval_ms: number;
  timeout_ms: number;
  retries: number;
  /** Instances per page of the monitor's sweep (one ping call each). */
  batch: number;
  /** Each sweep starts interval x (1 +- jitter) after the previous one ended; default 0. */
  jitter?: number;
  /** fping -B; the engine's default when absent. */
  backoff?: number;
  /** fping -i, ms; the engine's default when absent. */
  packet_interval_ms?: number;
  /** Agreeing results in a row that change a verdict; default 1. */
  hysteresis?: number;
}

/** One page of the running instances: those whose id sorts after `after` (null: from the first), in id order, at most `limit`. */
export type RunningPage = (after: string | null, limit: number) => LivenessTarget[];

/**
 * What a probe needs of an instance: its id and addresses, and what says whether it is powered off (the operation
 * holding it, its verified power); a target without those is probed.
 */
export type LivenessTarget = Pick<Instance, 'id' | 'addresses'> & Partial<Pick<Instance, 'task' | 'power_state'>>;

/** A verdict that changed. */
export interface AliveChange {
  instanceId: string;
  alive: boolean;
}

/** `powered-off`: an OS operation holds the instance, or its verified power is off; `alive` is then false. */
export type VerdictKind = 'alive' | 'dead' | 'powered-off';

export interface Verdict {
  alive: boolean;
  verdict: VerdictKind;
  /** The operation holding the instance (powered-off), else null. */
  operation: OperationKind | null;
}

/** What the monitor did since start (the metald_liveness_* metrics). */
export interface LivenessStats {
  sweeps: number;
  /** Wall time of the last sweep that ended, seconds; null before one has. */
  lastSweepSeconds: number | null;
  /** Addresses probed (the monitor's and fresh probes). */
  probes: number;
  /** Verdict changes reported (journalled). */
  changes: number;
  /** Fresh probes whose bounded wait ran out. */
  lateProbes: number;
  /** The verdicts of the last sweep that ended without an error, by kind; null before one has. */
  verdicts: VerdictCounts | null;
}

/** Instances by verdict (a sweep's: powered-off ones are counted, not probed). */
export type VerdictCounts = Record<VerdictKind, number>;

export interface LivenessOptions {
  /** Uniform in [0, 1): the jitter's draw (injected for tests). */
  random?: () => number;
  /** A sweep that failed (the store, the engine); the next sweep runs as planned. */
  onSweepError?: (err: unknown) => void;
}

/** What the monitor holds per instance: the verdict, when its last result was taken, and the disagreeing results since. */
interface Held {
  alive: boolean;
  at: number;
  against: number;
  /** The probe number (Liveness.probeSeq, counted when a probe starts) of the last result counted. */
  seq: number;
}

const POWERED_OFF = (operation: OperationKind | null): Verdict => ({ alive: false, verdict: 'powered-off', operation });
const verdictOf = (alive: boolean): Verdict => ({ alive, verdict: alive ? 'alive' : 'dead', operation: null });

/**
 * Why an instance is powered off for liveness, or null when it is to be probed: an OS operation (or delete) holds it
 * (the rules table's plan), or its verified power is off.
 */
export function poweredOff(t: LivenessTarget): Verdict | null {
  const task = t.task ?? null;
  if (task !== null) {
    const plan = RULES[task].plan;
    if (plan === 'provision' || plan === 'delete') return POWERED_OFF(task);
  }
  return t.power_state === 'off' ? POWERED_OFF(task) : null;
}

/**
 * How long a fresh probe may take: the engine's own worst case (every retry's timeout, growing by the back-off, and
 * the gaps between the echo requests of the call) plus one second for the engine to start and answer.
 */
export function probeBudgetMs(s: LivenessSettings, addresses: number): number {
  const backoff = s.backoff ?? 1.5;
  let budget = 0;
  let t = s.timeout_ms;
  for (let i = 0; i <= s.retries; i++, t *= backoff) budget += t;
  return Math.ceil(budget + addresses * (s.retries + 1) * (s.packet_interval_ms ?? 1) + 1000);
}

/** Monitor pages probed at once (each one engine call of `batch` instances). */
export const PAGES_IN_FLIGHT = 8;

export class Liveness {
  private readonly held = new Map<string, Held>();
  private monitor: AbortController | null = null;
  /** Aborts the monitor's current wait (reschedule), while it waits. */
  private wake: AbortController | null = null;
  /** Probes started so far: orders their results (a result older than the one held is not counted). */
  private probeSeq = 0;
  private loop: Promise<void> | null = null;
  private readonly random: () => number;
  private readonly onSweepError: (err: unknown) => void;
  private readonly counts: LivenessStats = { sweeps: 0, lastSweepSeconds: null, probes: 0, changes: 0, lateProbes: 0, verdicts: null };

  constructor(
    private readonly pinger: Pinger,
    private readonly clock: Clock,
    private readonly settings: () => LivenessSettings,
    /** The verdicts that changed in one probe call (a monitor page), together: journalled in one commit. */
    private readonly onChanges: (changes: readonly AliveChange[]) => void = () => undefined,
    /**
     * The last verdict journalled for an instance this process holds none for (after a start, an operation, or
     * `forget`), or null: the first result is compared with it.
     */
    private readonly journalled: (instanceId: string) => boolean | null = () => null,
    opts: LivenessOptions = {},
  ) {
    this.random = opts.random ?? Math.random;
    this.onSweepError = opts.onSweepError ?? (() => undefined);
  }

  /** The verdict: powered-off, the monitor's if younger than the interval, else after a fresh probe (bounded wait). */
  async check(inst: LivenessTarget): Promise<Verdict> {
    return (await this.checkMany([inst])).get(inst.id)!;
  }

  /** Verdicts for many instances: powered-off and fresh ones as they are, the rest probed together in one call. */
  async checkMany(insts: readonly LivenessTarget[]): Promise<Map<string, Verdict>> {
    const out = new Map<string, Verdict>();
    const stale: LivenessTarget[] = [];
    const now = this.clock.now();
    const interval = this.settings().interval_ms;
    for (const i of insts) {
      const off = this.offVerdict(i);
      if (off) {
        out.set(i.id, off);
        continue;
      }
      const h = this.held.get(i.id);
      if (h && now - h.at < interval) out.set(i.id, verdictOf(h.alive));
      else stale.push(i);
    }
    if (stale.length === 0) return out;
    const answered = await this.probeBounded(stale);
    for (const i of stale) {
      // When the wait ran out: the last verdict held or journalled, else not alive (nothing answered in time).
      const alive = answered ? this.held.get(i.id)!.alive : (this.held.get(i.id)?.alive ?? this.lastJournalled(i.id) ?? false);
      out.set(i.id, verdictOf(alive));
    }
    return out;
  }

  /**
   * A fresh probe: true if any fixed address answers. Counted as a result unless the instance is powered off (an
   * operation's own probe, such as the install's confirmation, is not one: the operation holds the instance).
   */
  async probe(inst: LivenessTarget, signal?: AbortSignal): Promise<boolean> {
    const answered = new Set<string>();
    await this.probePage([inst], signal, answered);
    return answered.has(inst.id);
  }

  /**
   * Probes every running instance, one page of `batch` at a time, the event loop getting a turn between pages. Up to
   * PAGES_IN_FLIGHT pages are probed at once (the engine paces the packets): a page waits for its slowest target
   * (a silent one: timeout plus retries), and one page after the other made a sweep of 1,000 instances with 10%
   * silent last 11 s at the default settings, longer than its interval.
   * @returns the sweep's verdicts by kind
   * @throws the first engine error of the sweep, once every page in flight has ended
   */
  async sweepOnce(page: RunningPage, signal?: AbortSignal): Promise<VerdictCounts> {
    const tally: VerdictCounts = { alive: 0, dead: 0, 'powered-off': 0 };
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | null = null;
    let after: string | null = null;
    for (;;) {
      const batch = Math.max(1, this.settings().batch);
      const insts = page(after, batch);
      if (insts.length > 0) {
        const p: Promise<void> = this.probePage(insts, signal, undefined, tally)
          .catch((err: unknown) => void (failure ??= { err }))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      if (insts.length < batch || signal?.aborted || failure) break;
      after = insts[insts.length - 1]!.id;
      if (inFlight.size >= PAGES_IN_FLIGHT) await Promise.race(inFlight);
      else await yieldToLoop();
    }
    await Promise.all(inFlight);
    if (failure) throw (failure as { err: unknown }).err;
    return tally;
  }

  /** The delay before the next sweep: interval x (1 +- jitter), uniformly. */
  nextDelayMs(): number {
    const s = this.settings();
    const jitter = Math.min(1, Math.max(0, s.jitter ?? 0));
    return Math.max(0, s.interval_ms * (1 + jitter * (2 * this.random() - 1)));
  }

  /** Sweeps the running instances (`page`): each sweep starts `nextDelayMs()` after the previous one ended. */
  startMonitor(page: RunningPage): void {
    if (this.monitor) return;
    const ac = new AbortController();
    this.monitor = ac;
    this.loop = (async () => {
      for (;;) {
        try {
          await this.sleepUntilDue(ac.signal);
        } catch {
          return; // stopped
        }
        const t0 = performance.now();
        let verdicts: VerdictCounts | null = null;
        try {
          verdicts = await this.sweepOnce(page, ac.signal);
        } catch (e) {
          if (!ac.signal.aborted) this.onSweepError(e);
        }
        if (ac.signal.aborted) return;
        if (verdicts) this.counts.verdicts = verdicts;
        this.counts.sweeps += 1;
        this.counts.lastSweepSeconds = (performance.now() - t0) / 1000;
      }
    })();
  }

  /**
   * The wait before a sweep: `nextDelayMs()` from when it began. `reschedule()` (SIGHUP changed the interval) ends the
   * wait early and it is drawn again by the new settings, counted from the same start (due at once if past).
   */
  private async sleepUntilDue(stop: AbortSignal): Promise<void> {
    const since = this.clock.now();
    for (;;) {
      const wake = new AbortController();
      this.wake = wake;
      const wait = Math.max(0, this.nextDelayMs() - (this.clock.now() - since));
      try {
        await this.clock.sleep(wait, AbortSignal.any([stop, wake.signal]));
        return;
      } catch (e) {
        if (stop.aborted) throw e;
      } finally {
        this.wake = null;
      }
    }
  }

  /** Ends the monitor's wait for its next sweep and draws it again by the current settings (SIGHUP). */
  reschedule(): void {
    this.wake?.abort(new Error('the liveness interval changed'));
  }

  /** Stops the monitor: a sweep in flight is aborted (its engine call too) and waited for. */
  async stop(): Promise<void> {
    this.monitor?.abort(new Error('the liveness monitor is stopping'));
    this.monitor = null;
    await this.loop;
    this.loop = null;
  }

  /** Drops what the monitor holds of an instance: its next result is compared with the journalled verdict. */
  forget(instanceId: string): void {
    this.held.delete(instanceId);
  }

  stats(): LivenessStats {
    return { ...this.counts };
  }

  // ---------------------------------------------------------------------------------------------------------------

  /** powered-off (and what was held dropped), or null. */
  private offVerdict(t: LivenessTarget): Verdict | null {
    const off = poweredOff(t);
    if (off) this.held.delete(t.id);
    return off;
  }

  /**
   * A fresh probe of `insts` bounded by probeBudgetMs: true when it ended in time, false when the wait ran out (the
   * engine's call is then aborted and its results, if any come, are not counted).
   * @throws the engine's error (a broken engine is not "no answer").
   */
  private async probeBounded(insts: readonly LivenessTarget[]): Promise<boolean> {
    const ac = new AbortController();
    const probing = this.probePage(insts, ac.signal).then(() => true);
    const budget = probeBudgetMs(this.settings(), insts.length);
    const late = this.clock.sleep(budget, ac.signal).then(
      () => false,
      () => true,
    );
    try {
      const inTime = await Promise.race([probing, late]);
      if (!inTime) {
        this.counts.lateProbes += 1;
        probing.catch(() => undefined);
      }
      return inTime;
    } finally {
      ac.abort(new Error(`no answer from the ICMP engine within ${budget} ms`));
    }
  }

  /**
   * One ping call for the fixed addresses of `insts` that are not powered off; records each one's result and
   * reports the changes together. `answered`, when given, receives the ids of those that answered (powered-off
   * ones probed too, unrecorded: an operation's own probe). `tally` (a sweep's) counts each instance's verdict.
   */
  private async probePage(insts: readonly LivenessTarget[], signal?: AbortSignal, answered?: Set<string>, tally?: VerdictCounts): Promise<void> {
    // Address -> the instance (or instances: an address moving between two) that has it.
    const owners = new Map<string, string | string[]>();
    const recorded: string[] = [];
    for (const i of insts) {
      // Powered off: probed only for the operation's own probe (`answered`), and never recorded.
      if (answered ? poweredOff(i) === null : this.offVerdict(i) === null) recorded.push(i.id);
      else if (!answered) {
        if (tally) tally['powered-off'] += 1;
        continue;
      }
      for (const a of i.addresses) {
        if (a.type !== 'fixed') continue;
        const o = owners.get(a.addr);
        owners.set(a.addr, o === undefined ? i.id : typeof o === 'string' ? [o, i.id] : [...o, i.id]);
      }
    }
    const up = new Set<string>();
    // Results are ordered by when their probe started: one that started before the result held (a sweep's probe
    // sent before a fresh os-fping probe that ended first) is older news and is not counted.
    const seq = ++this.probeSeq;
    if (owners.size > 0) {
      const s = this.settings();
      const opts: PingOptions = {
        timeoutMs: s.timeout_ms,
        retries: s.retries,
        ...(s.backoff !== undefined ? { backoff: s.backoff } : {}),
        ...(s.packet_interval_ms !== undefined ? { packetIntervalMs: s.packet_interval_ms } : {}),
        ...(signal ? { signal } : {}),
      };
      const results = await this.pinger.ping([...owners.keys()], opts);
      this.counts.probes += owners.size;
      for (const r of results) {
        if (!r.alive) continue;
        const o = owners.get(r.addr);
        if (typeof o === 'string') up.add(o);
        else if (o) for (const id of o) up.add(id);
      }
    }
    if (signal?.aborted) return;
    if (answered) for (const id of up) answered.add(id);
    const now = this.clock.now();
    let changed: AliveChange[] | null = null;
    for (const id of recorded) {
      const alive = up.has(id);
      if (this.record(id, alive, now, seq)) (changed ??= []).push({ instanceId: id, alive });
      if (tally) tally[this.held.get(id)?.alive ? 'alive' : 'dead'] += 1;
    }
    if (changed) {
      this.counts.changes += changed.length;
      this.onChanges(changed);
    }
  }

  /** Records one result; true when it changed the verdict (hysteresis). */
  private record(id: string, alive: boolean, now: number, seq: number): boolean {
    const h = this.held.get(id);
    if (h && seq < h.seq) return false; // probed before the result held: superseded
    if (!h) {
      const journalled = this.lastJournalled(id);
      // No verdict journalled: the first result is the verdict. Else the journalled one stands until outvoted.
      this.held.set(id, { alive: journalled ?? alive, at: now, against: journalled === null || journalled === alive ? 0 : 1, seq });
      if (journalled === null) return true;
      return this.settle(id);
    }
    h.at = now;
    h.seq = seq;
    if (alive === h.alive) {
      h.against = 0;
      return false;
    }
    h.against += 1;
    return this.settle(id);
  }

  /** Flips the held verdict once `hysteresis` results in a row disagreed with it. */
  private settle(id: string): boolean {
    const h = this.held.get(id)!;
    if (h.against < Math.max(1, this.settings().hysteresis ?? 1)) return false;
    h.alive = !h.alive;
    h.against = 0;
    return true;
  }

  /** The journalled verdict; null when the store cannot say (the verdict is then journalled: a repeat is harmless). */
  private lastJournalled(id: string): boolean | null {
    try {
      return this.journalled(id);
    } catch {
      return null;
    }
  }
}
