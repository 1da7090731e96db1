/**
 * The instance commands (instance.create, instance.delete, instance.power, instance.operation): each is the engine
 * method of its REST call, given the command's `record` to store the result in the acceptance's transaction. Each
 * result is `accepted` with request_id = command_id (the action); a power command found already there is
 * `accepted` with `already` and no action.
 */
import { toCreateInput, toOperation } from '../api/routes-v1.js';
import { AgentError } from '../errors.js';
import { acceptsTimeout } from '../vocab.js';
import { CONTROLLER_PROJECT, type OpRun } from './commands-op.js';
import type { CommandBody } from './protocol.js';

type InstanceBody = Extract<CommandBody, { op: 'instance.create' | 'instance.delete' | 'instance.power' | 'instance.operation' }>;

export async function runInstanceCommand(op: OpRun, body: InstanceBody): Promise<void> {
  const { engine, store } = op.d;
  if (body.op === 'instance.create') {
    const ctx = op.ctx(body.project_id, body.user_id);
    await engine.createInstance(ctx, toCreateInput(body.instance), ({ instance, action }) => {
      op.record({ status: 'accepted', request_id: action.request_id, instance_id: instance.id, node_id: instance.node_id });
    });
    return;
  }
  // The instance's project, so that its action is the project's as a REST call's would be.
  const inst = store.getInstance(body.instance_id.toLowerCase());
  const ctx = op.ctx(inst?.project_id ?? CONTROLLER_PROJECT);
  const accepted = (requestId: string | null, already = false): void => {
    op.record({ status: 'accepted', request_id: requestId, instance_id: inst?.id ?? null, node_id: inst?.node_id ?? null, already });
  };
  switch (body.op) {
    case 'instance.delete':
      await engine.deleteInstance(ctx, body.instance_id, (action) => accepted(action.request_id));
      return;
    case 'instance.power':
      // As the REST API: a timeout only with the soft targets.
      if (body.timeout_s !== undefined && !acceptsTimeout(body.target)) {
        throw new AgentError('AGENT_ERR_BAD_REQUEST', `timeout_s is only allowed with soft-off or soft-reboot, not ${body.target}`);
      }
      await engine.setInstancePower(ctx, body.instance_id, { target: body.target, timeout_s: body.timeout_s }, (r) =>
        accepted(r.action?.request_id ?? null, !r.accepted),
      );
      return;
    case 'instance.operation': {
      const { op: name, params } = toOperation(body.operation);
      await engine.runOperation(ctx, body.instance_id, name, params, (action) => accepted(action.request_id));
      return;
    }
  }
}
