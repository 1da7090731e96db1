/**
 * The node and catalogue commands: node.power and node.maintenance are the engine methods of their REST calls;
 * node.enrol, node.remove and node.adopt go through the engine's fleet (agent/operations/fleet.ts: the config
 * file's node rules); the catalogue ops through the engine's catalogue (agent/operations/catalogue.ts). Each is given the command's
 * `record`, run in the transaction of the change.
 */
import { CONTROLLER_PROJECT, type OpRun } from './commands-op.js';
import type { CommandBody } from './protocol.js';

type FleetBody = Exclude<CommandBody, { op: 'instance.create' | 'instance.delete' | 'instance.power' | 'instance.operation' }>;

export async function runFleetCommand(op: OpRun, body: FleetBody): Promise<void> {
  const { engine } = op.d;
  const ctx = op.ctx(CONTROLLER_PROJECT);
  switch (body.op) {
    case 'node.power':
      // A node holding an instance: the instance's power operation (its action under request_id = command_id);
      // a free node: a node-level request, whose node.power events carry request_id = command_id.
      await engine.setNodePower(ctx, body.node_id, { target: body.target, timeout_s: body.timeout_s }, (r) =>
        op.record({
          status: 'accepted',
          request_id: r.accepted ? (r.action?.request_id ?? op.cmd.command_id) : null,
          instance_id: r.action?.instance_id ?? null,
          node_id: body.node_id.toLowerCase(),
          already: !r.accepted,
        }),
      );
      return;
    case 'node.maintenance':
      await engine.setMaintenance(ctx, body.node_id, body.maintenance, body.reason, (n) =>
        op.record({ status: 'done', node_id: n.id, instance_id: n.instance_id }),
      );
      return;
    case 'node.enrol':
      engine.fleet.enrol(body.node, (n) => op.record({ status: 'done', node_id: n.id }));
      return;
    case 'node.remove':
      engine.fleet.remove(body.node_id, (n) => op.record({ status: 'done', node_id: n.id }));
      return;
    case 'node.adopt':
      // Accepted: power sync completes it from a verified power read (the instance then appears in the journal), its
      // action under request_id = command_id.
      engine.fleet.adopt(body.node_id, body.adopt, op.cmd.command_id, (n) =>
        op.record({ status: 'accepted', request_id: op.cmd.command_id, node_id: n.id, instance_id: n.adopt?.instance_id ?? null }),
      );
      return;
    // The catalogue: the controller's entries beside the file's (agent/operations/catalogue.ts: the file's win).
    case 'image.put':
      engine.catalogue.put('images', body.image, () => op.record({ status: 'done' }));
      return;
    case 'instance-type.put':
      engine.catalogue.put('instance_types', body.instance_type, () => op.record({ status: 'done' }));
      return;
    case 'network.put':
      engine.catalogue.put('networks', body.network, () => op.record({ status: 'done' }));
      return;
    case 'image.delete':
      engine.catalogue.delete('images', body.uuid, () => op.record({ status: 'done' }));
      return;
    case 'instance-type.delete':
      engine.catalogue.delete('instance_types', body.uuid, () => op.record({ status: 'done' }));
      return;
    case 'network.delete':
      engine.catalogue.delete('networks', body.uuid, () => op.record({ status: 'done' }));
      return;
  }
}
