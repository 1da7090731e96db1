/**
 * ipmitool's HOME (drivers/ipmi/home.ts): the driver hands ipmitool a HOME in the agent's work directory whose
 * one-entry vendor registry ipmitool reads instead of the system's 4.6 MB one. Checked on the real ipmitool: it
 * honours `$HOME/.local/usr/share/misc/enterprise-numbers` (a probe registry naming ipmi_sim's manufacturer shows in
 * `mc info`), and every call of the driver carries that HOME and still works against ipmi_sim.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ipmitoolHome, REGISTRY, REGISTRY_DIR, REGISTRY_NAMES } from '../../../drivers/ipmi/home.js';
import { IPMITOOL, startIpmiSim, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { bindIpmi, recordingRunner } from './helpers.js';

const run = promisify(execFile);
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'metald-ipmi-home-'));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  await stopAllIpmiSims();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('ipmitoolHome', () => {
  it('writes a one-entry registry under <workDir>/ipmi/home, private, once', () => {
    const work = tmp();
    const errors: string[] = [];
    const home = ipmitoolHome(work, (m) => errors.push(m));
    expect(home).toBe(join(work, 'ipmi', 'home'));
    for (const name of REGISTRY_NAMES) {
      const file = join(home!, ...REGISTRY_DIR, name);
      expect(readFileSync(file, 'utf8')).toBe(REGISTRY);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(statSync(join(work, 'ipmi')).mode & 0o777).toBe(0o700);
    expect(ipmitoolHome(work, (m) => errors.push(m))).toBe(home);
    expect(errors).toEqual([]);
  });

  it('none without a work directory; none, said once, when it cannot be written', () => {
    expect(ipmitoolHome(undefined, () => undefined)).toBeNull();
    const work = join(tmp(), 'a-file');
    writeFileSync(work, 'not a directory');
    const errors: string[] = [];
    expect(ipmitoolHome(work, (m) => errors.push(m))).toBeNull();
    expect(ipmitoolHome(work, (m) => errors.push(m))).toBeNull();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/could not be written/);
  });
});

describe('on the real ipmitool and ipmi_sim', () => {
  let sim: IpmiSim;
  const password = 'pw-home-1';

  it('ipmitool reads the registry under $HOME instead of the system one', async () => {
    sim = await startIpmiSim({ password });
    const args = ['-I', 'lanplus', '-H', sim.host, '-p', String(sim.port), '-U', sim.username, '-C', '3', '-R', '1', '-N', '1', '-E', 'mc', 'info'];
    const probe = tmp();
    mkdirSync(join(probe, ...REGISTRY_DIR), { recursive: true });
    // ipmi_sim's manufacturer (mc_add ... 0x1291) under a name only this file has, at each name the driver writes.
    for (const name of REGISTRY_NAMES) writeFileSync(join(probe, ...REGISTRY_DIR, name), `${0x1291}\n  metald-registry-probe\n`);
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', IPMI_PASSWORD: password };
    const withProbe = await run(IPMITOOL, args, { env: { ...env, HOME: probe } });
    expect(withProbe.stdout).toMatch(/Manufacturer Name\s*:\s*metald-registry-probe/);
    const withSystem = await run(IPMITOOL, args, { env });
    expect(withSystem.stdout).not.toContain('metald-registry-probe');
  }, 30_000);

  it("every call of the driver hands ipmitool the work directory's HOME, and works", async () => {
    const work = tmp();
    const runner = recordingRunner();
    const driver = bindIpmi(sim, { runner, workDir: work });
    expect(await driver.power!.getPower()).toMatch(/^(on|off)$/);
    await driver.boot!.getBoot();
    expect(runner.runs.length).toBeGreaterThan(0);
    for (const r of runner.runs) expect(r.env['HOME']).toBe(join(work, 'ipmi', 'home'));
    const stderr = await run(IPMITOOL, ['-I', 'lanplus', '-H', sim.host, '-p', String(sim.port), '-U', sim.username, '-C', '3', '-R', '1', '-N', '1', '-E', 'chassis', 'power', 'status'], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', IPMI_PASSWORD: password, HOME: join(work, 'ipmi', 'home') },
    });
    // ipmitool takes the one-entry registry as it is (no "Failed to load entries" warning).
    expect(stderr.stderr).toBe('');
    expect(stderr.stdout).toMatch(/Chassis Power is (on|off)/);
  }, 30_000);
});
