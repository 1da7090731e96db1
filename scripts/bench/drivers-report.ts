/**
 * The bench's drivers section (issue 8 point 8), the pure part: its command-line flags (taken out of the bench's argv
 * before the core's parseArgs sees the rest), its figures, its targets and its report. No I/O. The measuring is
 * ./drivers.ts; docs/bench.md says how each figure is measured.
 */
import { count, UsageError } from './args.js';
import { fmt, table } from './report.js';

export interface DriversOptions {
  /** `skip`: not run (the default of `npm run bench`); `also`: after the core sections; `only`: alone. */
  mode: 'skip' | 'also' | 'only';
  /** ipmi_sim BMCs swept (default 50). */
  ipmiBmcs: number;
  /** Emulated Redfish systems swept (default 1,000). */
  redfishSystems: number;
  /** Sweeps measured per daemon run, after its start-up sweep (the median is reported). */
  sweeps: number;
  /** power_sync.concurrency of the "configured concurrency" run (docs/config.md default: 32). */
  concurrency: number;
}

export const DRIVERS_USAGE = `drivers section (issue 8: real BMCs; npm run bench:drivers):
  --drivers-only           only the drivers section (npm run bench:drivers)
  --drivers                the drivers section too, after the core sections (not in the default run: ~1-2 min more)
  --ipmi-bmcs N            ipmi_sim BMCs of the IPMI sweep (default 50; 1..200)
  --redfish-systems N      emulated Redfish systems of the Redfish sweep (default 1000; 1..5000)
  --drivers-sweeps K       sweeps measured per daemon, median reported (default 3; 1..20)
  --drivers-concurrency C  power_sync.concurrency of the concurrent run (default 32, the configured default; 2..1000)`;

const DRIVER_FLAGS = new Set(['--ipmi-bmcs', '--redfish-systems', '--drivers-sweeps', '--drivers-concurrency']);

/**
 * Takes the drivers section's flags out of the bench's argv; `rest` goes to the core's parseArgs.
 * @throws UsageError naming the flag at fault
 */
export function splitDriversArgs(argv: readonly string[]): { drivers: DriversOptions; rest: string[] } {
  const o: DriversOptions = { mode: 'skip', ipmiBmcs: 50, redfishSystems: 1000, sweeps: 3, concurrency: 32 };
  const rest: string[] = [];
  let also = false;
  let only = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--drivers') also = true;
    else if (flag === '--drivers-only') only = true;
    else if (DRIVER_FLAGS.has(flag)) {
      const v = argv[++i];
      if (flag === '--ipmi-bmcs') o.ipmiBmcs = count(flag, v, 1, 200);
      else if (flag === '--redfish-systems') o.redfishSystems = count(flag, v, 1, 5000);
      else if (flag === '--drivers-sweeps') o.sweeps = count(flag, v, 1, 20);
      else o.concurrency = count(flag, v, 2, 1000);
    } else rest.push(flag);
  }
  if (also && only) throw new UsageError('--drivers and --drivers-only: choose one');
  o.mode = only ? 'only' : also ? 'also' : 'skip';
  return { drivers: o, rest };
}

export interface IpmiFigures {
  bmcs: number;
  concurrency: number;
  /** A shell loop of bare ipmitool over the BMCs, one after the other: wall time of one pass, s (median; a pass after each concurrency-1 sweep). */
  loopS: number;
  /** The same loop with metald's ipmitool HOME (drivers/ipmi/home.ts: the one-entry vendor registry), s: the work metald's calls do. */
  loopSameHomeS: number;
  /** metald's power-sync sweep over the same BMCs at power_sync.concurrency 1, s (the daemon's metric, median). */
  metaldC1S: number;
  /** The same at `concurrency`. */
  metaldCS: number;
  /** Status reads each ipmi_sim served per metald sweep, summed over the BMCs (its own counter): `bmcs` when one read a node. */
  peerReadsPerSweep: number;
}

export interface RedfishFigures {
  systems: number;
  concurrency: number;
  /** The start-up sweep (a session login per system included), s. */
  startupSweepS: number;
  /** A later sweep, s (median). */
  sweepS: number;
  /** The daemon's CPU from one sweep's end to the next (the sweep and the idle rest of the interval), s (median). */
  cpuSPerSweep: number;
  /** The daemon's RSS and peak RSS after the sweeps, MiB. */
  rssMiB: number;
  rssPeakMiB: number;
  /** The emulator's own CPU per sweep, s (its /emulator/stats). */
  emulatorCpuSPerSweep: number;
  /** GETs of a System the emulator served per sweep (its per-system counters summed): `systems` when one read a node. */
  peerReadsPerSweep: number;
}

export interface DriversResults {
  startedAt: string;
  ipmi: IpmiFigures | null;
  redfish: RedfishFigures | null;
  /** Why a part is missing. */
  notes: string[];
  elapsedS: number;
}

/** Derived figures of the IPMI comparison. */
export function ipmiRatios(f: IpmiFigures): { ratioC1: number; ratioC: number; addedMsPerCall: number } {
  return { ratioC1: f.metaldC1S / f.loopS, ratioC: f.metaldCS / f.loopS, addedMsPerCall: ((f.metaldC1S - f.loopSameHomeS) / f.bmcs) * 1000 };
}

export interface DriverTargetResult {
  text: string;
  measured: number | null;
  shown: string;
  verdict: 'PASS' | 'FAIL' | 'n/a';
}

/** Issue 8 point 8's targets. */
export function evaluateDriverTargets(r: DriversResults): DriverTargetResult[] {
  const x = r.ipmi ? ipmiRatios(r.ipmi) : null;
  const c = r.ipmi?.concurrency ?? 32;
  const row = (text: string, v: number | null, pass: (v: number) => boolean, shown: (v: number) => string): DriverTargetResult => ({
    text,
    measured: v,
    shown: v === null ? '-' : shown(v),
    verdict: v === null ? 'n/a' : pass(v) ? 'PASS' : 'FAIL',
  });
  return [
    row('metald at concurrency 1 no slower than the bare ipmitool loop', x?.ratioC1 ?? null, (v) => v <= 1, (v) => `${fmt(v)}x loop`),
    row(`metald at concurrency ${c} faster than the bare ipmitool loop`, x?.ratioC ?? null, (v) => v < 1, (v) => `${fmt(v)}x loop`),
    row("metald's added latency per ipmitool call < 10 ms", x?.addedMsPerCall ?? null, (v) => v < 10, (v) => `${fmt(v)} ms`),
  ];
}

export function formatDriversReport(r: DriversResults): string {
  const out = [`metald drivers bench (${r.startedAt}, ${fmt(r.elapsedS)} s)`];
  if (r.ipmi) {
    const f = r.ipmi;
    const x = ipmiRatios(f);
    out.push(
      '',
      `IPMI: power-status sweep of ${f.bmcs} ipmi_sim BMCs (metald: its power sync, timed by the daemon's metald_power_sync_last_sweep_seconds)`,
      table([
        ['case', 'wall s', 'per BMC ms', 'ratio'],
        ['bare ipmitool, shell loop', fmt(f.loopS), fmt((f.loopS / f.bmcs) * 1000), '1x'],
        ["the same loop with metald's ipmitool HOME", fmt(f.loopSameHomeS), fmt((f.loopSameHomeS / f.bmcs) * 1000), `${fmt(f.loopSameHomeS / f.loopS)}x loop`],
        ['metald, concurrency 1', fmt(f.metaldC1S), fmt((f.metaldC1S / f.bmcs) * 1000), `${fmt(x.ratioC1)}x loop`],
        [`metald, concurrency ${f.concurrency}`, fmt(f.metaldCS), fmt((f.metaldCS / f.bmcs) * 1000), `${fmt(x.ratioC)}x loop`],
      ]),
      `metald's added latency per call over bare ipmitool doing the same work (its HOME): ${fmt(x.addedMsPerCall)} ms; status reads the BMCs served per metald sweep: ${fmt(f.peerReadsPerSweep)} (of ${f.bmcs} nodes)`,
    );
  }
  if (r.redfish) {
    const f = r.redfish;
    out.push(
      '',
      `Redfish: power-sync sweep of ${f.systems} emulated systems (one emulator process; concurrency ${f.concurrency})`,
      table([
        ['figure', 'value'],
        ['start-up sweep (logins included), s', fmt(f.startupSweepS)],
        ['sweep, wall s', fmt(f.sweepS)],
        ['  per system, ms', fmt((f.sweepS / f.systems) * 1000)],
        ['daemon CPU per sweep (interval incl.), s', fmt(f.cpuSPerSweep)],
        ['daemon RSS after the sweeps, MiB', fmt(f.rssMiB)],
        ['daemon peak RSS, MiB', fmt(f.rssPeakMiB)],
        ['emulator CPU per sweep, s', fmt(f.emulatorCpuSPerSweep)],
        ['System GETs the emulator served per sweep', fmt(f.peerReadsPerSweep)],
      ]),
    );
  }
  if (r.notes.length) out.push('', 'notes:', ...r.notes.map((n) => `  ${n}`));
  out.push('', 'targets:', table(evaluateDriverTargets(r).map((t) => [`  ${t.text}`, t.shown, t.verdict])));
  return out.join('\n');
}
