/**
 * Address allocation (IPAM): the addresses an instance is given, checked and chosen at acceptance, inside the
 * caller's transaction. Pure but for the store reads it is given; it writes nothing (the caller stores the result:
 * on the instance at create, as `extra.pending_ip` for a modify-ip until it succeeds).
 */
import type { NetworkEntry } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { Address, Instance, NetworkRequest, Node } from '../model.js';
import { cidrContains, formatIp, normaliseIp, parseCidr, parseIp } from '../net.js';
import type { Store } from '../store/types.js';

/** What address allocation reads: the store's held-address index, and the catalogue's networks. */
export interface IpamInput {
  store: Pick<Store, 'isAddressHeld' | 'firstFreeAddress'>;
  networks: readonly NetworkEntry[];
}

/**
 * Every address held, normalised: by instances not terminated (but `except`), by a modify-ip in flight (its
 * reservation in `extra.pending_ip`), and by adoptions waiting. A whole-index read, for diagnostics and tests;
 * allocation asks the index per address instead.
 */
export function usedAddresses(store: Pick<Store, 'heldAddresses'>, except?: string): Set<string> {
  return new Set(store.heldAddresses(except));
}

/** The first address of the pool nothing holds and this request has not chosen yet; null when exhausted. */
function firstFree(store: IpamInput['store'], pool: { first: string; last: string }, except: string | undefined, chosen: ReadonlySet<string>): string | null {
  let from = pool.first;
  for (;;) {
    const addr = store.firstFreeAddress(from, pool.last, except);
    if (addr === null || !chosen.has(addr)) return addr;
    const ip = parseIp(addr)!;
    from = formatIp({ version: ip.version, value: ip.value + 1n });
  }
}

/**
 * One fixed address per requested network, from its pool; the PXE MAC carries the first. `except`: the instance
 * asking (a modify-ip may keep its own addresses).
 * @throws AgentError BAD_REQUEST naming `networks[i]` (unknown network, malformed or outside its CIDR), CONFLICT
 *   (address in use, no pool, pool exhausted).
 */
export function allocateAddresses(input: IpamInput, node: Node, networks: readonly NetworkRequest[], except?: string): Address[] {
  // The addresses given earlier in this request: not held yet (nothing is written before the caller stores them).
  const chosen = new Set<string>();
  const macs = [...node.macs].sort((a, b) => Number(b.pxe) - Number(a.pxe));
  return networks.map((req, i) => {
    const net = input.networks.find((x) => x.uuid === req.uuid);
    if (!net) throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].uuid: no network ${req.uuid} in the catalogue`);
    let addr: string | null;
    if (req.fixed_ip !== undefined) {
      addr = normaliseIp(req.fixed_ip);
      if (!addr) throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].fixed_ip: not an IP address`);
      if (!cidrContains(parseCidr(net.cidr), parseIp(addr)!)) {
        throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].fixed_ip: ${addr} is outside network ${net.name} (${net.cidr})`);
      }
      if (chosen.has(addr) || input.store.isAddressHeld(addr, except)) throw new AgentError('AGENT_ERR_CONFLICT', `address ${addr} is in use`);
    } else {
      if (!net.pool) throw new AgentError('AGENT_ERR_CONFLICT', `network ${net.name} has no address pool`);
      addr = firstFree(input.store, net.pool, except, chosen);
      if (!addr) throw new AgentError('AGENT_ERR_CONFLICT', `the address pool of network ${net.name} is exhausted`);
    }
    chosen.add(addr);
    return {
      addr,
      mac: macs[i]?.mac ?? macs[0]?.mac ?? '',
      version: addr.includes(':') ? 6 : 4,
      type: 'fixed',
      network: net.name,
      network_uuid: net.uuid,
    } satisfies Address;
  });
}

/**
 * A modify-ip's reservation (stored as the instance's `extra.pending_ip`): the new addresses, checked and chosen
 * now, held while the operation runs, the instance's own ones free for it to keep.
 * @throws AgentError as allocateAddresses
 */
export function reserveAddresses(input: IpamInput, node: Node, instanceId: string, networks: NetworkRequest[]): NonNullable<Instance['extra']['pending_ip']> {
  return { networks, addresses: allocateAddresses(input, node, networks, instanceId) };
}
