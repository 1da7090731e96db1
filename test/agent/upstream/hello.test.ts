/**
 * The hello over the store (agent/upstream/hello.ts): its snapshot says what the store says (nodes, live instances,
 * their last liveness verdict, the seq it reflects), parseMessage accepts it, and the inventory is valid whatever
 * systeminformation answers (a throw, nulls, junk, oversized lists) or on this host.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../agent/ports.js';
import { gatherInventory, minimalInventory, StoreHello, type InventoryPort } from '../../../agent/upstream/hello.js';
import { parseMessage } from '../../../agent/upstream/parse.js';
import { raiseGeneration } from '../../../agent/upstream/types.js';
import { instance, node, useStoreDir } from '../store/fixtures.js';
import { INVENTORY } from './link-helpers.js';

const t = useStoreDir();
const N1 = '1b8c5f0e-0000-4000-8000-000000000001';
const N2 = '1b8c5f0e-0000-4000-8000-000000000002';
const N3 = '1b8c5f0e-0000-4000-8000-000000000003';
const I1 = 'cbce6087-6156-453c-a512-60bf3d75d601';
const I2 = 'cbce6087-6156-453c-a512-60bf3d75d602';
const GONE = 'cbce6087-6156-453c-a512-60bf3d75d603';

const valid = (h: unknown) => {
  const r = parseMessage(JSON.stringify(h), { from: 'agent' });
  return r.ok ? 'ok' : r.message;
};

describe('the hello', () => {
  it('snapshots every node and every live instance with its last alive verdict, tagged with the last seq, and parses', async () => {
    const s = t.open();
    s.putNode(node({ id: N1, name: 'n1', instance_id: I1 }));
    s.putNode(node({ id: N2, name: 'n2', instance_id: I2, maintenance: true, maintenance_reason: 'DIMM' }));
    s.putNode(node({ id: N3, name: 'n3' }));
    s.putInstance(instance({ id: I1, node_id: N1, name: 'web-1' }));
    s.putInstance(instance({ id: I2, node_id: N2, name: 'web-2', addresses: [], state: 'stopped', power_state: 'off' }));
    s.putInstance(instance({ id: GONE, node_id: N3, name: 'gone', addresses: [], state: 'terminated', terminated_at: '2024-01-03T00:00:00.000Z' }));
    s.appendJournal({ kind: 'instance.alive', instance_id: I1, node_id: N1, cause: 'monitor', data: { alive: false } });
    s.appendJournal({ kind: 'instance.alive', instance_id: I1, node_id: N1, cause: 'monitor', data: { alive: true } });
    s.appendJournal({ kind: 'instance.power', instance_id: I2, node_id: N2, cause: 'drift', data: { power_state: 'off' } });
    s.trimJournal(1);
    await raiseGeneration(s, 4);
    const src = new StoreHello({ store: s, agentId: 'rack-a12', agentVersion: '1.2.3', clock: systemClock, inventory: async () => INVENTORY });
    await src.ready();
    const h = src.hello();
    expect(valid(h)).toBe('ok');
    expect(h).toMatchObject({ agent_id: 'rack-a12', store_id: s.storeId(), agent_version: '1.2.3', generation: 4, outbox_first_seq: 2, inventory: INVENTORY });
    expect(h.snapshot.seq).toBe(3);
    expect(h.snapshot.nodes.map((n) => n.id).sort()).toEqual([N1, N2, N3]);
    expect(h.snapshot.nodes.find((n) => n.id === N2)).toMatchObject({ maintenance: true, maintenance_reason: 'DIMM', instance_id: I2 });
    expect(h.snapshot.instances.map((i) => i.id).sort()).toEqual([I1, I2]);
    expect(h.snapshot.instances.find((i) => i.id === I1)).toMatchObject({ alive: true, state: 'running' });
    expect(h.snapshot.instances.find((i) => i.id === I2)).toMatchObject({ alive: null, state: 'stopped', power_state: 'off' });
    expect(JSON.stringify(h)).not.toMatch(/password|user_data|ssh_keys/);
    // A new entry: the next hello's snapshot says so.
    s.appendJournal({ kind: 'instance.alive', instance_id: I2, node_id: N2, cause: 'monitor', data: { alive: false } });
    const h2 = src.hello();
    expect(h2.snapshot.seq).toBe(4);
    expect(h2.snapshot.instances.find((i) => i.id === I2)!.alive).toBe(false);
  });

  it('before ready() (or when the inventory source throws) the hello carries the minimal inventory and still parses', async () => {
    const s = t.open();
    const src = new StoreHello({ store: s, agentId: 'rack-a12', agentVersion: '0.1.0', clock: systemClock, inventory: () => Promise.reject(new Error('no DMI')) });
    expect(valid(src.hello())).toBe('ok');
    await src.ready();
    const h = src.hello();
    expect(valid(h)).toBe('ok');
    expect(h.inventory).toEqual(minimalInventory());
    expect(h.snapshot).toMatchObject({ seq: 0, nodes: [], instances: [] });
    expect(h.outbox_first_seq).toBe(1);
  });
});

describe('gatherInventory', () => {
  const hello = (inventory: unknown) => ({
    type: 'hello', version: 1, agent_id: 'rack-a12', store_id: '0f6c2d9e-8a4b-4c1d-9e2f-3a5b7c9d1e2f', agent_version: '0.1.0', generation: 0,
    outbox_first_seq: 1, inventory, snapshot: { seq: 0, taken_at: new Date().toISOString(), nodes: [], instances: [] },
  });

  it('every call throwing: nulls and empties, never a throw, valid', async () => {
    const boom = () => Promise.reject(new Error('dmidecode: permission denied'));
    const inv = await gatherInventory({ osInfo: boom, system: boom, cpu: boom, mem: boom, networkInterfaces: boom });
    expect(inv.system).toEqual({ manufacturer: null, model: null, serial: null, uuid: null });
    expect(inv.interfaces).toEqual([]);
    expect(valid(hello(inv))).toBe('ok');
  });

  it('junk, nulls and oversized answers are cleaned and bounded', async () => {
    const long = 'x'.repeat(5000);
    const port: InventoryPort = {
      osInfo: async () => ({ hostname: long, platform: null as unknown as string, distro: 'Debian GNU/Linux', release: '', kernel: 42 as unknown as string, arch: 'x64' }),
      system: async () => ({ manufacturer: 'To Be Filled By O.E.M.', model: 'Default string', serial: '-', uuid: '03000200-0400-0500-0006-000700080009' }),
      cpu: async () => ({ manufacturer: 'AMD', brand: 'EPYC 7302P', cores: -1, physicalCores: 1e9 }),
      mem: async () => ({ total: Number.NaN }),
      networkInterfaces: async () => [
        ...Array.from({ length: 300 }, (_, i) => ({ iface: `eth${i}${long}`, mac: 'aa:bb:cc:dd:ee:ff', ip4: '10.0.0.1', ip6: '' })),
        { iface: 'lo', internal: true, mac: '00:00:00:00:00:00', ip4: '127.0.0.1', ip6: '::1' },
        null as unknown as { iface: string },
      ],
    };
    const inv = await gatherInventory(port);
    expect(valid(hello(inv))).toBe('ok');
    expect(inv.hostname).toHaveLength(255);
    expect(inv.system).toEqual({ manufacturer: null, model: null, serial: null, uuid: null });
    expect(inv.cpu).toEqual({ brand: 'AMD EPYC 7302P', cores: 0, physical_cores: null });
    expect(inv.memory_bytes).toBe(0);
    expect(inv.os).toMatchObject({ distro: 'Debian GNU/Linux', release: null, kernel: expect.any(String) as string });
    expect(inv.interfaces).toHaveLength(128);
    expect(inv.interfaces[0]).toEqual({ name: `eth0${long}`.slice(0, 64), mac: 'aa:bb:cc:dd:ee:ff', ip4: ['10.0.0.1'], ip6: [] });
    expect(inv.interfaces.some((n) => n.name === 'lo')).toBe(false);
  });

  it('on this host (systeminformation itself) it gives a valid inventory', async () => {
    const inv = await gatherInventory();
    expect(valid(hello(inv))).toBe('ok');
    expect(inv.hostname.length).toBeGreaterThan(0);
  }, 20_000);
});
