/**
 * The whole driver contract (test/drivers/contract.ts) on the ipmi driver against a fresh real ipmi_sim BMC per test,
 * through the real process runner and ipmitool. The BMC's own view is its chassis_control state: its power file and
 * the log of every `set` ipmi_sim carried out (`power 1`, `power 0`, `shutdown 1`, `reset 1`, `boot pxe`), so a
 * driver that sends the wrong chassis command is caught by what the BMC saw, not only by the read-back.
 * Declared quirk: ipmi_sim drops the efiboot and persistent flags (legacy, next boot only).
 */
import { createSocket } from 'node:dgram';
import type { BootSettings } from '../../../drivers/types.js';
import { runBootContract, runErrorContract, runPowerContract, type ContractPeer, type MakeSubject, type PeerPowerCommand } from '../contract.js';
import { startIpmiSim, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { bindIpmi } from './helpers.js';

/** chassis_control `set` lines -> the contract's words. */
const SET_COMMAND: Readonly<Record<string, PeerPowerCommand>> = { 'power 1': 'on', 'power 0': 'off', 'shutdown 1': 'soft-off', 'reset 1': 'reboot' };
/** chassis_control boot devices -> ours (`default` is what ipmi_sim passes for `bootdev disk`). */
const DEVICE: Readonly<Record<string, BootSettings['device']>> = { pxe: 'pxe', default: 'disk', cdrom: 'cdrom' };

function simPeer(sim: IpmiSim): ContractPeer {
  return {
    power: () => sim.power(),
    powerLog: async () => (await sim.log()).filter((l) => !l.startsWith('boot ')).map((l) => SET_COMMAND[l] ?? 'other'),
    boot: async () => {
      const dev = await sim.boot();
      // `bootdev none` reaches chassis_control as `set boot none`: no override.
      if (dev === 'none') return null;
      return { device: DEVICE[dev] ?? (dev as BootSettings['device']) };
    },
  };
}

const make =
  (opts: { password?: string } = {}): MakeSubject =>
  async ({ power }) => {
    const sim = await startIpmiSim({ password: 'pw-contract-1', power });
    return { driver: bindIpmi(sim, opts), peer: simPeer(sim), cleanup: () => sim.stop(), quirks: { dropsBootFlags: true } };
  };

const deadPort: MakeSubject = async () => {
  const s = createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  const { port } = s.address();
  await new Promise<void>((res) => s.close(() => res()));
  return { driver: bindIpmi({ host: '127.0.0.1', port, username: 'admin', password: 'pw-contract-2' }) };
};

const opts = { wait: { delaysMs: [20, 50, 100], deadlineMs: 4_000 }, callTimeoutMs: 5_000 };
runPowerContract('ipmi on ipmi_sim', make(), opts);
runBootContract('ipmi on ipmi_sim', make(), opts);
runErrorContract('ipmi on ipmi_sim', { unreachable: deadPort, badAuth: make({ password: 'wrong-password' }) }, opts);
