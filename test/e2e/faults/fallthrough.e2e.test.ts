/**
 * A node with `driver: [redfish, ipmi]` whose Redfish is refused (nothing listens on its TCP port): metald, a child
 * process, powers it through the next driver, a REAL ipmi_sim BMC on the same port number over UDP (design.md 4.4:
 * a refused connection proves nothing was sent, so the next driver may be tried). ipmi_sim's own chassis log shows the
 * change, once; the action's event (seed 001, as an admin reads it) says which drivers were tried and which succeeded.
 * And the other side of the rule: a second node whose Redfish (the real emulator) hangs after the request was sent
 * must NOT fall through: BMC_ERR_TIMEOUT, and its ipmi_sim is never even asked to open a session.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIpmiSim, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { emulatorControl, launchEmulator, type EmulatorControl, type EmulatorProcess } from '../../emulators/redfish/launch.js';
import { makeTestPki } from '../../emulators/redfish/tls.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { MEMBER_TOKEN, PROJECT } from '../../helpers/harness.js';
import { faultConfig, instanceId, ipmitoolChildrenOf, powerAction, statusOf, waitAdopted } from './helpers.js';

const secrets = mkdtempSync(join(tmpdir(), 'metald-faults-fallthrough-'));
let daemon: Daemon | undefined;
let sim: IpmiSim | undefined;
let hungSim: IpmiSim | undefined;
let stoppedSim: IpmiSim | undefined;
let emu: EmulatorProcess | undefined;
let ctl: EmulatorControl;
let configDir: string | undefined;

/** Whether a TCP connection to 127.0.0.1:port is refused (nothing listens there). */
async function tcpPortFree(port: number): Promise<boolean> {
  const s = createServer();
  return new Promise((res) => {
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

beforeAll(async () => {
  for (let attempt = 0; !sim && attempt < 5; attempt++) {
    const candidate = await startIpmiSim({ password: 'Fall-pw-3', power: 'on' });
    if (await tcpPortFree(candidate.port)) sim = candidate;
    else await candidate.stop();
  }
  if (!sim) throw new Error('no UDP port for ipmi_sim whose TCP twin is free (the refused Redfish) in 5 tries');
  writeFileSync(join(secrets, 'bmc.pw'), 'Fall-pw-3\n', { mode: 0o600 });
  // One address for both drivers: redfish dials TCP 127.0.0.1:PORT (refused), ipmi uses UDP PORT of the same URL.
  const bmc = `{driver: [redfish, ipmi], address: "https://127.0.0.1:${sim.port}", username: admin, password_file: ${join(secrets, 'bmc.pw')}, retries: 1, retry_timeout_s: 1}`;
  // Node 2: the emulator on TCP PORT and an ipmi_sim (same password) on UDP PORT.
  const pki = makeTestPki(join(secrets, 'pki'));
  for (let attempt = 0; !hungSim; attempt++) {
    emu = await launchEmulator(['--systems', '1', '--tls-dir', pki.dir, '--password-file', join(secrets, 'bmc.pw'), '--power', 'On', '--power-delay-ms', '50']);
    try {
      hungSim = await startIpmiSim({ password: 'Fall-pw-3', power: 'on', port: Number(new URL(emu.url).port), debug: true });
    } catch (e) {
      // Another process holds that UDP port: take another TCP port for the emulator.
      await emu.stop();
      if (attempt >= 4) throw new Error(`no UDP twin of the emulator's TCP port in 5 tries: ${(e as Error).message}`);
    }
  }
  ctl = emulatorControl(emu!.url, pki.ca);
  const bmc2 = `{driver: [redfish, ipmi], address: "${emu!.url}", system_id: /redfish/v1/Systems/sys-1, ca_file: ${pki.caFile}, username: admin, password_file: ${join(secrets, 'bmc.pw')}, retries: 1, retry_timeout_s: 1}`;
  // Node 3: Redfish refused like node 1, its ipmi_sim hung later (ipmitool alone would wait 5 x 5 s).
  for (let attempt = 0; !stoppedSim && attempt < 5; attempt++) {
    const candidate = await startIpmiSim({ password: 'Fall-pw-3', power: 'on' });
    if (await tcpPortFree(candidate.port)) stoppedSim = candidate;
    else await candidate.stop();
  }
  if (!stoppedSim) throw new Error('no UDP port for ipmi_sim whose TCP twin is free (the refused Redfish) in 5 tries');
  const bmc3 = `{driver: [redfish, ipmi], address: "https://127.0.0.1:${stoppedSim.port}", username: admin, password_file: ${join(secrets, 'bmc.pw')}, retries: 5, retry_timeout_s: 5}`;
  const { dir, configPath } = faultConfig([bmc, bmc2, bmc3]);
  configDir = dir;
  daemon = await startDaemon(configPath);
  await waitAdopted(daemon, 3);
}, 60_000);

afterAll(async () => {
  stoppedSim?.resume();
  await daemon?.kill('SIGTERM');
  await emu?.stop();
  await stopAllIpmiSims();
  rmSync(secrets, { recursive: true, force: true });
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

describe('driver: [redfish, ipmi]: falls through only on nothing-sent errors', () => {
  it('Redfish refused: power off goes through IPMI: the chassis log shows it once, the event says redfish then ipmi were tried and ipmi succeeded', async () => {
    const d = daemon!;
    const act = await powerAction(d, 1, 'power off', 8_000);
    expect(act.message).toBeNull();
    expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Success']]);
    expect(act.events[0]!.traceback).toBe('drivers tried: redfish, ipmi; succeeded: ipmi');
    expect(await sim!.log()).toEqual(['power 0']);
    expect(await sim!.power()).toBe('off');
    expect(await statusOf(d, 1)).toMatchObject({ state: 'stopped', error: null });
    // Members read the seed's event with traceback null (drivers are operator detail, docs/api.md).
    const rid = act.requestId;
    const member = await d.call('GET', `/v2/${PROJECT}/servers/${instanceId(1)}/os-instance-actions/${rid}`, MEMBER_TOKEN);
    expect((member.body as { instanceAction: { events: { traceback: unknown }[] } }).instanceAction.events.map((e) => e.traceback)).toEqual([null]);
    await waitFor(() => ipmitoolChildrenOf(d.child.pid!).length === 0, 1_000, 'no ipmitool child of the daemon');
  });

  it('a Redfish that hangs after the request was sent: BMC_ERR_TIMEOUT, IPMI never tried (ipmi_sim saw no session), the instance running with power_off_error', async () => {
    const d = daemon!;
    await ctl.setFaults({ hang: true });
    const act = await powerAction(d, 2, 'power off', 8_000);
    expect(act.tookMs).toBeLessThan(6_000);
    expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
    expect(await statusOf(d, 2)).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_TIMEOUT', error_type: 'power_off_error' } });
    expect(hungSim!.sessionsOpened()).toBe(0);
    expect(await hungSim!.log()).toEqual([]);
    expect(ipmitoolChildrenOf(d.child.pid!)).toEqual([]);
  });

  it('Redfish refused, then IPMI hung: BMC_ERR_TIMEOUT, and the failed event names both drivers in the order tried', async () => {
    const d = daemon!;
    stoppedSim!.pause();
    try {
      const act = await powerAction(d, 3, 'power off', 8_000);
      expect(act.tookMs).toBeLessThan(6_000);
      expect(act.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
      expect(act.events[0]!.traceback).toMatch(/via ipmi: no answer within 1000 ms.*\(tried before, nothing sent: redfish: BMC_ERR_UNREACHABLE\)/);
      expect(await statusOf(d, 3)).toMatchObject({ state: 'running', error: { error_code: 'BMC_ERR_TIMEOUT', error_type: 'power_off_error' } });
      await waitFor(() => ipmitoolChildrenOf(d.child.pid!).length === 0, 1_000, 'no ipmitool child of the daemon');
    } finally {
      stoppedSim!.resume();
    }
    expect(await stoppedSim!.log()).toEqual([]);
  });
});
