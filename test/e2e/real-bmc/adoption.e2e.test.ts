/**
 * Adoption through the REAL drivers when a BMC cannot be read at start (design.md section 2: "While the BMC cannot
 * be read the adoption waits (the node shows the error, power sync retries it); no instance exists before its power
 * is verified"): metald (a child process) starts with node 1's ipmi_sim BMC dead; its instance does not exist and the
 * node shows why. Once a BMC answers on that address, power sync's next read adopts it as the BMC says (on:
 * running), sending nothing (the chassis log stays empty). Node 2 (an emulator system that is on) is adopted at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIpmiSim, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_TOKEN, MEMBER_TOKEN, PROJECT, nodeId } from '../../helpers/harness.js';
import { adoptedId, IPMI_PASSWORD, startLab, status, type Lab } from './lab.js';

let lab: Lab | undefined;
let daemon: Daemon | undefined;
let revived: IpmiSim | undefined;

beforeAll(async () => {
  lab = await startLab({
    ipmi: ['on'],
    redfish: [{ id: 'sys-1', power: 'On' }],
    nodes: [
      { kind: 'ipmi', sim: 0, adopt: 'vm-late-bmc' },
      { kind: 'redfish', system: 'sys-1', adopt: 'vm-redfish' },
    ],
    powerSync: '{interval: 1s, failures_before_unknown: 2}',
  });
  // The BMC is dead when metald starts: nothing listens on its port.
  await lab.sims[0]!.stop();
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await revived?.stop();
  await lab?.stop();
});

describe('adoption waits for a verified power read', () => {
  it('a dead BMC at start: no instance, the node shows the error; once it answers, power sync adopts it from its read', async () => {
    const d = daemon!;
    const id = adoptedId(1);
    expect(await status(d, adoptedId(2))).toEqual({ state: 'running', operation_state: null, error: null });

    const missing = await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN);
    expect(missing.status, missing.text).toBe(404);
    type NodeView = { instance_uuid: string | null; power_state: string | null; last_error: { error_type: string; error_msg: string } | null };
    const node = async () => (await d.call('GET', `/v1/nodes/${nodeId(1)}`, ADMIN_TOKEN)).body as NodeView;
    await waitFor(async () => (await node()).last_error !== null, 15_000, 'the node to show its BMC error');
    const waiting = await node();
    expect(waiting.instance_uuid, JSON.stringify(waiting)).toBeNull();
    expect(waiting.power_state, JSON.stringify(waiting)).not.toBe('power off');
    expect(waiting.last_error?.error_type, JSON.stringify(waiting)).toBe('bmc_unreachable_error');

    // The BMC comes up (same address and port), its server on.
    revived = await startIpmiSim({ password: IPMI_PASSWORD, power: 'on', port: lab!.sims[0]!.port });
    await waitFor(async () => (await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).status === 200, 20_000, 'the adoption once the BMC answers');
    expect(await status(d, id)).toEqual({ state: 'running', operation_state: null, error: null });
    expect((await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN)).body).toEqual({ power_state: 'power on', target_power_state: null });
    const adopted = await node();
    expect(adopted.instance_uuid).toBe(id);
    expect(adopted.last_error).toBeNull();
    expect(await revived.reads()).toBeGreaterThan(0);
    expect(await revived.log()).toEqual([]);
    expect(await revived.power()).toBe('on');
  });
});
