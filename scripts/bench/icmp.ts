/**
 * The bench's ICMP section (issue 9 point 7): metald's raw engine next to Debian's fping on the same 1,024 targets
 * in the same run (./icmp-net.ts makes them), and the liveness monitor's CPU at 1,000 instances. The figures and
 * targets are ./icmp-report.ts; docs/bench.md says how each is measured. Where it cannot run (not root, no
 * namespaces, the raw socket refused) the error lands in the notes and every target reads FAIL.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Liveness, type LivenessTarget } from '../../agent/liveness.js';
import { openPinger, type EngineChoice } from '../../agent/pinger/select.js';
import { systemClock, type PingResult } from '../../agent/ports.js';
import { openIcmpNet, type IcmpNet } from './icmp-net.js';
import { compareVerdicts, fpingRoundTrips, fpingVerdicts, median, type IcmpOptions, type IcmpResults } from './icmp-report.js';

const FPING = '/usr/bin/fping';
const SWEEP = { timeoutMs: 500, retries: 1 };

/** Runs fping with `args`; its wall time is spawn to exit. */
function runFping(args: readonly string[]): Promise<{ stdout: string; stderr: string; code: number | null; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(FPING, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout, stderr, code, ms: performance.now() - t0 }));
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

const verdictsOf = (rs: readonly PingResult[]) => new Map(rs.map((r) => [r.addr, r.alive]));
const engineStats = (c: EngineChoice): { bad?: number } => (c.pinger as { stats?: () => { bad?: number } }).stats?.() ?? {};

/** Sweep wall times and verdicts, metald and fping interleaved `reps` times after one warm-up each. */
async function measureSweeps(net: IcmpNet, c: EngineChoice, o: IcmpOptions, r: IcmpResults): Promise<void> {
  const fpingArgs = ['-i', '0', '-B', '1', '-t', String(SWEEP.timeoutMs), '-r', String(SWEEP.retries), ...net.targets];
  const ours = { ...SWEEP, backoff: 1, packetIntervalMs: 0 };
  await runFping(fpingArgs);
  await c.pinger.ping(net.targets, ours);
  const badBefore = engineStats(c).bad ?? 0;
  const silent = new Set(net.silent);
  const mine: number[] = [];
  const theirs: number[] = [];
  let differences = 0;
  let misattributed = 0;
  let missed = 0;
  for (let i = 0; i < o.reps; i++) {
    const f = await runFping(fpingArgs);
    if (f.code !== 0 && f.code !== 1) throw new Error(`fping exited ${String(f.code)}: ${f.stderr.trim().slice(0, 200)}`);
    const m = await timed(() => c.pinger.ping(net.targets, ours));
    theirs.push(f.ms);
    mine.push(m.ms);
    const cmp = compareVerdicts(net.targets, verdictsOf(m.value), fpingVerdicts(f.stdout), silent);
    differences += cmp.differences;
    misattributed += cmp.misattributed;
    missed += cmp.missed;
    if (cmp.examples.length > 0) r.notes.push(`sweep ${String(i + 1)}: ${cmp.examples.join('; ')}`);
  }
  Object.assign(r.figures, {
    sweep_ms: median(mine),
    fping_sweep_ms: median(theirs),
    sweep_ratio: median(mine) / median(theirs),
    verdict_differences: differences,
    misattributed,
    missed,
  });
  const bad = engineStats(c).bad;
  if (bad !== undefined) r.figures.engine_bad_replies = bad - badBefore;
}

/** Count mode over the answering targets, packet interval 0: probes sent per second of wall time, and fping's. */
async function measureRate(net: IcmpNet, c: EngineChoice, r: IcmpResults): Promise<void> {
  const count = 30;
  const periodMs = 10;
  const m = await timed(() => c.pinger.ping(net.answering, { timeoutMs: 500, retries: 0, count, periodMs, packetIntervalMs: 0 }));
  const sent = m.value.reduce((a, x) => a + (x.sent ?? 0), 0);
  const received = m.value.reduce((a, x) => a + (x.received ?? 0), 0);
  r.figures.probes_per_s = sent / (m.ms / 1000);
  r.figures.probes_received_pct = sent === 0 ? 0 : (received / sent) * 100;
  const f = await runFping(['-q', '-c', String(count), '-p', String(periodMs), '-i', '0', '-t', '500', ...net.answering]);
  const xmt = [...f.stderr.matchAll(/xmt\/rcv\/%loss = (\d+)\//g)].reduce((a, x) => a + Number(x[1]), 0);
  r.figures.fping_probes_per_s = xmt / (f.ms / 1000);
}

/** Round trips to 50 answering hosts, 20 each: fping -C, then metald's count mode. */
async function measureRtt(net: IcmpNet, c: EngineChoice, r: IcmpResults): Promise<void> {
  const hosts = net.answering.filter((_, i) => i % 18 === 0).slice(0, 50);
  const f = await runFping(['-q', '-C', '20', '-p', '20', '-i', '1', ...hosts]);
  const theirs = fpingRoundTrips(f.stderr);
  const ours = await c.pinger.ping(hosts, { timeoutMs: 500, retries: 0, count: 20, periodMs: 20, packetIntervalMs: 1 });
  const diffs: number[] = [];
  for (const res of ours) {
    const t = theirs.get(res.addr);
    if (t && t.length > 0 && res.rtts_ms && res.rtts_ms.length > 0) diffs.push(median(res.rtts_ms) - median(t));
  }
  r.figures.rtt_median_ms = median(ours.flatMap((x) => x.rtts_ms ?? []));
  r.figures.fping_rtt_median_ms = median([...theirs.values()].flat());
  r.figures.rtt_diff_ms = Math.abs(median(diffs));
}

/**
 * The liveness monitor (agent/liveness.ts, the daemon's class) in this process with the real engine: 1,000
 * instances whose fixed addresses are the first 1,000 targets, interval 10 s, pages of 128, CPU of this process
 * (process.cpuUsage) over the window while nothing else runs in it.
 */
async function measureMonitor(net: IcmpNet, c: EngineChoice, o: IcmpOptions, r: IcmpResults): Promise<void> {
  const insts: LivenessTarget[] = net.targets.slice(0, 1000).map((addr, i) => ({
    id: `inst-${String(i).padStart(4, '0')}`,
    addresses: [{ addr, mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'private' }],
  }));
  let sweeps = 0;
  const page = (after: string | null, limit: number): LivenessTarget[] => {
    if (after === null) sweeps++;
    const from = after === null ? 0 : insts.findIndex((i) => i.id === after) + 1;
    return insts.slice(from, from + limit);
  };
  const monitor = new Liveness(c.pinger, systemClock, () => ({ interval_ms: 10_000, timeout_ms: 500, retries: 1, batch: 128 }));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  monitor.startMonitor(page);
  await new Promise((res) => setTimeout(res, o.cpuS * 1000));
  const used = process.cpuUsage(cpu0);
  const windowS = (performance.now() - t0) / 1000;
  await monitor.stop();
  const cpuS = (used.user + used.system) / 1e6;
  Object.assign(r.figures, { monitor_cpu_s: cpuS, monitor_window_s: windowS, monitor_cpu_pct: (cpuS / windowS) * 100, monitor_sweeps: sweeps });
}

export async function runIcmp(o: IcmpOptions, log: (msg: string) => void): Promise<IcmpResults> {
  const t0 = performance.now();
  const r: IcmpResults = { engine: null, reason: null, targets: 0, silent: 0, figures: {}, notes: [], elapsedS: 0 };
  let net: IcmpNet | null = null;
  let choice: EngineChoice | null = null;
  try {
    log('icmp: gateway namespace with 1,024 targets');
    net = openIcmpNet();
    r.targets = net.targets.length;
    r.silent = net.silent.length;
    choice = await openPinger({ engine: 'raw', fpingPath: FPING });
    r.engine = choice.engine;
    r.reason = choice.reason;
    if (choice.engine !== 'raw') r.notes.push(`asked for the raw engine, got ${choice.engine}: the figures are not the raw engine's`);
    const steps: [string, () => Promise<void>][] = [
      [`sweeps, ${String(o.reps)} each, interleaved with fping`, () => measureSweeps(net!, choice!, o, r)],
      ['sustained probes/s', () => measureRate(net!, choice!, r)],
      ['round trips next to fping -C', () => measureRtt(net!, choice!, r)],
      [`liveness monitor CPU, ${String(o.cpuS)} s`, () => measureMonitor(net!, choice!, o, r)],
    ];
    for (const [what, fn] of steps) {
      log(`icmp: ${what}`);
      try {
        await fn();
      } catch (e) {
        r.notes.push(`${what}: failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 300));
      }
    }
  } catch (e) {
    r.notes.push(`the ICMP section could not run: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400));
  } finally {
    await choice?.pinger.close?.();
    net?.close();
  }
  r.elapsedS = (performance.now() - t0) / 1000;
  return r;
}
