/**
 * What the outbox policy costs at 1,000,000 entries (docs/protocol.md, "The outbox policy"): the counters' scan at
 * open, migration 8's index rebuild, an append's cost, the fold after the append that
 * goes over the bound, and the background steps down to 90% (each step's time is the longest the loop is held).
 * Run: `npx tsc -p tsconfig.build.json && node dist/scripts/bench/outbox.js [entries]`. Prints JSON; asserts nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { openStore } from '../../agent/store/sqlite.js';
import { ENTRY_BYTES_SQL } from '../../agent/store/outbox.js';

const N = Number(process.argv[2] ?? 1_000_000);
const NODES = 1000;
const nodeId = (i: number) => `1b8c5f0e-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
const instId = (i: number) => `cbce6087-6156-453c-a512-${i.toString(16).padStart(12, '0')}`;

/** A churn-like mix: action events (the bulk), instance state and liveness, node power. */
function entry(n: number): { kind: string; instance_id: string | null; node_id: string; cause: string; data: string } {
  const i = n % NODES;
  switch (n % 10) {
    case 0:
      return { kind: 'node.power', instance_id: null, node_id: nodeId(i), cause: 'poll', data: JSON.stringify({ power_state: 'on' }) };
    case 1:
      return { kind: 'instance.alive', instance_id: instId(i), node_id: nodeId(i), cause: 'monitor', data: JSON.stringify({ alive: n % 4 === 1 }) };
    case 2:
      return { kind: 'instance.state', instance_id: instId(i), node_id: nodeId(i), cause: 'operation', data: JSON.stringify({ state: 'active', previous: 'deploying' }) };
    default:
      return {
        kind: 'action.event',
        instance_id: instId(i),
        node_id: nodeId(i),
        cause: 'operation',
        data: JSON.stringify({ request_id: `req-6f1d2c3b-4a5e-4f60-8b7a-${n.toString(16).padStart(12, '0')}`, event: 'power_on', result: 'Success', tried: ['ipmi'], succeeded: 'ipmi', step: 0 }),
      };
  }
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 100) / 100;
const turn = () => new Promise<void>((r) => setImmediate(r));

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metald-outbox-bench-'));
  const out: Record<string, unknown> = { entries: N };
  try {
    openStore({ dir, agentId: 'bench' }).close();
    const file = path.join(dir, 'metald.db');
    const raw = new Database(file);
    const ins = raw.prepare('INSERT INTO journal (agent_id, seq, at, kind, instance_id, node_id, cause, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    let t0 = performance.now();
    raw.transaction(() => {
      for (let n = 1; n <= N; n++) {
        const e = entry(n);
        ins.run('bench', n, '2026-12-02T14:00:05.900Z', e.kind, e.instance_id, e.node_id, e.cause, e.data);
      }
    })();
    out['fill_ms'] = ms(t0);
    raw.exec('DROP INDEX journal_alive');
    t0 = performance.now();
    raw.exec("CREATE INDEX journal_alive ON journal(agent_id, instance_id, seq) WHERE kind IN ('instance.alive', 'outbox.folded')");
    out['migration_8_index_ms'] = ms(t0);
    const bytes = raw.prepare<[], { b: number }>(`SELECT SUM(${ENTRY_BYTES_SQL}) AS b FROM journal`).get()!.b;
    out['bytes'] = bytes;
    out['mean_entry_bytes'] = Math.round(bytes / N);
    raw.pragma('wal_checkpoint(TRUNCATE)');
    raw.close();

    t0 = performance.now();
    const s = openStore({ dir, agentId: 'bench', outbox: { maxEvents: N + 5000, maxBytes: 2 ** 40 } });
    out['open_ms (counters scan included)'] = ms(t0);
    out['depth_at_open'] = s.outboxDepth();

    // An append's cost (one commit each), under the bound.
    let base = N;
    const appendMean = (count: number) => {
      const t = performance.now();
      for (let k = 0; k < count; k++) {
        const e = entry(++base);
        s.appendJournal({ kind: e.kind as 'node.power', instance_id: e.instance_id, node_id: e.node_id, cause: e.cause, data: JSON.parse(e.data) as Record<string, unknown> });
      }
      return Math.round(((performance.now() - t) / count) * 1000) / 1000;
    };
    appendMean(1000);
    out['append_ms_mean'] = appendMean(4000);
    // Back to the bound, then the append that goes over it.
    const before = s.outboxDepth();
    t0 = performance.now();
    s.setOutboxBounds({ maxEvents: before.events - 1, maxBytes: 2 ** 40 });
    out['first_fold_ms (the sync step(s) to get under the bound)'] = ms(t0);
    out['depth_after_first_fold'] = s.outboxDepth();
    // The background steps: the gap between turns is the time a step held the loop.
    const gaps: number[] = [];
    t0 = performance.now();
    let last = performance.now();
    const goal = (before.events - 1) * 0.9;
    while (s.outboxDepth().events > goal && gaps.length < 100_000) {
      await turn();
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    gaps.sort((a, b) => a - b);
    out['background_to_90pct_ms'] = ms(t0);
    out['background_turns'] = gaps.length;
    out['step_ms_p50'] = Math.round(gaps[Math.floor(gaps.length / 2)]! * 100) / 100;
    out['step_ms_p99'] = Math.round(gaps[Math.floor(gaps.length * 0.99)]! * 100) / 100;
    out['step_ms_max'] = Math.round(gaps[gaps.length - 1]! * 100) / 100;
    out['depth_end'] = s.outboxDepth();
    t0 = performance.now();
    s.trimJournal(Math.floor(N / 2));
    out['trim_half_ms'] = ms(t0);
    s.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

void main();
