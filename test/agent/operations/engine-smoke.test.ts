import { afterEach, describe, expect, it } from 'vitest';
import { ctx, IMAGE, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('engine smoke', () => {
  it('creates an instance on a fake node and installs it', async () => {
    h = await startHarness();
    const { instance } = await h.agent.engine.createInstance(ctx(), { name: 'vm1', image_uuid: IMAGE });
    expect(instance.state).toBe('pending');
    expect(instance.operation_state).toBe('install-processing');
    expect(instance.node_id).toBe(nodeId(1));
    await h.agent.engine.idle();
    const done = h.agent.engine.getInstance(ctx(), instance.id);
    expect(done.state).toBe('running');
    expect(done.operation_state).toBe('install-succeed');
    expect(done.power_state).toBe('on');
    const actions = h.agent.engine.listActions(ctx(), instance.id);
    expect(actions).toHaveLength(1);
    console.log(actions[0]!.events.map((e) => `${e.event}:${e.result}`).join(' '));
  });
});
