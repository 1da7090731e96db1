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
  nodes: Pick<Store, 'getNode' | 'freeNodes'>;
  /** A node-level operation (no instance) is in flight on the node. */
  isNodeBusy: (nodeId: string) => boolean;
}

/** Free nodes read per page while looking for one that is not busy: the cost is the busy nodes skipped, not the fleet. */
export const FREE_NODE_PAGE = 16;

/**
 * The named node if free, else the first free node of the type (by name in byte order, then id). Free: no instance,
 * not in maintenance, no adoption waiting, no node-level operation in flight. Reads the store's free-node index page by
 * page (Store.freeNodes), never every node.
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
  for (let page = input.nodes.freeNodes(nodeType, FREE_NODE_PAGE); page.length > 0; ) {
    const node = page.find((n) => !input.isNodeBusy(n.id));
    if (node) return node;
    if (page.length < FREE_NODE_PAGE) break;
    const last = page[page.length - 1]!;
    page = input.nodes.freeNodes(nodeType, FREE_NODE_PAGE, { name: last.name, id: last.id });
  }
  throw new AgentError('AGENT_ERR_CONFLICT', nodeType === null ? 'no free node' : `no free node of type '${nodeType}'`);
}
