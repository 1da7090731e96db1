/**
 * Faults injected into REAL ipmi_sim BMCs, through metald running as a child process (dist/agent/main.js): a BMC
 * that hangs (its ipmi_sim SIGSTOPped) and one that rejects the password. Each power change ends in its typed error
 * within its deadline, the API keeps answering meanwhile, no ipmitool outlives its call (the daemon's children are
 * scanned in /proc), the BMC's own chassis log shows that nothing was done, and the instance is as design.md section 3
 * says: state unchanged, `error` set with seed 003's `error_type`.
 *
 * The short waiting policies are this test's (faultConfig: bmc_call 1 s, power 1.5 s, ipmitool -R 1 -N 1); the real
 * ones live in config (docs/config.md `timeouts.*`, `power_poll`, `retries`, `retry_timeout_s`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIpmiSim, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { isAlive } from '../../drivers/ipmi/helpers.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { faultConfig, ipmitoolChildrenOf, powerAction, statusOf, waitAdopted, type FinishedAction } from './helpers.js';

const secrets = mkdtempSync(join(tmpdir(), 'metald-faults-ipmi-'));
let daemon: Daemon | undefined;
let hung: IpmiSim | undefined;
let locked: IpmiSim | undefined;
let configDir: string | undefined;

const ipmiBmc = (sim: IpmiSim, pwFile: string, retries = 1, retryS = 1) =>
  `{driver: ipmi, address: ${sim.host}, port: ${sim.port}, username: ${sim.username}, password_file: ${pwFile}, retries: ${retries}, retry_timeout_s: ${retryS}}`;

beforeAll(async () => {
  hung = await startIpmiSim({ password: 'Hang-pw-1', power: 'on' });
  locked = await startIpmiSim({ password: 'Auth-pw-1', power: 'on', debug: true });
  writeFileSync(join(secrets, 'hung.pw'), 'Hang-pw-1\n', { mode: 0o600 });
  writeFileSync(join(secrets, 'locked.pw'), 'Auth-pw-1\n', { mode: 0o600 });
  const { dir, configPath } = faultConfig([
    // ipmitool alone would wait 5 x 5 s on a hung BMC: only metald's deadline (bmc_call 1 s, the group killed) ends it.
    ipmiBmc(hung, join(secrets, 'hung.pw'), 5, 5), ipmiBmc(locked, join(secrets, 'locked.pw'))]);
  configDir = dir;
  daemon = await startDaemon(configPath);
  await waitAdopted(daemon, 2);
}, 60_000);

afterAll(async () => {
  hung?.resume();
  await daemon?.kill('SIGTERM');
  await stopAllIpmiSims();
  rmSync(secrets, { recursive: true, force: true });
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

/** powerAction, collecting the daemon's ipmitool children every 20 ms while it runs. */
async function sampledPowerAction(d: Daemon, i: number, target: string, withinMs: number): Promise<{ act: FinishedAction; seen: Set<number> }> {
  const seen = new Set<number>();
  const timer = setInterval(() => ipmitoolChildrenOf(d.child.pid!).forEach((p) => seen.add(p)), 20);
  try {
    return { act: await powerAction(d, i, target, withinMs), seen };
  } finally {
    clearInterval(timer);
  }
}

async function noIpmitoolLeft(pid: number, seen: Set<number>): Promise<void> {
  await waitFor(() => ipmitoolChildrenOf(pid).length === 0 && [...seen].every((p) => !isAlive(p)), 1_000, 'no ipmitool child of the daemon').catch(() => {
    throw new Error(`ipmitool outlived its call: ${JSON.stringify(ipmitoolChildrenOf(pid))} (seen ${JSON.stringify([...seen])})`);
  });
}

describe('faults of real ipmi_sim BMCs, through metald', () => {
  it('a hung BMC (ipmi_sim SIGSTOPped): power off ends in BMC_ERR_TIMEOUT within its deadline, every ipmitool killed, the instance stays running with power_off_error', async () => {
    const d = daemon!;
    const sim = hung!;
    sim.pause();
    // Acceptance's read (1 s), the off (killed at 1 s), the read-back after a timeout (1.5 s policy, 1 s reads).
    const { act, seen } = await sampledPowerAction(d, 1, 'power off', 8_000);
    expect(act.message).toMatch(/BMC_ERR_TIMEOUT|no answer within 1000 ms/);
    expect(act.tookMs).toBeLessThan(6_000);
    expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
    expect(seen.size).toBeGreaterThan(0);
    await noIpmitoolLeft(d.child.pid!, seen);
    const s = await statusOf(d, 1);
    expect(s).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_TIMEOUT', error_type: 'power_off_error' } });
    expect(s.operation_state ?? '').not.toMatch(/-processing$/);

    sim.resume();
    // What ipmi_sim had queued while stopped reaches it now: no session of a killed ipmitool can send a command.
    await new Promise((r) => setTimeout(r, 300));
    expect(await sim.log()).toEqual([]);
    expect(await sim.power()).toBe('on');
  });

  it('a rejected password: power off ends in BMC_ERR_AUTH at once, the BMC saw a handful of session opens and no retry storm', async () => {
    const d = daemon!;
    const sim = locked!;
    // The password is rotated in its file and the daemon re-reads secrets on SIGHUP: the BMC now refuses it.
    writeFileSync(join(secrets, 'locked.pw'), 'Wrong-pw-9\n', { mode: 0o600 });
    const reloads = d.stdout().split('SIGHUP: reloaded').length;
    d.child.kill('SIGHUP');
    await waitFor(() => d.stdout().split('SIGHUP: reloaded').length > reloads, 5_000, 'the SIGHUP reload');
    const before = sim.sessionsOpened();
    const { act, seen } = await sampledPowerAction(d, 2, 'power off', 5_000);
    expect(act.message).toMatch(/BMC_ERR_AUTH|rejected the user name or password/);
    expect(act.tookMs).toBeLessThan(2_000);
    expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
    const s = await statusOf(d, 2);
    expect(s).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_AUTH', error_type: 'power_off_error' } });
    // Acceptance's read and the off, each one session open and one -v rerun naming the reason (docs/decisions.md).
    const attempts = sim.sessionsOpened() - before;
    expect(attempts).toBe(4);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(sim.sessionsOpened() - before).toBe(attempts);
    await noIpmitoolLeft(d.child.pid!, seen);
    expect(await sim.log()).toEqual([]);
    expect(await sim.power()).toBe('on');
    expect(d.stdout() + d.stderr()).not.toContain('Wrong-pw-9');
  });
});
