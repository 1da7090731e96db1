/**
 * Catalogue ids (image, instance type, network uuids; node ids in extra.node_id) are matched case-insensitively,
 * normalised once at the boundary: the config loader lowercases the catalogue and node ids, the service's entry points
 * lowercase incoming ids before any lookup, and what is stored is lowercase (issue 5 B7).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ctx, IMAGE, IMAGE2, NETWORK, nodeId, startHarness, TYPE_SMALL, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const up = (s: string) => s.toUpperCase();

describe('catalogue ids in requests', () => {
  it('an upper-case image, instance type, network and node id in a create are accepted and stored lowercase', async () => {
    h = await startHarness({ nodes: 2 });
    const e = h.agent.engine;
    const { instance } = await e.createInstance(ctx(), {
      name: 'vm',
      image_uuid: up(IMAGE),
      instance_type_uuid: up(TYPE_SMALL),
      networks: [{ uuid: up(NETWORK) }],
      extra: { node_id: up(nodeId(2)) },
    });
    const stored = h.agent.store.getInstance(instance.id)!;
    expect(stored.image_uuid).toBe(IMAGE);
    expect(stored.instance_type_uuid).toBe(TYPE_SMALL);
    expect(stored.networks.map((n) => n.uuid)).toEqual([NETWORK]);
    expect(stored.addresses.map((a) => a.network_uuid)).toEqual([NETWORK]);
    expect(stored.node_id).toBe(nodeId(2));
    expect(stored.extra.node_id).toBe(nodeId(2));
    await e.idle();
    expect(e.getInstance(ctx(), instance.id).state).toBe('running');
  });

  it('an upper-case image uuid in reinstall and switch-install, and network uuid in modify-ip, are accepted and stored lowercase', async () => {
    h = await startHarness({ nodes: 1 });
    const e = h.agent.engine;
    const { instance } = await e.createInstance(ctx(), { name: 'vm', image_uuid: IMAGE });
    await e.idle();
    await e.runOperation(ctx(), instance.id, 'switch-install', { image_uuid: up(IMAGE2) });
    await e.idle();
    expect(h.agent.store.getInstance(instance.id)!.operation_state).toBe('switch-install-succeed');
    expect(h.agent.store.getInstance(instance.id)!.image_uuid).toBe(IMAGE2);
    await e.runOperation(ctx(), instance.id, 'reinstall', { image_uuid: up(IMAGE) });
    await e.idle();
    expect(h.agent.store.getInstance(instance.id)!.operation_state).toBe('reinstall-succeed');
    expect(h.agent.store.getInstance(instance.id)!.image_uuid).toBe(IMAGE);
    await e.runOperation(ctx(), instance.id, 'modify-ip', { networks: [{ uuid: up(NETWORK), fixed_ip: '127.0.2.60' }] });
    await e.idle();
    const after = h.agent.store.getInstance(instance.id)!;
    expect(after.operation_state).toBe('modify-ip-succeed');
    expect(after.networks.map((n) => n.uuid)).toEqual([NETWORK]);
    expect(after.addresses.map((a) => [a.addr, a.network_uuid])).toEqual([['127.0.2.60', NETWORK]]);
  });
});

describe('catalogue ids in the config', () => {
  it('upper-case uuids of images, instance types, networks and nodes are loaded lowercase and match requests in either case', async () => {
    h = await startHarness({
      nodes: 1,
      editConfig: (y) => [IMAGE, IMAGE2, TYPE_SMALL, NETWORK, nodeId(1)].reduce((acc, id) => acc.replaceAll(id, up(id)), y),
    });
    expect(h.config.images.map((i) => i.uuid)).toEqual([IMAGE, IMAGE2]);
    expect(h.config.instance_types.map((t) => t.uuid)).toEqual([TYPE_SMALL]);
    expect(h.config.networks.map((n) => n.uuid)).toEqual([NETWORK]);
    expect(h.config.nodes.map((n) => n.id)).toEqual([nodeId(1)]);
    const e = h.agent.engine;
    const { instance } = await e.createInstance(ctx(), {
      name: 'vm',
      image_uuid: IMAGE,
      instance_type_uuid: up(TYPE_SMALL),
      networks: [{ uuid: NETWORK }],
      extra: { node_id: nodeId(1) },
    });
    expect(instance.node_id).toBe(nodeId(1));
    expect(instance.image_uuid).toBe(IMAGE);
    await e.idle();
    expect(e.getInstance(ctx(), instance.id).state).toBe('running');
    expect(h.agent.lab!.snapshot(nodeId(1)).osInstalled).toBe('debian-12');
  });
});
