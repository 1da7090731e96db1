/**
 * "Already in the target state" (202, nothing sent) is judged by a fresh power read of the BMC at acceptance, as
 * Ironic's _can_skip_state_change, never by the stored state; `unknown` power or a failed read is neither on nor off.
 * Same for the node API on a free node.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { powerSets, runningInstance, sleep } from '../../helpers/engine.js';
import { ctx, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** A stopped instance whose server was then switched on behind the agent's back (not synced yet). */
async function stoppedButOn(harness: Harness): Promise<string> {
  const id = await runningInstance(harness);
  await harness.agent.engine.setInstancePower(ctx(), id, { target: 'off' });
  await harness.agent.engine.idle();
  await harness.agent.lab!.get(nodeId(1)).setPower('power-button', 'on');
  await sleep(20);
  return id;
}

describe('power request: already there is a fresh read', () => {
  it('a running instance whose server reads off gets its power-on command sent', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    await h.agent.lab!.get(nodeId(1)).setPower('power-button', 'off');
    await sleep(20);
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', power_state: 'on' }); // not synced yet
    const before = powerSets(h, nodeId(1)).length;
    const res = await h.agent.engine.setInstancePower(ctx(), id, { target: 'on' });
    expect(res.accepted).toBe(true);
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(1)).slice(before)).toEqual(['on']);
    expect(h.agent.lab!.snapshot(nodeId(1)).power).toBe('on');
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', power_state: 'on', task: null, error: null });
  });

  it('a stopped instance whose server reads on gets its power-off command sent', async () => {
    h = await startHarness();
    const id = await stoppedButOn(h);
    const before = powerSets(h, nodeId(1)).length;
    const res = await h.agent.engine.setInstancePower(ctx(), id, { target: 'off' });
    expect(res.accepted).toBe(true);
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(1)).slice(before)).toEqual(['off']);
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'stopped', power_state: 'off' });
  });

  it('unknown power and a failed read are never taken for on: the request is accepted, not answered as already there', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    h.agent.lab!.setFaults(nodeId(1), { unreachable: true });
    await h.agent.engine.powerSyncOnce();
    await h.agent.engine.powerSyncOnce();
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', power_state: 'unknown' });
    const actions = h.agent.store.listActions(id).length;
    const res = await h.agent.engine.setInstancePower(ctx(), id, { target: 'on' });
    expect(res.accepted).toBe(true);
    expect(h.agent.store.listActions(id).length).toBe(actions + 1);
    await h.agent.engine.idle();
    // The BMC still cannot be reached: the action says so, the state does not move.
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', task: null });
    expect(h.agent.store.getAction(res.action!.request_id)!.message).toMatch(/BMC_ERR_UNREACHABLE|unreachable/);
  });

  it('unknown stored power and a server that now reads on: 202, nothing sent, the reading is recorded', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    h.agent.lab!.setFaults(nodeId(1), { unreachable: true });
    await h.agent.engine.powerSyncOnce();
    await h.agent.engine.powerSyncOnce();
    h.agent.lab!.setFaults(nodeId(1), {});
    const before = powerSets(h, nodeId(1)).length;
    const res = await h.agent.engine.setInstancePower(ctx(), id, { target: 'on' });
    expect(res).toEqual({ accepted: false, action: null });
    expect(powerSets(h, nodeId(1)).length).toBe(before);
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', power_state: 'on' });
  });

  it('a stopped instance whose server reads on: power on sends nothing and follows the server (PowerOn, cause drift)', async () => {
    h = await startHarness();
    const id = await stoppedButOn(h);
    const before = powerSets(h, nodeId(1)).length;
    const res = await h.agent.engine.setInstancePower(ctx(), id, { target: 'on' });
    expect(res).toEqual({ accepted: false, action: null });
    expect(powerSets(h, nodeId(1)).length).toBe(before);
    expect(h.agent.engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', power_state: 'on' });
    const last = h.agent.store.readJournal(1, 10_000).filter((e) => e.kind === 'instance.state' && e.instance_id === id).at(-1);
    expect(last).toMatchObject({ cause: 'drift', data: { event: 'power-on', from: 'stopped', state: 'running' } });
  });
});

describe('node power request: already there is a fresh read', () => {
  it('a free node stored off whose server reads on gets its power-off command sent', async () => {
    h = await startHarness();
    const node = nodeId(2);
    expect(h.agent.store.getNode(node)!.power_state).toBe('off');
    await h.agent.lab!.get(node).setPower('power-button', 'on');
    await sleep(20);
    const res = await h.agent.engine.setNodePower(ctx('admin'), node, { target: 'off' });
    expect(res.accepted).toBe(true);
    for (let i = 0; i < 50 && h.agent.lab!.snapshot(node).power !== 'off'; i++) await sleep(10);
    expect(powerSets(h, node)).toEqual(['off']);
    expect(h.agent.lab!.snapshot(node).power).toBe('off');
  });

  it('a free node stored off whose server reads off: 202 and nothing sent', async () => {
    h = await startHarness();
    const res = await h.agent.engine.setNodePower(ctx('admin'), nodeId(2), { target: 'off' });
    expect(res).toEqual({ accepted: false, action: null });
    expect(powerSets(h, nodeId(2))).toEqual([]);
  });

  it('a free node whose power read fails is not taken for off: the command is tried', async () => {
    h = await startHarness();
    const node = nodeId(2);
    h.agent.lab!.setFaults(node, { unreachable: true });
    const res = await h.agent.engine.setNodePower(ctx('admin'), node, { target: 'off' });
    expect(res.accepted).toBe(true);
    for (let i = 0; i < 50 && h.agent.store.getNode(node)!.last_error === null; i++) await sleep(10);
    expect(h.agent.store.getNode(node)!.last_error).toMatchObject({ error_type: 'power_off_error', error_code: 'BMC_ERR_UNREACHABLE' });
  });
});
