/**
 * `npm run bench`: the core section of issue 7. For each fleet size N, the figures of the table and the
 * event loop's delay, next to a bare fastify+pino server measured in the same run; a table on stdout, every figure
 * in bench-results.json. docs/bench.md says how each figure is measured.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs, USAGE, UsageError, type BenchOptions } from './args.js';
import { measureCreates, measureDaemon, measureLogLine, measurePowerOnly, measurePowerSplit, measureSoak, measureSweeps } from './core.js';
import { spawnPeer } from './daemon.js';
import { loadGet, rssMiB, sleep } from './probes.js';
import { evaluateTargets, fmt, formatReport, type BenchResults, type SizeResult } from './report.js';
import { evaluateIcmpTargets, formatIcmpReport, ICMP_USAGE, splitIcmpArgs, type IcmpOptions, type IcmpResults } from './icmp-report.js';
import { evaluateUpstreamTargets, formatUpstreamReport, splitUpstreamArgs, UPSTREAM_USAGE, type UpstreamOptions, type UpstreamResults } from './upstream-report.js';
import { DEFAULT_INSTALLS, formatInstallsReport, type InstallsResults } from './installs-report.js';
import { DRIVERS_USAGE, evaluateDriverTargets, formatDriversReport, splitDriversArgs, type DriversOptions, type DriversResults } from './drivers-report.js';

async function measurePeer(opts: BenchOptions): Promise<BenchResults['peer']> {
  const p = await spawnPeer();
  try {
    await sleep(500);
    const rss = rssMiB(p.pid).rss;
    const load = await loadGet(p.url, '/ping', { concurrency: 10, durationMs: opts.loadS * 1000 });
    return { rps: load.perSecond, rss, ready: p.readyMs / 1000 };
  } finally {
    await p.stop();
  }
}

/** `--power-only`: CPU per power operation (daemon, engine alone) at each size, no peer, no other figure. */
async function runPowerOnly(opts: BenchOptions): Promise<SizeResult[]> {
  const t0 = performance.now();
  const sizes: SizeResult[] = [];
  for (const n of opts.sizes) {
    const res: SizeResult = { n, subset: true, figures: {}, notes: {} };
    sizes.push(res);
    process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)} s] N=${n}: power operations\n`);
    await measurePowerOnly(n, res);
    const f = res.figures;
    console.log(`N=${n} cpu_per_power_op_ms ${fmt(f.cpu_per_power_op_ms ?? NaN)} engine_cpu_per_power_op_ms ${fmt(f.engine_cpu_per_power_op_ms ?? NaN)} idle_cpu_baseline_pct ${fmt(f.idle_cpu_baseline_pct ?? NaN)}`);
    for (const [k, v] of Object.entries(res.notes)) console.log(`  note ${k}: ${v}`);
  }
  return sizes;
}

async function run(opts: BenchOptions): Promise<BenchResults> {
  const t0 = performance.now();
  const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
  log('peer: bare fastify+pino');
  const peer = await measurePeer(opts);
  const full = opts.sizes.filter((n) => n <= opts.fullUpTo);
  const soakAt = full.includes(1000) ? 1000 : full[full.length - 1];
  const sizes: SizeResult[] = [];
  if (opts.soakOnly) {
    const n = opts.sizes.includes(1000) ? 1000 : opts.sizes[opts.sizes.length - 1]!;
    const res: SizeResult = { n, subset: true, figures: {}, notes: {} };
    sizes.push(res);
    log(`N=${n}: heap soak, ${opts.soakS} s`);
    await measureSoak(n, opts.soakS, res);
    return { startedAt: new Date().toISOString(), node: process.version, cpus: availableParallelism(), peer, soakS: opts.soakS, sizes, elapsedS: (performance.now() - t0) / 1000 };
  }
  for (const n of opts.sizes) {
    const res: SizeResult = { n, subset: n > opts.fullUpTo, figures: {}, notes: {} };
    sizes.push(res);
    const step = async (what: string, fn: () => Promise<void>) => {
      log(`N=${n}: ${what}`);
      try {
        await fn();
      } catch (e) {
        res.notes[what === 'sweeps' ? 'liveness_sweep_ms' : what === 'creates' ? 'creates_per_s' : what === 'power split' ? 'engine_cpu_per_power_op_ms' : 'start_ready_s'] = `failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 300);
      }
    };
    await step('sweeps', () => measureSweeps(n, res));
    measureLogLine(res);
    if (!res.subset) await step('creates', () => measureCreates(n, res));
    if (n === 1000) await step('power split', () => measurePowerSplit(n, res));
    await step('daemon', () => measureDaemon(n, { full: !res.subset, soak: n === soakAt && opts.soakS > 0, inflight: n === full[0] || n === 1000 }, opts, res));
  }
  return { startedAt: new Date().toISOString(), node: process.version, cpus: availableParallelism(), peer, soakS: opts.soakS, sizes, elapsedS: (performance.now() - t0) / 1000 };
}

/** The drivers section (./drivers.ts, loaded only when it runs: it brings the BMC peers' launchers). */
async function runDriversSection(o: DriversOptions): Promise<DriversResults> {
  const t0 = performance.now();
  const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
  const d = await (await import('./drivers.js')).runDrivers(o, log);
  console.log(`\n${formatDriversReport(d)}`);
  return d;
}

/** The ICMP section (./icmp.ts, loaded only when it runs). */
async function runIcmpSection(o: IcmpOptions): Promise<IcmpResults> {
  const t0 = performance.now();
  const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
  const r = await (await import('./icmp.js')).runIcmp(o, log);
  console.log(`\n${formatIcmpReport(r)}`);
  return r;
}

/** The upstream section (./upstream.ts). */
async function runUpstreamSection(o: UpstreamOptions): Promise<UpstreamResults> {
  const t0 = performance.now();
  const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
  const r = await (await import('./upstream.js')).runUpstream(o, log);
  console.log(`\n${formatUpstreamReport(r)}`);
  return r;
}

/** The installs section (./installs.ts): `--installs-only` runs it alone, `--no-installs` skips it. */
const INSTALLS_USAGE = `  --installs-only         only the installs section (${DEFAULT_INSTALLS.nodes} emulated servers installed at once)
  --no-installs           skip the installs section`;

async function runInstallsSection(): Promise<InstallsResults> {
  const t0 = performance.now();
  const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
  const r = await (await import('./installs.js')).runInstalls(DEFAULT_INSTALLS, log);
  console.log(`\n${formatInstallsReport(r)}`);
  return r;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const installsMode = argv.includes('--installs-only') ? 'only' : argv.includes('--no-installs') ? 'skip' : 'also';
  const benchArgs = argv.filter((a) => a !== '--installs-only' && a !== '--no-installs');
  let opts: BenchOptions;
  let drivers: DriversOptions;
  let icmp: IcmpOptions;
  let upstream: UpstreamOptions;
  try {
    const upSplit = splitUpstreamArgs(benchArgs);
    upstream = upSplit.upstream;
    const icmpSplit = splitIcmpArgs(upSplit.rest);
    icmp = icmpSplit.icmp;
    const split = splitDriversArgs(icmpSplit.rest);
    drivers = split.drivers;
    opts = parseArgs(split.rest);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`bench: ${e.message}\n${USAGE}\n${DRIVERS_USAGE}\n${ICMP_USAGE}\n${UPSTREAM_USAGE}\n${INSTALLS_USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (opts.help) {
    console.log(`${USAGE}\n${DRIVERS_USAGE}\n${ICMP_USAGE}\n${UPSTREAM_USAGE}\n${INSTALLS_USAGE}`);
    return;
  }
  if (installsMode === 'only') {
    const r = await runInstallsSection();
    writeFileSync(opts.out, `${JSON.stringify({ installs: r }, null, 2)}\n`);
    console.log(`\nevery figure: ${opts.out}`);
    if (!r.pass) process.exitCode = 1;
    return;
  }
  if (upstream.mode === 'only') {
    const r = await runUpstreamSection(upstream);
    writeFileSync(opts.out, `${JSON.stringify({ upstream: r, upstreamTargets: evaluateUpstreamTargets(r) }, null, 2)}\n`);
    console.log(`\nevery figure: ${opts.out}`);
    return;
  }
  if (icmp.mode === 'only') {
    const r = await runIcmpSection(icmp);
    writeFileSync(opts.out, `${JSON.stringify({ icmp: r, icmpTargets: evaluateIcmpTargets(r) }, null, 2)}\n`);
    console.log(`\nevery figure: ${opts.out}`);
    return;
  }
  if (drivers.mode === 'only') {
    const d = await runDriversSection(drivers);
    writeFileSync(opts.out, `${JSON.stringify({ drivers: d, targets: evaluateDriverTargets(d) }, null, 2)}\n`);
    console.log(`\nevery figure: ${opts.out}`);
    return;
  }
  if (opts.powerOnly) {
    const sizes = await runPowerOnly(opts);
    writeFileSync(opts.out, `${JSON.stringify({ startedAt: new Date().toISOString(), node: process.version, powerOnly: true, sizes }, null, 2)}\n`);
    console.log(`every figure: ${opts.out}`);
    return;
  }
  const results = await run(opts);
  console.log(formatReport(results));
  const i = icmp.mode === 'also' && !opts.soakOnly ? await runIcmpSection(icmp) : null;
  const icmpFigures = i ? { icmp: i, icmpTargets: evaluateIcmpTargets(i) } : {};
  const d = drivers.mode === 'also' ? await runDriversSection(drivers) : null;
  const driverFigures = d ? { drivers: d, driverTargets: evaluateDriverTargets(d) } : {};
  const u = upstream.mode === 'also' && !opts.soakOnly ? await runUpstreamSection(upstream) : null;
  const upstreamFigures = u ? { upstream: u, upstreamTargets: evaluateUpstreamTargets(u) } : {};
  const n = installsMode === 'also' && !opts.soakOnly ? await runInstallsSection() : null;
  const installFigures = n ? { installs: n } : {};
  writeFileSync(opts.out, `${JSON.stringify({ ...results, targets: evaluateTargets(results), ...icmpFigures, ...driverFigures, ...upstreamFigures, ...installFigures }, null, 2)}\n`);
  console.log(`\nevery figure: ${opts.out}`);
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
});
