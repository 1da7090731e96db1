/**
 * The upstream section of `npm run bench` (issue 10): events from their commit in metald's store (the outbox) to
 * their receipt by the reference controller (a child process, `--timing`), on loopback. This process holds the
 * agent side: a store and an UpstreamLink, exactly as the daemon wires them; the journal entries are appended as a
 * state change appends them (one transaction each). The peer: a bare `ws` client sending the same events, already
 * serialised, to the same controller as fast as its socket takes them (no store, no durability wait).
 *
 * - latency: 1,000 events/s for `latencyS` seconds, one commit per event; each event's receipt time minus the time
 *   its commit returned; p50 / p99 / max.
 * - throughput: `throughputEvents` events appended in commits of 500 (one per loop turn) while the link streams;
 *   from the first commit to the receipt of the last event.
 */
import { spawn } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import WebSocket from 'ws';
import { systemClock } from '../../agent/ports.js';
import { openStore, type SqliteStore } from '../../agent/store/sqlite.js';
import { StoreHello } from '../../agent/upstream/hello.js';
import { UpstreamLink } from '../../agent/upstream/link.js';
import { PROTOCOL_VERSION, type Hello } from '../../agent/upstream/protocol.js';
import type { UpstreamOptions, UpstreamResults } from './upstream-report.js';

const CONTROLLER = resolve(import.meta.dirname, '../controller/main.js');
const TOKEN = 'bench-upstream-token-0123456789';
const INSTANCE = 'cbce6087-6156-453c-a512-60bf3d75d69f';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

interface Ctl {
  port: number;
  lines(): Record<string, unknown>[];
  stop(): Promise<void>;
}

/** The reference controller with --timing, its stdout in a file (so this process spends no CPU reading it meanwhile). */
async function startController(dir: string): Promise<Ctl> {
  const port = await freePort();
  const out = join(dir, `ctl-${port}.out`);
  const fd = openSync(out, 'w');
  writeFileSync(join(dir, 'tokens'), `${TOKEN}\n`);
  const child = spawn(process.execPath, [CONTROLLER, '--listen', `127.0.0.1:${port}`, '--db', join(dir, 'ctl.db'), '--token-file', join(dir, 'tokens'), '--timing', '--idle-close', '0'], {
    stdio: ['ignore', fd, 'inherit'],
  });
  closeSync(fd);
  // Read on from where the last call stopped, complete lines only (the controller may be writing the last one).
  const seen: Record<string, unknown>[] = [];
  let offset = 0;
  const lines = () => {
    const buf = readFileSync(out);
    const lastNl = buf.lastIndexOf(10);
    if (lastNl >= offset) {
      for (const l of buf.subarray(offset, lastNl).toString('utf8').split('\n')) if (l !== '') seen.push(JSON.parse(l) as Record<string, unknown>);
      offset = lastNl + 1;
    }
    return seen;
  };
  const end = Date.now() + 10_000;
  while (!lines().some((l) => l.what === 'listening')) {
    if (Date.now() > end || child.exitCode !== null) throw new Error('the reference controller did not start (is dist/ built?)');
    await sleep(20);
  }
  return {
    port,
    lines,
    stop: async () => {
      if (child.exitCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    },
  };
}

const eventData = (seq: number) => ({ power_state: seq % 2 === 0 ? 'on' : 'off' });

/** Appends one instance.power entry in its own transaction (as a state change does); returns when its commit returned. */
function appendOne(store: SqliteStore, seq: number): number {
  store.transaction(() => store.appendJournal({ kind: 'instance.power', instance_id: INSTANCE, node_id: null, cause: 'bench', data: eventData(seq) }));
  return now();
}

/** Waits until the controller printed the event of `seq`, then every event line's receipt time by seq. */
async function receipts(ctl: Ctl, agentId: string, lastSeq: number, timeoutMs: number): Promise<Map<number, number>> {
  const end = Date.now() + timeoutMs;
  const got = new Map<number, number>();
  let read = 0;
  for (;;) {
    const all = ctl.lines();
    for (; read < all.length; read++) {
      const l = all[read]!;
      if (l.what === 'event' && l.agent_id === agentId) got.set(l.seq as number, l.received_ms as number);
    }
    if (got.has(lastSeq)) return got;
    if (Date.now() > end) throw new Error(`the controller did not receive seq ${lastSeq} in ${timeoutMs} ms (has ${got.size})`);
    await sleep(100);
  }
}

/**
 * The disk's own floor, measured in the same run: 1,000 appends of 350 bytes each followed by an fdatasync, one at
 * a time (what one event's durability costs without any sharing).
 */
function fdatasyncFloor(file: string): { fdatasync_p50_ms: number; fdatasync_p99_ms: number } {
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(350, 0x61);
  const lat: number[] = [];
  try {
    for (let i = 0; i < 1000; i++) {
      writeSync(fd, buf);
      const t = performance.now();
      fdatasyncSync(fd);
      lat.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
  }
  lat.sort((a, b) => a - b);
  return { fdatasync_p50_ms: pct(lat, 50), fdatasync_p99_ms: pct(lat, 99) };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** The peer: a bare ws client sending `n` prebuilt events after a hello, paced only by its socket. */
async function peerThroughput(ctl: Ctl, n: number): Promise<number> {
  const agentId = 'bench-peer';
  const ws = new WebSocket(`ws://127.0.0.1:${ctl.port}/`, { headers: { authorization: `Bearer ${TOKEN}` }, perMessageDeflate: false });
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  const hello: Hello = {
    type: 'hello', version: PROTOCOL_VERSION, agent_id: agentId, store_id: '0f6c2d9e-8a4b-4c1d-9e2f-3a5b7c9d1e2f', agent_version: 'peer', generation: 0, outbox_first_seq: 1,
    inventory: { hostname: 'peer', os: { platform: 'linux', distro: null, release: null, kernel: null, arch: 'x64' }, system: { manufacturer: null, model: null, serial: null, uuid: null }, cpu: { brand: null, cores: 2, physical_cores: null }, memory_bytes: 0, interfaces: [] },
    snapshot: { seq: 0, taken_at: new Date().toISOString(), nodes: [], instances: [] },
  };
  const welcomed = new Promise<void>((res) => ws.once('message', () => res()));
  ws.send(JSON.stringify(hello));
  await welcomed;
  const at = new Date().toISOString();
  const frames = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ type: 'event', version: 1, agent_id: agentId, seq: i + 1, at, kind: 'instance.power', instance_id: INSTANCE, node_id: null, cause: 'bench', data: eventData(i + 1) }),
  );
  const t0 = now();
  for (const f of frames) {
    ws.send(f);
    while (ws.bufferedAmount > 1 << 20) await new Promise((r) => setImmediate(r));
  }
  const got = await receipts(ctl, agentId, n, 120_000);
  const last = got.get(n)!;
  ws.close();
  return n / ((last - t0) / 1000);
}

export async function runUpstream(o: UpstreamOptions, log: (m: string) => void): Promise<UpstreamResults> {
  const dir = mkdtempSync(join(tmpdir(), 'metald-bench-up-'));
  const notes: string[] = [];
  const ctl = await startController(dir);
  const agentId = 'bench-agent';
  const store = openStore({ dir: join(dir, 'state'), agentId });
  // What the link reads from the journal at once: the bench checks that memory does not grow with the backlog.
  let maxRead = 0;
  const counted = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'readJournal') {
        return (from: number, limit: number) => {
          const rows = target.readJournal(from, limit);
          maxRead = Math.max(maxRead, rows.length);
          return rows;
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const link = new UpstreamLink({
    url: `ws://127.0.0.1:${ctl.port}/v1/agents`,
    ca: null,
    token: () => TOKEN,
    agentId,
    store: counted,
    hello: new StoreHello({ store, agentId, agentVersion: 'bench', clock: systemClock, inventory: async () => (await import('../../agent/upstream/hello.js')).minimalInventory() }),
    commands: { handle: () => Promise.reject(new Error('the bench sends no command')) },
    log: pino({ level: 'silent' }),
    clock: systemClock,
  });
  try {
    const streaming = link.whenStreaming();
    link.start();
    await streaming;

    // Latency at a steady rate: each tick appends the events due by then, one commit each.
    log(`upstream: latency at ${o.rate} events/s for ${o.latencyS} s`);
    const total = Math.round(o.rate * o.latencyS);
    const committed = new Map<number, number>();
    const durableAt = new Map<number, number>();
    const t0 = now();
    let seq = store.lastSeq();
    const first = seq + 1;
    while (seq - first + 1 < total) {
      const due = Math.min(total, Math.floor(((now() - t0) / 1000) * o.rate));
      while (seq - first + 1 < due) {
        seq += 1;
        const s = seq;
        committed.set(s, appendOne(store, s));
        // When this commit is on disk (the barrier the link waits for before it sends).
        const d = store.durable();
        if (d === null) durableAt.set(s, now());
        else void d.then(() => durableAt.set(s, now()));
      }
      await sleep(1);
    }
    const elapsed = (now() - t0) / 1000;
    const got = await receipts(ctl, agentId, seq, 30_000);
    const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
    const lat = sorted([...committed].map(([s, c]) => got.get(s)! - c));
    const toDisk = sorted([...committed].map(([s, c]) => durableAt.get(s)! - c));
    const latency = {
      rate: o.rate,
      events: total,
      p50_ms: pct(lat, 50),
      p99_ms: pct(lat, 99),
      max_ms: lat[lat.length - 1]!,
      achieved_rate: total / elapsed,
      durable_p50_ms: pct(toDisk, 50),
      durable_p99_ms: pct(toDisk, 99),
      ...fdatasyncFloor(join(dir, 'fsync-probe')),
    };

    // Throughput through the durable outbox: commits of 500, one per loop turn, the link streaming meanwhile.
    log(`upstream: throughput, ${o.throughputEvents} events`);
    maxRead = 0;
    const tStart = now();
    const from = store.lastSeq() + 1;
    const to = from + o.throughputEvents - 1;
    for (let s = from; s <= to; ) {
      const end = Math.min(to, s + 499);
      store.transaction(() => {
        for (let k = s; k <= end; k++) store.appendJournal({ kind: 'instance.power', instance_id: INSTANCE, node_id: null, cause: 'bench', data: eventData(k) });
      });
      s = end + 1;
      await new Promise((r) => setImmediate(r));
    }
    const got2 = await receipts(ctl, agentId, to, 120_000);
    const seconds = (got2.get(to)! - tStart) / 1000;
    log('upstream: peer (bare ws client, same controller, same events)');
    const peer = await peerThroughput(ctl, o.throughputEvents);
    const perS = o.throughputEvents / seconds;
    const throughput = { events: o.throughputEvents, seconds, per_s: perS, peer_per_s: peer, ratio_to_peer: perS / peer, max_journal_rows_read_at_once: maxRead };
    if (latency.achieved_rate < o.rate * 0.95) notes.push(`the producer reached ${latency.achieved_rate.toFixed(0)} events/s of ${o.rate}`);
    return { latency, throughput, notes };
  } finally {
    await link.stop();
    store.close();
    await ctl.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

