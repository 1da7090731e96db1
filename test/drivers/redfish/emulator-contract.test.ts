/**
 * The whole driver contract (test/drivers/contract.ts) on the redfish driver against the Redfish BMC emulator
 * (test/emulators/redfish/) as a real child process: the built dist/ program, over HTTPS with the test CA it makes,
 * through the real undici HTTP port. One emulator process serves the file; each test gets a system of its own, put
 * back to a known state through the emulator's control API (power, profile), and the BMC's own view is the
 * emulator's record of that system (`GET /emulator/systems/{id}`: PowerState, boot override, media, and every command
 * it received), so a driver that sends the wrong ResetType is caught by what the BMC saw. Power transitions are
 * asynchronous (PoweringOn/PoweringOff for 50 ms), so every change is verified by polling, as in production.
 *
 * Needs `npm run build` first (dist/test/emulators/redfish/main.js); without it every test fails saying so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { UndiciHttpClient } from '../../../drivers/http.js';
import { defaultDriverPorts } from '../../../drivers/ports.js';
import { redfishDriver } from '../../../drivers/redfish/index.js';
import type { BoundDriver, PowerReading } from '../../../drivers/types.js';
import { emulatorControl, launchEmulator, type EmulatorControl, type EmulatorProcess } from '../../emulators/redfish/launch.js';
import { DEFAULT_PROFILE, type SystemDump, type SystemProfile } from '../../emulators/redfish/model.js';
import {
  REDFISH_BOOT_DEVICE,
  REDFISH_RESET_COMMAND,
  runBootContract,
  runErrorContract,
  runInventoryContract,
  runMediaContract,
  runPowerContract,
  type ContractPeer,
  type MakeSubject,
} from '../contract.js';
import { recordingLog } from './setup.js';

/** Enough for every test of this file, one system each. */
const SYSTEMS = 96;
const POWER_DELAY_MS = 50;

const tlsDir = mkdtempSync(join(tmpdir(), 'metald-emu-contract-'));
let emu: EmulatorProcess | null = null;
let control: EmulatorControl | null = null;
let startError: Error | null = null;
let used = 0;

beforeAll(async () => {
  try {
    emu = await launchEmulator(['--systems', String(SYSTEMS), '--tls-dir', tlsDir, '--power-delay-ms', String(POWER_DELAY_MS)]);
    control = emulatorControl(emu.url, await readFile(emu.caFile!, 'utf8'));
  } catch (e) {
    // Every test then fails with this reason (never a silent skip).
    startError = e as Error;
  }
}, 30_000);

afterAll(async () => {
  await emu?.stop();
  rmSync(tlsDir, { recursive: true, force: true });
});

function running(): { emu: EmulatorProcess; control: EmulatorControl } {
  if (!emu || !control) throw new Error(`the Redfish emulator did not start: ${startError?.message ?? 'unknown reason'}`);
  return { emu, control };
}

/** A PowerState as the emulator holds it; a transition reads as the state it leaves (it is not done). */
const POWER: Readonly<Record<SystemDump['powerState'], PowerReading>> = { On: 'on', Off: 'off', PoweringOn: 'off', PoweringOff: 'on' };

/** The emulator's own record of system `id`, from the command with seq > `since` on. */
function emulatorPeer(c: EmulatorControl, id: string, since: number): ContractPeer {
  return {
    power: async () => POWER[(await c.system(id)).powerState],
    powerLog: async () =>
      (await c.system(id)).commands
        .filter((r) => r.seq > since && r.kind === 'reset' && r.by === 'client' && r.status >= 200 && r.status < 300)
        .map((r) => REDFISH_RESET_COMMAND[String(r.args['ResetType'])] ?? 'other'),
    boot: async () => {
      const { boot } = await c.system(id);
      if (boot.enabled === 'Disabled') return null;
      return { device: REDFISH_BOOT_DEVICE[boot.target], persistent: boot.enabled === 'Continuous', mode: boot.mode === 'UEFI' ? 'uefi' : 'legacy' };
    },
    media: async () => {
      const { media } = await c.system(id);
      return media.inserted ? media.image : null;
    },
  };
}

/** The redfish driver with the real undici port, trusting the emulator's test CA; `close` logs out and closes the pool. */
function bindDriver(emu: EmulatorProcess, where: { address: string; system_id: string }, password: string): { driver: BoundDriver; close(): Promise<void> } {
  const http = new UndiciHttpClient();
  const driver = redfishDriver.create(
    {
      nodeId: `emu-${where.system_id}`,
      settings: { ...where, username: emu.username, password_file: '/run/credentials/unused', ca_file: emu.caFile },
      secret: (k) => Promise.resolve(k === 'password_file' ? password : null),
    },
    { clock: defaultDriverPorts.clock, log: recordingLog().log, http },
  );
  return {
    driver,
    close: async () => {
      await driver.close?.();
      await http.close();
    },
  };
}

/**
 * A fresh system (the next unused one), reset through the control API to `power` and the default profile plus
 * `profile`, and the redfish driver bound to it with the test CA; `password` overrides the right one.
 */
function makeEmu(profile: Partial<SystemProfile> = {}, o: { password?: string; prime?: boolean } = {}): MakeSubject {
  return async ({ power }) => {
    const { emu, control } = running();
    used += 1;
    if (used > SYSTEMS) throw new Error(`emulator-contract: more than ${SYSTEMS} subjects; raise SYSTEMS`);
    const id = `sys-${used}`;
    const before = await control.configure(id, { ...DEFAULT_PROFILE, powerDelayMs: POWER_DELAY_MS, ...profile, powerState: power === 'on' ? 'On' : 'Off' });
    const since = before.commands.at(-1)?.seq ?? 0;
    const { driver, close } = bindDriver(emu, { address: emu.url, system_id: `/redfish/v1/Systems/${id}` }, o.password ?? emu.password);
    // What the BMC offers is known after the first read of the system, as in the daemon (design 5).
    if (o.prime !== false) await driver.power!.getPower();
    return {
      driver,
      peer: emulatorPeer(control, id, since),
      cleanup: close,
    };
  };
}

/** A driver pointed at a port nobody listens on. */
const unreachable: MakeSubject = async () => {
  const { emu } = running();
  const port = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  const { driver, close } = bindDriver(emu, { address: `https://127.0.0.1:${port}`, system_id: '/redfish/v1/Systems/sys-1' }, emu.password);
  return { driver, cleanup: close };
};

const opts = { wait: { delaysMs: [20, 50, 100], deadlineMs: 4_000 }, callTimeoutMs: 5_000 };
runPowerContract('redfish on the emulator', makeEmu(), opts);
runPowerContract('redfish on the emulator, reset tasks (202 + task monitor)', makeEmu({ tasks: true }), opts);
runPowerContract('redfish on the emulator, GracefulShutdown but no GracefulRestart', makeEmu({ resetTypes: ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart'] }), opts);
runPowerContract('redfish on the emulator, no GracefulShutdown', makeEmu({ resetTypes: ['On', 'ForceOff', 'ForceRestart'] }), opts);
runBootContract('redfish on the emulator', makeEmu(), opts);
runMediaContract('redfish on the emulator', makeEmu(), opts);
runInventoryContract('redfish on the emulator', makeEmu(), opts);
runErrorContract('redfish on the emulator', { unreachable, badAuth: makeEmu({}, { password: 'not-the-password', prime: false }) }, opts);
