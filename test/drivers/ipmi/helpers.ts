/** Helpers of the ipmi driver tests: the driver bound to an ipmi_sim BMC through the real process runner. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readdir, readFile } from 'node:fs/promises';
import { ipmiDriver } from '../../../drivers/ipmi/index.js';
import { defaultDriverPorts, type ProcessRunner } from '../../../drivers/ports.js';
import { ExecaProcessRunner } from '../../../drivers/process.js';
import type { BoundDriver } from '../../../drivers/types.js';
import type { IpmiSim } from '../../emulators/ipmi-sim.js';

/** One ipmitool run as the runner was asked for it. */
export interface RunRecord {
  file: string;
  args: readonly string[];
  env: Record<string, string>;
}

/** The real runner, recording what it is asked to run. */
export function recordingRunner(): ProcessRunner & { runs: RunRecord[] } {
  const real = new ExecaProcessRunner();
  const runs: RunRecord[] = [];
  return {
    runs,
    run(file, args, opts) {
      runs.push({ file, args: [...args], env: { ...opts?.env } });
      return real.run(file, args, opts);
    },
  };
}

/** The agent's driver work directory of these tests (the daemon's is `<state_dir>/drivers`): ipmitool's HOME is in it. */
export const TEST_WORK_DIR = mkdtempSync(join(tmpdir(), 'metald-ipmi-work-'));

/** The ipmi driver bound to `sim` (short retry policy: -R 1 -N 1), its password given by the target's secret. */
export function bindIpmi(
  sim: Pick<IpmiSim, 'host' | 'port' | 'username' | 'password'>,
  opts: { runner?: ProcessRunner; settings?: Record<string, unknown>; password?: string; workDir?: string | undefined } = {},
): BoundDriver {
  const password = opts.password ?? sim.password;
  return ipmiDriver.create(
    {
      nodeId: `ipmi-${sim.port}`,
      settings: { address: sim.host, port: sim.port, username: sim.username, password_file: '/unused', retries: 1, retry_timeout_s: 1, ...opts.settings },
      secret: (key) => Promise.resolve(key === 'password_file' ? password : null),
    },
    { ...defaultDriverPorts, run: opts.runner ?? new ExecaProcessRunner(), workDir: 'workDir' in opts ? opts.workDir : TEST_WORK_DIR },
  );
}

/** Every process's argv (pid -> NUL-joined cmdline as text), read from /proc now. */
export async function processArgvs(): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d));
  await Promise.all(
    pids.map(async (pid) => {
      try {
        const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
        if (raw !== '') out.set(Number(pid), raw.split('\0').filter((a) => a !== ''));
      } catch {
        // exited meanwhile
      }
    }),
  );
  return out;
}

/** The live ipmitool processes talking to `port`. */
export async function ipmitoolsFor(port: number): Promise<number[]> {
  const all = await processArgvs();
  return [...all].filter(([, argv]) => /ipmitool$/.test(argv[0] ?? '') && argv.includes(String(port))).map(([pid]) => pid);
}

/** Whether `pid` runs (a zombie, killed but not yet reaped by PID 1, does not). */
export function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
