/**
 * A reboot is carried out as a verified off, then a verified on (soft reboot: soft off, then on), as Ironic and
 * MAAS do: PowerReboot (running -> stopped) once off is verified, PowerOn once on is verified. A BMC that accepts
 * the command and does nothing fails the reboot with reboot_failed_error.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { edgesOf, powerSets, runningInstance } from '../../helpers/engine.js';
import { ctx, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

function lastAction(harness: Harness, id: string) {
  return harness.agent.store.listActions(id).at(-1)!;
}

/** Journal positions: the step results of the action and the state edges, in commit order. */
function timeline(harness: Harness, id: string, afterSeq: number): string[] {
  return harness.agent.store
    .readJournal(afterSeq + 1, 10_000)
    .filter((e) => e.instance_id === id && (e.kind === 'instance.state' || e.kind === 'action.event'))
    .map((e) => (e.kind === 'instance.state' ? `edge ${String(e.data['event'])}` : `${String(e.data['event'])} ${String(e.data['result'])}`));
}

describe('reboot: a verified off, then a verified on', () => {
  for (const [target, off, offStep] of [
    ['reboot', 'off', 'power_off'],
    ['soft-reboot', 'soft-off', 'soft_power_off'],
  ] as const) {
    it(`${target}: sends ${off} then on; PowerReboot once off is verified, PowerOn once on is`, async () => {
      h = await startHarness();
      const id = await runningInstance(h);
      const seq = h.agent.store.lastSeq();
      const sent = powerSets(h, nodeId(1)).length;
      const res = await h.agent.engine.setInstancePower(ctx(), id, { target });
      expect(res.accepted).toBe(true);
      await h.agent.engine.idle();
      expect(powerSets(h, nodeId(1)).slice(sent)).toEqual([off, 'on']);
      expect(lastAction(h, id).events.map((e) => [e.event, e.result])).toEqual([
        [offStep, 'Success'],
        ['power_on', 'Success'],
      ]);
      expect(edgesOf(h, id, seq)).toEqual([
        { event: 'power-reboot', from: 'running', to: 'stopped', cause: 'operation' },
        { event: 'power-on', from: 'stopped', to: 'running', cause: 'operation' },
      ]);
      // The PowerReboot edge is taken between the verified off and the on.
      expect(timeline(h, id, seq)).toEqual([`${offStep} null`, `${offStep} Success`, 'edge power-reboot', 'power_on null', 'power_on Success', 'edge power-on']);
      expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', power_state: 'on', error: null, target_power_state: null });
    });
  }

  it('a BMC that accepts the off and does nothing: reboot_failed_error, the instance stays running, no on is sent', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    const seq = h.agent.store.lastSeq();
    const sent = powerSets(h, nodeId(1)).length;
    h.agent.lab!.setFaults(nodeId(1), { ignore_power: 1 });
    await h.agent.engine.setInstancePower(ctx(), id, { target: 'reboot' });
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(1)).slice(sent)).toEqual(['off']);
    expect(h.agent.lab!.commands(nodeId(1)).filter((c) => c.op === 'power.set').at(-1)!.outcome).toBe('ignored');
    const inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst).toMatchObject({ state: 'running', task: null, target_power_state: null });
    expect(inst.error).toMatchObject({ error_type: 'reboot_failed_error', error_code: 'BMC_ERR_VERIFY_FAILED' });
    expect(inst.error!.error_msg).toMatch(/^step 'power_off' failed/);
    expect(edgesOf(h, id, seq)).toEqual([]);
    expect(lastAction(h, id).events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
  });

  it('off verified but on fails: reboot_failed_error, the instance stays stopped', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    const seq = h.agent.store.lastSeq();
    h.agent.lab!.setFaults(nodeId(1), { fail_power_on: 1 });
    await h.agent.engine.setInstancePower(ctx(), id, { target: 'soft-reboot' });
    await h.agent.engine.idle();
    const inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst).toMatchObject({ state: 'stopped', power_state: 'off', task: null });
    expect(inst.error).toMatchObject({ error_type: 'reboot_failed_error' });
    expect(inst.error!.error_msg).toMatch(/^step 'power_on' failed/);
    expect(edgesOf(h, id, seq)).toEqual([{ event: 'power-reboot', from: 'running', to: 'stopped', cause: 'operation' }]);
    expect(lastAction(h, id).events.map((e) => [e.event, e.result])).toEqual([
      ['soft_power_off', 'Success'],
      ['power_on', 'Error'],
    ]);
  });
});
