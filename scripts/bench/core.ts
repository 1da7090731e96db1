/**
 * The measurements of one fleet size N: in-process (buildAgent, fake lab, inject) for the sweeps and creates, the
 * real daemon as a child process for the process-level figures (RSS, idle CPU, commits, req/s, start to ready, CPU
 * per power operation, heap). Each writes its figures (or a note saying why not) into `res`.
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { createLogger } from '../../agent/log.js';
import { buildAgent } from '../../agent/build-agent.js';
import { loadConfigFile } from '../../agent/config/load.js';
import type { BenchOptions } from './args.js';
import { call, spawnDaemon, spawnPeer, type Child } from './daemon.js';
import { DEFAULT_INTERVALS, DEMO_INTERVALS, IMAGE, MEMBER_TOKEN, PROJECT, writeFleet, type Fleet, type FleetOptions } from './fleet.js';
import { CommitCounter, cpuMs, loadGet, rssMiB, sleep, withLoopDelay } from './probes.js';
import type { SizeResult } from './report.js';

/** Free nodes of the create and in-flight fleets: 30 creates fill them. */
export const CREATES = 30;
/** The idle window (CPU, commits, RSS) opens this long after ready. */
export const IDLE_RSS_AT_S = 15;
const CONCURRENCY = 10;
/** The first liveness tick comes this long after start. */
const SWEEP_INTERVAL_MS = 3000;

const walOf = (stateDir: string) => join(stateDir, 'metald.db-wal');

async function inProcessAgent(opts: FleetOptions) {
  const fleet = writeFleet({ ...opts, logLevel: 'warn' });
  const agent = await buildAgent(loadConfigFile(fleet.configPath), { log: pino({ level: 'silent' }) });
  // A first start: the loop's delay from the moment the API would listen (the config's nodes are enrolled before)
  // through the first power reads and the adoptions they complete.
  const h = monitorEventLoopDelay({ resolution: 1 });
  await agent.start({
    listen: async () => {
      h.enable();
    },
  });
  h.disable();
  const startDelay = { maxMs: h.max / 1e6 };
  return {
    fleet,
    agent,
    startDelay,
    async close() {
      await agent.stop();
      rmSync(fleet.dir, { recursive: true, force: true });
    },
  };
}

/** The sweeps at N adopted nodes: one liveness sweep (its first tick) and one power sync, with the loop's delay. */
export async function measureSweeps(n: number, res: SizeResult): Promise<void> {
  const a = await inProcessAgent({ adopted: n, free: 0, intervals: { power_sync: '1h', liveness: `${SWEEP_INTERVAL_MS}ms` } });
  try {
    const due = performance.now() + SWEEP_INTERVAL_MS;
    await sleep(SWEEP_INTERVAL_MS - 400);
    // Busy fraction of an idle slice, subtracted from the sweep's window.
    const b0 = performance.eventLoopUtilization();
    await sleep(200);
    const baseline = performance.eventLoopUtilization(b0).utilization;
    const sweep = await withLoopDelay(async () => {
      const e0 = performance.eventLoopUtilization();
      // Ends at the first idle 25 ms slice after the tick (a blocking sweep delays the slice's timer).
      for (;;) {
        const s0 = performance.eventLoopUtilization();
        await sleep(25);
        const slice = performance.eventLoopUtilization(s0);
        if (performance.now() > due + 100 && slice.utilization < 0.2) break;
        if (performance.now() > due + 300_000) throw new Error('no idle slice 5 minutes after the liveness tick');
      }
      const e = performance.eventLoopUtilization(e0);
      return Math.max(0, e.active - baseline * e.idle);
    });
    res.figures.start_loop_max_ms = a.startDelay.maxMs;
    res.figures.liveness_sweep_ms = sweep.value;
    res.figures.liveness_loop_max_ms = sweep.delay.maxMs;
    res.figures.liveness_loop_p99_ms = sweep.delay.p99Ms;

    const commits = new CommitCounter(walOf(a.fleet.stateDir), 20);
    const ps = await withLoopDelay(() => a.agent.engine.powerSyncOnce());
    res.figures.power_sync_ms = ps.wallMs;
    res.figures.power_sync_loop_max_ms = ps.delay.maxMs;
    res.figures.power_sync_loop_p99_ms = ps.delay.p99Ms;
    res.figures.power_sync_commits = commits.stop();
  } finally {
    await a.close();
  }
}

/** `count` calls of `fn` with `concurrency` in flight; the statuses. */
async function concurrently<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

const createBody = (i: number) => ({ name: `bench-${i}`, image_uuid: IMAGE });

/** Creates accepted per second through POST (inject, c=10) filling the free nodes of N adopted + 30 free. */
export async function measureCreates(n: number, res: SizeResult): Promise<void> {
  const a = await inProcessAgent({ adopted: n, free: CREATES, intervals: { power_sync: '1h', liveness: '1h' } });
  try {
    const t0 = performance.now();
    const statuses = await concurrently(CREATES, CONCURRENCY, async (i) => {
      const r = await a.agent.api.inject({ method: 'POST', url: `/v1/${PROJECT}/instances`, headers: { 'x-auth-token': MEMBER_TOKEN }, payload: createBody(i) });
      return r.statusCode;
    });
    const s = (performance.now() - t0) / 1000;
    const ok = statuses.filter((c) => c === 201).length;
    res.figures.creates_per_s = ok / s;
    if (ok !== CREATES) res.notes.creates_per_s = `only ${ok} of ${CREATES} creates answered 201 (${[...new Set(statuses)].join(', ')})`;
  } finally {
    await a.close();
  }
}

/**
 * The engine's share of CPU per power operation, in this process: the daemon figure's rounds (cpuPerPowerOp) through
 * Engine.setInstancePower alone, after uncounted warm-up rounds, its logger silent. The daemon's figure minus this
 * one is the HTTP layer's (fastify, auth, validation, the request's log lines), the sockets' and the logs'.
 * (fastify's inject is no measure of that layer: light-my-request's objects cost more than a socket here.)
 */
export async function measurePowerSplit(n: number, res: SizeResult): Promise<void> {
  const a = await inProcessAgent({ adopted: n, free: 0, intervals: { power_sync: '1h', liveness: '1h' } });
  try {
    const ids = a.fleet.adoptedIds.slice(0, POWER_OPS_PER_ROUND);
    let seq = 0;
    const rounds = async (count: number) => {
      let ops = 0;
      for (let r = 0; r < count; r++) {
        const target = r % 2 === 0 ? 'off' : 'on';
        const accepted = await concurrently(ids.length, CONCURRENCY, async (i) => {
          const ctx = { request_id: `req-bench-${seq++}`, project_id: PROJECT, user_id: 'bench', roles: ['member'], is_admin: false };
          return (await a.agent.engine.setInstancePower(ctx, ids[i]!, { target })).accepted;
        });
        await a.agent.engine.idle();
        ops += accepted.filter(Boolean).length;
      }
      return ops;
    };
    await rounds(2);
    const c0 = process.cpuUsage();
    const ops = await rounds(POWER_ROUNDS);
    const c = process.cpuUsage(c0);
    if (ops > 0) res.figures.engine_cpu_per_power_op_ms = (c.user + c.system) / 1000 / ops;
    else res.notes.engine_cpu_per_power_op_ms = 'no power operation was accepted';
  } finally {
    await a.close();
  }
}

/** RSS at its start, then CPU % and commits/s of an idle daemon over `seconds`. */
async function idleWindow(d: Child, stateDir: string, seconds: number) {
  const rss = rssMiB(d.pid).rss;
  const c0 = cpuMs(d.pid);
  const t0 = performance.now();
  const commits = new CommitCounter(walOf(stateDir));
  await sleep(seconds * 1000);
  const ms = performance.now() - t0;
  return { cpu: ((cpuMs(d.pid) - c0) / ms) * 100, perS: commits.stop() / (ms / 1000), rss };
}

/**
 * The daemon's live heap: SIGUSR2 makes it write a heap snapshot (`--heapsnapshot-signal`), which collects
 * everything unreachable first; the figure is the sum of the snapshot's objects (V8's `heap used` read after it also
 * counts what was allocated since and moved by 3 MiB where the objects moved by 0.25 MiB). The file is removed.
 */
async function heapAfterFullGc(d: Child, dir: string): Promise<number> {
  const snapshots = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'));
  const before = new Set(snapshots());
  process.kill(d.pid, 'SIGUSR2');
  const deadline = performance.now() + 120_000;
  let file: string | undefined;
  let size = -1;
  for (;;) {
    if (performance.now() > deadline) throw new Error('no heap snapshot written within 120 s of SIGUSR2');
    await sleep(200);
    file ??= snapshots().find((f) => !before.has(f));
    if (!file) continue;
    const now = statSync(join(dir, file)).size;
    if (now > 0 && now === size) break;
    size = now;
  }
  const live = liveHeapMiB(join(dir, file));
  rmSync(join(dir, file), { force: true });
  return live;
}

/** The sum of every object's own size in a heap snapshot: the heap reachable then, after the snapshot's full GC. */
function liveHeapMiB(file: string): number {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[] } }; nodes: number[] };
  const fields = snap.snapshot.meta.node_fields;
  const size = fields.indexOf('self_size');
  let total = 0;
  for (let i = size; i < snap.nodes.length; i += fields.length) total += snap.nodes[i]!;
  return total / 2 ** 20;
}

/**
 * Heap growth of an idle daemon (N adopted + 30 free nodes, default intervals) over `seconds`: heap after a full GC,
 * at the end minus at the start. Its fake BMCs keep a command log of 1 (full from the start's reads): the log is the
 * simulated BMC's memory, not metald's, and at 20 it fills by one entry per node and sweep (2.5 MiB at 1,000 over
 * 600 s of 30 s sweeps).
 */
async function heapSoak(n: number, seconds: number, res: SizeResult): Promise<void> {
  const fleet = writeFleet({ adopted: n, free: CREATES, intervals: DEFAULT_INTERVALS, commandLog: 1 });
  const d = await spawnDaemon(fleet.configPath, 120_000, ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${fleet.dir}`]);
  try {
    // Let the start's garbage and lazily built state settle before the first mark.
    await sleep(5000);
    const start = await heapAfterFullGc(d, fleet.dir);
    await sleep(seconds * 1000);
    const end = await heapAfterFullGc(d, fleet.dir);
    res.figures.heap_growth_mib = end - start;
  } finally {
    await d.stop();
    rmSync(fleet.dir, { recursive: true, force: true });
  }
}

/** Instances powered off then on per round of the CPU-per-operation figure, and the rounds measured. */
const POWER_OPS_PER_ROUND = 200;
const POWER_ROUNDS = 4;

/** One round: `target` on each of `ids` (CONCURRENCY in flight); daemon CPU ms over the round and the ops accepted. */
async function powerRound(d: Child, ids: readonly string[], target: string, res: SizeResult): Promise<{ cpu: number; wallMs: number; ops: number }> {
  const c0 = cpuMs(d.pid);
  const t0 = performance.now();
  const accepted = await concurrently(ids.length, CONCURRENCY, async (i) => (await call(d.url, 'PUT', `/v1/instances/${ids[i]}/states/power`, MEMBER_TOKEN, { target })).status);
  // power_delay 0 and power_poll 5 ms: every operation is over well within 700 ms of its acceptance.
  await sleep(700);
  const cpu = cpuMs(d.pid) - c0;
  const wallMs = performance.now() - t0;
  const pending = await concurrently(ids.length, CONCURRENCY, async (i) => ((await call(d.url, 'GET', `/v1/instances/${ids[i]}/states`, MEMBER_TOKEN)).body as { target_power_state: unknown }).target_power_state);
  const open = pending.filter((p) => p !== null).length;
  if (open > 0) res.notes.cpu_per_power_op_ms = `${open} operations (${target}) still in flight 700 ms after the last acceptance: the figure is low`;
  return { cpu, wallMs, ops: accepted.filter((s) => s === 202).length };
}

/**
 * Daemon CPU per power operation in steady state: min(N, 200) adopted instances powered off then on, twice, after
 * a round of each that is not counted (the first operations also pay V8's compilation of their code paths: 50 of
 * them measured ~30% more). The daemon's idle CPU over the same time (measured just before, sweeps not due at
 * default intervals) is subtracted; it is printed with the figure.
 */
async function cpuPerPowerOp(d: Child, fleet: Fleet, res: SizeResult): Promise<void> {
  const ids = fleet.adoptedIds.slice(0, POWER_OPS_PER_ROUND);
  for (const target of ['power off', 'power on']) await powerRound(d, ids, target, res);
  // The load windows before left garbage: idle from here, then the baseline.
  await sleep(1500);
  const b0 = cpuMs(d.pid);
  await sleep(1500);
  const idlePerMs = (cpuMs(d.pid) - b0) / 1500;
  let ops = 0;
  let cpu = 0;
  for (let r = 0; r < POWER_ROUNDS; r++) {
    const round = await powerRound(d, ids, r % 2 === 0 ? 'power off' : 'power on', res);
    cpu += round.cpu - idlePerMs * round.wallMs;
    ops += round.ops;
  }
  res.figures.idle_cpu_baseline_pct = idlePerMs * 100;
  if (ops > 0) res.figures.cpu_per_power_op_ms = Math.max(0, cpu) / ops;
  else res.notes.cpu_per_power_op_ms = 'no power operation was accepted';
}

/** req/s of list pages and status reads at c=10. */
async function readRates(d: Child, fleet: Fleet, loadS: number, res: SizeResult): Promise<void> {
  // The peer again, now: the machine's load changes during a run and the ratio needs both at the same moment.
  const p = await spawnPeer();
  res.figures.peer_rps = (await loadGet(p.url, '/ping', { concurrency: CONCURRENCY, durationMs: loadS * 1000 })).perSecond;
  await p.stop();
  const headers = { 'X-Auth-Token': MEMBER_TOKEN };
  let listPath = `/v1/${PROJECT}/instances?limit=100`;
  let page = await call(d.url, 'GET', listPath, MEMBER_TOKEN);
  if (page.status !== 200) {
    // Before issue 7 point 1 the list takes no `limit`: the whole list is the only page.
    res.notes.list_rps = `GET ?limit=100 answered ${page.status}: measured without limit`;
    listPath = `/v1/${PROJECT}/instances`;
    page = await call(d.url, 'GET', listPath, MEMBER_TOKEN);
  }
  const items = (page.body as { instances?: unknown[] } | null)?.instances?.length ?? 0;
  if (items > 100) res.notes.list_rps = `${res.notes.list_rps ?? 'limit=100 not honoured'}; each page had ${items} instances`;
  const list = await loadGet(d.url, listPath, { concurrency: CONCURRENCY, durationMs: loadS * 1000, headers });
  res.figures.list_rps = list.perSecond;
  const status = await loadGet(d.url, `/v1/${PROJECT}/instances/${fleet.adoptedIds[0]}/status`, { concurrency: CONCURRENCY, durationMs: loadS * 1000, headers });
  res.figures.status_rps = status.perSecond;
  if (list.errors + status.errors > 0) res.notes.status_rps = `${list.errors} list and ${status.errors} status requests did not answer 200`;
}

/** 30 creates in flight (60 s installs) at a SIGKILL, then the restart's time to ready. */
async function inflightRestart(fleet: Fleet, res: SizeResult): Promise<void> {
  const d = await spawnDaemon(fleet.configPath);
  const statuses = await concurrently(CREATES, CONCURRENCY, async (i) => (await call(d.url, 'POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, createBody(i))).status);
  const ok = statuses.filter((s) => s === 201).length;
  await sleep(300);
  await d.stop('SIGKILL');
  const again = await spawnDaemon(fleet.configPath);
  res.figures.inflight_ready_s = again.readyMs / 1000;
  if (ok !== CREATES) res.notes.inflight_ready_s = `only ${ok} of ${CREATES} creates were in flight at the kill`;
  await again.stop();
}

export interface DaemonPlan {
  /** Everything (else: first start and RSS only). */
  full: boolean;
  /** The heap soak, on a daemon of its own (N=1,000). */
  soak: boolean;
  /** Restart with 30 creates in flight at a SIGKILL. */
  inflight: boolean;
}

/** The process-level figures of a daemon over N adopted + 30 free fake nodes. */
export async function measureDaemon(n: number, plan: DaemonPlan, opts: BenchOptions, res: SizeResult): Promise<void> {
  const fleet = writeFleet({ adopted: n, free: CREATES, intervals: DEFAULT_INTERVALS });
  try {
    let d = await spawnDaemon(fleet.configPath);
    res.figures.start_ready_s = d.readyMs / 1000;
    await sleep(500);
    const mem = rssMiB(d.pid);
    res.figures.rss_mib = mem.rss;
    res.figures.rss_peak_mib = mem.peak;
    if (!plan.full) {
      await d.stop();
      return;
    }
    await readRates(d, fleet, opts.loadS, res);
    await cpuPerPowerOp(d, fleet, res);
    await d.stop();

    d = await spawnDaemon(fleet.configPath);
    res.figures.restart_ready_s = d.readyMs / 1000;
    await d.stop();

    // Demo intervals: the first sweeps (5 s after ready) journal the first liveness verdicts of this fleet.
    const demo = writeFleet({ adopted: n, free: CREATES, intervals: DEMO_INTERVALS, stateDir: fleet.stateDir });
    d = await spawnDaemon(demo.configPath);
    await sleep(500);
    const idleDemo = await idleWindow(d, fleet.stateDir, opts.demoIdleS);
    res.figures.idle_cpu_demo_pct = idleDemo.cpu;
    res.figures.idle_commits_demo_per_s = idleDemo.perS;
    await d.stop();
    rmSync(demo.dir, { recursive: true, force: true });

    // Idle at default intervals, nothing changing: a start on the same state (the verdicts journalled), no request.
    // The window opens 15 s after ready, for --idle seconds (by default one interval: the sweeps due 30 s after
    // ready are inside); start-up's garbage collection (V8's memory reducer, ~10 s after ready here, start-up's CPU,
    // not idle work) is over by then. Idle RSS is read at the window's start.
    d = await spawnDaemon(fleet.configPath);
    await sleep(IDLE_RSS_AT_S * 1000);
    const idle = await idleWindow(d, fleet.stateDir, opts.idleS);
    res.figures.idle_cpu_default_pct = idle.cpu;
    res.figures.idle_commits_per_s = idle.perS;
    res.figures.rss_idle_mib = idle.rss;
    await d.stop();

    if (plan.soak && opts.soakS > 0) await heapSoak(n, opts.soakS, res);
    if (plan.inflight) await inflightRestart(fleet, res);
    else res.notes.inflight_ready_s = 'measured at the smallest size and at 1,000 only (about 30 s each before issue 7)';
  } finally {
    rmSync(fleet.dir, { recursive: true, force: true });
  }
}

/**
 * The power figures alone (`--power-only`): the engine in-process (measurePowerSplit), then a daemon over N adopted
 * + 30 free nodes and its CPU per power operation (cpuPerPowerOp), the same methods as the full run.
 */
export async function measurePowerOnly(n: number, res: SizeResult): Promise<void> {
  await measurePowerSplit(n, res);
  const fleet = writeFleet({ adopted: n, free: CREATES, intervals: DEFAULT_INTERVALS });
  try {
    const d = await spawnDaemon(fleet.configPath);
    try {
      await cpuPerPowerOp(d, fleet, res);
    } finally {
      await d.stop();
    }
  } finally {
    rmSync(fleet.dir, { recursive: true, force: true });
  }
}

/** The heap soak alone (`--soak-only`). */
export function measureSoak(n: number, seconds: number, res: SizeResult): Promise<void> {
  return heapSoak(n, seconds, res);
}

/**
 * A request's two log lines (fastify's `incoming request` and `request completed`, with a request-id child) through
 * metald's logger (agent/log.ts: explicit redact paths and the line hook) over the same lines through plain pino,
 * both into a destination that drops them: CPU time per pair, the ratio of the two (issue 7 point 3: at most 2x).
 */
export function measureLogLine(res: SizeResult): void {
  const sink = { write: (_line: string) => true };
  const plain = pino({}, sink);
  const ours = createLogger({ destination: sink });
  const lines = (log: Logger, k: number) => {
    const child = log.child({ reqId: `req-${k}` });
    child.info({ req: { method: 'GET', url: `/v1/${PROJECT}/instances?limit=100`, host: '127.0.0.1:8080', remoteAddress: '127.0.0.1', remotePort: 40000 + (k % 1000) } }, 'incoming request');
    child.info({ res: { statusCode: 200 }, responseTime: 1.234 }, 'request completed');
  };
  const perPair = (log: Logger) => {
    const rounds = 20_000;
    for (let k = 0; k < 2000; k++) lines(log, k);
    const c0 = process.cpuUsage();
    for (let k = 0; k < rounds; k++) lines(log, k);
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / rounds;
  };
  // Alternate, best of three each: the machine's other load lands on both.
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < 3; r++) {
    a.push(perPair(plain));
    b.push(perPair(ours));
  }
  res.figures.log_line_us = Math.min(...b);
  res.figures.log_line_ratio = Math.min(...b) / Math.min(...a);
}
