/**
 * What the engine records about nodes: power sync writes a node's row only when something changed; release_node
 * journals the node's change; a node-level power request's target is a stored field while it runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runningInstance, sleep } from '../../helpers/engine.js';
import { ctx, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

function nodeJournal(harness: Harness, node: string, afterSeq: number) {
  return harness.agent.store.readJournal(afterSeq + 1, 10_000).filter((e) => e.node_id === node);
}

describe('power sync writes a node only when something changed', () => {
  it('polls that find nothing new leave every node row (and the instance row) untouched', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    await h.agent.engine.powerSyncOnce();
    const rows = () => [...h!.agent.store.listNodes().map((n) => `${n.id} ${n.updated_at}`), h!.agent.store.getInstance(id)!.updated_at];
    const before = rows();
    const seq = h.agent.store.lastSeq();
    for (let i = 0; i < 3; i++) {
      await sleep(5); // a write would carry a later updated_at
      await h.agent.engine.powerSyncOnce();
    }
    expect(rows()).toEqual(before);
    expect(h.agent.store.lastSeq()).toBe(seq);
    expect(h.agent.lab!.commands(nodeId(2)).filter((c) => c.op === 'power.get').length).toBeGreaterThan(3); // it did poll
  });

  it('a change is still written: a good read after failed ones resets the failure count', async () => {
    h = await startHarness();
    h.agent.lab!.setFaults(nodeId(2), { unreachable: true });
    await h.agent.engine.powerSyncOnce();
    expect(h.agent.store.getNode(nodeId(2))!.consecutive_power_failures).toBe(1);
    h.agent.lab!.setFaults(nodeId(2), {});
    await h.agent.engine.powerSyncOnce();
    expect(h.agent.store.getNode(nodeId(2))!.consecutive_power_failures).toBe(0);
  });
});

describe('release_node journals the node change', () => {
  it('a delete that releases the node journals node.released with the instance it held', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    const seq = h.agent.store.lastSeq();
    await h.agent.engine.deleteInstance(ctx(), id);
    await h.agent.engine.idle();
    expect(h.agent.store.getNode(nodeId(1))!.instance_id).toBeNull();
    const released = nodeJournal(h, nodeId(1), seq).filter((e) => e.kind === 'node.released');
    expect(released).toHaveLength(1);
    expect(released[0]).toMatchObject({ cause: 'operation', data: { instance_id: null, released_instance_id: id } });
  });
});

describe('a node-level power target is a stored field', () => {
  it('set when a free node power request is accepted, cleared (and journalled) when it finishes', async () => {
    h = await startHarness({ fakeFor: (i) => (i === 2 ? '{power_delay: 60ms}' : undefined) });
    const node = nodeId(2);
    expect(h.agent.store.getNode(node)!.target_power_state).toBeNull();
    const seq = h.agent.store.lastSeq();
    expect((await h.agent.engine.setNodePower(ctx('admin'), node, { target: 'on' })).accepted).toBe(true);
    expect(h.agent.store.getNode(node)!.target_power_state).toBe('on');
    for (let i = 0; i < 100 && h.agent.store.getNode(node)!.target_power_state !== null; i++) await sleep(10);
    expect(h.agent.store.getNode(node)).toMatchObject({ target_power_state: null, power_state: 'on' });
    const targets = nodeJournal(h, node, seq)
      .filter((e) => e.kind === 'node.power' && 'target_power_state' in e.data)
      .map((e) => e.data['target_power_state']);
    expect(targets).toEqual(['on', null]);
  });

  it('set while enforcement runs and cleared after it, also when it fails', async () => {
    h = await startHarness();
    const id = await runningInstance(h);
    const node = nodeId(1);
    h.agent.store.putNode({ ...h.agent.store.getNode(node)!, enforce_power: true });
    await h.agent.lab!.get(node).setPower('power-button', 'off');
    await sleep(20);
    h.agent.lab!.setFaults(node, { fail_power_on: 1 });
    const seq = h.agent.store.lastSeq();
    await h.agent.engine.powerSyncOnce();
    expect(h.agent.store.getNode(node)).toMatchObject({ target_power_state: null });
    expect(h.agent.store.getNode(node)!.last_error).toMatchObject({ error_type: 'power_on_error' });
    const targets = nodeJournal(h, node, seq)
      .filter((e) => e.kind === 'node.power' && 'target_power_state' in e.data)
      .map((e) => [e.cause, e.data['target_power_state']]);
    expect(targets).toEqual([
      ['enforce', 'on'],
      ['enforce', null],
    ]);
    expect(h.agent.engine.getInstance(ctx(), id).state).toBe('running');
  });
});

describe('node-level power requests and the agent lifecycle', () => {
  it('idle() waits for a free node\'s power request to finish', async () => {
    h = await startHarness({ fake: '{power_delay: 300ms, install: 30ms}' });
    const before = h.agent.store.getNode(nodeId(1))!.power_state;
    const want = before === 'on' ? 'off' : 'on';
    const r = await h.agent.engine.setNodePower(ctx('admin'), nodeId(1), { target: want });
    expect(r.accepted).toBe(true);
    await h.agent.engine.idle();
    const n = h.agent.store.getNode(nodeId(1))!;
    expect(n.power_state).toBe(want);
    expect(n.target_power_state).toBeNull();
  });

  it('stop() ends a free node\'s power request without recording a failure; the next start clears a stale target', async () => {
    h = await startHarness({ fake: '{power_delay: 5s, install: 30ms}' });
    const before = h.agent.store.getNode(nodeId(1))!.power_state;
    const r = await h.agent.engine.setNodePower(ctx('admin'), nodeId(1), { target: before === 'on' ? 'off' : 'on' });
    expect(r.accepted).toBe(true);
    const t0 = Date.now();
    await h.agent.engine.stop();
    expect(Date.now() - t0).toBeLessThan(3_000); // not the 5 s the change takes
    const n = h.agent.store.getNode(nodeId(1))!;
    expect(n.last_error).toBeNull();
    // A crash leaves the target stored: the next start clears it.
    h.agent.store.putNode({ ...n, target_power_state: 'on' });
    await h.agent.engine.start();
    expect(h.agent.store.getNode(nodeId(1))!.target_power_state).toBeNull();
  });
});
