/**
 * The bench's drivers section (issue 8 point 8): metald's power sync over REAL BMCs, measured from the daemon
 * (dist/agent/main.js as a child process: its /metrics' metald_power_sync_* figures, its /proc CPU and RSS) and
 * from the peers (each ipmi_sim's own count of the status reads it served, the emulator's per-system read counts).
 *
 * - IPMI: `ipmiBmcs` real ipmi_sim BMCs. A shell loop of bare `ipmitool ... chassis power status` over them (the
 *   driver's own argv: lanplus, -C 3, -R 1 -N 1, -E with the password in the environment), one pass after each of
 *   metald's sweeps at power_sync.concurrency 1 (interleaved, never overlapping), then metald at `concurrency`.
 * - Redfish: one emulator process with `redfishSystems` systems, metald's sweep of all of them: wall time, the
 *   daemon's CPU per sweep and RSS.
 * The pure part (flags, figures, targets, report) is ./drivers-report.ts; docs/bench.md says how each is measured.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ipmitoolHome } from '../../drivers/ipmi/home.js';
import { IPMITOOL, startIpmiSims, type IpmiSim } from '../../test/emulators/ipmi-sim.js';
import { emulatorControl, launchEmulator } from '../../test/emulators/redfish/launch.js';
import { spawnDaemon } from './daemon.js';
import type { DriversOptions, DriversResults, IpmiFigures, RedfishFigures } from './drivers-report.js';
import { writeFleet } from './fleet.js';
import { cpuMs, rssMiB, sleep } from './probes.js';

const IPMI_PASSWORD = 'Bench-ipmi-pw1';
const RF_PASSWORD = 'Bench-redfish-pw1';
/** power_sync.interval of the measured daemons: longer than a sweep, so each sweep is timed on its own. */
const IPMI_INTERVAL_S = 3;
/** The concurrency-1 run leaves room for a loop pass after each sweep: ~150 ms a BMC for both (~55 ms a call here). */
const ipmiInterleavedIntervalS = (bmcs: number): number => Math.max(3, Math.ceil(bmcs * 0.15));
const REDFISH_INTERVAL_S = 5;

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** metald_power_sync_* figures of one /metrics text (NaN when absent). */
export function syncFigures(text: string): { sweeps: number; lastSweepS: number } {
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? NaN : Number(line.slice(name.length + 1));
  };
  return { sweeps: value('metald_power_sync_sweeps_total'), lastSweepS: value('metald_power_sync_last_sweep_seconds') };
}

interface SweepRun {
  /** The start-up sweep's wall time, s. */
  startupS: number;
  /** Each later sweep's wall time, s. */
  sweepsS: number[];
  /** The daemon's CPU from one sweep's end to the next, s. */
  cpuS: number[];
  /** The peers' reads per sweep (what `peer()` says from the end of `between` to the next sweep's end), the median. */
  peerPerSweep: number;
  rss: { rss: number; peak: number };
}

/**
 * Starts the daemon on `configPath`, then watches its /metrics (every 250 ms: a scrape costs the daemon a few ms of its loop) until `sweeps` sweeps after the
 * start-up one have ended, timing each (the daemon's own metald_power_sync_last_sweep_seconds) and reading its CPU
 * at each sweep's end. `peer()` is the peers' read count, read at ready and at each sweep's end; `between()` runs
 * right after each sweep's end, while the daemon waits for its next one (the bare loop, interleaved).
 */
async function watchSweeps(configPath: string, sweeps: number, intervalS: number, peer: () => Promise<number>, between?: () => Promise<void>): Promise<SweepRun> {
  const d = await spawnDaemon(configPath);
  try {
    const figures = async () => syncFigures(await (await fetch(`${d.url}/metrics`)).text());
    const first = await figures();
    // Read right after a sweep's end (the next one starts an interval after its start): no sweep is half-counted,
    // unless the start-up sweep took longer than the interval, hence from the first timed sweep's end when there are two.
    let resumed = await peer();
    const perSweep: number[] = [];
    const run: SweepRun = { startupS: first.lastSweepS, sweepsS: [], cpuS: [], peerPerSweep: 0, rss: { rss: 0, peak: 0 } };
    let seen = first.sweeps;
    let cpu = cpuMs(d.pid);
    const deadline = performance.now() + (sweeps + 2) * intervalS * 1000 + 120_000;
    while (run.sweepsS.length < sweeps) {
      if (performance.now() > deadline) throw new Error(`only ${run.sweepsS.length} of ${sweeps} sweeps ended in time`);
      await sleep(250);
      const f = await figures();
      if (f.sweeps === seen) continue;
      if (f.sweeps > seen + 1) throw new Error('two sweeps ended between two scrapes: the interval is too short to time them');
      seen = f.sweeps;
      const now = cpuMs(d.pid);
      run.sweepsS.push(f.lastSweepS);
      run.cpuS.push((now - cpu) / 1000);
      cpu = now;
      const end = await peer();
      perSweep.push(end - resumed);
      if (between) {
        await between();
        if ((await figures()).sweeps !== seen) throw new Error('a sweep started during the interleaved work: the interval is too short');
      }
      resumed = between ? await peer() : end;
    }
    // The median: a start-up sweep longer than the interval lets the first timed sweep begin before ready's count.
    run.peerPerSweep = median(perSweep);
    run.rss = rssMiB(d.pid);
    return run;
  } finally {
    await d.stop();
  }
}

/**
 * One pass of a shell loop of bare ipmitool over the ports, one after the other; its wall time, s. With `home`,
 * ipmitool's HOME is that directory (metald's: drivers/ipmi/home.ts, whose one-entry vendor registry ipmitool reads
 * instead of the system's), so the pass does the very work metald's calls do.
 */
export function ipmitoolLoop(ports: readonly number[], password: string, home?: string): Promise<number> {
  const script = `for p in $PORTS; do ${IPMITOOL} -I lanplus -H 127.0.0.1 -p "$p" -U admin -C 3 -R 1 -N 1 -E chassis power status >/dev/null </dev/null || exit 1; done`;
  const t0 = performance.now();
  // The password only in the child's environment (IPMI_PASSWORD, read through -E), never in argv.
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PORTS: ports.join(' '), IPMI_PASSWORD: password, ...(home ? { HOME: home } : {}) } });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
  return new Promise((res, rej) => {
    child.once('error', rej);
    child.once('exit', (code) => (code === 0 ? res((performance.now() - t0) / 1000) : rej(new Error(`the ipmitool loop failed (${code}): ${err}`))));
  });
}

async function measureIpmi(o: DriversOptions, dir: string, log: (m: string) => void): Promise<IpmiFigures> {
  const pw = join(dir, 'ipmi.pw');
  writeFileSync(pw, `${IPMI_PASSWORD}\n`, { mode: 0o600 });
  log(`drivers: ${o.ipmiBmcs} ipmi_sim BMCs`);
  const sims: IpmiSim[] = await startIpmiSims(o.ipmiBmcs, { password: IPMI_PASSWORD, power: 'on' });
  try {
    const ports = sims.map((s) => s.port);
    const reads = async () => (await Promise.all(sims.map((s) => s.reads()))).reduce((a, b) => a + b, 0);
    const loops: number[] = [];
    const sameLoops: number[] = [];
    const home = ipmitoolHome(join(dir, 'loop-work'), (m) => log(`drivers: ${m}`));
    if (home === null) throw new Error("the bench could not write ipmitool's HOME (see above)");
    await ipmitoolLoop(ports, IPMI_PASSWORD); // warm-up (page cache, the sims' first sessions)
    // One pass of the loop after each of metald's concurrency-1 sweeps, while the daemon waits for its next one:
    // both see the same load (the machine's load drifts over a run), and they never overlap.
    // Each time, the loop as a user runs it, then with metald's HOME (what metald's own calls cost).
    const loopPass = async () => {
      loops.push(await ipmitoolLoop(ports, IPMI_PASSWORD));
      sameLoops.push(await ipmitoolLoop(ports, IPMI_PASSWORD, home));
    };
    const sweep = async (concurrency: number, between?: () => Promise<void>): Promise<SweepRun> => {
      const intervalS = between ? ipmiInterleavedIntervalS(sims.length) : IPMI_INTERVAL_S;
      log(`drivers: metald power sync over the ${o.ipmiBmcs} BMCs, concurrency ${concurrency}${between ? ', a bare ipmitool loop pass after each sweep' : ''}`);
      const fleet = writeFleet({
        adopted: sims.length,
        free: 0,
        intervals: { power_sync: `${intervalS}s`, liveness: '1h' },
        powerSyncConcurrency: concurrency,
        bmc: (i) => `{driver: ipmi, address: 127.0.0.1, port: ${sims[i - 1]!.port}, username: admin, password_file: ${pw}, retries: 1, retry_timeout_s: 1}`,
      });
      try {
        return await watchSweeps(fleet.configPath, o.sweeps, intervalS, reads, between);
      } finally {
        rmSync(fleet.dir, { recursive: true, force: true });
      }
    };
    const c1 = await sweep(1, loopPass);
    const cC = await sweep(o.concurrency);
    return { bmcs: sims.length, concurrency: o.concurrency, loopS: median(loops), loopSameHomeS: median(sameLoops), metaldC1S: median(c1.sweepsS), metaldCS: median(cC.sweepsS), peerReadsPerSweep: c1.peerPerSweep };
  } finally {
    await Promise.all(sims.map((s) => s.stop()));
  }
}

async function measureRedfish(o: DriversOptions, dir: string, log: (m: string) => void): Promise<RedfishFigures> {
  const pw = join(dir, 'rf.pw');
  writeFileSync(pw, `${RF_PASSWORD}\n`, { mode: 0o600 });
  log(`drivers: a Redfish emulator with ${o.redfishSystems} systems`);
  const emu = await launchEmulator(['--systems', String(o.redfishSystems), '--power', 'On', '--tls-dir', join(dir, 'tls'), '--password-file', pw]);
  try {
    const ctl = emulatorControl(emu.url, readFileSync(emu.caFile!, 'utf8'));
    const reads = async () => (await ctl.systems()).reduce((a, s) => a + s.reads, 0);
    const fleet = writeFleet({
      adopted: o.redfishSystems,
      free: 0,
      intervals: { power_sync: `${REDFISH_INTERVAL_S}s`, liveness: '1h' },
      powerSyncConcurrency: o.concurrency,
      bmc: (i) => `{driver: redfish, address: "${emu.url}", system_id: /redfish/v1/Systems/sys-${i}, username: admin, password_file: ${pw}, ca_file: ${emu.caFile}}`,
    });
    try {
      log(`drivers: metald power sync over the ${o.redfishSystems} systems`);
      const cpu0 = (await ctl.stats()).cpuMs;
      const run = await watchSweeps(fleet.configPath, o.sweeps, REDFISH_INTERVAL_S, reads);
      const emuCpuS = ((await ctl.stats()).cpuMs - cpu0) / 1000;
      return {
        systems: o.redfishSystems,
        concurrency: o.concurrency,
        startupSweepS: run.startupS,
        sweepS: median(run.sweepsS),
        cpuSPerSweep: median(run.cpuS),
        rssMiB: run.rss.rss,
        rssPeakMiB: run.rss.peak,
        // The emulator's CPU from before the start-up sweep to the end, over every sweep it served (the start-up one included).
        emulatorCpuSPerSweep: emuCpuS / (run.sweepsS.length + 1),
        peerReadsPerSweep: run.peerPerSweep,
      };
    } finally {
      rmSync(fleet.dir, { recursive: true, force: true });
    }
  } finally {
    await emu.stop();
  }
}

/** The drivers section. A part that fails is a note (the other part still runs). */
export async function runDrivers(o: DriversOptions, log: (m: string) => void): Promise<DriversResults> {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'metald-bench-drivers-'));
  const notes: string[] = [];
  const part = async <T>(what: string, fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (e) {
      notes.push(`${what}: failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400));
      return null;
    }
  };
  try {
    const ipmi = await part('ipmi', () => measureIpmi(o, dir, log));
    const redfish = await part('redfish', () => measureRedfish(o, dir, log));
    return { startedAt: new Date().toISOString(), ipmi, redfish, notes, elapsedS: (performance.now() - t0) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
