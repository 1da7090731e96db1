/** The bench's argument parsing, target evaluation, report formatting and WAL commit count (not the bench itself). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import { parseArgs, UsageError } from '../../scripts/bench/args.js';
import { addressOf } from '../../scripts/bench/fleet.js';
import { walCommits } from '../../scripts/bench/probes.js';
import { comparison, evaluateTargets, fmt, formatReport, type BenchResults, type SizeResult } from '../../scripts/bench/report.js';

describe('parseArgs', () => {
  test('defaults: the issue sizes, no soak (npm run bench:soak), one default interval of idle', () => {
    const o = parseArgs([]);
    expect(o.sizes).toEqual([10, 100, 1000, 2000]);
    expect([o.soakS, o.idleS, o.fullUpTo, o.out, o.soakOnly, o.powerOnly, o.help]).toEqual([0, 30, 1000, 'bench-results.json', false, false, false]);
  });

  test('--power-only runs the CPU-per-power-operation figures alone', () => {
    expect(parseArgs(['--power-only', '--sizes', '1000'])).toMatchObject({ powerOnly: true, soakOnly: false, sizes: [1000] });
  });

  test('--soak-only (npm run bench:soak) runs the heap soak alone', () => {
    expect(parseArgs(['--soak-only', '--sizes', '1000', '--soak', '600'])).toMatchObject({ soakOnly: true, sizes: [1000], soakS: 600 });
  });

  test('sizes are sorted and deduplicated; --soak 600 is the issue soak', () => {
    const o = parseArgs(['--sizes', '1000, 10,100,10', '--soak', '600', '--out', '/tmp/x.json']);
    expect(o.sizes).toEqual([10, 100, 1000]);
    expect(o.soakS).toBe(600);
    expect(o.out).toBe('/tmp/x.json');
  });

  test.each([
    [['--sizes', '10,abc'], '--sizes: "abc" is not a whole number'],
    [['--sizes', '0'], '--sizes: 0 is outside 1..5000'],
    [['--soak'], '--soak needs a value'],
    [['--soak', '--idle', '3'], '--soak needs a value'],
    [['--idle', '-1'], '--idle: "-1" is not a whole number'],
    [['--load', '61'], '--load: 61 is outside 1..60'],
    [['--out'], '--out needs a file name'],
    [['--fast'], 'unknown option "--fast"'],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(new UsageError(message));
  });
});

function size(n: number, figures: SizeResult['figures'], subset = false): SizeResult {
  return { n, subset, figures, notes: {} };
}
function results(sizes: SizeResult[]): BenchResults {
  return { startedAt: '2026-01-01T00:00:00.000Z', node: 'v20', cpus: 2, peer: { rps: 10000, rss: 55, ready: 0.2 }, soakS: 60, sizes, elapsedS: 100 };
}
const verdict = (r: BenchResults, text: string) => evaluateTargets(r).find((t) => t.text.startsWith(text));

describe('targets', () => {
  test('a "below" target passes under its limit and fails at it', () => {
    const pass = results([size(1000, { liveness_loop_max_ms: 19.9 })]);
    const fail = results([size(1000, { liveness_loop_max_ms: 20 })]);
    expect(verdict(pass, 'loop delay max through a liveness')).toMatchObject({ verdict: 'PASS', measured: 19.9 });
    expect(verdict(fail, 'loop delay max through a liveness')).toMatchObject({ verdict: 'FAIL', measured: 20 });
  });

  test('the figure is read at the target size, not another', () => {
    // The RSS targets read the idle figure, not the one 0.5 s after ready.
    const r = results([size(100, { rss_idle_mib: 79, rss_mib: 90 }), size(1000, { rss_idle_mib: 130, rss_mib: 100 })]);
    expect(verdict(r, 'idle RSS < 80 MiB at 100')?.verdict).toBe('PASS');
    expect(verdict(r, 'idle RSS < 120 MiB at 1,000')?.verdict).toBe('FAIL');
  });

  test('idle fsyncs: exactly 0 passes, anything more fails', () => {
    expect(verdict(results([size(1000, { idle_commits_per_s: 0 })]), 'idle fsyncs')?.verdict).toBe('PASS');
    expect(verdict(results([size(1000, { idle_commits_per_s: 0.1 })]), 'idle fsyncs')?.verdict).toBe('FAIL');
  });

  test('a slowdown target compares the rate at N=10 with the rate at 1,000', () => {
    const ok = results([size(10, { creates_per_s: 120 }), size(1000, { creates_per_s: 100 })]);
    const slow = results([size(10, { creates_per_s: 203 }), size(1000, { creates_per_s: 37 })]);
    expect(verdict(ok, 'creates/s')).toMatchObject({ verdict: 'PASS', measured: 1.2, shown: '1.2x slower' });
    expect(verdict(slow, 'creates/s')?.verdict).toBe('FAIL');
  });

  test("the list's slowdown compares each size's rate over the peer measured next to it", () => {
    // The machine slowed by a third between the sizes (the peer with it): a page at 1,000 as fast, relatively.
    const drift = results([size(10, { list_rps: 12000, peer_rps: 36000 }), size(1000, { list_rps: 7800, peer_rps: 24000 })]);
    expect(verdict(drift, 'list page of 100 at 1,000 within 1.5x of N=10')).toMatchObject({ verdict: 'PASS', shown: '1.03x slower' });
    const slow = results([size(10, { list_rps: 12000, peer_rps: 36000 }), size(1000, { list_rps: 7800, peer_rps: 36000 })]);
    expect(verdict(slow, 'list page of 100 at 1,000 within 1.5x of N=10')).toMatchObject({ verdict: 'FAIL', shown: '1.54x slower' });
  });

  test('a peer share target divides by the peer measured in the same run', () => {
    const r = results([size(1000, { status_rps: 4300 })]);
    expect(verdict(r, 'status reads')).toMatchObject({ verdict: 'PASS', shown: '43% of peer' });
    r.peer.rps = 21500;
    expect(verdict(r, 'status reads')).toMatchObject({ verdict: 'FAIL', shown: '20% of peer' });
  });

  test('the peer req/s measured next to the size is preferred to the run start one', () => {
    const r = results([size(1000, { status_rps: 4300, peer_rps: 8600 })]);
    expect(verdict(r, 'status reads')).toMatchObject({ verdict: 'PASS', shown: '50% of peer' });
    expect(comparison(r, 'status_rps', 'rps')).toBe('0.5x peer @1000');
  });

  test('a figure not measured is n/a, never PASS', () => {
    const r = results([size(10, { creates_per_s: 100 })]);
    expect(evaluateTargets(r).map((t) => t.verdict)).toEqual(evaluateTargets(r).map(() => 'n/a'));
  });
});

describe('report', () => {
  test('fmt: three significant figures, thousands grouped', () => {
    expect([fmt(0), fmt(0.012345), fmt(2.06), fmt(11.04), fmt(305.4), fmt(4633.2)]).toEqual(['0', '0.0123', '2.06', '11', '305', '4,633']);
  });

  test('comparison: N-growth from the smallest size to 1,000, peer ratio where a peer exists; subsets left out', () => {
    const r = results([size(10, { liveness_sweep_ms: 5, status_rps: 9800 }), size(1000, { liveness_sweep_ms: 11000, status_rps: 4300 }), size(2000, { liveness_sweep_ms: 44000 }, true)]);
    expect(comparison(r, 'liveness_sweep_ms', null)).toBe('x2,200 1000/10');
    expect(comparison(r, 'status_rps', 'rps')).toBe('0.43x peer @1000');
    expect(comparison(r, 'power_sync_ms', null)).toBe('-');
  });

  test('the table has a column per size (subsets starred), each figure, and every target with its verdict', () => {
    const r = results([size(10, { power_sync_ms: 12 }), size(1000, { power_sync_ms: 305, power_sync_loop_max_ms: 300 }), size(2000, { power_sync_ms: 610 }, true)]);
    r.sizes[1]!.notes.list_rps = 'limit=100 not honoured';
    const text = formatReport(r);
    const row = text.split('\n').find((l) => l.startsWith('power-sync sweep, ms'));
    expect(row?.split(/\s{2,}/)).toEqual(['power-sync sweep, ms', '12', '305', '610', 'x25.4 1000/10']);
    expect(text).toMatch(/N=10\s+N=1,000\s+N=2,000\*/);
    expect(text).toContain('* subset: sweeps, start to ready and RSS only');
    expect(text).toContain('N=1000 list_rps: limit=100 not honoured');
    expect(text).toMatch(/loop delay max through a power sync < 20 ms at 1,000\s+300\s+FAIL/);
    expect(text.match(/ (PASS|FAIL|n\/a)$/gm)).toHaveLength(evaluateTargets(r).length);
  });
});

describe('probes', () => {
  test('walCommits counts the committed transactions of the current WAL generation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-wal-'));
    try {
      const db = new Database(join(dir, 'x.db'));
      db.pragma('journal_mode = WAL');
      db.pragma('wal_autocheckpoint = 0');
      db.exec('CREATE TABLE t (v TEXT)');
      const before = walCommits(join(dir, 'x.db-wal'));
      const insert = db.prepare('INSERT INTO t VALUES (?)');
      for (let i = 0; i < 3; i++) insert.run('x'.repeat(5000));
      db.transaction(() => {
        insert.run('a');
        insert.run('b');
      })();
      const after = walCommits(join(dir, 'x.db-wal'));
      expect(after.salt).toBe(before.salt);
      expect(after.commits - before.commits).toBe(4);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('fleet addresses skip .0 and .255 and stay unique', () => {
    const addrs = Array.from({ length: 2100 }, (_, i) => addressOf(i + 1));
    expect(new Set(addrs).size).toBe(addrs.length);
    expect(addrs.some((a) => /\.(0|255)$/.test(a))).toBe(false);
    expect([addressOf(1), addressOf(253), addressOf(254)]).toEqual(['127.16.0.2', '127.16.0.254', '127.16.1.1']);
  });
});
