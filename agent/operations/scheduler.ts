/**
 * Scheduling: which node a new instance lands on. Pure but for the store reads it is given; it writes nothing (the
 * caller takes the node inside the same transaction).
 */
import { AgentError } from '../errors.js';
import type { Node } from '../model.js';
import type { Store } from '../store/types.js';
import { UUID_RE } from './ids.js';

/** What scheduling reads: the store's node rows and which nodes have a node-level operation in flight. */
export interface SchedulerInput {
  nodes: Pick<Store, 'getNode' | 'listNodes'>;
  /** A node-level operation (no instance) is in flight on the node. */
  isNodeBusy: (nodeId: string) => boolean;
}

/**
 * The named node if free, else the first free node of the type (by name). Free: no instance, not in maintenance,
 * no adoption waiting, no node-level operation in flight.
 * @throws AgentError BAD_REQUEST (no such node), MAINTENANCE, CONFLICT (wrong type, not free, none free).
 */
export function pickNode(input: SchedulerInput, nodeId: string | undefined, nodeType: string | null): Node {
  const usable = (n: Node) => n.instance_id === null && !n.maintenance && n.adopt === null;
  if (nodeId !== undefined) {
    const node = UUID_RE.test(nodeId) ? input.nodes.getNode(nodeId) : null;
    if (!node) throw new AgentError('AGENT_ERR_BAD_REQUEST', `extra.node_id: no node ${nodeId}`);
    if (nodeType !== null && node.type !== nodeType) {
      throw new AgentError('AGENT_ERR_CONFLICT', `node ${node.name} is of type '${node.type}', the instance type needs '${nodeType}'`);
    }
    if (node.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (!usable(node) || input.isNodeBusy(node.id)) throw new AgentError('AGENT_ERR_CONFLICT', `node ${node.name} is not free`);
    return node;
  }
  const free = input.nodes
    .listNodes()
    .filter((n) => usable(n) && !input.isNodeBusy(n.id) && (nodeType === null || n.type === nodeType))
    .sort((a, b) => a.name.localeCompare(b.name));
  const node = free[0];
  if (!node) {
    throw new AgentError('AGENT_ERR_CONFLICT', nodeType === null ? 'no free node' : `no free node of type '${nodeType}'`);
  }
  return node;
}
