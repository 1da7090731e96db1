/** Address allocation (agent/operations/ipam.ts): pool and fixed addresses, conflicts, and modify-ip's reservation. */
import { describe, expect, it } from 'vitest';
import type { NetworkEntry } from '../../../agent/config/types.js';
import type { Address, Instance, Node } from '../../../agent/model.js';
import { allocateAddresses, reserveAddresses, usedAddresses } from '../../../agent/operations/ipam.js';
import { makeInstance, makeNode } from '../api/stub-service.js';
import { useStoreDir } from '../store/fixtures.js';

const NET = '4fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const NET2 = '5fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const NETWORKS: NetworkEntry[] = [
  { uuid: NET, name: 'private', cidr: '10.0.0.0/24', gateway: null, dns: [], pool: { first: '10.0.0.10', last: '10.0.0.12' } },
  { uuid: NET2, name: 'static', cidr: 'fd00::/64', gateway: null, dns: [], pool: null },
];
const NODE = makeNode({ macs: [{ mac: 'fa:16:3e:00:00:02', pxe: false }, { mac: 'fa:16:3e:00:00:01', pxe: true }] });

const addr = (a: string): Address => ({ addr: a, mac: 'fa:16:3e:00:00:09', version: 4, type: 'fixed', network: 'private', network_uuid: NET });

const stores = useStoreDir();

/** The allocator's input over a store holding these instances and nodes (the first store of the test). */
function input(instances: Instance[] = [], nodes: Node[] = [NODE]) {
  const store = stores.open();
  for (const n of nodes) store.putNode(n);
  for (const i of instances) store.putInstance(i);
  return { store, networks: NETWORKS };
}

describe('allocateAddresses', () => {
  it('takes the first free pool address per network, the PXE MAC carrying the first', () => {
    const held = [makeInstance({ addresses: [addr('10.0.0.10')] })];
    const got = allocateAddresses(input(held), NODE, [{ uuid: NET }, { uuid: NET2, fixed_ip: 'fd00::5' }]);
    expect(got).toEqual([
      { addr: '10.0.0.11', mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'private', network_uuid: NET },
      { addr: 'fd00::5', mac: 'fa:16:3e:00:00:02', version: 6, type: 'fixed', network: 'static', network_uuid: NET2 },
    ]);
  });

  it('takes a fixed address inside the network, normalised', () => {
    expect(allocateAddresses(input(), NODE, [{ uuid: NET, fixed_ip: '10.0.0.200' }]).map((a) => a.addr)).toEqual(['10.0.0.200']);
    expect(allocateAddresses(input(), NODE, [{ uuid: NET2, fixed_ip: 'FD00:0::7' }]).map((a) => a.addr)).toEqual(['fd00::7']);
  });

  const refusals: [string, Instance[], string | undefined, string, string][] = [
    ['a fixed address outside the CIDR', [], '10.0.1.5', 'AGENT_ERR_BAD_REQUEST', 'networks[0].fixed_ip: 10.0.1.5 is outside network private (10.0.0.0/24)'],
    ['a fixed address that is not an IP', [], 'nope', 'AGENT_ERR_BAD_REQUEST', 'networks[0].fixed_ip: not an IP address'],
    ['a fixed address in use', [makeInstance({ addresses: [addr('10.0.0.200')] })], '10.0.0.200', 'AGENT_ERR_CONFLICT', 'address 10.0.0.200 is in use'],
    [
      'an exhausted pool',
      [makeInstance({ addresses: [addr('10.0.0.10'), addr('10.0.0.11')] }), makeInstance({ addresses: [addr('10.0.0.12')] })],
      undefined,
      'AGENT_ERR_CONFLICT',
      'the address pool of network private is exhausted',
    ],
  ];
  for (const [what, held, fixed, code, message] of refusals) {
    it(`refuses ${what} (${code})`, () => {
      const req = fixed === undefined ? { uuid: NET } : { uuid: NET, fixed_ip: fixed };
      expect(() => allocateAddresses(input(held), NODE, [req])).toThrow(expect.objectContaining({ code, message }));
    });
  }

  it('refuses a pool address on a network without a pool, and an unknown network', () => {
    expect(() => allocateAddresses(input(), NODE, [{ uuid: NET2 }])).toThrow(
      expect.objectContaining({ code: 'AGENT_ERR_CONFLICT', message: 'network static has no address pool' }),
    );
    expect(() => allocateAddresses(input(), NODE, [{ uuid: NET }, { uuid: NET2.replace('5', '6') }])).toThrow(
      expect.objectContaining({ code: 'AGENT_ERR_BAD_REQUEST', message: expect.stringMatching(/^networks\[1\]\.uuid: no network /) }),
    );
  });

  it('does not give one address twice in one request', () => {
    expect(allocateAddresses(input(), NODE, [{ uuid: NET }, { uuid: NET }]).map((a) => a.addr)).toEqual(['10.0.0.10', '10.0.0.11']);
  });
});

describe('usedAddresses', () => {
  it('counts live instances, a modify-ip’s reservation while it runs, and adoptions waiting; not terminated or `except`', () => {
    const pending = { networks: [{ uuid: NET }], addresses: [addr('10.0.0.21')] };
    const instances = [
      makeInstance({ id: 'a', addresses: [addr('10.0.0.20')], task: 'modify-ip', extra: { pending_ip: pending } }),
      makeInstance({ id: 'b', addresses: [addr('10.0.0.30')], state: 'terminated' }),
      makeInstance({ id: 'c', addresses: [addr('10.0.0.40')], task: null, extra: { pending_ip: { ...pending, addresses: [addr('10.0.0.41')] } } }),
      makeInstance({ id: 'd', addresses: [addr('10.0.0.50')] }),
    ];
    const adopting = makeNode({ adopt: { instance_id: 'x', project_id: 'p', user_id: 'u', name: 'x', addresses: [addr('10.0.0.60')] } });
    expect([...usedAddresses(input(instances, [NODE, adopting]).store, 'd')].sort()).toEqual(['10.0.0.20', '10.0.0.21', '10.0.0.40', '10.0.0.60']);
  });
});

describe('reserveAddresses (modify-ip)', () => {
  it('keeps the networks asked for with their new addresses; the instance’s own addresses stay free for it', () => {
    const self = makeInstance({ id: 'self', addresses: [addr('10.0.0.10')] });
    const other = makeInstance({ id: 'other', addresses: [addr('10.0.0.11')] });
    const networks = [{ uuid: NET, fixed_ip: '10.0.0.10' }];
    expect(reserveAddresses(input([self, other]), NODE, 'self', networks)).toEqual({
      networks,
      addresses: [{ addr: '10.0.0.10', mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'private', network_uuid: NET }],
    });
    expect(() => reserveAddresses(input([self, other]), NODE, 'self', [{ uuid: NET, fixed_ip: '10.0.0.11' }])).toThrow(
      expect.objectContaining({ code: 'AGENT_ERR_CONFLICT' }),
    );
  });

  it('another modify-ip’s reservation is in use while it runs', () => {
    const running = makeInstance({ id: 'r', addresses: [addr('10.0.0.10')], task: 'modify-ip', extra: { pending_ip: { networks: [{ uuid: NET }], addresses: [addr('10.0.0.11')] } } });
    expect(() => reserveAddresses(input([running]), NODE, 'self', [{ uuid: NET, fixed_ip: '10.0.0.11' }])).toThrow(
      expect.objectContaining({ code: 'AGENT_ERR_CONFLICT', message: 'address 10.0.0.11 is in use' }),
    );
    expect(reserveAddresses(input([running]), NODE, 'self', [{ uuid: NET }]).addresses.map((a) => a.addr)).toEqual(['10.0.0.12']);
  });
});
