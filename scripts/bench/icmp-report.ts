/**
 * The bench's ICMP section (issue 9 point 7), the pure part: its flags (taken out of the bench's argv before the
 * core's parseArgs sees the rest), the jobs the probe child runs (./icmp-child.ts) and what it answers, fping's
 * outputs, the verdict comparison, the figures, the targets and the report. No I/O. The measuring is
 * ./icmp.ts; docs/bench.md says how each figure is measured.
 */
import { parseFpingOutput } from '../../agent/pinger/fping.js';
import type { LivenessSettings } from '../../agent/liveness.js';
import type { RawEngineStats } from '../../agent/pinger/raw/engine.js';
import { count, UsageError } from './args.js';
import { fmt, table } from './report.js';

export interface IcmpOptions {
  /** `also`: after the core sections (the default); `only`: alone; `skip`: not run (`--no-icmp`). */
  mode: 'skip' | 'also' | 'only';
  /** Sweeps of each (metald, fping), alternated; the median wall time is reported. */
  reps: number;
  /** The monitor's CPU window, seconds (the issue's: a minute). */
  cpuS: number;
}

export const ICMP_USAGE = `ICMP section (issue 9: the raw-socket engine next to Debian fping, in network namespaces it builds; needs root,
iproute2, nftables, fping; about 80 s; runs by default after the core sections):
  --icmp-only       only the ICMP section
  --no-icmp         not the ICMP section
  --icmp-reps K     sweeps of each engine, alternated, median reported (default 5; 1..20)
  --icmp-cpu S      the liveness monitor's CPU window at 1,000 instances, seconds (default 60; 10..600)`;

/**
 * Takes the ICMP section's flags out of the bench's argv; `rest` goes on to the other sections' parsers.
 * `--icmp` (the section after the core ones) is the default and still accepted.
 * @throws UsageError naming the flag at fault
 */
export function splitIcmpArgs(argv: readonly string[]): { icmp: IcmpOptions; rest: string[] } {
  const o: IcmpOptions = { mode: 'also', reps: 5, cpuS: 60 };
  const rest: string[] = [];
  let only = false;
  let none = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--icmp-only') only = true;
    else if (flag === '--no-icmp') none = true;
    else if (flag === '--icmp') continue;
    else if (flag === '--icmp-reps') o.reps = count(flag, argv[++i], 1, 20);
    else if (flag === '--icmp-cpu') o.cpuS = count(flag, argv[++i], 10, 600);
    else rest.push(flag);
  }
  if (only && none) throw new UsageError('--icmp-only and --no-icmp: choose one');
  o.mode = only ? 'only' : none ? 'skip' : 'also';
  return { icmp: o, rest };
}

/** fping's run as the probe child saw it: spawn to exit. */
export interface RunOut {
  stdout: string;
  stderr: string;
  code: number | null;
  ms: number;
}

/** One step of the probe child (argv[2] of ./icmp-child.ts, JSON). */
export type IcmpJob =
  | { step: 'sweeps'; fping: string; fpingArgs: string[]; targets: string[]; reps: number; timeoutMs: number; retries: number; intervalMs: number }
  | { step: 'rate'; fping: string; fpingArgs: string[]; targets: string[]; count: number; periodMs: number; timeoutMs: number }
  | { step: 'rtt'; fping: string; fpingArgs: string[]; targets: string[]; count: number; periodMs: number }
  | { step: 'monitor'; targets: string[]; windowS: number; settings: LivenessSettings };

export interface SweepRep {
  fping: RunOut;
  oursMs: number;
  ours: Record<string, boolean>;
}

/** What the probe child prints (one JSON line), per step. */
export type IcmpChildOut =
  | { step: 'sweeps'; reps: SweepRep[]; stats: RawEngineStats }
  | { step: 'rate'; ms: number; sent: number; received: number; stats: RawEngineStats; fping: RunOut }
  | { step: 'rtt'; fping: RunOut; ours: Record<string, number[]> }
  | {
      step: 'monitor';
      cpuUserS: number;
      cpuSystemS: number;
      windowS: number;
      sweeps: number;
      lastSweepS: number | null;
      probes: number;
      changes: number;
      stats: RawEngineStats;
    };

export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** fping's verdicts from its stdout (`ADDR is alive` / `ADDR is unreachable`). */
export function fpingVerdicts(stdout: string): Map<string, boolean> {
  return new Map([...parseFpingOutput(stdout)].map(([addr, v]) => [addr, v.alive]));
}

/** fping -C's per-target round trips (stderr, `ADDR : 0.04 - 0.05`; `-` is a lost probe). */
export function fpingRoundTrips(stderr: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const line of stderr.split('\n')) {
    const m = /^(\S+)\s+:\s+([\d.\s-]+)$/.exec(line.trim());
    if (!m) continue;
    out.set(m[1]!, m[2]!.trim().split(/\s+/).filter((w) => w !== '-').map(Number));
  }
  return out;
}

export interface VerdictComparison {
  /** Targets where metald's verdict is not fping's (a target fping did not report counts as a difference). */
  differences: number;
  /** Targets metald calls alive whose echo requests the gateway drops: a reply counted that no target sent. */
  misattributed: number;
  /** Answering targets metald calls unreachable. */
  missed: number;
  /** The first few differing addresses, for the notes. */
  examples: string[];
}

/** Compares metald's verdicts with fping's on the same targets, and both with what the topology makes true. */
export function compareVerdicts(targets: readonly string[], ours: ReadonlyMap<string, boolean>, fping: ReadonlyMap<string, boolean>, silent: ReadonlySet<string>): VerdictComparison {
  const r: VerdictComparison = { differences: 0, misattributed: 0, missed: 0, examples: [] };
  for (const t of targets) {
    const mine = ours.get(t) ?? false;
    if (fping.get(t) !== mine) {
      r.differences++;
      if (r.examples.length < 5) r.examples.push(`${t}: metald ${mine ? 'alive' : 'unreachable'}, fping ${fping.has(t) ? (fping.get(t) ? 'alive' : 'unreachable') : 'no verdict'}`);
    }
    if (mine && silent.has(t)) r.misattributed++;
    if (!mine && !silent.has(t)) r.missed++;
  }
  return r;
}


/** fping -c's summary lines (stderr, `ADDR : xmt/rcv/%loss = 50/50/0%, ...`), summed over the targets. */
export function fpingCountTotals(stderr: string): { sent: number; received: number; targets: number } {
  const t = { sent: 0, received: 0, targets: 0 };
  for (const m of stderr.matchAll(/^\S+\s+: xmt\/rcv\/%loss = (\d+)\/(\d+)\//gm)) {
    t.sent += Number(m[1]);
    t.received += Number(m[2]);
    t.targets++;
  }
  return t;
}

/** The smallest gap between two distinct values: the resolution the values show (NaN with fewer than 2 distinct). */
export function resolution(xs: readonly number[]): number {
  const s = [...new Set(xs.map((x) => Math.round(x * 1e6) / 1e6))].sort((a, b) => a - b);
  let best = NaN;
  for (let i = 1; i < s.length; i++) {
    const d = Math.round((s[i]! - s[i - 1]!) * 1e6) / 1e6;
    if (!(d >= best)) best = d;
  }
  return best;
}

export type Figures = Partial<Record<IcmpKey, number>>;

/** An fping run that is neither "all alive" (0) nor "some unreachable" (1) is no comparison. @throws Error */
function checkFping(f: RunOut, what: string): void {
  if (f.code !== 0 && f.code !== 1) throw new Error(`fping (${what}) exited ${String(f.code)}: ${f.stderr.trim().slice(0, 200)}`);
}

/**
 * The sweeps' figures: medians of the alternated wall times and their ratio; every rep's verdicts against fping's
 * (differences listed in the notes) and against the topology (a silent target called alive is a reply credited to
 * a target that sent none: misattributed); the engine's counters over the reps.
 * @throws Error when an fping run failed
 */
export function sweepFigures(out: Extract<IcmpChildOut, { step: 'sweeps' }>, targets: readonly string[], silent: readonly string[]): { figures: Figures; notes: string[] } {
  const silentSet = new Set(silent);
  const mine = out.reps.map((r) => r.oursMs);
  const theirs = out.reps.map((r) => r.fping.ms);
  const figures: Figures = { sweep_ms: median(mine), fping_sweep_ms: median(theirs), sweep_ratio: median(mine) / median(theirs), verdict_differences: 0, misattributed: 0, missed: 0, fping_wrong: 0 };
  const notes: string[] = [];
  out.reps.forEach((r, i) => {
    checkFping(r.fping, 'sweep');
    const fv = fpingVerdicts(r.fping.stdout);
    const cmp = compareVerdicts(targets, new Map(Object.entries(r.ours)), fv, silentSet);
    figures.verdict_differences! += cmp.differences;
    figures.misattributed! += cmp.misattributed;
    figures.missed! += cmp.missed;
    figures.fping_wrong! += targets.filter((t) => fv.get(t) !== !silentSet.has(t)).length;
    if (cmp.examples.length > 0) notes.push(`sweep ${String(i + 1)}: ${cmp.examples.join('; ')}`);
  });
  notes.push(`sweeps, ms: metald ${mine.map((x) => fmt(x)).join(' ')}; fping ${theirs.map((x) => fmt(x)).join(' ')}`);
  Object.assign(figures, { engine_received: out.stats.received, engine_bad_replies: out.stats.bad, engine_foreign: out.stats.foreign, engine_late: out.stats.late });
  return { figures, notes };
}

/** Probes sent and replies matched per second of the count-mode call's wall time, and fping's over the same. */
export function rateFigures(out: Extract<IcmpChildOut, { step: 'rate' }>): Figures {
  checkFping(out.fping, 'count mode');
  const s = out.ms / 1000;
  const f = fpingCountTotals(out.fping.stderr);
  return {
    probes_per_s: out.sent / s,
    replies_per_s: out.received / s,
    probes_received_pct: out.sent === 0 ? 0 : (out.received / out.sent) * 100,
    rate_window_s: s,
    fping_probes_per_s: f.sent / (out.fping.ms / 1000),
  };
}

/** Per host, the median of metald's round trips minus fping -C's; the largest |difference| is the figure. */
export function rttFigures(out: Extract<IcmpChildOut, { step: 'rtt' }>): { figures: Figures; notes: string[] } {
  checkFping(out.fping, '-C');
  const theirs = fpingRoundTrips(out.fping.stderr);
  const diffs: { addr: string; d: number }[] = [];
  const notes: string[] = [];
  for (const [addr, ours] of Object.entries(out.ours)) {
    const t = theirs.get(addr);
    if (!t || t.length === 0 || ours.length === 0) {
      notes.push(`rtt: ${addr}: no round trip from ${ours.length === 0 ? 'metald' : 'fping'}`);
      continue;
    }
    diffs.push({ addr, d: median(ours) - median(t) });
  }
  const worst = diffs.reduce<{ addr: string; d: number } | null>((w, x) => (w === null || Math.abs(x.d) > Math.abs(w.d) ? x : w), null);
  if (worst) notes.push(`rtt: largest per-host difference at ${worst.addr}: ${fmt(worst.d)} ms`);
  const all = Object.values(out.ours).flat();
  return {
    figures: {
      rtt_hosts: diffs.length,
      rtt_median_ms: median(all),
      fping_rtt_median_ms: median([...theirs.values()].flat()),
      rtt_max_diff_ms: worst ? Math.abs(worst.d) : NaN,
      rtt_median_diff_ms: median(diffs.map((x) => x.d)),
      rtt_resolution_ms: resolution(all),
    },
    notes,
  };
}

export function monitorFigures(out: Extract<IcmpChildOut, { step: 'monitor' }>): Figures {
  const cpu = out.cpuUserS + out.cpuSystemS;
  return {
    monitor_cpu_s: cpu,
    monitor_window_s: out.windowS,
    monitor_cpu_pct: (cpu / out.windowS) * 100,
    monitor_sweeps: out.sweeps,
    ...(out.lastSweepS !== null ? { monitor_sweep_s: out.lastSweepS } : {}),
    monitor_probes: out.probes,
  };
}

export interface IcmpResults {
  /** The engine metald ran ('raw') and the fping it was compared with. */
  engine: string | null;
  fping: string | null;
  targets: number;
  silent: number;
  figures: Figures;
  /** Why a figure is missing, and the examples of differing verdicts. */
  notes: string[];
  elapsedS: number;
}

export const ICMP_FIGURES = [
  { key: 'sweep_ms', label: 'sweep of 1,024 (10% silent), -t 500 -r 1 -B 1 -i 0, metald, ms (median)' },
  { key: 'fping_sweep_ms', label: '  fping -i 0 -B 1 -t 500 -r 1 on the same targets, ms (median)' },
  { key: 'sweep_ratio', label: '  metald / fping, x' },
  { key: 'verdict_differences', label: '  verdicts differing from fping (all sweeps)' },
  { key: 'misattributed', label: '  silent targets called alive (all sweeps)' },
  { key: 'missed', label: '  answering targets called unreachable (all sweeps)' },
  { key: 'fping_wrong', label: "  fping's verdicts the topology contradicts (all sweeps)" },
  { key: 'engine_received', label: '  engine: replies matched' },
  { key: 'engine_bad_replies', label: '  engine: replies refused (source/sequence/nonce)' },
  { key: 'engine_foreign', label: "  engine: others' packets ignored (fping's replies)" },
  { key: 'engine_late', label: '  engine: replies after their timeout' },
  { key: 'probes_per_s', label: 'sustained probes/s, count mode over 922, packet interval 0' },
  { key: 'replies_per_s', label: '  replies matched/s' },
  { key: 'probes_received_pct', label: '  replies, % of probes sent' },
  { key: 'rate_window_s', label: '  over, s' },
  { key: 'fping_probes_per_s', label: '  fping -c on the same, probes/s (spawn to exit)' },
  { key: 'rtt_hosts', label: 'RTT: hosts compared' },
  { key: 'rtt_median_ms', label: '  median RTT, metald, ms' },
  { key: 'fping_rtt_median_ms', label: '  median RTT, fping -C, ms' },
  { key: 'rtt_max_diff_ms', label: '  largest |per-host median difference|, ms' },
  { key: 'rtt_median_diff_ms', label: '  median per-host difference (metald - fping), ms' },
  { key: 'rtt_resolution_ms', label: "  metald's RTT resolution (smallest step seen), ms" },
  { key: 'monitor_cpu_s', label: 'liveness monitor, 1,000 instances, 10 s interval: CPU s' },
  { key: 'monitor_window_s', label: '  over a window of, s' },
  { key: 'monitor_cpu_pct', label: '  % of one core' },
  { key: 'monitor_sweeps', label: '  sweeps ended in the window' },
  { key: 'monitor_sweep_s', label: '  last sweep, s' },
  { key: 'monitor_probes', label: '  addresses probed' },
] as const;

export type IcmpKey = (typeof ICMP_FIGURES)[number]['key'];

export const ICMP_TARGETS: readonly { text: string; key: IcmpKey; atMost?: number; atLeast?: number; below?: number }[] = [
  { text: 'sweep wall time within 1.05x of fping on the same targets', key: 'sweep_ratio', atMost: 1.05 },
  { text: 'identical verdicts to fping (differences: 0)', key: 'verdict_differences', atMost: 0 },
  { text: 'zero misattributed replies', key: 'misattributed', atMost: 0 },
  { text: 'at least 10,000 probes/s sustained', key: 'probes_per_s', atLeast: 10_000 },
  { text: "RTTs agree with fping's within 0.2 ms on the namespace hosts", key: 'rtt_max_diff_ms', atMost: 0.2 },
  { text: 'RTTs to 0.1 ms or better', key: 'rtt_resolution_ms', atMost: 0.1 },
  { text: 'liveness monitor at 1,000 instances, 10 s interval: < 2% of one core', key: 'monitor_cpu_pct', below: 2 },
];

/** Each target against its figure; a figure not measured is `n/a`, never PASS. */
export function evaluateIcmpTargets(r: IcmpResults): { text: string; shown: string; verdict: 'PASS' | 'FAIL' | 'n/a' }[] {
  return ICMP_TARGETS.map((t) => {
    const v = r.figures[t.key];
    if (v === undefined || !Number.isFinite(v)) return { text: t.text, shown: 'not measured', verdict: 'n/a' };
    const pass = t.atMost !== undefined ? v <= t.atMost : t.atLeast !== undefined ? v >= t.atLeast : v < (t.below as number);
    return { text: t.text, shown: fmt(v), verdict: pass ? 'PASS' : 'FAIL' };
  });
}

export function formatIcmpReport(r: IcmpResults): string {
  const rows = [['figure', 'value'], ...ICMP_FIGURES.map((f) => [f.label, r.figures[f.key] === undefined ? '-' : fmt(r.figures[f.key]!)])];
  const out = [
    `metald ICMP bench (engine ${r.engine ?? 'none'}, next to ${r.fping ?? 'no fping'}; ${String(r.targets)} targets, ${String(r.silent)} silent; ${fmt(r.elapsedS)} s)`,
    '',
    table(rows),
  ];
  if (r.notes.length > 0) out.push('', 'notes:', ...r.notes.map((n) => `  ${n}`));
  out.push('', 'targets:', table(evaluateIcmpTargets(r).map((t) => [`  ${t.text}`, t.shown, t.verdict])));
  return out.join('\n');
}
