/**
 * The fleet's nodes: the config file's synced into the store, and the changes the controller asks for
 * (agent/upstream/commands-fleet.ts): enrolling a node, removing one, asking for an adoption. A node is judged by the config file's node rules (agent/config/nodes.ts) against the
 * catalogue the engine reads; it is written through the recorder (the only writer) in the caller's transaction,
 * with the caller's `record` (a command's result) in the same commit.
 */
import { isAbsolute } from 'node:path';
import { createDefaultRegistry, type DriverRegistry } from '../../drivers/registry.js';
import { checkAdopt, checkOneNode } from '../config/nodes.js';
import type { Config, NodeConfig } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { Node } from '../model.js';
import type { Store } from '../store/types.js';
import type { Recorder } from './recorder.js';
import { UUID_RE } from './ids.js';

export interface FleetDeps {
  config: () => Config;
  store: Store;
  rec: Recorder;
  now: () => string;
  /** A node-level power request is in flight on the node. */
  isNodeBusy: (nodeId: string) => boolean;
  /** The drivers whose settings judge a node's `bmc` (default: every driver metald ships, as the config loader). */
  drivers?: DriverRegistry;
}

/** The first few problems, in one operator-facing line. */
function problems(errors: string[]): string {
  const shown = errors.slice(0, 5).join('; ');
  return errors.length > 5 ? `${shown}; and ${errors.length - 5} more` : shown;
}

export class Fleet {
  private registry: DriverRegistry | undefined;

  constructor(private readonly d: FleetDeps) {
    this.registry = d.drivers;
  }

  private drivers(): DriverRegistry {
    this.registry ??= createDefaultRegistry({ allowFake: true });
    return this.registry;
  }

  private node(id: string): Node {
    const node = UUID_RE.test(id) ? this.d.store.getNode(id.toLowerCase()) : null;
    if (!node) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${id} could not be found.`);
    return node;
  }

  /**
   * Enrols a node given as the config file gives it (source `controller`, journalled `node.enrolled` with cause
   * `upstream`). Its id, name and MACs must be new to the store; BMC credentials only as a file (`password_file`, an
   * absolute path on the agent's host).
   * @throws AgentError BAD_REQUEST naming the problems, CONFLICT when the id, name or a MAC is taken
   */
  enrol(given: unknown, record?: (node: Node) => void): Node {
    const cfg = this.d.config();
    const abs = (p: string): string => {
      if (!isAbsolute(p)) throw new AgentError('AGENT_ERR_BAD_REQUEST', `node: a path must be absolute on the agent's host (got a relative one)`);
      return p;
    };
    const checked = checkOneNode(given, cfg, { allowFake: cfg.allow_fake_drivers, registry: this.drivers(), abs });
    if (!checked.ok) throw new AgentError('AGENT_ERR_BAD_REQUEST', problems(checked.errors));
    const nc = checked.node;
    return this.d.store.transaction(() => {
      const nodes = this.d.store.listNodes();
      if (nodes.some((n) => n.id === nc.id)) throw new AgentError('AGENT_ERR_CONFLICT', `node ${nc.id} is already enrolled`);
      const named = nodes.find((n) => n.name === nc.name);
      if (named) throw new AgentError('AGENT_ERR_CONFLICT', `node name ${nc.name} is taken by node ${named.id}`);
      const macs = new Map(nodes.flatMap((n) => n.macs.map((m) => [m.mac, n] as const)));
      for (const m of nc.macs) {
        const owner = macs.get(m.mac);
        if (owner) throw new AgentError('AGENT_ERR_CONFLICT', `MAC ${m.mac} belongs to node ${owner.name}`);
      }
      if (nc.adopt) this.checkAdoptFree(nc.adopt.instance_id, nc.adopt.addresses);
      const now = this.d.now();
      const node = newNode(nc, { source: 'controller', maintenanceReason: 'set at enrolment', adopt: nc.adopt ? { ...nc.adopt } : null, now });
      this.d.rec.enrolNode(node, 'upstream');
      record?.(node);
      return node;
    });
  }

  /**
   * Removes a node that holds no instance and has nothing in flight (journalled `node.removed`). A node of the
   * config file is refused: the file would enrol it again at the next start.
   * @throws AgentError NOT_FOUND, BAD_REQUEST (a config node), CONFLICT (it holds an instance), LOCKED (busy)
   */
  remove(nodeId: string, record?: (node: Node) => void): Node {
    const node = this.node(nodeId);
    if (this.d.config().nodes.some((n) => n.id === node.id)) {
      throw new AgentError('AGENT_ERR_BAD_REQUEST', `node ${node.name} is in the configuration file: remove it there`);
    }
    if (node.instance_id !== null) {
      const inst = this.d.store.getInstance(node.instance_id);
      if (inst && inst.state !== 'terminated') throw new AgentError('AGENT_ERR_CONFLICT', `node ${node.name} holds instance ${inst.id}`);
    }
    if (this.d.isNodeBusy(node.id) || node.target_power_state !== null) throw new AgentError('AGENT_ERR_LOCKED', `node ${node.name} is busy`);
    return this.d.store.transaction(() => {
      this.d.rec.removeNode(node.id, 'upstream');
      record?.(node);
      return node;
    });
  }

  /**
   * Asks for an adoption of a free node: its `adopt` is set, and power sync completes it from a verified power read
   * (as for a config node's `adopt`), with its action under `requestId`.
   * @throws AgentError NOT_FOUND, BAD_REQUEST (the adopt's problems), CONFLICT (the node holds an instance, waits for
   *   another adoption, the instance id or an address is taken), LOCKED (busy), MAINTENANCE
   */
  adopt(nodeId: string, given: unknown, requestId: string, record?: (node: Node) => void): Node {
    const node = this.node(nodeId);
    const checked = checkAdopt(given, node, this.d.config(), this.drivers());
    if (!checked.ok) throw new AgentError('AGENT_ERR_BAD_REQUEST', problems(checked.errors));
    if (node.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (node.instance_id !== null) throw new AgentError('AGENT_ERR_CONFLICT', `node ${node.name} holds instance ${node.instance_id}`);
    if (node.adopt !== null) throw new AgentError('AGENT_ERR_CONFLICT', `node ${node.name} already waits for the adoption of ${node.adopt.instance_id}`);
    if (this.d.isNodeBusy(node.id)) throw new AgentError('AGENT_ERR_LOCKED', `node ${node.name} is busy`);
    const adopt = checked.adopt;
    return this.d.store.transaction(() => {
      this.checkAdoptFree(adopt.instance_id, adopt.addresses);
      const next: Node = { ...node, adopt: { ...adopt, request_id: requestId }, updated_at: this.d.now() };
      this.d.rec.putNode(next);
      record?.(next);
      return next;
    });
  }

  /** The config file's nodes into the store: inserts those it lacks, refreshes the settings of those it has. */
  syncConfigNodes(): void {
    const now = this.d.now();
    this.d.store.transaction(() => {
      for (const nc of this.d.config().nodes) {
        const existing = this.d.store.getNode(nc.id);
        const adopt = nc.adopt && !existing?.instance_id && !this.d.store.getInstance(nc.adopt.instance_id) ? { ...nc.adopt } : null;
        if (!existing) {
          const node = newNode(nc, { source: 'config', maintenanceReason: 'set in the configuration', adopt, now });
          this.d.rec.enrolNode(node, 'config');
        } else {
          const forced = nc.maintenance && !existing.maintenance;
          const refreshed: Node = {
            ...existing,
            name: nc.name,
            type: nc.type,
            boot_mode: nc.boot_mode,
            macs: nc.macs,
            bmc: bmcOf(nc),
            enforce_power: nc.enforce_power,
            maintenance: existing.maintenance || nc.maintenance,
            maintenance_reason: forced ? 'set in the configuration' : existing.maintenance_reason,
            adopt: existing.adopt ?? adopt,
          };
          // A start (or SIGHUP) that changes nothing about a node writes nothing for it.
          if (JSON.stringify(refreshed) !== JSON.stringify(existing)) this.d.rec.putNode({ ...refreshed, updated_at: now });
        }
      }
    });
  }

  /** An adoption's instance id and addresses must be new to the store. */
  private checkAdoptFree(instanceId: string, addresses: readonly { addr: string }[]): void {
    if (this.d.store.getInstance(instanceId)) throw new AgentError('AGENT_ERR_CONFLICT', `instance ${instanceId} exists already`);
    const waiting = this.d.store.listNodes().find((n) => n.adopt?.instance_id === instanceId);
    if (waiting) throw new AgentError('AGENT_ERR_CONFLICT', `node ${waiting.name} already waits for the adoption of ${instanceId}`);
    for (const a of addresses) {
      if (this.d.store.isAddressHeld(a.addr)) throw new AgentError('AGENT_ERR_CONFLICT', `address ${a.addr} is in use`);
    }
  }
}

/** The drivers' settings are opaque here: stored as the config resolved them, read by the drivers only. */
const bmcOf = (nc: NodeConfig): Node['bmc'] => ({ ...nc.bmc, drivers: [...nc.bmc.drivers] });

/** A node entering the store (the config file's or an enrolment's): power unknown until read, no instance. */
function newNode(nc: NodeConfig, o: { source: Node['source']; maintenanceReason: string; adopt: Node['adopt']; now: string }): Node {
  return {
    id: nc.id,
    name: nc.name,
    type: nc.type,
    boot_mode: nc.boot_mode,
    macs: nc.macs,
    bmc: bmcOf(nc),
    maintenance: nc.maintenance,
    maintenance_reason: nc.maintenance ? o.maintenanceReason : null,
    power_state: 'unknown',
    target_power_state: null,
    last_error: null,
    consecutive_power_failures: 0,
    instance_id: null,
    adopt: o.adopt,
    enforce_power: nc.enforce_power,
    source: o.source,
    created_at: o.now,
    updated_at: o.now,
  };
}
