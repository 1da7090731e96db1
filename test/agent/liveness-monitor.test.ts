/**
 * The liveness monitor's rules (agent/liveness.ts, docs/liveness-monitor.md) on the manual clock with a scripted
 * engine: hysteresis (fresh os-fping probes count as results), the first verdict, jitter bounds, powered-off while
 * an OS operation holds the instance, fping's knobs passed on, the bounded wait of a fresh probe, stop.
 */
import { describe, expect, it } from 'vitest';
import { Liveness, PAGES_IN_FLIGHT, probeBudgetMs, type AliveChange, type LivenessSettings, type LivenessTarget } from '../../agent/liveness.js';
import type { OperationKind, PowerState } from '../../agent/model.js';
import type { PingOptions, PingResult, Pinger } from '../../agent/ports.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';

class ScriptedPinger implements Pinger {
  readonly engine = 'scripted';
  alive = new Set<string>();
  calls: { addrs: string[]; opts: PingOptions; at: number }[] = [];
  /** ms on the manual clock each call takes (0: answers at once). */
  takesMs = 0;
  constructor(private readonly clock: ManualClock) {}
  async ping(addrs: readonly string[], opts: PingOptions): Promise<PingResult[]> {
    this.calls.push({ addrs: [...addrs], opts, at: this.clock.now() });
    if (this.takesMs > 0) await this.clock.sleep(this.takesMs, opts.signal);
    return addrs.map((addr) => ({ addr, alive: this.alive.has(addr), rtt_ms: this.alive.has(addr) ? 0.1 : null }));
  }
}

const target = (id: string, addr: string, o: { task?: OperationKind; power?: PowerState } = {}): LivenessTarget => ({
  id,
  addresses: [{ addr, mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'n' }],
  task: o.task ?? null,
  power_state: o.power ?? 'on',
});

function setup(over: Partial<LivenessSettings> = {}, journal: Map<string, boolean> = new Map(), random = () => 0.5) {
  const clock = new ManualClock();
  const pinger = new ScriptedPinger(clock);
  const changes: AliveChange[] = [];
  const settings: LivenessSettings = { interval_ms: 10_000, timeout_ms: 100, retries: 0, batch: 100, hysteresis: 2, jitter: 0, ...over };
  const live = new Liveness(pinger, clock, () => settings, (list) => {
    changes.push(...list);
    for (const c of list) journal.set(c.instanceId, c.alive);
  }, (id) => journal.get(id) ?? null, { random });
  const advance = (ms: number) => {
    const at = clock.now() + ms;
    void clock.sleep(ms);
    while (clock.now() < at && clock.next());
  };
  return { live, pinger, clock, changes, journal, advance };
}

const A = target('a', '10.0.0.1');

describe('hysteresis', () => {
  it('a first verdict with none journalled is taken at once; then it changes only after `hysteresis` agreeing results in a row', async () => {
    const { live, pinger, changes } = setup({ hysteresis: 3 });
    pinger.alive.add('10.0.0.1');
    const page = () => [A];
    await live.sweepOnce(page);
    expect(changes).toEqual([{ instanceId: 'a', alive: true }]);
    pinger.alive.clear();
    await live.sweepOnce(page);
    await live.sweepOnce(page);
    expect(changes).toHaveLength(1);
    // An agreeing result in between starts the count again.
    pinger.alive.add('10.0.0.1');
    await live.sweepOnce(page);
    pinger.alive.clear();
    await live.sweepOnce(page);
    await live.sweepOnce(page);
    expect(changes).toHaveLength(1);
    await live.sweepOnce(page);
    expect(changes).toEqual([{ instanceId: 'a', alive: true }, { instanceId: 'a', alive: false }]);
  });

  it('after a restart the journalled verdict stands until outvoted: one disagreeing result does not flip it', async () => {
    const { live, pinger, changes } = setup({ hysteresis: 2 }, new Map([['a', true]]));
    await live.sweepOnce(() => [A]);
    expect(changes).toEqual([]);
    expect((await live.check(A)).alive).toBe(true);
    await live.sweepOnce(() => [A]);
    expect(changes).toEqual([{ instanceId: 'a', alive: false }]);
    expect(pinger.calls).toHaveLength(2);
  });

  it('hysteresis 1 changes at once', async () => {
    const { live, changes } = setup({ hysteresis: 1 }, new Map([['a', true]]));
    await live.sweepOnce(() => [A]);
    expect(changes).toEqual([{ instanceId: 'a', alive: false }]);
  });

  it("a fresh os-fping probe is one result: it answers the journalled verdict, and flips it only with the monitor's result before it", async () => {
    const { live, pinger, changes, advance } = setup({ hysteresis: 2 }, new Map([['a', true]]));
    pinger.alive.add('10.0.0.1');
    await live.sweepOnce(() => [A]);
    pinger.alive.clear();
    advance(10_000);
    // Stale: a fresh probe, dead; one result against the verdict: still alive, nothing journalled.
    expect(await live.check(A)).toEqual({ alive: true, verdict: 'alive', operation: null });
    expect(pinger.calls).toHaveLength(2);
    expect(changes).toEqual([]);
    // Younger than the interval: answered without a probe.
    advance(9_999);
    expect((await live.check(A)).alive).toBe(true);
    expect(pinger.calls).toHaveLength(2);
    // The monitor's next result agrees with the fresh one: the verdict flips, journalled.
    await live.sweepOnce(() => [A]);
    expect(changes).toEqual([{ instanceId: 'a', alive: false }]);
    expect(await live.check(A)).toEqual({ alive: false, verdict: 'dead', operation: null });
  });
});

describe('results out of order', () => {
  it("a sweep's probe sent before a fresh probe that ended first is not counted: the newer result stands", async () => {
    const clock = new ManualClock();
    const changes: AliveChange[] = [];
    // Each call's answer is decided when it is sent; the first call (the sweep's) takes 1 s, the second answers at once.
    const script = [{ alive: false, takesMs: 1_000 }, { alive: true, takesMs: 0 }, { alive: true, takesMs: 0 }];
    let n = 0;
    const pinger: Pinger = {
      engine: 'scripted',
      ping: async (addrs, opts) => {
        const step = script[n++]!;
        if (step.takesMs > 0) await clock.sleep(step.takesMs, opts.signal);
        return addrs.map((addr) => ({ addr, alive: step.alive, rtt_ms: step.alive ? 0.1 : null }));
      },
    };
    const settings: LivenessSettings = { interval_ms: 100, timeout_ms: 100, retries: 0, batch: 100, hysteresis: 1, jitter: 0 };
    const live = new Liveness(pinger, clock, () => settings, (c) => changes.push(...c), () => true);
    const slow = live.sweepOnce(() => [A]); // sent at t0, silent host: answers false at t0 + 1 s
    await flush();
    expect(await live.check(A)).toEqual({ alive: true, verdict: 'alive', operation: null }); // fresh probe at t0: true
    clock.next();
    await slow;
    // The sweep's false dates from t0, not newer than the fresh probe's true: not counted, nothing journalled.
    expect(changes).toEqual([]);
    expect((await live.check(A)).verdict).toBe('alive');
  });
});

describe('the sweep', () => {
  it("passes the config's timeout, retries, back-off and packet interval to the engine", async () => {
    const { live, pinger } = setup({ timeout_ms: 250, retries: 2, backoff: 1.8, packet_interval_ms: 3 });
    await live.sweepOnce(() => [A]);
    expect(pinger.calls[0]!.opts).toMatchObject({ timeoutMs: 250, retries: 2, backoff: 1.8, packetIntervalMs: 3 });
  });

  it('each sweep starts interval x (1 +- jitter) after the previous one ended, within the bounds, by the injected draw', async () => {
    const draws = [0, 0.999999, 0.25];
    let n = 0;
    const { live, pinger, clock } = setup({ interval_ms: 10_000, jitter: 0.2 }, new Map(), () => draws[n++ % draws.length]!);
    pinger.takesMs = 700; // each sweep lasts 700 ms on the manual clock
    const t0 = clock.now();
    live.startMonitor(() => [A]);
    for (let i = 0; i < 40 && pinger.calls.length < 4; i++) {
      await flush();
      clock.next();
    }
    await flush();
    const starts = pinger.calls.map((c) => c.at - t0);
    // 8,000 (1 - 0.2); then 700 + ~12,000 (1 + 0.2); then 700 + 9,000 (1 - 0.2 x 0.5); then 700 + 8,000.
    expect(starts[0]).toBe(8_000);
    expect(starts[1]! - starts[0]! - 700).toBeCloseTo(12_000, -1);
    expect(starts[1]! - starts[0]! - 700).toBeLessThanOrEqual(12_000);
    expect(starts[2]! - starts[1]! - 700).toBe(9_000);
    expect(starts[3]! - starts[2]! - 700).toBe(8_000);
    await live.stop();
  });

  it('reschedule (SIGHUP changed the interval): the wait is drawn again by the new interval, counted from its start', async () => {
    const settings: LivenessSettings = { interval_ms: 3_600_000, timeout_ms: 100, retries: 0, batch: 100, hysteresis: 2, jitter: 0 };
    const clock = new ManualClock();
    const pinger = new ScriptedPinger(clock);
    const live = new Liveness(pinger, clock, () => settings);
    const t0 = clock.now();
    live.startMonitor(() => [A]);
    await flush();
    clock.next(); // nothing else waits: this would be the 1 h sweep without the reschedule below
    await flush();
    expect(pinger.calls.map((c) => c.at - t0)).toEqual([3_600_000]);
    // Now waiting 1 h again; 10 s into it the interval becomes 30 s: the sweep is due 30 s after the wait began.
    const w0 = clock.now();
    const advance = (ms: number) => {
      const at = clock.now() + ms;
      void clock.sleep(ms);
      while (clock.now() < at && clock.next());
    };
    advance(10_000);
    settings.interval_ms = 30_000;
    live.reschedule();
    await flush();
    clock.next();
    await flush();
    expect(pinger.calls.map((c) => c.at - w0)).toEqual([0, 30_000]);
    // And one already past its new due time sweeps at once.
    const w1 = clock.now();
    advance(20_000);
    settings.interval_ms = 5_000;
    live.reschedule();
    await flush();
    clock.next(); // the redrawn wait is 0 ms: due now, no time moves
    await flush();
    expect(pinger.calls.map((c) => c.at - w1)).toEqual([-30_000, 0, 20_000]);
    await live.stop();
    expect(clock.waiting).toBe(0);
  });

  it('probes up to PAGES_IN_FLIGHT pages at once: a page waiting on a silent target does not hold the next ones', async () => {
    const { live, pinger, clock } = setup({ batch: 1 });
    pinger.takesMs = 1_000; // every engine call lasts 1 s on the manual clock (a silent target's timeout)
    const all = Array.from({ length: PAGES_IN_FLIGHT + 2 }, (_, i) => target(`i${String(i).padStart(2, '0')}`, `10.0.0.${i + 1}`));
    const page = (after: string | null, limit: number) => all.filter((t) => after === null || t.id > after).slice(0, limit);
    const t0 = clock.now();
    let done = false;
    const sweep = live.sweepOnce(page).then(() => (done = true));
    for (let i = 0; i < 10 && !done; i++) {
      await flush();
      clock.next();
    }
    await sweep;
    const starts = pinger.calls.map((c) => c.at - t0);
    expect(starts).toEqual([...Array<number>(PAGES_IN_FLIGHT).fill(0), 1_000, 1_000]);
    expect(clock.now() - t0).toBe(2_000);
  });

  it("a page's engine error fails the sweep once the pages in flight have ended; their results are recorded", async () => {
    const { pinger, changes } = setup({ batch: 1 });
    pinger.alive.add('10.0.0.2');
    const failing: Pinger = {
      engine: 'scripted',
      ping: async (addrs, opts) => {
        if (addrs[0] === '10.0.0.1') throw new Error('engine broke');
        return pinger.ping(addrs, opts);
      },
    };
    const l2 = new Liveness(failing, new ManualClock(), () => ({ interval_ms: 10_000, timeout_ms: 100, retries: 0, batch: 1, hysteresis: 2, jitter: 0 }), (c) => changes.push(...c));
    const pages = [target('a', '10.0.0.1'), target('b', '10.0.0.2')];
    await expect(l2.sweepOnce((after, limit) => pages.filter((t) => after === null || t.id > after).slice(0, limit))).rejects.toThrow('engine broke');
    expect(changes).toEqual([{ instanceId: 'b', alive: true }]);
  });

  it('stop aborts a sweep in flight, its engine call too, and no sweep follows', async () => {
    const { live, pinger, clock } = setup();
    pinger.takesMs = 5_000;
    live.startMonitor(() => [A]);
    await flush();
    clock.next(); // the first sweep starts and waits on the engine
    await flush();
    expect(pinger.calls).toHaveLength(1);
    await live.stop();
    expect(pinger.calls[0]!.opts.signal?.aborted).toBe(true);
    expect(clock.waiting).toBe(0);
    expect(live.stats().sweeps).toBe(0);
  });
});

describe('powered-off', () => {
  it('while an OS operation holds the instance: powered-off with the operation named, nothing probed, nothing journalled', async () => {
    const { live, pinger, changes } = setup({}, new Map([['a', true]]));
    const held = target('a', '10.0.0.1', { task: 'reinstall', power: 'off' });
    await live.sweepOnce(() => [held]);
    expect(await live.check(held)).toEqual({ alive: false, verdict: 'powered-off', operation: 'reinstall' });
    // Still on (its first power off not yet verified): the operation is powering it off.
    expect(await live.check(target('a', '10.0.0.1', { task: 'modify-ip', power: 'on' }))).toEqual({ alive: false, verdict: 'powered-off', operation: 'modify-ip' });
    expect(pinger.calls).toEqual([]);
    expect(changes).toEqual([]);
  });

  it('a verified power off is powered-off at once; a power operation in flight is probed as usual', async () => {
    const { live, pinger } = setup();
    expect(await live.check(target('a', '10.0.0.1', { power: 'off' }))).toEqual({ alive: false, verdict: 'powered-off', operation: null });
    expect(await live.check(target('a', '10.0.0.1', { power: 'off', task: 'power-on' }))).toEqual({ alive: false, verdict: 'powered-off', operation: 'power-on' });
    expect(pinger.calls).toEqual([]);
    pinger.alive.add('10.0.0.1');
    expect((await live.check(target('a', '10.0.0.1', { power: 'on', task: 'reboot' }))).verdict).toBe('alive');
  });

  it('when the operation ends, probing resumes from the journalled verdict: no "dead" flip, the disagreement before it forgotten', async () => {
    const { live, pinger, changes } = setup({ hysteresis: 2 }, new Map([['a', true]]));
    // One dead result before the operation: one against the verdict.
    await live.sweepOnce(() => [A]);
    await live.sweepOnce(() => [target('a', '10.0.0.1', { task: 'reinstall', power: 'off' })]);
    // The first result after it (the installed system still booting) is one against the verdict again, not two.
    await live.sweepOnce(() => [A]);
    expect(changes).toEqual([]);
    pinger.alive.add('10.0.0.1');
    await live.sweepOnce(() => [A]);
    expect(changes).toEqual([]);
    expect(await live.check(A)).toEqual({ alive: true, verdict: 'alive', operation: null });
  });

  it("an operation's own probe (the install's confirmation) answers what the engine says and counts as no result", async () => {
    const { live, pinger, changes } = setup({ hysteresis: 1 });
    pinger.alive.add('10.0.0.1');
    expect(await live.probe(target('a', '10.0.0.1', { task: 'create', power: 'on' }))).toBe(true);
    expect(changes).toEqual([]);
    expect(await live.probe(A)).toBe(true);
    expect(changes).toEqual([{ instanceId: 'a', alive: true }]);
  });
});

describe('the bounded wait of a fresh probe', () => {
  it('the budget: every retry timeout grown by the back-off, the packet gaps, one second', () => {
    expect(probeBudgetMs({ interval_ms: 1, timeout_ms: 500, retries: 1, batch: 1, backoff: 1.5, packet_interval_ms: 1 }, 10)).toBe(500 + 750 + 20 + 1000);
    expect(probeBudgetMs({ interval_ms: 1, timeout_ms: 100, retries: 0, batch: 1 }, 1)).toBe(100 + 1 + 1000);
  });

  it('when it runs out: the engine call is aborted, its late answer not counted, and the last verdict answered (else not alive)', async () => {
    const { live, pinger, clock, changes } = setup({ hysteresis: 1 }, new Map([['a', true]]));
    pinger.takesMs = 60_000; // an engine that does not answer in time
    const p = live.checkMany([A, target('b', '10.0.0.2')]);
    await flush();
    const budget = probeBudgetMs({ interval_ms: 10_000, timeout_ms: 100, retries: 0, batch: 100 }, 2);
    const t0 = clock.now();
    clock.next();
    const res = await p;
    expect(clock.now() - t0).toBe(budget);
    expect(res.get('a')).toEqual({ alive: true, verdict: 'alive', operation: null });
    expect(res.get('b')).toEqual({ alive: false, verdict: 'dead', operation: null });
    expect(pinger.calls[0]!.opts.signal?.aborted).toBe(true);
    expect(changes).toEqual([]);
    expect(live.stats().lateProbes).toBe(1);
  });

  it("an engine that fails is an error, not 'no answer'", async () => {
    const broken = new Liveness({ engine: 'x', ping: () => Promise.reject(new Error('fping: not found')) }, new ManualClock(), () => ({ interval_ms: 1, timeout_ms: 1, retries: 0, batch: 1 }));
    await expect(broken.check(A)).rejects.toThrow('fping: not found');
  });
});
