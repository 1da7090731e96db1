/**
 * The probe side of the bench's ICMP section, run INSIDE the lab's probe namespace by ./icmp.ts as
 * `ip netns exec NS node dist/scripts/bench/icmp-child.js JOB` (Node has no setns; the approach of
 * test/agent/pinger/raw/probe-child.mjs). JOB (argv[2], JSON) is one step (`IcmpJob`); the child runs it with
 * metald's raw engine (and Debian's fping, spawned from here, so in the same namespace) and prints one JSON line,
 * the step's raw observations (`IcmpChildOut`); ./icmp-report.ts turns them into figures. Nothing else runs in this
 * process, so its process.cpuUsage() during the monitor step is the monitor's.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { Liveness, type LivenessSettings, type LivenessTarget } from '../../agent/liveness.js';
import { RawPinger, type RawEngineStats } from '../../agent/pinger/raw/engine.js';
import { systemClock, type PingOptions, type PingResult } from '../../agent/ports.js';
import type { IcmpChildOut, IcmpJob, RunOut, SweepRep } from './icmp-report.js';

/** Runs fping with `args`; its wall time is spawn to exit. */
export function runFping(fping: string, args: readonly string[]): Promise<RunOut> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(fping, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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

const verdicts = (rs: readonly PingResult[]): Record<string, boolean> => Object.fromEntries(rs.map((r) => [r.addr, r.alive]));
const diff = (a: RawEngineStats, b: RawEngineStats): RawEngineStats =>
  Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - a[k as keyof RawEngineStats]])) as unknown as RawEngineStats;

/** fping's and metald's sweeps, alternated (fping first), after one uncounted warm-up of each. */
async function sweeps(job: Extract<IcmpJob, { step: 'sweeps' }>, engine: RawPinger): Promise<IcmpChildOut> {
  const ours: PingOptions = { timeoutMs: job.timeoutMs, retries: job.retries, backoff: 1, packetIntervalMs: job.intervalMs };
  await runFping(job.fping, job.fpingArgs);
  await engine.ping(job.targets, ours);
  const before = engine.stats();
  const reps: SweepRep[] = [];
  for (let i = 0; i < job.reps; i++) {
    const f = await runFping(job.fping, job.fpingArgs);
    const m = await timed(() => engine.ping(job.targets, ours));
    reps.push({ fping: f, oursMs: m.ms, ours: verdicts(m.value) });
  }
  return { step: 'sweeps', reps, stats: diff(before, engine.stats()) };
}

/** Count mode over the answering targets, packet interval 0, then fping -c over the same. */
async function rate(job: Extract<IcmpJob, { step: 'rate' }>, engine: RawPinger): Promise<IcmpChildOut> {
  const before = engine.stats();
  const m = await timed(() => engine.ping(job.targets, { timeoutMs: job.timeoutMs, retries: 0, count: job.count, periodMs: job.periodMs, packetIntervalMs: 0 }));
  const stats = diff(before, engine.stats());
  const f = await runFping(job.fping, job.fpingArgs);
  return { step: 'rate', ms: m.ms, sent: stats.sent, received: stats.received, stats, fping: f };
}

/** fping -C on the hosts, then metald's count mode with the same count and period. */
async function rtt(job: Extract<IcmpJob, { step: 'rtt' }>, engine: RawPinger): Promise<IcmpChildOut> {
  const f = await runFping(job.fping, job.fpingArgs);
  const rs = await engine.ping(job.targets, { timeoutMs: 500, retries: 0, count: job.count, periodMs: job.periodMs, packetIntervalMs: 1 });
  return { step: 'rtt', fping: f, ours: Object.fromEntries(rs.map((r) => [r.addr, r.rtts_ms ?? []])) };
}

/**
 * The daemon's liveness monitor class over `instances` instances whose fixed addresses are the targets, with the
 * daemon's defaults (docs/config.md) but the interval; CPU of this process over the window.
 */
async function monitor(job: Extract<IcmpJob, { step: 'monitor' }>, engine: RawPinger): Promise<IcmpChildOut> {
  const insts: LivenessTarget[] = job.targets.map((addr, i) => ({
    id: `inst-${String(i).padStart(5, '0')}`,
    addresses: [{ addr, mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'private' }],
  }));
  const index = new Map(insts.map((x, i) => [x.id, i]));
  const page = (after: string | null, limit: number): LivenessTarget[] => {
    const from = after === null ? 0 : index.get(after)! + 1;
    return insts.slice(from, from + limit);
  };
  const settings: LivenessSettings = { ...job.settings };
  let changes = 0;
  const mon = new Liveness(engine, systemClock, () => settings, (c) => (changes += c.length));
  const before = engine.stats();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  mon.startMonitor(page);
  await new Promise((res) => setTimeout(res, job.windowS * 1000));
  const used = process.cpuUsage(cpu0);
  const windowS = (performance.now() - t0) / 1000;
  const s = mon.stats();
  await mon.stop();
  return {
    step: 'monitor',
    cpuUserS: used.user / 1e6,
    cpuSystemS: used.system / 1e6,
    windowS,
    sweeps: s.sweeps,
    lastSweepS: s.lastSweepSeconds,
    probes: s.probes,
    changes,
    stats: diff(before, engine.stats()),
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as IcmpJob;
  const engine = new RawPinger();
  engine.open(4);
  try {
    const out =
      job.step === 'sweeps' ? await sweeps(job, engine) : job.step === 'rate' ? await rate(job, engine) : job.step === 'rtt' ? await rtt(job, engine) : await monitor(job, engine);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await engine.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`icmp-child: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
