/**
 * The bench's drivers section without running it: its flags (taken out of the bench's argv, the rest left to the
 * core's parseArgs), its targets, its report's shape, and how it reads the daemon's /metrics.
 */
import { describe, expect, test } from 'vitest';
import { parseArgs, UsageError } from '../../scripts/bench/args.js';
import { evaluateDriverTargets, formatDriversReport, ipmiRatios, splitDriversArgs, type DriversResults, type IpmiFigures, type RedfishFigures } from '../../scripts/bench/drivers-report.js';
import { median, syncFigures } from '../../scripts/bench/drivers.js';

describe('splitDriversArgs', () => {
  test('defaults: not run (npm run bench stays the core bench), 50 BMCs, 1,000 systems, 3 sweeps, concurrency 32', () => {
    expect(splitDriversArgs([])).toEqual({ drivers: { mode: 'skip', ipmiBmcs: 50, redfishSystems: 1000, sweeps: 3, concurrency: 32 }, rest: [] });
  });

  test('--drivers-only (npm run bench:drivers) and --drivers; the core flags are left for parseArgs', () => {
    const only = splitDriversArgs(['--drivers-only', '--out', 'd.json', '--ipmi-bmcs', '10', '--redfish-systems', '200', '--drivers-sweeps', '5', '--drivers-concurrency', '8']);
    expect(only.drivers).toEqual({ mode: 'only', ipmiBmcs: 10, redfishSystems: 200, sweeps: 5, concurrency: 8 });
    expect(only.rest).toEqual(['--out', 'd.json']);
    expect(parseArgs(only.rest).out).toBe('d.json');
    const also = splitDriversArgs(['--sizes', '10', '--drivers']);
    expect(also.drivers.mode).toBe('also');
    expect(parseArgs(also.rest).sizes).toEqual([10]);
  });

  test.each([
    [['--drivers', '--drivers-only'], '--drivers and --drivers-only: choose one'],
    [['--ipmi-bmcs'], '--ipmi-bmcs needs a value'],
    [['--ipmi-bmcs', '--drivers'], '--ipmi-bmcs needs a value'],
    [['--ipmi-bmcs', '0'], '--ipmi-bmcs: 0 is outside 1..200'],
    [['--redfish-systems', '5001'], '--redfish-systems: 5001 is outside 1..5000'],
    [['--drivers-sweeps', 'x'], '--drivers-sweeps: "x" is not a whole number'],
    [['--drivers-concurrency', '1'], '--drivers-concurrency: 1 is outside 2..1000'],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => splitDriversArgs(argv)).toThrow(new UsageError(message));
  });
});

const ipmi = (o: Partial<IpmiFigures> = {}): IpmiFigures => ({ bmcs: 50, concurrency: 32, loopS: 2, loopSameHomeS: 2, metaldC1S: 1.9, metaldCS: 0.5, peerReadsPerSweep: 50, ...o });
const redfish: RedfishFigures = { systems: 1000, concurrency: 32, startupSweepS: 5.8, sweepS: 1.01, cpuSPerSweep: 0.72, rssMiB: 114, rssPeakMiB: 120, emulatorCpuSPerSweep: 0.57, peerReadsPerSweep: 1000 };
const results = (o: Partial<DriversResults> = {}): DriversResults => ({ startedAt: '2026-01-01T00:00:00.000Z', ipmi: ipmi(), redfish, notes: [], elapsedS: 60, ...o });
const verdicts = (r: DriversResults) => evaluateDriverTargets(r).map((t) => t.verdict);

describe('drivers targets', () => {
  test('ratios and the added latency per call derive from the sweeps', () => {
    expect(ipmiRatios(ipmi({ loopS: 2, loopSameHomeS: 2, metaldC1S: 2.25, metaldCS: 0.5 }))).toEqual({ ratioC1: 1.125, ratioC: 0.25, addedMsPerCall: 5 });
    // The ratios are against the loop as a user runs it; the added latency against the loop doing metald's work.
    expect(ipmiRatios(ipmi({ loopS: 2, loopSameHomeS: 1.5, metaldC1S: 1.75, metaldCS: 0.5 }))).toEqual({ ratioC1: 0.875, ratioC: 0.25, addedMsPerCall: 5 });
  });

  test('metald at concurrency 1 may equal the loop but not exceed it; at its concurrency it must be faster; < 10 ms added', () => {
    expect(verdicts(results({ ipmi: ipmi({ metaldC1S: 2, metaldCS: 1.99 }) }))).toEqual(['PASS', 'PASS', 'PASS']);
    expect(verdicts(results({ ipmi: ipmi({ metaldC1S: 2.01, metaldCS: 2 }) }))).toEqual(['FAIL', 'FAIL', 'PASS']);
    // 0.5 s more over 50 calls: 10 ms each, not under 10.
    expect(verdicts(results({ ipmi: ipmi({ metaldC1S: 2.5 }) }))).toEqual(['FAIL', 'PASS', 'FAIL']);
  });

  test('without the IPMI part every target is n/a, not a pass', () => {
    expect(verdicts(results({ ipmi: null }))).toEqual(['n/a', 'n/a', 'n/a']);
  });
});

describe('drivers report', () => {
  test('the IPMI table (loop, c=1, c=32 with ratios), the added latency, the Redfish figures, the targets', () => {
    const text = formatDriversReport(results({ ipmi: ipmi({ loopS: 2, metaldC1S: 1.9, metaldCS: 0.5 }) }));
    expect(text).toMatch(/^bare ipmitool, shell loop +2 +40 +1x$/m);
    expect(text).toMatch(/^the same loop with metald's ipmitool HOME +2 +40 +1x loop$/m);
    expect(text).toMatch(/^metald, concurrency 1 +1\.9 +38 +0\.95x loop$/m);
    expect(text).toMatch(/^metald, concurrency 32 +0\.5 +10 +0\.25x loop$/m);
    expect(text).toContain("metald's added latency per call over bare ipmitool doing the same work (its HOME): -2 ms");
    expect(text).toMatch(/^sweep, wall s +1\.01$/m);
    expect(text).toMatch(/^daemon CPU per sweep \(interval incl\.\), s +0\.72$/m);
    expect(text).toMatch(/^daemon RSS after the sweeps, MiB +114$/m);
    expect(text).toMatch(/^ {2}metald at concurrency 32 faster than the bare ipmitool loop +0\.25x loop +PASS$/m);
  });

  test('a part that failed is a note, its table absent', () => {
    const text = formatDriversReport(results({ redfish: null, notes: ['redfish: failed: no emulator'] }));
    expect(text).not.toContain('Redfish: power-sync sweep');
    expect(text).toContain('notes:\n  redfish: failed: no emulator');
  });
});

describe('reading the daemon', () => {
  test('syncFigures takes the sweeps counted and the last sweep time out of /metrics text', () => {
    const text = [
      '# HELP metald_power_sync_sweeps_total Power-sync sweeps ended since start.',
      '# TYPE metald_power_sync_sweeps_total counter',
      'metald_power_sync_sweeps_total 4',
      'metald_power_sync_last_sweep_seconds_other 9',
      'metald_power_sync_last_sweep_seconds 1.25',
    ].join('\n');
    expect(syncFigures(text)).toEqual({ sweeps: 4, lastSweepS: 1.25 });
    expect(syncFigures('')).toEqual({ sweeps: NaN, lastSweepS: NaN });
  });

  test('median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
