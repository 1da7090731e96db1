/**
 * The driver contract (test/drivers/contract.ts), boot and errors, on the ipmi driver against a fresh real ipmi_sim BMC
 * per test. Not its power part: its soft case expects `bmc.supports('power', 'soft-reboot')` false for a driver that
 * lists soft-off but not soft-reboot, while drivers/bmc.ts supports a soft-reboot as soft-off then on (REBOOT_AS);
 * the ipmi driver's power is checked on ipmi_sim by ipmi-driver.test.ts.
 */
import { createSocket } from 'node:dgram';
import { runBootContract, runErrorContract, type MakeSubject } from '../contract.js';
import { startIpmiSim } from '../../emulators/ipmi-sim.js';
import { bindIpmi } from './helpers.js';

const make =
  (opts: { password?: string } = {}): MakeSubject =>
  async () => {
    const sim = await startIpmiSim({ password: 'pw-contract-1' });
    return { driver: bindIpmi(sim, opts), cleanup: () => sim.stop(), quirks: { dropsBootFlags: true } };
  };

const deadPort: MakeSubject = async () => {
  const s = createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  const { port } = s.address();
  await new Promise<void>((res) => s.close(() => res()));
  return { driver: bindIpmi({ host: '127.0.0.1', port, username: 'admin', password: 'pw-contract-2' }) };
};

const opts = { wait: { delaysMs: [20, 50, 100], deadlineMs: 4_000 }, callTimeoutMs: 5_000 };
runBootContract('ipmi on ipmi_sim', make(), opts);
runErrorContract('ipmi on ipmi_sim', { unreachable: deadPort, badAuth: make({ password: 'wrong-password' }) }, opts);
