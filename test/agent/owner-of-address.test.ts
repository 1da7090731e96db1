/** The fake pinger's owner lookup (agent/fakes.ts ownerOfAddress): one index probe of the store per address. */
import { describe, expect, it } from 'vitest';
import type { Address } from '../../agent/model.js';
import { ownerOfAddress } from '../../agent/fakes.js';
import { instance, node, useStoreDir } from './store/fixtures.js';

const stores = useStoreDir();
const address = (a: string): Address => ({ addr: a, mac: 'aa:bb:cc:dd:ee:01', version: a.includes(':') ? 6 : 4, type: 'fixed', network: 'private' });

describe('ownerOfAddress', () => {
  it('names the node of the live instance holding the address (its own, or its modify-ip’s while it runs), normalised', () => {
    const s = stores.open();
    const pending = (a: string) => ({ pending_ip: { networks: [{ uuid: 'net-1' }], addresses: [address(a)] } });
    s.putInstance(instance({ id: 'i1', node_id: 'n1', addresses: [address('10.0.0.1'), address('fd00::5')] }));
    s.putInstance(instance({ id: 'i2', node_id: 'n2', addresses: [address('10.0.0.2')], task: 'modify-ip', extra: pending('10.0.0.3') }));
    s.putInstance(instance({ id: 'i3', node_id: 'n3', addresses: [address('10.0.0.4')], state: 'terminated', terminated_at: '2024-01-05T00:00:00.000Z' }));
    s.putNode(node({ id: 'n4', adopt: { instance_id: 'i4', project_id: 'p', user_id: 'u', name: 'x', addresses: [address('10.0.0.5')] } }));
    const owners = ['10.0.0.1', 'FD00:0::5', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.9'].map((a) => ownerOfAddress(s, a));
    expect(owners).toEqual(['n1', 'n1', 'n2', 'n2', null, null, null]);
    // The modify-ip ends: its reservation is released with the write that clears the task.
    s.putInstance({ ...s.getInstance('i2')!, task: null, extra: {} });
    expect(ownerOfAddress(s, '10.0.0.3')).toBeNull();
  });
});
