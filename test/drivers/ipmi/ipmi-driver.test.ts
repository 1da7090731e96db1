/**
 * The ipmi driver against real OpenIPMI ipmi_sim BMCs (test/emulators/ipmi-sim.ts), through the real process
 * runner and ipmitool: what the BMC itself saw is read from its chassis_control log, not only what the driver says.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBmc } from '../../../drivers/bmc.js';
import { BmcLock } from '../../../drivers/bmc-lock.js';
import type { BoundDriver } from '../../../drivers/types.js';
import { startIpmiSim, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { bindIpmi, recordingRunner, TEST_WORK_DIR } from './helpers.js';

afterEach(stopAllIpmiSims);

const fastChain = (driver: BoundDriver, callTimeoutMs = 5_000) =>
  createBmc(`node-${Math.random()}`, [driver], { lock: new BmcLock(), minGapMs: 0, callTimeoutMs, wait: { delaysMs: [20, 50, 100], deadlineMs: 4_000 } });

/** Waits until the BMC's log has `n` entries (ipmi_sim carries out a cycle's power-on a second later). */
async function logOf(sim: IpmiSim, n: number): Promise<string[]> {
  const until = Date.now() + 4_000;
  for (;;) {
    const log = await sim.log();
    if (log.length >= n || Date.now() > until) return log;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('ipmi driver on ipmi_sim', () => {
  it('power status, on, off, soft and cycle: each reaches the BMC once', async () => {
    const sim = await startIpmiSim({ password: 'pw-power-1' });
    const runner = recordingRunner();
    const power = bindIpmi(sim, { runner }).power!;
    expect(await power.getPower()).toBe('off');
    await power.setPower('on');
    expect(await sim.log()).toEqual(['power 1']);
    expect(await power.getPower()).toBe('on');
    await power.setPower('soft-off');
    expect(await sim.log()).toEqual(['power 1', 'shutdown 1']);
    expect(await sim.power()).toBe('off');
    await power.setPower('on');
    await power.setPower('reboot');
    expect(await logOf(sim, 5)).toEqual(['power 1', 'shutdown 1', 'power 1', 'power 0', 'power 1']);
    await power.setPower('off');
    expect(await sim.log()).toEqual(['power 1', 'shutdown 1', 'power 1', 'power 0', 'power 1', 'power 0']);
    expect(await power.getPower()).toBe('off');
    expect(runner.runs.map((r) => r.args.slice(-1)[0])).toEqual(['status', 'on', 'status', 'soft', 'on', 'cycle', 'off', 'status']);
    for (const r of runner.runs) {
      expect(r.args).toEqual(expect.arrayContaining(['-I', 'lanplus', '-C', '3', '-R', '1', '-N', '1', '-E']));
      expect(r.args).not.toContain(sim.password);
      expect(r.env).toEqual({ IPMI_PASSWORD: sim.password, HOME: join(TEST_WORK_DIR, 'ipmi', 'home') });
    }
  });

  it('through the BMC chain: each change verified by read-back, each command once in the BMC log', async () => {
    const sim = await startIpmiSim({ password: 'pw-chain-1' });
    const bmc = fastChain(bindIpmi(sim));
    expect(await bmc.readPower()).toEqual({ power: 'off', tried: ['ipmi'], succeeded: 'ipmi' });
    expect(await bmc.setPower('on')).toEqual({ power: 'on', tried: ['ipmi'], succeeded: 'ipmi' });
    expect(await sim.log()).toEqual(['power 1']);
    expect((await bmc.setPower('off')).power).toBe('off');
    expect((await bmc.setPower('on')).power).toBe('on');
    expect((await bmc.setPower('soft-off')).power).toBe('off');
    expect((await bmc.setPower('on')).power).toBe('on');
    expect((await bmc.setPower('reboot')).power).toBe('on');
    expect(await sim.log()).toEqual(['power 1', 'power 0', 'power 1', 'shutdown 1', 'power 1', 'power 0', 'power 1']);
    expect(await sim.power()).toBe('on');
    await bmc.close();
  });

  it('boot device: set and read back; the flags ipmi_sim drops are BMC_ERR_BOOT_FLAGS_IGNORED', async () => {
    const sim = await startIpmiSim({ password: 'pw-boot-1' });
    const runner = recordingRunner();
    const driver = bindIpmi(sim, { runner });
    for (const device of ['pxe', 'disk', 'cdrom'] as const) {
      await driver.boot!.setBoot({ device, persistent: false, mode: 'legacy' });
      expect(await driver.boot!.getBoot()).toEqual({ device, persistent: false, mode: 'legacy' });
    }
    expect(await sim.log()).toEqual(['boot pxe', 'boot default', 'boot cdrom']);
    const bmc = fastChain(driver);
    await expect(bmc.setBoot({ device: 'pxe', persistent: true, mode: 'uefi' })).rejects.toMatchObject({
      code: 'BMC_ERR_BOOT_FLAGS_IGNORED',
      message: expect.stringMatching(/persistent: asked true, BMC reports false; mode: asked uefi, BMC reports legacy/),
    });
    expect(runner.runs.at(-2)!.args.slice(-4)).toEqual(['chassis', 'bootdev', 'pxe', 'options=persistent,efiboot']);
    expect(runner.runs.at(-1)!.args.slice(-4)).toEqual(['chassis', 'bootparam', 'get', '5']);
    expect(await sim.log()).toEqual(['boot pxe', 'boot default', 'boot cdrom', 'boot pxe']);
  });

  it('persistent_boot: false: a persistent disk boot is sent and verified as next boot only; ipmi_sim keeps it', async () => {
    const sim = await startIpmiSim({ password: 'pw-boot-2' });
    const runner = recordingRunner();
    const bmc = fastChain(bindIpmi(sim, { runner, settings: { persistent_boot: false } }));
    expect(await bmc.setBoot({ device: 'disk', persistent: true, mode: 'legacy' })).toEqual({ tried: ['ipmi'], succeeded: 'ipmi' });
    expect(runner.runs.at(-2)!.args.slice(-3)).toEqual(['chassis', 'bootdev', 'disk']); // no options=persistent
    expect(await sim.log()).toEqual(['boot default']);
    // The mode is still verified: a BMC that drops it is refused as before.
    await expect(bmc.setBoot({ device: 'pxe', persistent: true, mode: 'uefi' })).rejects.toMatchObject({ code: 'BMC_ERR_BOOT_FLAGS_IGNORED', message: expect.stringMatching(/mode: asked uefi/) });
    await bmc.close();
  });

  it('a wrong password is BMC_ERR_AUTH, quickly, with nothing sent', async () => {
    const sim = await startIpmiSim({ password: 'pw-auth-1' });
    const bmc = fastChain(bindIpmi(sim, { password: 'not-the-password' }));
    const t0 = performance.now();
    await expect(bmc.setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_AUTH', nothingSent: true, driver: 'ipmi' });
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(await sim.log()).toEqual([]);
    expect(await sim.power()).toBe('off');
  });
});
