/** The upstream bench section's arguments, targets and report (scripts/bench/upstream-report.ts). */
import { describe, expect, test } from 'vitest';
import { UsageError } from '../../scripts/bench/args.js';
import { evaluateUpstreamTargets, formatUpstreamReport, splitUpstreamArgs, type UpstreamResults } from '../../scripts/bench/upstream-report.js';

const results = (p99: number, perS: number): UpstreamResults => ({
  latency: { rate: 1000, events: 10_000, p50_ms: 0.5, p99_ms: p99, max_ms: 20, achieved_rate: 1000, durable_p50_ms: 0.3, durable_p99_ms: 2, fdatasync_p50_ms: 0.2, fdatasync_p99_ms: 1 },
  throughput: { events: 100_000, seconds: 100_000 / perS, per_s: perS, peer_per_s: 30_000, ratio_to_peer: perS / 30_000, max_journal_rows_read_at_once: 500 },
  notes: [],
});

describe('splitUpstreamArgs', () => {
  test('runs by default; --upstream-only and --no-upstream choose; its own flags are taken, the rest passed on', () => {
    expect(splitUpstreamArgs(['--sizes', '10']).upstream.mode).toBe('also');
    expect(splitUpstreamArgs(['--sizes', '10']).rest).toEqual(['--sizes', '10']);
    expect(splitUpstreamArgs(['--upstream-only']).upstream.mode).toBe('only');
    expect(splitUpstreamArgs(['--no-upstream']).upstream.mode).toBe('skip');
    const o = splitUpstreamArgs(['--upstream-latency', '3', '--upstream-events', '5000']).upstream;
    expect([o.latencyS, o.throughputEvents, o.rate]).toEqual([3, 5000, 1000]);
  });
  test('bad values are usage errors', () => {
    expect(() => splitUpstreamArgs(['--upstream-only', '--no-upstream'])).toThrow(UsageError);
    expect(() => splitUpstreamArgs(['--upstream-latency', '0'])).toThrow(/--upstream-latency/);
    expect(() => splitUpstreamArgs(['--upstream-events', 'many'])).toThrow(/--upstream-events/);
  });
});

describe('upstream targets', () => {
  test('p99 under 5 ms at 1,000 events/s and at least 20,000 events/s', () => {
    expect(evaluateUpstreamTargets(results(4.9, 20_000)).map((t) => t.pass)).toEqual([true, true]);
    expect(evaluateUpstreamTargets(results(5, 19_999)).map((t) => t.pass)).toEqual([false, false]);
  });
  test('the report prints each figure and each verdict', () => {
    const r = formatUpstreamReport(results(4.2, 25_000));
    expect(r).toMatch(/p99 4\.20 ms/);
    expect(r).toMatch(/25000\/s; bare ws peer 30000\/s; ratio 0\.83x/);
    expect(r).toMatch(/PASS {2}p99 latency/);
    expect(r).toMatch(/disk's fdatasync alone \(same run\): p50 0\.20 ms, p99 1\.00 ms/);
  });
});
