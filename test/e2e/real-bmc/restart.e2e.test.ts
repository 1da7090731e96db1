/**
 * A power change interrupted by a crash of metald, on a REAL peer: metald (a child process) sends a power off to an
 * emulator system that takes 1.5 s to get there and is killed (SIGKILL) once the emulator has the command; the next
 * metald on the same state_dir verifies the change instead of sending it again (design.md section 5, 4.4: "a reset
 * never runs twice"). The emulator's own command log proves it got one ForceOff.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { adoptedId, emulatorCommands, finishedAction, putPower, startLab, status, type Lab } from './lab.js';

let lab: Lab | undefined;
let daemon: Daemon | undefined;

beforeAll(async () => {
  lab = await startLab({
    ipmi: [],
    redfish: [{ id: 'sys-1', power: 'On', profile: { powerDelayMs: 1500 } }],
    nodes: [{ kind: 'redfish', system: 'sys-1', adopt: 'vm-crash' }],
  });
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGKILL');
  await lab?.stop();
});

describe('a power change across a crash of metald', () => {
  it('killed while the emulator carries out the ForceOff: the restarted metald verifies it, sends nothing more: stopped', async () => {
    const id = adoptedId(1);
    const rid = await putPower(daemon!, id, 'power off');
    await waitFor(async () => (await emulatorCommands(lab!.emu, 'sys-1')).length > 0, 10_000, 'the emulator to get the ForceOff');
    await daemon!.kill('SIGKILL');
    expect((await lab!.emu.system('sys-1')).powerState).toBe('PoweringOff');

    daemon = await startDaemon(lab!.configPath);
    const a = await finishedAction(daemon, id, rid, 15_000);
    const s = await status(daemon, id);
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-1') });
    expect(a.message, why).toBeNull();
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off Success']);
    expect(s, why).toEqual({ state: 'stopped', operation_state: null, error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-1'), why).toEqual(['reset ForceOff 204']);
    expect((await lab!.emu.system('sys-1')).powerState).toBe('Off');
  });

  it('a reboot killed while the emulator carries out its On: the restarted metald verifies the on: running, one On', async () => {
    const id = adoptedId(1);
    // From stopped (the test above): on first, then the reboot.
    await finishedAction(daemon!, id, await putPower(daemon!, id, 'power on'));
    const before = await emulatorCommands(lab!.emu, 'sys-1');
    const rid = await putPower(daemon!, id, 'rebooting');
    await waitFor(async () => (await emulatorCommands(lab!.emu, 'sys-1')).length === before.length + 2, 10_000, 'the emulator to get the reboot\'s On');
    await daemon!.kill('SIGKILL');
    expect((await lab!.emu.system('sys-1')).powerState).toBe('PoweringOn');

    daemon = await startDaemon(lab!.configPath);
    const a = await finishedAction(daemon, id, rid, 15_000);
    const s = await status(daemon, id);
    const why = JSON.stringify({ a, s, peer: await emulatorCommands(lab!.emu, 'sys-1') });
    expect(a.message, why).toBeNull();
    expect(a.events.map((e) => `${e.event} ${e.result}`), why).toEqual(['power_off Success', 'power_on Success']);
    expect(s, why).toEqual({ state: 'running', operation_state: null, error: null });
    expect(await emulatorCommands(lab!.emu, 'sys-1'), why).toEqual([...before, 'reset ForceOff 204', 'reset On 204']);
    expect((await lab!.emu.system('sys-1')).powerState).toBe('On');
  });
});
