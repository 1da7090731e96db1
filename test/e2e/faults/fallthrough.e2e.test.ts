/**
 * A node with `driver: [redfish, ipmi]` whose Redfish is refused (nothing listens on its TCP port): metald, a child
 * process, powers it through the next driver, a REAL ipmi_sim BMC on the same port number over UDP (design.md 4.4:
 * a refused connection proves nothing was sent, so the next driver may be tried). ipmi_sim's own chassis log shows the
 * change, once; the action's event (seed 001, as an admin reads it) says which drivers were tried and which succeeded.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIpmiSim, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { MEMBER_TOKEN, PROJECT } from '../../helpers/harness.js';
import { faultConfig, instanceId, ipmitoolChildrenOf, powerAction, statusOf, waitAdopted } from './helpers.js';

const secrets = mkdtempSync(join(tmpdir(), 'metald-faults-fallthrough-'));
let daemon: Daemon | undefined;
let sim: IpmiSim | undefined;
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
  const { dir, configPath } = faultConfig([bmc]);
  configDir = dir;
  daemon = await startDaemon(configPath);
  await waitAdopted(daemon, 1);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await stopAllIpmiSims();
  rmSync(secrets, { recursive: true, force: true });
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

describe('driver: [redfish, ipmi] with the Redfish refused', () => {
  it('power off goes through IPMI: the chassis log shows it once, the event says redfish then ipmi were tried and ipmi succeeded', async () => {
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
});
