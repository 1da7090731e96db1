/**
 * The bench's ICMP section (issue 9 point 7), the pure part: its flags (taken out of the bench's argv before the
 * core's parseArgs sees the rest), the verdict comparison with fping, fping's -C output, the figures, the issue's
 * targets and the report. No I/O. The measuring is ./icmp.ts; docs/bench.md says how each figure is measured.
 */
import { parseFpingOutput } from '../../agent/pinger/fping.js';
import { count, UsageError } from './args.js';
import { fmt, table } from './report.js';

export interface IcmpOptions {
  /** `also`: after the core sections; `only`: alone; `skip`: not run (the default until the section is measured). */
  mode: 'skip' | 'also' | 'only';
  /** Sweeps of each (metald, fping), interleaved; the median wall time is reported. */
  reps: number;
  /** The monitor's CPU window, seconds (the issue's: a minute). */
  cpuS: number;
}

export const ICMP_USAGE = `ICMP section (issue 9: the raw-socket engine next to Debian fping; needs root; not yet in the default run):
  --icmp-only       only the ICMP section (about 1.5 minutes)
  --icmp            the ICMP section too, after the core sections
  --icmp-reps K     sweeps of each engine, interleaved, median reported (default 3; 1..20)
  --icmp-cpu S      the liveness monitor's CPU window at 1,000 instances, seconds (default 60; 10..600)`;

/**
 * Takes the ICMP section's flags out of the bench's argv; `rest` goes on to the other sections' parsers.
 * @throws UsageError naming the flag at fault
 */
export function splitIcmpArgs(argv: readonly string[]): { icmp: IcmpOptions; rest: string[] } {
  const o: IcmpOptions = { mode: 'skip', reps: 3, cpuS: 60 };
  const rest: string[] = [];
  let only = false;
  let also = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--icmp-only') only = true;
    else if (flag === '--icmp') also = true;
    else if (flag === '--icmp-reps') o.reps = count(flag, argv[++i], 1, 20);
    else if (flag === '--icmp-cpu') o.cpuS = count(flag, argv[++i], 10, 600);
    else rest.push(flag);
  }
  if (only && also) throw new UsageError('--icmp-only and --icmp: choose one');
  o.mode = only ? 'only' : also ? 'also' : 'skip';
  return { icmp: o, rest };
}

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

export interface IcmpResults {
  /** The engine metald ran ('raw' expected) and why. */
  engine: string | null;
  reason: string | null;
  targets: number;
  silent: number;
  figures: Partial<Record<IcmpKey, number>>;
  /** Why a figure is missing, and the examples of differing verdicts. */
  notes: string[];
  elapsedS: number;
}

export const ICMP_FIGURES = [
  { key: 'sweep_ms', label: 'sweep of 1,024 (10% silent), -t 500 -r 1, metald, ms (median)' },
  { key: 'fping_sweep_ms', label: '  fping -i 0 -B 1 -t 500 -r 1 on the same targets, ms (median)' },
  { key: 'sweep_ratio', label: '  metald / fping, x' },
  { key: 'verdict_differences', label: '  verdicts differing from fping (all sweeps)' },
  { key: 'misattributed', label: '  silent targets called alive (all sweeps)' },
  { key: 'missed', label: '  answering targets called unreachable (all sweeps)' },
  { key: 'engine_bad_replies', label: '  replies the engine refused (source/seq/nonce), count' },
  { key: 'probes_per_s', label: 'sustained probes/s, count mode over 922, packet interval 0' },
  { key: 'probes_received_pct', label: '  replies received, % of probes sent' },
  { key: 'fping_probes_per_s', label: '  fping -c -p -i 0 on the same, probes/s' },
  { key: 'rtt_median_ms', label: 'RTT median over 50 hosts, metald, ms' },
  { key: 'fping_rtt_median_ms', label: '  fping -C on the same hosts, ms' },
  { key: 'rtt_diff_ms', label: '  |median of per-host median differences|, ms' },
  { key: 'monitor_cpu_s', label: 'liveness monitor, 1,000 instances, 10 s interval: CPU s' },
  { key: 'monitor_window_s', label: '  over a window of, s' },
  { key: 'monitor_cpu_pct', label: '  % of one core' },
  { key: 'monitor_sweeps', label: '  sweeps in the window' },
] as const;

export type IcmpKey = (typeof ICMP_FIGURES)[number]['key'];

export const ICMP_TARGETS: readonly { text: string; key: IcmpKey; atMost?: number; atLeast?: number; below?: number }[] = [
  { text: 'sweep wall time within 1.05x of fping on the same targets', key: 'sweep_ratio', atMost: 1.05 },
  { text: 'identical verdicts to fping (differences: 0)', key: 'verdict_differences', atMost: 0 },
  { text: 'zero misattributed replies', key: 'misattributed', atMost: 0 },
  { text: 'at least 10,000 probes/s sustained', key: 'probes_per_s', atLeast: 10_000 },
  { text: "RTTs agree with fping's within 0.2 ms on the namespace hosts", key: 'rtt_diff_ms', atMost: 0.2 },
  { text: 'liveness monitor at 1,000 instances, 10 s interval: < 2% of one core', key: 'monitor_cpu_pct', below: 2 },
];

export function evaluateIcmpTargets(r: IcmpResults): { text: string; shown: string; verdict: 'PASS' | 'FAIL' }[] {
  return ICMP_TARGETS.map((t) => {
    const v = r.figures[t.key];
    if (v === undefined || !Number.isFinite(v)) return { text: t.text, shown: 'not measured', verdict: 'FAIL' };
    const pass = t.atMost !== undefined ? v <= t.atMost : t.atLeast !== undefined ? v >= t.atLeast : v < (t.below as number);
    return { text: t.text, shown: fmt(v), verdict: pass ? 'PASS' : 'FAIL' };
  });
}

export function formatIcmpReport(r: IcmpResults): string {
  const rows = [['figure', 'value'], ...ICMP_FIGURES.map((f) => [f.label, r.figures[f.key] === undefined ? '-' : fmt(r.figures[f.key]!)])];
  const out = [
    `metald ICMP bench (engine ${r.engine ?? 'none'}${r.reason ? `: ${r.reason}` : ''}; ${String(r.targets)} targets, ${String(r.silent)} silent; ${fmt(r.elapsedS)} s)`,
    '',
    table(rows),
  ];
  if (r.notes.length > 0) out.push('', 'notes:', ...r.notes.map((n) => `  ${n}`));
  out.push('', 'targets:', table(evaluateIcmpTargets(r).map((t) => [`  ${t.text}`, t.shown, t.verdict])));
  return out.join('\n');
}
