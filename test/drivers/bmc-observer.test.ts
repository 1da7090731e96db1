/**
 * createBmc's `onCall`: one report per command a driver ran or refused (per driver of a fall-through), per
 * verification, and per call refused before any driver (driver `bmc`); a throwing observer never fails a command.
 */
import { describe, expect, it } from 'vitest';
import type { BmcCall } from '../../drivers/bmc.js';
import type { BmcErrorCode } from '../../drivers/errors.js';
import { bindFakes, FakeLab, fastBmc, nextNodeId } from './helpers.js';

type Report = [driver: string, call: BmcCall, code: BmcErrorCode | null, timed: boolean];

function observed(names = ['fake-a', 'fake-b'], options: Record<string, unknown> = {}) {
  const lab = new FakeLab();
  const id = nextNodeId();
  const reports: Report[] = [];
  const bmc = fastBmc(id, bindFakes(lab, id, names, options), {
    onCall: (driver, call, code, ms) => {
      if (ms !== null) expect(ms).toBeGreaterThanOrEqual(0);
      reports.push([driver, call, code, ms !== null]);
    },
  });
  return { lab, id, bmc, reports };
}

describe('createBmc: onCall', () => {
  it('a read that falls through: the refusal and the success, each with its driver and a duration', async () => {
    const { lab, id, bmc, reports } = observed();
    lab.setFaults(id, { unreachable: true }, 'fake-a');
    await bmc.readPower();
    expect(reports).toEqual([
      ['fake-a', 'power_read', 'BMC_ERR_UNREACHABLE', true],
      ['fake-b', 'power_read', null, true],
    ]);
  });

  it('a power change: the command, its read-backs and its verification', async () => {
    const { bmc, reports } = observed(['fake']);
    await bmc.setPower('on');
    expect(reports[0]).toEqual(['fake', 'power_set', null, true]);
    expect(reports.at(-1)).toEqual(['fake', 'power_verify', null, false]);
    expect(reports.slice(1, -1).every(([d, c, code]) => d === 'fake' && c === 'power_read' && code === null)).toBe(true);
  });

  it('a command the BMC refuses is one failed power_set, not verified', async () => {
    const { lab, id, bmc, reports } = observed(['fake']);
    lab.setFaults(id, { fail_power_on: 1 });
    await expect(bmc.setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_COMMAND_FAILED' });
    expect(reports).toEqual([['fake', 'power_set', 'BMC_ERR_COMMAND_FAILED', true]]);
  });

  it('a change the BMC accepts and ignores: the verification fails', async () => {
    const { lab, id, bmc, reports } = observed(['fake']);
    lab.setFaults(id, { ignore_power: 1 });
    await expect(bmc.setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_VERIFY_FAILED' });
    expect(reports[0]).toEqual(['fake', 'power_set', null, true]);
    expect(reports.at(-1)).toEqual(['fake', 'power_verify', 'BMC_ERR_VERIFY_FAILED', false]);
  });

  it('boot: the set, its read-back and the verification; an ignored override fails boot_verify', async () => {
    const { lab, id, bmc, reports } = observed(['fake']);
    await bmc.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
    expect(reports).toEqual([
      ['fake', 'boot_set', null, true],
      ['fake', 'boot_read', null, true],
      ['fake', 'boot_verify', null, false],
    ]);
    reports.length = 0;
    lab.setFaults(id, { ignore_boot_flags: true });
    await expect(bmc.setBoot({ device: 'disk', persistent: true, mode: 'uefi' })).rejects.toMatchObject({ code: 'BMC_ERR_BOOT_FLAGS_IGNORED' });
    expect(reports.at(-1)).toEqual(['fake', 'boot_verify', 'BMC_ERR_BOOT_FLAGS_IGNORED', false]);
  });

  it('calls refused before any driver are the `bmc` pseudo-driver, without a duration', async () => {
    const { bmc, reports } = observed(['fake'], { supports_soft: false });
    await expect(bmc.setPower('soft-off')).rejects.toMatchObject({ code: 'BMC_ERR_UNSUPPORTED' });
    await bmc.close();
    await expect(bmc.readPower()).rejects.toMatchObject({ code: 'BMC_ERR_ABORTED' });
    expect(reports).toEqual([
      ['bmc', 'power_set', 'BMC_ERR_UNSUPPORTED', false],
      ['bmc', 'power_read', 'BMC_ERR_ABORTED', false],
    ]);
  });

  it('an observer that throws does not fail the command', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const bmc = fastBmc(id, bindFakes(lab, id, ['fake']), {
      onCall: () => {
        throw new Error('metrics broke');
      },
    });
    await expect(bmc.setPower('on')).resolves.toMatchObject({ power: 'on' });
  });
});
