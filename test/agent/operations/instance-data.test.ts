/**
 * Data an instance carries beyond its state (issue 5 B9): `launched_at` is set once, when the instance first reaches
 * running; an instance created without an instance type gets the node's one (or the create is refused); a terminated
 * instance shows no addresses once they are released.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ctx, IMAGE, nodeId, startHarness, TYPE_SMALL, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('launched_at', () => {
  it('is set when the install first reaches running and kept through power-off, power-on and reinstall', async () => {
    h = await startHarness({ nodes: 1 });
    const e = h.agent.engine;
    const { instance } = await e.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE });
    expect(instance.launched_at).toBeNull();
    await e.idle();
    const launched = e.getInstance(ctx(), instance.id).launched_at;
    expect(launched).not.toBeNull();
    await sleep(5);
    await e.setInstancePower(ctx(), instance.id, { target: 'off' });
    await e.idle();
    await e.setInstancePower(ctx(), instance.id, { target: 'on' });
    await e.idle();
    await e.runOperation(ctx(), instance.id, 'reinstall', {});
    await e.idle();
    const after = e.getInstance(ctx(), instance.id);
    expect(after.state).toBe('running');
    expect(after.operation_state).toBe('reinstall-succeed');
    expect(after.updated_at > launched!).toBe(true);
    expect(after.launched_at).toBe(launched);
  });

  it('is set by the retry that first reaches running, and not again by a later reinstall', async () => {
    h = await startHarness({ nodes: 1 });
    const e = h.agent.engine;
    h.agent.lab!.setFaults(nodeId(1), { fail_install: 1 });
    const { instance } = await e.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE });
    await e.idle();
    expect(e.getInstance(ctx(), instance.id).state).toBe('error');
    expect(e.getInstance(ctx(), instance.id).launched_at).toBeNull();
    await e.runOperation(ctx(), instance.id, 'retry', {});
    await e.idle();
    const launched = e.getInstance(ctx(), instance.id).launched_at;
    expect(e.getInstance(ctx(), instance.id).state).toBe('running');
    expect(launched).not.toBeNull();
    await sleep(5);
    await e.runOperation(ctx(), instance.id, 'reinstall', {});
    await e.idle();
    expect(e.getInstance(ctx(), instance.id).operation_state).toBe('reinstall-succeed');
    expect(e.getInstance(ctx(), instance.id).launched_at).toBe(launched);
  });
});

describe('an instance created without an instance type', () => {
  it("gets the one instance type of its node's type", async () => {
    h = await startHarness({ nodes: 1 });
    const { instance } = await h.agent.engine.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE });
    expect(instance.instance_type_uuid).toBe(TYPE_SMALL);
    expect(h.agent.store.getInstance(instance.id)!.instance_type_uuid).toBe(TYPE_SMALL);
  });

  it('is refused (400 naming instance_type_uuid) when more than one instance type fits, and nothing is written', async () => {
    h = await startHarness({
      nodes: 1,
      editConfig: (y) => y.replace('instance_types:\n', 'instance_types:\n  - {uuid: 5fd5ab9b-1769-4dd5-b0bd-e075614cc866, name: bm.small.b, node_type: small}\n'),
    });
    const e = h.agent.engine;
    const instancesBefore = h.agent.store.listInstances().length;
    await expect(e.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE })).rejects.toMatchObject({
      code: 'AGENT_ERR_BAD_REQUEST',
      message: expect.stringMatching(/^instance_type_uuid: /),
    });
    expect(h.agent.store.listInstances().length).toBe(instancesBefore);
    expect(h.agent.store.getNode(nodeId(1))!.instance_id).toBeNull();
    // Naming the type works.
    const { instance } = await e.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE, instance_type_uuid: TYPE_SMALL });
    expect(instance.instance_type_uuid).toBe(TYPE_SMALL);
  });

  it('is refused when no instance type is for the chosen node type', async () => {
    h = await startHarness({ nodes: 1, editConfig: (y) => y.replace('node_type: small}', 'node_type: large}') });
    await expect(h.agent.engine.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE })).rejects.toMatchObject({
      code: 'AGENT_ERR_BAD_REQUEST',
      message: expect.stringMatching(/^instance_type_uuid: /),
    });
    expect(h.agent.store.listInstances()).toHaveLength(0);
  });
});

describe('a terminated instance', () => {
  it('shows no addresses once the delete released them, and stays readable', async () => {
    h = await startHarness({ nodes: 1 });
    const e = h.agent.engine;
    const { instance } = await e.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE });
    await e.idle();
    const addr = e.getInstance(ctx(), instance.id).addresses[0]!.addr;
    await e.deleteInstance(ctx(), instance.id);
    await e.idle();
    const gone = e.getInstance(ctx(), instance.id);
    expect(gone.state).toBe('terminated');
    expect(gone.addresses).toEqual([]);
    // The address is free again: the next instance gets it.
    const { instance: next } = await e.createInstance(ctx(), { name: 'vm2', image_uuid: IMAGE });
    expect(next.addresses[0]!.addr).toBe(addr);
  });
});
