/**
 * The bench's ICMP section without running it (scripts/bench/icmp-report.ts): its flags, fping 5.1's outputs as
 * the probe child gets them, the verdict comparison, the figures each step's answer gives, the targets
 * and the report. The outputs below are fping 5.1's, copied from runs on this machine.
 */
import { describe, expect, test } from 'vitest';
import type { RawEngineStats } from '../../agent/pinger/raw/engine.js';
import { parseArgs, UsageError } from '../../scripts/bench/args.js';
import { icmpPrerequisites } from '../../scripts/bench/icmp.js';
import {
  compareVerdicts,
  evaluateIcmpTargets,
  formatIcmpReport,
  fpingCountTotals,
  fpingRoundTrips,
  fpingVerdicts,
  median,
  monitorFigures,
  rateFigures,
  resolution,
  rttFigures,
  splitIcmpArgs,
  sweepFigures,
  type IcmpChildOut,
  type IcmpResults,
  type RunOut,
} from '../../scripts/bench/icmp-report.js';

const stats = (o: Partial<RawEngineStats> = {}): RawEngineStats => ({ sent: 0, send_errors: 0, received: 0, late: 0, duplicate: 0, bad: 0, icmp_errors: 0, foreign: 0, undecodable: 0, ...o });
const run = (o: Partial<RunOut> = {}): RunOut => ({ stdout: '', stderr: '', code: 0, ms: 1000, ...o });

describe('splitIcmpArgs', () => {
  test('defaults: the section runs after the core ones (npm run bench), 5 sweeps of each, a 60 s monitor window', () => {
    expect(splitIcmpArgs([])).toEqual({ icmp: { mode: 'also', reps: 5, cpuS: 60 }, rest: [] });
    // --icmp (the section after the core ones) is the default, still accepted.
    expect(splitIcmpArgs(['--icmp']).icmp.mode).toBe('also');
  });

  test('--icmp-only and --no-icmp; the other flags are left for the core parser', () => {
    const only = splitIcmpArgs(['--icmp-only', '--out', 'i.json', '--icmp-reps', '3', '--icmp-cpu', '20']);
    expect(only.icmp).toEqual({ mode: 'only', reps: 3, cpuS: 20 });
    expect(parseArgs(only.rest).out).toBe('i.json');
    expect(splitIcmpArgs(['--sizes', '10', '--no-icmp'])).toEqual({ icmp: { mode: 'skip', reps: 5, cpuS: 60 }, rest: ['--sizes', '10'] });
  });

  test.each([
    [['--icmp-only', '--no-icmp'], '--icmp-only and --no-icmp: choose one'],
    [['--icmp-reps'], '--icmp-reps needs a value'],
    [['--icmp-reps', '0'], '--icmp-reps: 0 is outside 1..20'],
    [['--icmp-cpu', '9'], '--icmp-cpu: 9 is outside 10..600'],
    [['--icmp-cpu', '1m'], '--icmp-cpu: "1m" is not a whole number'],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => splitIcmpArgs(argv)).toThrow(new UsageError(message));
  });
});

describe("fping 5.1's outputs", () => {
  test('verdicts from a sweep (stdout)', () => {
    expect(fpingVerdicts('10.80.0.0 is alive\n10.80.0.9 is unreachable\n')).toEqual(
      new Map([
        ['10.80.0.0', true],
        ['10.80.0.9', false],
      ]),
    );
  });

  test('-C round trips (stderr): a lost probe is "-", a target with none has an empty list, error lines are not targets', () => {
    const stderr = '10.9.9.9: error while sending ping: Network is unreachable\n127.0.0.1 : 0.036 0.042 0.043\n10.9.9.9  : - - -\n10.77.0.11 : 0.051 - 0.047\n';
    expect(fpingRoundTrips(stderr)).toEqual(
      new Map([
        ['127.0.0.1', [0.036, 0.042, 0.043]],
        ['10.9.9.9', []],
        ['10.77.0.11', [0.051, 0.047]],
      ]),
    );
  });

  test('-c summaries (stderr), summed', () => {
    const stderr = '127.0.0.1 : xmt/rcv/%loss = 3/3/0%, min/avg/max = 0.019/0.022/0.023\n127.0.0.2 : xmt/rcv/%loss = 3/2/33%, min/avg/max = 0.006/0.006/0.006\n';
    expect(fpingCountTotals(stderr)).toEqual({ sent: 6, received: 5, targets: 2 });
  });
});

describe('compareVerdicts', () => {
  const targets = ['a', 'b', 'c', 'd'];
  const silent = new Set(['d']);
  const fping = new Map([
    ['a', true],
    ['b', true],
    ['c', true],
    ['d', false],
  ]);

  test('identical verdicts: nothing counted', () => {
    expect(compareVerdicts(targets, new Map(fping), fping, silent)).toEqual({ differences: 0, misattributed: 0, missed: 0, examples: [] });
  });

  test('a silent target called alive is misattributed; an answering one called dead is missed; both differ from fping', () => {
    const ours = new Map([
      ['a', true],
      ['b', false],
      ['c', true],
      ['d', true],
    ]);
    expect(compareVerdicts(targets, ours, fping, silent)).toEqual({
      differences: 2,
      misattributed: 1,
      missed: 1,
      examples: ['b: metald unreachable, fping alive', 'd: metald alive, fping unreachable'],
    });
  });

  test('a target fping did not report, or metald did not, is a difference', () => {
    const ours = new Map([
      ['a', true],
      ['b', true],
      ['d', false],
    ]);
    const theirs = new Map([...fping].filter(([k]) => k !== 'a'));
    const r = compareVerdicts(targets, ours, theirs, silent);
    expect(r.differences).toBe(2);
    expect(r.examples).toEqual(['a: metald alive, fping no verdict', 'c: metald unreachable, fping alive']);
  });
});

describe('sweepFigures', () => {
  const targets = ['10.80.0.0', '10.80.0.1', '10.80.0.9'];
  const silent = ['10.80.0.9'];
  const fpingOut = '10.80.0.0 is alive\n10.80.0.1 is alive\n10.80.0.9 is unreachable\n';
  const right = { '10.80.0.0': true, '10.80.0.1': true, '10.80.0.9': false };
  const sweeps = (reps: { oursMs: number; fpingMs: number; ours?: Record<string, boolean>; code?: number }[]): Extract<IcmpChildOut, { step: 'sweeps' }> => ({
    step: 'sweeps',
    reps: reps.map((r) => ({ oursMs: r.oursMs, ours: r.ours ?? right, fping: run({ stdout: fpingOut, ms: r.fpingMs, code: r.code ?? 1 }) })),
    stats: stats({ received: 6, bad: 2, foreign: 6 }),
  });

  test("the ratio is metald's median over fping's median, of the alternated sweeps", () => {
    const { figures } = sweepFigures(sweeps([{ oursMs: 1100, fpingMs: 1000 }, { oursMs: 1030, fpingMs: 990 }, { oursMs: 1050, fpingMs: 1200 }]), targets, silent);
    expect(figures).toMatchObject({ sweep_ms: 1050, fping_sweep_ms: 1000, verdict_differences: 0, misattributed: 0, missed: 0, fping_wrong: 0 });
    expect(figures.sweep_ratio).toBeCloseTo(1.05, 10);
    expect(figures).toMatchObject({ engine_received: 6, engine_bad_replies: 2, engine_foreign: 6 });
  });

  test('differences are summed over the sweeps and listed in the notes, each with its sweep', () => {
    const wrong = { ...right, '10.80.0.9': true };
    const { figures, notes } = sweepFigures(sweeps([{ oursMs: 1, fpingMs: 1 }, { oursMs: 1, fpingMs: 1, ours: wrong }, { oursMs: 1, fpingMs: 1, ours: wrong }]), targets, silent);
    expect(figures).toMatchObject({ verdict_differences: 2, misattributed: 2, missed: 0 });
    expect(notes.filter((n) => n.startsWith('sweep '))).toEqual(['sweep 2: 10.80.0.9: metald alive, fping unreachable', 'sweep 3: 10.80.0.9: metald alive, fping unreachable']);
  });

  test('an fping run that failed (exit 2: an address not found) is no comparison', () => {
    expect(() => sweepFigures(sweeps([{ oursMs: 1, fpingMs: 1, code: 2 }]), targets, silent)).toThrow(/fping \(sweep\) exited 2/);
  });
});

describe('rateFigures', () => {
  test('probes sent and replies matched per second of the call, and fping -c over its spawn-to-exit time', () => {
    const f = rateFigures({
      step: 'rate',
      ms: 2500,
      sent: 46_100,
      received: 46_000,
      stats: stats(),
      fping: run({ ms: 2000, stderr: '10.80.0.0 : xmt/rcv/%loss = 50/50/0%, min/avg/max = 0.01/0.02/0.03\n10.80.0.1 : xmt/rcv/%loss = 50/49/2%, min/avg/max = 0.01/0.02/0.03\n' }),
    });
    expect(f).toEqual({ probes_per_s: 18_440, replies_per_s: 18_400, probes_received_pct: (46_000 / 46_100) * 100, rate_window_s: 2.5, fping_probes_per_s: 50 });
  });
});

describe('rttFigures', () => {
  test("per host, metald's median minus fping's; the largest |difference| is the figure; a host without round trips is noted", () => {
    const { figures, notes } = rttFigures({
      step: 'rtt',
      fping: run({ stderr: 'h1 : 0.040 0.050 0.060\nh2 : 0.020 - 0.030\nh3 : - - -\n' }),
      ours: { h1: [0.06, 0.07, 0.08], h2: [0.0, 0.015, 0.02], h3: [0.05] },
    });
    // h1: 0.07 - 0.05 = +0.02; h2: 0.015 - 0.025 = -0.01.
    expect(figures.rtt_hosts).toBe(2);
    expect(figures.rtt_max_diff_ms).toBeCloseTo(0.02, 10);
    expect(figures.rtt_median_diff_ms).toBeCloseTo(0.005, 10);
    expect(figures.rtt_resolution_ms).toBe(0.005);
    expect(notes).toContain('rtt: h3: no round trip from fping');
  });

  test('resolution: the smallest step between distinct values', () => {
    expect(resolution([0.1, 0.2, 0.2, 0.4])).toBe(0.1);
    expect(resolution([0.051, 0.052, 0.06])).toBe(0.001);
    expect(resolution([1, 1])).toBeNaN();
    expect(median([3, 1, 2, 10])).toBe(2.5);
  });
});

describe('monitorFigures', () => {
  test('user + system CPU over the window, as % of one core', () => {
    const f = monitorFigures({ step: 'monitor', cpuUserS: 0.5, cpuSystemS: 0.1, windowS: 60, sweeps: 3, lastSweepS: 11.2, probes: 3000, changes: 1000, stats: stats() });
    expect(f).toEqual({ monitor_cpu_s: 0.6, monitor_window_s: 60, monitor_cpu_pct: 1, monitor_sweeps: 3, monitor_sweep_s: 11.2, monitor_probes: 3000 });
  });
});

const results = (figures: IcmpResults['figures'], notes: string[] = []): IcmpResults => ({ engine: 'raw', fping: '/usr/bin/fping 5.1', targets: 1024, silent: 102, figures, notes, elapsedS: 80 });
const passing = { sweep_ratio: 1.05, verdict_differences: 0, misattributed: 0, probes_per_s: 10_000, rtt_max_diff_ms: 0.2, rtt_resolution_ms: 0.1, monitor_cpu_pct: 1.99 };
const verdicts = (f: IcmpResults['figures']) => evaluateIcmpTargets(results(f)).map((t) => t.verdict);

describe('ICMP targets', () => {
  test('each target at its bound passes (1.05x, 0 differences, 0 misattributed, 10,000/s, 0.2 ms, 0.1 ms) and under 2% of a core', () => {
    expect(verdicts(passing)).toEqual(['PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS']);
  });

  test.each([
    ['sweep_ratio', 1.051, 0],
    ['verdict_differences', 1, 1],
    ['misattributed', 1, 2],
    ['probes_per_s', 9_999, 3],
    ['rtt_max_diff_ms', 0.201, 4],
    ['rtt_resolution_ms', 1, 5],
    ['monitor_cpu_pct', 2, 6],
  ] as const)('%s = %d fails its target (and only it)', (key, value, index) => {
    const v = verdicts({ ...passing, [key]: value });
    expect(v[index]).toBe('FAIL');
    expect(v.filter((x) => x === 'FAIL')).toHaveLength(1);
  });

  test('a figure not measured (absent, NaN) is n/a, never PASS', () => {
    expect(verdicts({})).toEqual(Array(7).fill('n/a'));
    expect(verdicts({ ...passing, rtt_max_diff_ms: NaN })[4]).toBe('n/a');
  });
});

describe('where the section cannot run', () => {
  test('not root: it says why, and the report marks every target n/a', () => {
    const why = icmpPrerequisites(1000);
    expect(why).toMatch(/needs root/);
    const text = formatIcmpReport({ ...results({}, [why!]), engine: null, fping: null, targets: 0, silent: 0 });
    expect(text).toContain(why);
    expect(text.split('\n').filter((l) => / n\/a$/.test(l))).toHaveLength(7);
    expect(text).not.toMatch(/PASS/);
  });

  test('as root the root check passes (what else is missing, if anything, is named)', () => {
    expect(icmpPrerequisites(0) ?? '').not.toMatch(/root/);
  });
});
