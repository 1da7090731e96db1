/**
 * The bench's ICMP section (issue 9 point 7): metald's raw engine next to Debian's fping on the same 1,024 targets
 * in the same run, its sustained rate, its round trips next to fping's, and the liveness monitor's CPU at 1,000
 * instances. The hosts are the liveness tests' namespace lab (test/helpers/netns.ts: a probe namespace, three
 * bridge hosts, a routed gateway namespace owning a /22 of which every 10th address is DROPped), built here and
 * removed at the end. Node has no setns, so each step runs in a child process inside the probe namespace
 * (./icmp-child.ts, started through `ip netns exec`), and fping runs from that child, in the same namespace. The
 * figures and targets are ./icmp-report.ts; docs/bench.md says how each is measured. Where the section cannot run
 * (not root, a package missing, the raw socket refused) the reason lands in the notes and every target is n/a.
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { buildLivenessLab, type LivenessLab } from '../../test/helpers/netns.js';
import { monitorFigures, rateFigures, rttFigures, sweepFigures, type IcmpChildOut, type IcmpJob, type IcmpOptions, type IcmpResults } from './icmp-report.js';

export const FPING = '/usr/bin/fping';
const CHILD = fileURLToPath(new URL('./icmp-child.js', import.meta.url));
/** The sweep of issue 9 point 7: timeout 500 ms, 1 retry, no back-off growth, no gap between packets. */
const SWEEP = { timeoutMs: 500, retries: 1, intervalMs: 0 };
/** Count mode for the rate: 50 probes to each answering target, 1 ms apart (the engine's own pace is the limit). */
const RATE = { count: 50, periodMs: 1, timeoutMs: 500 };
const RTT = { count: 20, periodMs: 20 };

/** Why the section cannot run here, or null. */
export function icmpPrerequisites(uid = process.getuid?.()): string | null {
  if (uid !== 0) return 'the ICMP section needs root (network namespaces, nftables, the raw socket): run the bench as root; its figures are missing, not passing';
  if (!existsSync(FPING)) return `${FPING} is missing: apt-get install fping (scripts/setup.sh)`;
  if (!existsSync(CHILD)) return `${CHILD} is missing: npm run build`;
  return null;
}

/** Runs one step in the probe namespace and parses the child's JSON line. @throws Error with the child's stderr */
async function step(lab: LivenessLab, job: IcmpJob, timeoutMs: number): Promise<IcmpChildOut> {
  const r = await lab.run(process.execPath, [CHILD, JSON.stringify(job)], timeoutMs);
  if (r.code !== 0) throw new Error(`probe child (${job.step}) exited ${String(r.code)}: ${r.stderr.trim().slice(-300)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as IcmpChildOut;
}

export async function runIcmp(o: IcmpOptions, log: (msg: string) => void): Promise<IcmpResults> {
  const t0 = performance.now();
  const r: IcmpResults = { engine: null, fping: null, targets: 0, silent: 0, figures: {}, notes: [], elapsedS: 0 };
  const missing = icmpPrerequisites();
  if (missing) {
    r.notes.push(missing);
    log(`icmp: ${missing}`);
    return r;
  }
  let lab: LivenessLab | null = null;
  try {
    log('icmp: namespace lab (probe, 3 bridge hosts, a gateway owning 1,024 targets, every 10th dropped)');
    lab = buildLivenessLab();
    const { all, silent } = lab.far;
    const answering = all.filter((a) => !silent.includes(a));
    Object.assign(r, { engine: 'raw', fping: `${FPING} 5.1`, targets: all.length, silent: silent.length });
    const fpingSweep = ['-i', String(SWEEP.intervalMs), '-B', '1', '-t', String(SWEEP.timeoutMs), '-r', String(SWEEP.retries), ...all];
    const rttHosts = [...lab.v4.answering, ...answering.filter((_, i) => i % 46 === 0)];
    const steps: [string, () => Promise<void>][] = [
      [
        `sweeps, ${String(o.reps)} of each, alternated with fping`,
        async () => {
          const out = await step(lab!, { step: 'sweeps', fping: FPING, fpingArgs: fpingSweep, targets: all, reps: o.reps, ...SWEEP }, 30_000 + o.reps * 10_000);
          if (out.step !== 'sweeps') throw new Error(`expected the sweeps step's answer, got ${out.step}`);
          const s = sweepFigures(out, all, silent);
          Object.assign(r.figures, s.figures);
          r.notes.push(...s.notes);
        },
      ],
      [
        'sustained probes/s (count mode), then fping -c on the same',
        async () => {
          const fpingArgs = ['-q', '-c', String(RATE.count), '-p', String(RATE.periodMs), '-i', '0', '-t', String(RATE.timeoutMs), ...answering];
          const out = await step(lab!, { step: 'rate', fping: FPING, fpingArgs, targets: answering, ...RATE }, 120_000);
          if (out.step !== 'rate') throw new Error(`expected the rate step's answer, got ${out.step}`);
          Object.assign(r.figures, rateFigures(out));
        },
      ],
      [
        `round trips to ${String(rttHosts.length)} hosts, fping -C then metald`,
        async () => {
          const fpingArgs = ['-q', '-C', String(RTT.count), '-p', String(RTT.periodMs), '-i', '1', '-t', '500', ...rttHosts];
          const out = await step(lab!, { step: 'rtt', fping: FPING, fpingArgs, targets: rttHosts, ...RTT }, 60_000);
          if (out.step !== 'rtt') throw new Error(`expected the rtt step's answer, got ${out.step}`);
          const s = rttFigures(out);
          Object.assign(r.figures, s.figures);
          r.notes.push(...s.notes);
        },
      ],
      [
        `liveness monitor, 1,000 instances, 10 s interval, CPU over ${String(o.cpuS)} s`,
        async () => {
          const settings = { interval_ms: 10_000, timeout_ms: 500, retries: 1, batch: 128, jitter: 0.1, backoff: 1.5, packet_interval_ms: 1, hysteresis: 2 };
          const out = await step(lab!, { step: 'monitor', targets: all.slice(0, 1000), windowS: o.cpuS, settings }, o.cpuS * 1000 + 60_000);
          if (out.step !== 'monitor') throw new Error(`expected the monitor step's answer, got ${out.step}`);
          Object.assign(r.figures, monitorFigures(out));
        },
      ],
    ];
    for (const [what, fn] of steps) {
      log(`icmp: ${what}`);
      try {
        await fn();
      } catch (e) {
        r.notes.push(`${what}: failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400));
      }
    }
  } catch (e) {
    r.notes.push(`the ICMP section could not run: ${e instanceof Error ? e.message : String(e)}`.slice(0, 400));
  } finally {
    try {
      lab?.destroy();
    } catch (e) {
      r.notes.push(`namespace cleanup: ${(e as Error).message}`.slice(0, 300));
    }
  }
  r.elapsedS = (performance.now() - t0) / 1000;
  return r;
}
