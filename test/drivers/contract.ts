/**
 * The driver contract: what every driver must do, run through drivers/bmc.ts (so a BMC that applies a change a
 * little later is polled, as in production). The fake runs it here; the IPMI and Redfish drivers will run it against
 * ipmi_sim and the Redfish emulator with their own `make`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBmc, type BmcHandle } from '../../drivers/bmc.js';
import { BmcLock } from '../../drivers/bmc-lock.js';
import { BmcError } from '../../drivers/errors.js';
import type { BootDevice, BoundDriver, PowerAction, WaitPolicy } from '../../drivers/types.js';

export interface ContractSubject {
  /** A driver bound to a BMC of its own (fresh state per test). */
  driver: BoundDriver;
  /** Runs after the test (stop the simulator, ...). */
  cleanup?: () => Promise<void>;
  /** Known, documented deviations of this BMC. */
  quirks?: {
    /** Keeps the device only: persistent and uefi are dropped (ipmi_sim). */
    dropsBootFlags?: boolean;
  };
}

export type MakeSubject = () => Promise<ContractSubject>;

export interface ContractOptions {
  wait?: WaitPolicy;
  callTimeoutMs?: number;
  minGapMs?: number;
}

const DEFAULTS = { wait: { delaysMs: [2, 5, 10], deadlineMs: 2_000 }, callTimeoutMs: 5_000, minGapMs: 0 };

function harness(opts: ContractOptions) {
  let cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    const todo = cleanups;
    cleanups = [];
    for (const c of todo.reverse()) await c();
  });
  return async (make: MakeSubject): Promise<{ bmc: BmcHandle; subject: ContractSubject }> => {
    const subject = await make();
    const bmc = createBmc('contract-node', [subject.driver], {
      lock: new BmcLock(),
      minGapMs: opts.minGapMs ?? DEFAULTS.minGapMs,
      callTimeoutMs: opts.callTimeoutMs ?? DEFAULTS.callTimeoutMs,
      wait: opts.wait ?? DEFAULTS.wait,
    });
    cleanups.push(async () => {
      await bmc.close();
      await subject.cleanup?.();
    });
    return { bmc, subject };
  };
}

export function runPowerContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`power contract: ${name}`, () => {
    const setup = harness(opts);

    it('declares power and supports on, off and reboot', async () => {
      const { subject, bmc } = await setup(make);
      expect(subject.driver.capabilities).toContain('power');
      expect(subject.driver.power).toBeDefined();
      const actions = subject.driver.power!.supportedPowerActions();
      for (const a of ['on', 'off', 'reboot'] as const) expect(actions).toContain(a);
      expect(bmc.supports('power', 'on')).toBe(true);
    });

    it('reads power as on or off, with the call record', async () => {
      const { subject, bmc } = await setup(make);
      const r = await bmc.readPower();
      expect(['on', 'off']).toContain(r.power);
      expect(r).toMatchObject({ tried: [subject.driver.name], succeeded: subject.driver.name });
    });

    it('on is verified and idempotent', async () => {
      const { bmc } = await setup(make);
      expect((await bmc.setPower('on')).power).toBe('on');
      expect((await bmc.setPower('on')).power).toBe('on');
      expect((await bmc.readPower()).power).toBe('on');
    });

    it('off is verified and idempotent', async () => {
      const { bmc } = await setup(make);
      await bmc.setPower('on');
      expect((await bmc.setPower('off')).power).toBe('off');
      expect((await bmc.setPower('off')).power).toBe('off');
      expect((await bmc.readPower()).power).toBe('off');
    });

    it('reboot of a running server leaves it on', async () => {
      const { bmc } = await setup(make);
      await bmc.setPower('on');
      expect((await bmc.setPower('reboot')).power).toBe('on');
    });

    it('soft actions work when declared, and are refused without sending when not', async () => {
      const { subject, bmc } = await setup(make);
      const actions = subject.driver.power!.supportedPowerActions();
      for (const action of ['soft-reboot', 'soft-off'] as const satisfies readonly PowerAction[]) {
        if (actions.includes(action)) {
          await bmc.setPower('on');
          expect((await bmc.setPower(action)).power).toBe(action === 'soft-off' ? 'off' : 'on');
        } else {
          expect(bmc.supports('power', action)).toBe(false);
          await expect(bmc.setPower(action)).rejects.toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
        }
      }
    });

    it('a call with an aborted signal rejects', async () => {
      const { bmc } = await setup(make);
      await expect(bmc.readPower({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(BmcError);
    });
  });
}

export function runBootContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`boot contract: ${name}`, () => {
    const setup = harness(opts);

    for (const device of ['pxe', 'disk', 'cdrom'] as const satisfies readonly BootDevice[]) {
      it(`sets ${device} for the next boot (legacy) and reads it back; again succeeds`, async () => {
        const { bmc, subject } = await setup(make);
        const settings = { device, persistent: false, mode: 'legacy' } as const;
        expect(await bmc.setBoot(settings)).toEqual({ tried: [subject.driver.name], succeeded: subject.driver.name });
        await bmc.setBoot(settings);
        expect((await bmc.readBoot()).boot).toEqual(settings);
      });
    }

    it('persistent uefi is applied, or reported as ignored by a BMC known to drop the flags', async () => {
      const { bmc, subject } = await setup(make);
      const settings = { device: 'disk', persistent: true, mode: 'uefi' } as const;
      if (subject.quirks?.dropsBootFlags) {
        await expect(bmc.setBoot(settings)).rejects.toMatchObject({ code: 'BMC_ERR_BOOT_FLAGS_IGNORED' });
      } else {
        await bmc.setBoot(settings);
        expect((await bmc.readBoot()).boot).toEqual(settings);
      }
    });
  });
}

export function runMediaContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`media contract: ${name}`, () => {
    const setup = harness(opts);

    it('insert twice and eject twice succeed', async () => {
      const { bmc, subject } = await setup(make);
      const url = 'http://10.0.0.1:8081/boot/ramdisk.iso';
      expect(await bmc.insertMedia(url)).toEqual({ tried: [subject.driver.name], succeeded: subject.driver.name });
      await bmc.insertMedia(url);
      await bmc.ejectMedia();
      await bmc.ejectMedia();
    });
  });
}

export function runInventoryContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`inventory contract: ${name}`, () => {
    const setup = harness(opts);

    it('reads an inventory of the documented shape', async () => {
      const { bmc } = await setup(make);
      const { inventory } = await bmc.readInventory();
      for (const k of ['manufacturer', 'model', 'serial'] as const) expect(inventory[k] === null || typeof inventory[k] === 'string').toBe(true);
      for (const k of ['cpus', 'memory_mib'] as const) expect(inventory[k] === null || Number.isInteger(inventory[k])).toBe(true);
      expect(Array.isArray(inventory.macs)).toBe(true);
    });
  });
}

/** Error translation: each `make` gives a driver whose BMC is in that condition. */
export function runErrorContract(name: string, makers: { unreachable?: MakeSubject; badAuth?: MakeSubject }, opts: ContractOptions = {}): void {
  describe(`error contract: ${name}`, () => {
    const setup = harness(opts);
    const cases = [
      ['unreachable', makers.unreachable, 'BMC_ERR_UNREACHABLE'],
      ['bad credentials', makers.badAuth, 'BMC_ERR_AUTH'],
    ] as const;
    for (const [what, make, code] of cases) {
      // A driver's suite names the conditions it can put its BMC in; only those are checked.
      if (!make) continue;
      it(`${what} is ${code}, proving nothing was sent`, async () => {
        const { bmc } = await setup(make);
        await expect(bmc.readPower()).rejects.toMatchObject({ code, nothingSent: true });
        await expect(bmc.setPower('on')).rejects.toMatchObject({ code, nothingSent: true });
      });
    }
  });
}
