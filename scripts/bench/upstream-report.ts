/** The upstream section's options, figures, targets and report (./upstream.ts measures). */
import { UsageError } from './args.js';

export interface UpstreamOptions {
  mode: 'also' | 'only' | 'skip';
  latencyS: number;
  rate: number;
  throughputEvents: number;
}

export interface UpstreamResults {
  latency: {
    rate: number;
    events: number;
    p50_ms: number;
    p99_ms: number;
    max_ms: number;
    achieved_rate: number;
    /** Commit to on disk (the barrier the link waits for before it sends). */
    durable_p50_ms: number;
    durable_p99_ms: number;
    /** The disk alone: a 350-byte write then fdatasync, one at a time, in the same run. */
    fdatasync_p50_ms: number;
    fdatasync_p99_ms: number;
  };
  throughput: { events: number; seconds: number; per_s: number; peer_per_s: number; ratio_to_peer: number; max_journal_rows_read_at_once: number };
  notes: string[];
}

export const UPSTREAM_USAGE = `Upstream section (issue 10; runs by default, ~30 s):
  --upstream-only      only the upstream section
  --no-upstream        leave it out
  --upstream-latency S seconds of the 1,000 events/s latency run (default 10)
  --upstream-events N  events of the throughput run (default 100000)`;

export function splitUpstreamArgs(argv: readonly string[]): { upstream: UpstreamOptions; rest: string[] } {
  const o: UpstreamOptions = { mode: 'also', latencyS: 10, rate: 1000, throughputEvents: 100_000 };
  const rest: string[] = [];
  let only = false;
  let none = false;
  const num = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag}: an integer from ${min} to ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--upstream-only') only = true;
    else if (flag === '--no-upstream') none = true;
    else if (flag === '--upstream-latency') o.latencyS = num(flag, argv[++i], 1, 600);
    else if (flag === '--upstream-events') o.throughputEvents = num(flag, argv[++i], 1000, 10_000_000);
    else rest.push(flag);
  }
  if (only && none) throw new UsageError('--upstream-only and --no-upstream: choose one');
  o.mode = only ? 'only' : none ? 'skip' : 'also';
  return { upstream: o, rest };
}

export interface UpstreamTarget {
  name: string;
  figure: string;
  target: string;
  pass: boolean;
}

export function evaluateUpstreamTargets(r: UpstreamResults): UpstreamTarget[] {
  return [
    { name: 'p99 latency, commit to controller receipt, at 1,000 events/s', figure: `${r.latency.p99_ms.toFixed(2)} ms`, target: '< 5 ms', pass: r.latency.p99_ms < 5 },
    { name: 'events/s sustained through the durable outbox', figure: `${Math.round(r.throughput.per_s)}/s`, target: '>= 20,000/s', pass: r.throughput.per_s >= 20_000 },
  ];
}

export function formatUpstreamReport(r: UpstreamResults): string {
  const l = r.latency;
  const t = r.throughput;
  const rows = [
    'Upstream link (metald -> reference controller, loopback)',
    `  latency at ${l.rate}/s (${l.events} events, ${l.achieved_rate.toFixed(0)}/s achieved): p50 ${l.p50_ms.toFixed(2)} ms, p99 ${l.p99_ms.toFixed(2)} ms, max ${l.max_ms.toFixed(2)} ms`,
    `    of which commit to on disk: p50 ${l.durable_p50_ms.toFixed(2)} ms, p99 ${l.durable_p99_ms.toFixed(2)} ms; the disk's fdatasync alone (same run): p50 ${l.fdatasync_p50_ms.toFixed(2)} ms, p99 ${l.fdatasync_p99_ms.toFixed(2)} ms`,
    `  throughput: ${t.events} events in ${t.seconds.toFixed(2)} s = ${Math.round(t.per_s)}/s; bare ws peer ${Math.round(t.peer_per_s)}/s; ratio ${t.ratio_to_peer.toFixed(2)}x`,
    `  journal rows read at once by the link (memory bound): at most ${t.max_journal_rows_read_at_once}`,
    ...evaluateUpstreamTargets(r).map((x) => `  ${x.pass ? 'PASS' : 'FAIL'}  ${x.name}: ${x.figure} (target ${x.target})`),
    ...r.notes.map((n) => `  note: ${n}`),
  ];
  return rows.join('\n');
}
