/**
 * The failure shapes of PUT /v1/instances/{id}/states/power on REAL drivers (design.md section 3, seeds 003 and 004),
 * each asserted on the peer as well as on metald: a change the BMC rejects (ipmi_sim's chassis_control refusing,
 * the emulator answering 500 with @Message.ExtendedInfo) sets seed 003's error_type with the BMC's own words and
 * leaves the state; a bad target or a forbidden one is 400 and sends nothing; a soft off on a Redfish system whose
 * AllowableValues lack GracefulShutdown is 406 and sends nothing; a second request while one is in flight is 409;
 * power on when on is the 202 no-op (a fresh read, no command, no action).
 *
 * Nodes: 1 ipmi on + adopted, 2 redfish On + adopted, 3 redfish On + adopted without GracefulShutdown/GracefulRestart,
 * 4 redfish On + adopted with a 1.5 s power transition, 5 redfish On + free without GracefulShutdown (node API).
 */
import { writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, MEMBER_TOKEN, PROJECT, nodeId } from '../../helpers/harness.js';
import { adoptedId, emulatorCommands, finishedAction, metalctl, putPower, startLab, status, type Lab } from './lab.js';

let lab: Lab | undefined;
let daemon: Daemon | undefined;

beforeAll(async () => {
  lab = await startLab({
    ipmi: ['on'],
    redfish: [
      { id: 'sys-1', power: 'On' },
      { id: 'sys-2', power: 'On', profile: { resetTypes: ['On', 'ForceOff', 'ForceRestart'] } },
      { id: 'sys-3', power: 'On', profile: { powerDelayMs: 1500 } },
      { id: 'sys-4', power: 'On', profile: { resetTypes: ['On', 'ForceOff'] } },
    ],
    nodes: [
      { kind: 'ipmi', sim: 0, adopt: 'vm-ipmi' },
      { kind: 'redfish', system: 'sys-1', adopt: 'vm-redfish' },
      { kind: 'redfish', system: 'sys-2', adopt: 'vm-no-soft' },
      { kind: 'redfish', system: 'sys-3', adopt: 'vm-slow' },
      { kind: 'redfish', system: 'sys-4' },
    ],
  });
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await lab?.stop();
});

/** ipmi_sim's chassis_control refuses every `set` while the knob file exists (test/emulators/chassis-control.sh). */
function refuseIpmi(on: boolean, only = ''): void {
  const knob = join(lab!.sims[0]!.dir, 'state', 'refuse');
  if (on) writeFileSync(knob, only);
  else rmSync(knob, { force: true });
}

async function actionCount(d: Daemon, id: string): Promise<number> {
  const r = await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN);
  return (r.body as { instanceActions: unknown[] }).instanceActions.length;
}

describe('a change the BMC rejects', () => {
  it('ipmi: ipmi_sim refuses power off, then power on: power_off_error / power_on_error with the BMC\'s words, state kept', async () => {
    const d = daemon!;
    const id = adoptedId(1);
    const sim = lab!.sims[0]!;
    refuseIpmi(true);
    try {
      const rid = await putPower(d, id, 'power off');
      const a = await finishedAction(d, id, rid);
      const s = await status(d, id, 'admin');
      const why = JSON.stringify({ a, s, log: await sim.log() });
      expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off Error']);
      expect(s.state, why).toBe('running');
      expect(s.operation_state, why).toBeNull();
      expect(s.error?.error_type, why).toBe('power_off_error');
      expect(s.error?.error_code, why).toBe('BMC_ERR_COMMAND_FAILED');
      // ipmitool's report of the BMC's completion code (the admin's view; a member reads the code's reason).
      expect((await status(d, id)).error?.error_msg).toBe("step 'power_off' failed: the BMC refused the command");
      expect(s.error?.error_msg, why).toContain('Set Chassis Power Control to Down/Off failed: Unspecified error');
      expect(await sim.log(), why).toEqual(['refused power 0']);
      expect(await sim.power()).toBe('on');
      // The action's step event: the member reads the step, an admin its traceback with the BMC's words.
      const asAdmin = await d.call('GET', `/v2/${ADMIN_PROJECT}/servers/${id}/os-instance-actions/${rid}`, ADMIN_TOKEN);
      const ev = (asAdmin.body as { instanceAction: { message: string; events: { traceback: string | null }[] } }).instanceAction;
      expect(ev.message, asAdmin.text).toContain('Unspecified error');
      expect(ev.events[0]?.traceback, asAdmin.text).toContain('Set Chassis Power Control to Down/Off failed: Unspecified error');
      expect(a.events[0]?.traceback ?? null, why).toBeNull();

      // The next accepted request clears the error; the BMC carries it out.
      refuseIpmi(false);
      await finishedAction(d, id, await putPower(d, id, 'power off'));
      expect(await status(d, id)).toEqual({ state: 'stopped', operation_state: null, error: null });
      expect(await sim.log()).toEqual(['refused power 0', 'power 0']);

      refuseIpmi(true);
      const on = await finishedAction(d, id, await putPower(d, id, 'power on'));
      const s2 = await status(d, id, 'admin');
      expect(on.events.map((e) => `${e.event} ${e.result}`), JSON.stringify(on)).toEqual(['power_on Error']);
      expect(s2.state).toBe('stopped');
      expect(s2.error?.error_type).toBe('power_on_error');
      expect(s2.error?.error_msg).toContain('Set Chassis Power Control to Up/On failed: Unspecified error');
      expect(await sim.log()).toEqual(['refused power 0', 'power 0', 'refused power 1']);
      expect(await sim.power()).toBe('off');
    } finally {
      refuseIpmi(false);
    }
  });

  it('redfish: the emulator answers 500 with @Message.ExtendedInfo to the reboot\'s off: reboot_failed_error with its message', async () => {
    const d = daemon!;
    const id = adoptedId(2);
    await lab!.emu.setFaults({ failReset: 1, systems: ['sys-1'] });
    const a = await finishedAction(d, id, await putPower(d, id, 'rebooting'));
    await lab!.emu.clearFaults();
    const s = await status(d, id, 'admin');
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-1') });
    expect(a.action, why).toBe('reboot');
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off Error']);
    expect(s.state, why).toBe('running');
    expect(s.error?.error_type, why).toBe('reboot_failed_error');
    expect(s.error?.error_code, why).toBe('BMC_ERR_BAD_RESPONSE');
    expect(s.error?.error_msg, why).toContain('HTTP 500');
    expect(s.error?.error_msg, why).toContain('The power controller did not carry out ForceOff: it is not responding.');
    expect(await emulatorCommands(lab!.emu, 'sys-1'), why).toEqual(['reset ForceOff 500']);
    expect((await lab!.emu.system('sys-1')).powerState).toBe('On');
  });
});

describe('refusals that send nothing', () => {
  it('400 for a bad target and for a target the state forbids; the BMC sees nothing', async () => {
    const d = daemon!;
    const id = adoptedId(2);
    const before = await actionCount(d, id);
    const peerBefore = await emulatorCommands(lab!.emu, 'sys-1');
    const bad = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'sideways' });
    expect(bad.status, bad.text).toBe(400);
    expect(Object.keys(bad.body as object).sort()).toEqual(['error_code', 'error_msg']);
    const extra = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'power off', force: true });
    expect(extra.status, extra.text).toBe(400);
    // A stopped instance cannot be rebooted (seed 003: PowerReboot is an edge from running only).
    await finishedAction(d, id, await putPower(d, id, 'power off'));
    const peerStopped = await emulatorCommands(lab!.emu, 'sys-1');
    expect(peerStopped).toEqual([...peerBefore, 'reset ForceOff 204']);
    for (const target of ['rebooting', 'soft rebooting']) {
      const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target });
      expect(r.status, r.text).toBe(400);
      expect((r.body as { error_msg: string }).error_msg).toContain("state 'stopped'");
    }
    expect(await emulatorCommands(lab!.emu, 'sys-1')).toEqual(peerStopped);
    expect(await actionCount(d, id)).toBe(before + 1);
  });

  it('406 for soft power off and soft rebooting where the system lists no GracefulShutdown; the emulator saw no reset', async () => {
    const d = daemon!;
    const id = adoptedId(3);
    const before = await actionCount(d, id);
    for (const target of ['soft power off', 'soft rebooting']) {
      const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target });
      expect(r.status, r.text).toBe(406);
      expect(Object.keys(r.body as object).sort()).toEqual(['error_code', 'error_msg']);
    }
    const sys = await lab!.emu.system('sys-2');
    expect(sys.commands.filter((c) => c.kind === 'reset')).toEqual([]);
    expect(sys.powerState).toBe('On');
    expect(await status(d, id)).toEqual({ state: 'running', operation_state: null, error: null });
    expect(await actionCount(d, id)).toBe(before);
    // metalctl, as an operator runs it: the 406 is its error (exit 1), and still nothing reached the BMC.
    const cli = await metalctl(d, ['instance', 'power', id, 'soft-off'], join(dirname(lab!.configPath), 'member.token'));
    expect(cli.code, JSON.stringify(cli)).toBe(1);
    expect(cli.stderr).toContain('(HTTP 406, request req-');
    expect((await lab!.emu.system('sys-2')).commands.filter((c) => c.kind === 'reset')).toEqual([]);
    // What it does list still works: a hard off reaches it.
    await finishedAction(d, id, await putPower(d, id, 'power off'));
    expect(await emulatorCommands(lab!.emu, 'sys-2')).toEqual(['reset ForceOff 204']);
  });

  it('409 while a power change is in flight; the emulator got the first command only', async () => {
    const d = daemon!;
    const id = adoptedId(4);
    const rid = await putPower(d, id, 'power off');
    for (const target of ['power on', 'power off', 'rebooting']) {
      const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target });
      expect(r.status, r.text).toBe(409);
      expect(Object.keys(r.body as object).sort()).toEqual(['error_code', 'error_msg']);
    }
    expect((await lab!.emu.system('sys-3')).powerState).toBe('PoweringOff');
    const a = await finishedAction(d, id, rid);
    expect(a.message, JSON.stringify(a)).toBeNull();
    expect(await status(d, id)).toEqual({ state: 'stopped', operation_state: null, error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-3')).toEqual(['reset ForceOff 204']);
  });

  it('202 no-op: power on when on sends nothing to either BMC (a fresh read only) and records no action', async () => {
    const d = daemon!;
    // Node 1 (ipmi) was left off by the refusal test; node 2's system is off too: power them on first.
    await finishedAction(d, adoptedId(1), await putPower(d, adoptedId(1), 'power on'));
    await finishedAction(d, adoptedId(2), await putPower(d, adoptedId(2), 'power on'));
    for (const [node, peer] of [[1, () => lab!.sims[0]!.log()], [2, () => emulatorCommands(lab!.emu, 'sys-1')]] as const) {
      const id = adoptedId(node);
      const logBefore = await peer();
      const actionsBefore = await actionCount(d, id);
      const reads = (await lab!.emu.system('sys-1')).reads;
      for (const target of ['power on', 'on']) {
        const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target });
        expect(r.status, r.text).toBe(202);
      }
      expect(await peer(), `node ${node}`).toEqual(logBefore);
      expect(await actionCount(d, id)).toBe(actionsBefore);
      expect(await status(d, id)).toEqual({ state: 'running', operation_state: null, error: null });
      // "Already there" was a fresh read of the BMC, not memory.
      if (node === 2) expect((await lab!.emu.system('sys-1')).reads).toBeGreaterThanOrEqual(reads + 2);
    }
  });

  it('a reboot whose off is verified and whose on ipmi_sim refuses: stopped, reboot_failed_error, off on the BMC', async () => {
    const d = daemon!;
    const id = adoptedId(1);
    const sim = lab!.sims[0]!;
    expect(await status(d, id)).toEqual({ state: 'running', operation_state: null, error: null });
    const logBefore = await sim.log();
    refuseIpmi(true, 'power 1');
    try {
      const a = await finishedAction(d, id, await putPower(d, id, 'rebooting'));
      const s = await status(d, id, 'admin');
      const why = JSON.stringify({ a, s, log: await sim.log() });
      expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off Success', 'power_on Error']);
      expect(s.state, why).toBe('stopped');
      expect(s.operation_state, why).toBeNull();
      expect(s.error?.error_type, why).toBe('reboot_failed_error');
      expect(s.error?.error_msg, why).toContain('Set Chassis Power Control to Up/On failed: Unspecified error');
      expect(await sim.log(), why).toEqual([...logBefore, 'power 0', 'refused power 1']);
      expect(await sim.power()).toBe('off');
      const states = await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN);
      expect(states.body, why).toEqual({ power_state: 'power off', target_power_state: null });
    } finally {
      refuseIpmi(false);
    }
  });

  it('202 no-op judged by the BMC, not memory: a stopped instance whose server was switched on locally; power on sends nothing', async () => {
    const d = daemon!;
    const id = adoptedId(1);
    const sim = lab!.sims[0]!;
    expect((await status(d, id)).state).toBe('stopped');
    const logBefore = await sim.log();
    // Someone pressed the server's power button: the BMC reads on, metald still remembers off.
    writeFileSync(join(sim.dir, 'state', 'power'), '1\n');
    const actionsBefore = await actionCount(d, id);
    const r = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'power on' });
    expect(r.status, r.text).toBe(202);
    expect(await sim.log()).toEqual(logBefore);
    expect(await actionCount(d, id)).toBe(actionsBefore);
    // The state follows the server (the PowerOn edge, as power sync would take it).
    expect((await status(d, id)).state).toBe('running');
    expect((await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN)).body).toEqual({ power_state: 'power on', target_power_state: null });
  });
});

describe('the same shapes through the node power API (a free node, admin)', () => {
  const node = () => `/v1/nodes/${nodeId(5)}`;
  type NodeView = { power_state: string | null; target_power_state: string | null; last_error: { error_code: string; error_msg: string; error_type: string } | null };
  const show = async (d: Daemon) => (await d.call('GET', node(), ADMIN_TOKEN)).body as NodeView;

  it('406 soft off where the system lists no GracefulShutdown, 202 no-op on when on, 400 bad target: nothing sent', async () => {
    const d = daemon!;
    for (const [target, code] of [['soft power off', 406], ['soft rebooting', 406], ['sideways', 400], ['power on', 202], ['on', 202]] as const) {
      const r = await d.call('PUT', `${node()}/states/power`, ADMIN_TOKEN, { target });
      expect(r.status, `${target}: ${r.text}`).toBe(code);
    }
    expect(await emulatorCommands(lab!.emu, 'sys-4')).toEqual([]);
    expect(await show(d)).toMatchObject({ power_state: 'power on', target_power_state: null, last_error: null });
  });

  it('a rejected change: the node\'s last_error is power_off_error with the BMC\'s @Message.ExtendedInfo; 409 while in flight', async () => {
    const d = daemon!;
    await lab!.emu.setFaults({ failReset: 1, systems: ['sys-4'] });
    const r = await d.call('PUT', `${node()}/states/power`, ADMIN_TOKEN, { target: 'power off' });
    expect(r.status, r.text).toBe(202);
    await waitFor(async () => (await show(d)).target_power_state === null, 10_000, 'the node power request to end');
    await lab!.emu.clearFaults();
    const n = await show(d);
    expect(n.power_state, JSON.stringify(n)).toBe('power on');
    expect(n.last_error?.error_type, JSON.stringify(n)).toBe('power_off_error');
    expect(n.last_error?.error_msg, JSON.stringify(n)).toContain('The power controller did not carry out ForceOff: it is not responding.');
    expect(await emulatorCommands(lab!.emu, 'sys-4')).toEqual(['reset ForceOff 500']);

    // Again, the BMC slow this time: a second request while the first is in flight is 409; the first one succeeds.
    await lab!.emu.configure('sys-4', { powerDelayMs: 1000 });
    const first = await d.call('PUT', `${node()}/states/power`, ADMIN_TOKEN, { target: 'power off' });
    expect(first.status, first.text).toBe(202);
    const second = await d.call('PUT', `${node()}/states/power`, ADMIN_TOKEN, { target: 'power on' });
    expect(second.status, second.text).toBe(409);
    await waitFor(async () => (await show(d)).target_power_state === null, 10_000, 'the node power request to end');
    expect(await show(d)).toMatchObject({ power_state: 'power off', last_error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-4')).toEqual(['reset ForceOff 500', 'reset ForceOff 204']);
  });
});

describe('a soft power off with its timeout', () => {
  it('an OS that takes longer than the request\'s timeout to shut down: power_off_error, state kept', async () => {
    const d = daemon!;
    const id = adoptedId(4);
    // Node 4 was powered off by the 409 test: on again (1.5 s), then a soft off given 1 s (the BMC takes 1.5 s).
    await finishedAction(d, id, await putPower(d, id, 'power on'));
    const a = await finishedAction(d, id, await putPower(d, id, 'soft power off', { timeout: 1 }));
    const s = await status(d, id, 'admin');
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-3') });
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['soft_power_off Error']);
    expect(s.state, why).toBe('running');
    expect(s.error?.error_type, why).toBe('power_off_error');
    expect(s.error?.error_code, why).toBe('BMC_ERR_VERIFY_FAILED');
    expect(await emulatorCommands(lab!.emu, 'sys-3'), why).toEqual(['reset ForceOff 204', 'reset On 204', 'reset GracefulShutdown 204']);
    const hard = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'power off', timeout: 1 });
    expect(hard.status, hard.text).toBe(400);
  });
});
