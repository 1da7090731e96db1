/**
 * The driver contract: what every driver must do, run through drivers/bmc.ts (so a BMC that applies a change a
 * little later is polled, as in production). It runs on the fake (fake.test.ts), on the ipmi driver against real
 * ipmi_sim BMCs (ipmi/contract.test.ts), and on the redfish driver against the scripted HTTPS BMC
 * (redfish/contract.test.ts) and the Redfish emulator as a child process (redfish/emulator-contract.test.ts).
 *
 * Where the subject offers a `peer` (the BMC's own view: ipmi_sim's chassis log, the emulator's system, the fake
 * lab), every case also asserts what the BMC itself saw and holds, so a driver that reports success without doing
 * the right thing (or does the wrong thing and reads back what was wanted) is caught.
 *
 * Power words of the peer's log are the PowerAction words plus `toggle` (a power button) and `other`; a reboot is
 * carried out by drivers/bmc.ts as a verified off then on (soft reboot: soft-off then on, docs/decisions.md), so the
 * BMC must see exactly those commands, never its own reset.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBmc, type BmcHandle } from '../../drivers/bmc.js';
import { BmcLock } from '../../drivers/bmc-lock.js';
import { BmcError } from '../../drivers/errors.js';
import { EXPECTED_POWER, POWER_ACTIONS } from '../../drivers/power.js';
import type { BootSettings, BoundDriver, PowerAction, PowerReading, WaitPolicy } from '../../drivers/types.js';

/** A power command as the BMC recorded it, in the contract's words. */
export type PeerPowerCommand = PowerAction | 'toggle' | 'other';

/** The BMC's own view, read beside the driver (never through it). */
export interface ContractPeer {
  /** Power as the BMC holds it. */
  power(): Promise<PowerReading>;
  /** The power commands the BMC carried out since the subject was made, in order (refused ones left out). */
  powerLog(): Promise<PeerPowerCommand[]>;
  /**
   * The boot override the BMC holds: the fields it can show (ipmi_sim's chassis_control sees the device only); null
   * when it holds none.
   */
  boot?(): Promise<Partial<BootSettings> | null>;
  /** The image in the BMC's virtual CD, null when empty. */
  media?(): Promise<string | null>;
}

export interface ContractSubject {
  /** A driver bound to a BMC of its own (fresh state per test). */
  driver: BoundDriver;
  /** Runs after the test (stop the simulator, ...). */
  cleanup?: () => Promise<void>;
  /** The BMC's own view, where the subject offers one. */
  peer?: ContractPeer;
  /** Known, documented deviations of this BMC. */
  quirks?: {
    /** Keeps the device only: persistent and uefi are dropped (ipmi_sim). */
    dropsBootFlags?: boolean;
  };
}

/** How the BMC is to be found when the test starts. */
export interface SubjectInit {
  power: PowerReading;
}

/** Makes a fresh subject whose BMC holds `init` (a subject that cannot must still be honest: the harness checks). */
export type MakeSubject = (init: SubjectInit) => Promise<ContractSubject>;

export interface ContractOptions {
  wait?: WaitPolicy;
  callTimeoutMs?: number;
  minGapMs?: number;
}

const DEFAULTS = { wait: { delaysMs: [2, 5, 10], deadlineMs: 2_000 }, callTimeoutMs: 5_000, minGapMs: 0 };

/** What Redfish's BootSourceOverrideTarget values mean as boot devices (for the Redfish BMCs' peers). */
export const REDFISH_BOOT_DEVICE: Readonly<Record<string, BootSettings['device']>> = { Pxe: 'pxe', Hdd: 'disk', Cd: 'cdrom' };

/** What the ResetType values of Redfish mean as peer commands (for the Redfish BMCs' peers). */
export const REDFISH_RESET_COMMAND: Readonly<Record<string, PeerPowerCommand>> = {
  On: 'on',
  ForceOn: 'on',
  ForceOff: 'off',
  GracefulShutdown: 'soft-off',
  ForceRestart: 'reboot',
  PowerCycle: 'reboot',
  GracefulRestart: 'soft-reboot',
  PushPowerButton: 'toggle',
};

/**
 * The commands of `log` that changed something, replayed from power `from`: an `on` when on and an `off`/`soft-off`
 * when off are idempotent repeats and dropped (a driver may or may not send them); every other command is kept.
 */
export function effectiveCommands(log: readonly PeerPowerCommand[], from: PowerReading): PeerPowerCommand[] {
  let power = from;
  const out: PeerPowerCommand[] = [];
  for (const c of log) {
    if ((c === 'on' && power === 'on') || ((c === 'off' || c === 'soft-off') && power === 'off')) continue;
    out.push(c);
    if (c === 'toggle') power = power === 'on' ? 'off' : 'on';
    else if (c !== 'other') power = EXPECTED_POWER[c];
  }
  return out;
}

/** What the BMC must have carried out for each action, from each state (drivers/bmc.ts's REBOOT_AS). */
const EFFECT: Readonly<Record<PowerReading, Readonly<Record<PowerAction, readonly PeerPowerCommand[]>>>> = {
  off: { on: ['on'], off: [], 'soft-off': [], reboot: ['on'], 'soft-reboot': ['on'] },
  on: { on: [], off: ['off'], 'soft-off': ['soft-off'], reboot: ['off', 'on'], 'soft-reboot': ['soft-off', 'on'] },
};

function harness(opts: ContractOptions) {
  let cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    const todo = cleanups;
    cleanups = [];
    for (const c of todo.reverse()) await c();
  });
  return async (make: MakeSubject, init: SubjectInit = { power: 'off' }): Promise<{ bmc: BmcHandle; subject: ContractSubject }> => {
    const subject = await make(init);
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
    if (subject.peer) expect(await subject.peer.power(), 'the BMC holds the power the test asked for').toBe(init.power);
    return { bmc, subject };
  };
}

export function runPowerContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`power contract: ${name}`, () => {
    const setup = harness(opts);

    it('declares power, supports on, off and reboot, and a soft reboot exactly when soft-off', async () => {
      const { subject, bmc } = await setup(make);
      expect(subject.driver.capabilities).toContain('power');
      expect(subject.driver.power).toBeDefined();
      const actions = subject.driver.power!.supportedPowerActions();
      for (const a of ['on', 'off', 'reboot'] as const) {
        expect(actions).toContain(a);
        expect(bmc.supports('power', a)).toBe(true);
      }
      // docs/decisions.md: a soft reboot is a verified soft-off then a verified on, whatever restart the BMC lists.
      expect(bmc.supports('power', 'soft-off')).toBe(actions.includes('soft-off'));
      expect(bmc.supports('power', 'soft-reboot')).toBe(actions.includes('soft-off'));
    });

    for (const from of ['off', 'on'] as const) {
      it(`reads power as the BMC holds it (${from}), with the call record`, async () => {
        const { subject, bmc } = await setup(make, { power: from });
        expect(await bmc.readPower()).toEqual({ power: from, tried: [subject.driver.name], succeeded: subject.driver.name });
        if (subject.peer) expect(await subject.peer.powerLog()).toEqual([]);
      });

      for (const action of POWER_ACTIONS) {
        const expected = EXPECTED_POWER[action];
        const again = action === 'on' || action === 'off' || action === 'soft-off' ? ' (again succeeds)' : '';
        it(`${action} from ${from}: verified, reads ${expected}, the BMC saw ${EFFECT[from][action].join(' then ') || 'no change'}${again}`, async () => {
          const { subject, bmc } = await setup(make, { power: from });
          if (!bmc.supports('power', action)) {
            expect(action === 'soft-off' || action === 'soft-reboot', `${action} must be supported`).toBe(true);
            await expect(bmc.setPower(action)).rejects.toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
            expect((await bmc.readPower()).power).toBe(from);
            if (subject.peer) {
              expect(await subject.peer.powerLog()).toEqual([]);
              expect(await subject.peer.power()).toBe(from);
            }
            return;
          }
          expect(await bmc.setPower(action)).toEqual({ power: expected, tried: [subject.driver.name], succeeded: subject.driver.name });
          if (again) expect((await bmc.setPower(action)).power).toBe(expected);
          expect((await bmc.readPower()).power).toBe(expected);
          if (subject.peer) {
            expect(await subject.peer.power()).toBe(expected);
            expect(effectiveCommands(await subject.peer.powerLog(), from)).toEqual(EFFECT[from][action]);
          }
        });
      }
    }

    it('a call with an aborted signal rejects, with nothing sent', async () => {
      const { bmc, subject } = await setup(make);
      await expect(bmc.readPower({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(BmcError);
      await expect(bmc.setPower('on', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'BMC_ERR_ABORTED' });
      if (subject.peer) {
        expect(await subject.peer.powerLog()).toEqual([]);
        expect(await subject.peer.power()).toBe('off');
      }
    });
  });
}

/** What the peer shows of `settings`, field by field (only the fields it can show). */
async function expectPeerBoot(subject: ContractSubject, settings: BootSettings, flagsDropped: boolean): Promise<void> {
  if (!subject.peer?.boot) return;
  const held = await subject.peer.boot();
  expect(held, 'the BMC holds an override').not.toBeNull();
  if (held === null) return;
  const want: Partial<BootSettings> = flagsDropped ? { device: settings.device, persistent: false, mode: 'legacy' } : settings;
  for (const k of Object.keys(held) as (keyof BootSettings)[]) expect(held[k], `the BMC's own ${k}`).toBe(want[k]);
  expect(held.device, 'the BMC shows the device').toBeDefined();
}

export function runBootContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`boot contract: ${name}`, () => {
    const setup = harness(opts);

    for (const device of ['pxe', 'disk', 'cdrom'] as const) {
      it(`sets ${device} for the next boot (legacy) and reads it back; again succeeds; the BMC holds it`, async () => {
        const { bmc, subject } = await setup(make);
        const settings = { device, persistent: false, mode: 'legacy' } as const;
        expect(await bmc.setBoot(settings)).toEqual({ tried: [subject.driver.name], succeeded: subject.driver.name });
        await bmc.setBoot(settings);
        expect((await bmc.readBoot()).boot).toEqual(settings);
        await expectPeerBoot(subject, settings, false);
      });
    }

    const flagged: BootSettings[] = [
      { device: 'pxe', persistent: false, mode: 'uefi' },
      { device: 'cdrom', persistent: true, mode: 'legacy' },
      { device: 'disk', persistent: true, mode: 'uefi' },
    ];
    for (const settings of flagged) {
      const what = `${settings.device} ${settings.persistent ? 'persistent' : 'once'} ${settings.mode}`;
      it(`${what} is applied, or reported as ignored by a BMC known to drop the flags`, async () => {
        const { bmc, subject } = await setup(make);
        const drops = subject.quirks?.dropsBootFlags === true;
        if (drops) {
          await expect(bmc.setBoot(settings)).rejects.toMatchObject({ code: 'BMC_ERR_BOOT_FLAGS_IGNORED' });
          expect((await bmc.readBoot()).boot).toEqual({ device: settings.device, persistent: false, mode: 'legacy' });
        } else {
          await bmc.setBoot(settings);
          expect((await bmc.readBoot()).boot).toEqual(settings);
        }
        await expectPeerBoot(subject, settings, drops);
      });
    }

    it('clears an override: the read-back and the BMC itself hold none; clearing again succeeds', async () => {
      const { bmc, subject } = await setup(make);
      await bmc.setBoot({ device: 'pxe', persistent: false, mode: 'legacy' });
      expect(await bmc.clearBoot()).toEqual({ tried: [subject.driver.name], succeeded: subject.driver.name });
      expect((await bmc.readBoot()).boot).toBeNull();
      if (subject.peer?.boot) expect(await subject.peer.boot(), "the BMC's own override").toBeNull();
      await bmc.clearBoot();
      expect((await bmc.readBoot()).boot).toBeNull();
      if (subject.peer) expect(await subject.peer.powerLog(), 'clearing sends no power command').toEqual([]);
    });

    it('setting boot sends no power command', async () => {
      const { bmc, subject } = await setup(make);
      await bmc.setBoot({ device: 'pxe', persistent: false, mode: 'legacy' });
      if (subject.peer) {
        expect(await subject.peer.powerLog()).toEqual([]);
        expect(await subject.peer.power()).toBe('off');
      }
    });
  });
}

export function runMediaContract(name: string, make: MakeSubject, opts: ContractOptions = {}): void {
  describe(`media contract: ${name}`, () => {
    const setup = harness(opts);

    it('insert twice and eject twice succeed; the BMC holds the image, then none', async () => {
      const { bmc, subject } = await setup(make);
      const url = 'http://10.0.0.1:8081/boot/ramdisk.iso';
      const peerMedia = subject.peer?.media?.bind(subject.peer);
      expect(await bmc.insertMedia(url)).toEqual({ tried: [subject.driver.name], succeeded: subject.driver.name });
      if (peerMedia) expect(await peerMedia()).toBe(url);
      await bmc.insertMedia(url);
      if (peerMedia) expect(await peerMedia()).toBe(url);
      await bmc.ejectMedia();
      if (peerMedia) expect(await peerMedia()).toBeNull();
      await bmc.ejectMedia();
      if (peerMedia) expect(await peerMedia()).toBeNull();
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
        const { bmc, subject } = await setup(make);
        await expect(bmc.readPower()).rejects.toMatchObject({ code, nothingSent: true });
        await expect(bmc.setPower('on')).rejects.toMatchObject({ code, nothingSent: true });
        if (subject.peer) {
          expect(await subject.peer.powerLog()).toEqual([]);
          expect(await subject.peer.power()).toBe('off');
        }
      });
    }
  });
}
