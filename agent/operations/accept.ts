/**
 * Accepting an operation: synchronous functions that validate, take the instance's lock and write the action (with
 * its plan's inputs) inside the transaction the caller has open, and launch the plan once that transaction commits
 * (Store.afterCommit). The REST API's service methods (./engine.ts) call them inside `store.transaction`; the
 * upstream command handler will call them in the transaction that records the command's id, so recording a command
 * and accepting it are one commit. Nothing here talks to a BMC: a power request's fresh read is taken before and
 * passed in.
 */
import { isReboot, type PowerState } from '../../drivers/power.js';
import type { Config } from '../config/types.js';
import { sshKeysProblem } from '../ssh-keys.js';
import { AgentError } from '../errors.js';
import type { Action, Instance, InstanceExtra, Node, OperationKind, OperationState, OsOperation, RequestContext } from '../model.js';
import type { CreateInstanceInput, OsOperationName, OsOperationParams } from '../service.js';
import { transition } from '../state-machine.js';
import type { Store } from '../store/types.js';
import { OperationAborted } from './errors.js';
import { allocateAddresses, reserveAddresses } from './ipam.js';
import type { PlanInputs } from './plan.js';
import type { Recorder } from './recorder.js';
import { osRule, POWER_ACTION_OF, RULES, targetPowerOf, type PowerKind } from './rules.js';
import type { Runner } from './runner.js';
import { pickNode } from './scheduler.js';

export interface AcceptDeps {
  config: () => Config;
  store: Store;
  rec: Recorder;
  runner: Runner;
  uuid: () => string;
  now: () => string;
  /** A node-level power request is in flight on the node. */
  isNodeBusy: (nodeId: string) => boolean;
}

/**
 * Refusals that need no BMC: maintenance, the lock, the state table.
 * @param node the instance's node as the caller read it in this same synchronous stretch (else it is read)
 * @returns the node (null: it does not exist)
 */
export function checkAcceptable(d: Pick<AcceptDeps, 'store' | 'runner'>, inst: Instance, kind: OperationKind, node: Node | null = d.store.getNode(inst.node_id)): Node | null {
  if (node?.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
  if (inst.task !== null || d.runner.isRunning(inst.id)) {
    throw new AgentError('AGENT_ERR_LOCKED', `instance ${inst.id} is locked by a running '${inst.task ?? 'operation'}' operation`);
  }
  if (!RULES[kind].accepts.includes(inst.state)) {
    throw new AgentError('AGENT_ERR_INVALID_TRANSITION', `cannot ${kind} an instance in state '${inst.state}'`);
  }
  return node;
}

/** Already in the target state (202, nothing sent): judged by a fresh read only; `unknown` is neither on nor off. */
export function alreadyThere(kind: PowerKind, fresh: PowerState): boolean {
  return !isReboot(POWER_ACTION_OF[kind]) && fresh === targetPowerOf(kind);
}

export class Acceptor {
  constructor(private readonly d: AcceptDeps) {}

  private get cfg(): Config {
    return this.d.config();
  }

  private current(id: string): Instance {
    const inst = this.d.store.getInstance(id);
    if (!inst) throw new AgentError('AGENT_ERR_NOT_FOUND', `Instance ${id} could not be found.`);
    return inst;
  }

  /** Launches the action's plan once the open transaction commits. */
  private launchAfterCommit(instanceId: string, requestId: string, kind: OperationKind, opts: Parameters<Runner['launch']>[3] = {}): void {
    this.d.store.afterCommit(() => this.d.runner.launch(instanceId, requestId, kind, opts));
  }

  /**
   * create: picks a node (or the one asked for), allocates addresses, writes the instance `pending` with its create
   * action and the `schedule` event. The ids of the input are lowercased and checked against the catalogue.
   */
  create(ctx: RequestContext, input: CreateInstanceInput): { instance: Instance; action: Action } {
    const cfg = this.cfg;
    const image = cfg.images.find((i) => i.uuid === input.image_uuid);
    if (!image) throw new AgentError('AGENT_ERR_BAD_REQUEST', `image_uuid: no image ${input.image_uuid} in the catalogue`);
    let nodeType: string | null = null;
    if (input.instance_type_uuid !== undefined) {
      const t = cfg.instance_types.find((x) => x.uuid === input.instance_type_uuid);
      if (!t) throw new AgentError('AGENT_ERR_BAD_REQUEST', `instance_type_uuid: no instance type ${input.instance_type_uuid} in the catalogue`);
      nodeType = t.node_type;
    }
    const keyProblem = sshKeysProblem(input.extra?.ssh_keys ?? [], 'extra.ssh_keys');
    if (keyProblem) throw new AgentError('AGENT_ERR_BAD_REQUEST', keyProblem);
    const networks = input.networks ?? (cfg.networks[0] ? [{ uuid: cfg.networks[0].uuid }] : []);
    for (const [i, n] of networks.entries()) {
      if (!cfg.networks.some((x) => x.uuid === n.uuid)) {
        throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].uuid: no network ${n.uuid} in the catalogue`);
      }
    }
    const id = this.d.uuid();
    const now = this.d.now();
    const node = pickNode({ nodes: this.d.store, isNodeBusy: this.d.isNodeBusy }, input.extra?.node_id, nodeType);
    const instanceTypeUuid = input.instance_type_uuid ?? this.instanceTypeFor(node.type, node.name);
    const addresses = allocateAddresses({ store: this.d.store, networks: cfg.networks }, node, networks);
    const instance: Instance = {
      id,
      project_id: ctx.project_id,
      user_id: ctx.user_id,
      name: input.name,
      description: input.description ?? null,
      node_id: node.id,
      instance_type_uuid: instanceTypeUuid,
      image_uuid: image.uuid,
      availability_zone: input.availability_zone ?? null,
      networks: networks.map((n) => ({ uuid: n.uuid, port_type: n.port_type })),
      addresses,
      metadata: input.metadata ?? {},
      extra: { ...(input.extra ?? {}) },
      state: transition('new', RULES.create.entry.new!),
      operation_state: 'install-processing',
      error: null,
      power_state: node.power_state,
      target_power_state: null,
      task: 'create',
      task_request_id: ctx.request_id,
      progress: 0,
      failed_operation: null,
      created_at: now,
      updated_at: now,
      launched_at: null,
      terminated_at: null,
    };
    this.d.rec.insertInstance(instance, { ...node, instance_id: id, updated_at: now }, 'operation');
    this.d.rec.journal('instance.state', { instance_id: id, cause: 'operation', data: { state: instance.state, event: RULES.create.entry.new! } });
    this.d.rec.journal('instance.operation_state', { instance_id: id, cause: 'operation', data: { operation_state: 'install-processing' } });
    const inputs: PlanInputs = { plan: 'provision', op: 'install', off_first: false, virtual_media: image.boot_method === 'virtual-media' };
    const action = this.d.rec.newAction(ctx, instance, 'create', inputs);
    this.d.rec.appendEvent(action.request_id, id, { event: 'schedule', start_time: now, finish_time: now, result: 'Success', traceback: null }, { node_id: node.id, node_name: node.name });
    this.launchAfterCommit(id, ctx.request_id, 'create');
    return { instance, action };
  }

  /**
   * The instance type of an instance created without one, so that its flavor is never a dangling link: the one
   * catalogue instance type for the node's type; none when the catalogue has no instance types.
   * @throws AgentError BAD_REQUEST naming instance_type_uuid when none or several fit the node.
   */
  private instanceTypeFor(nodeType: string, nodeName: string): string | null {
    const types = this.cfg.instance_types;
    if (types.length === 0) return null;
    const fits = types.filter((t) => t.node_type === nodeType);
    if (fits.length === 1) return fits[0]!.uuid;
    const why = fits.length === 0 ? 'no instance type is' : `${fits.length} instance types are`;
    throw new AgentError('AGENT_ERR_BAD_REQUEST', `instance_type_uuid: required: ${why} for nodes of type '${nodeType}' (node ${nodeName})`);
  }

  /**
   * A power request, judged on `fresh` (the power read at acceptance): already there answers null (nothing sent;
   * the state follows the server as power sync would); else the lock, the target and the action.
   */
  power(ctx: RequestContext, id: string, kind: PowerKind, fresh: PowerState, deadlineMs: number): Action | null {
    const read = this.current(id);
    const node = checkAcceptable(this.d, read, kind);
    // The rows read here are passed along (nothing else runs in this synchronous stretch): the instance as the
    // reading left it.
    const cur = fresh !== 'unknown' ? this.d.rec.recordPower(node ?? read.node_id, fresh, 'operation', read) ?? read : read;
    if (alreadyThere(kind, fresh)) {
      const event = RULES[kind].success[cur.state];
      if (event) this.d.rec.mutate(cur.id, {}, { event, cause: 'drift' }, cur);
      return null;
    }
    const rule = RULES[kind];
    const action = this.d.rec.newAction(ctx, cur, kind, { plan: 'power', deadline_ms: deadlineMs });
    this.d.rec.mutate(cur.id, {
      task: kind,
      task_request_id: ctx.request_id,
      target_power_state: targetPowerOf(kind),
      ...(rule.clearsError(cur.state) ? { error: null } : {}),
    }, { cause: 'operation' }, cur);
    // The action as written (its plan's inputs): the runner need not read it back.
    this.launchAfterCommit(cur.id, ctx.request_id, kind, { start: { from: 'start', action } });
    return action;
  }

  /** An OS operation (seed 003 actions): its parameters are checked, kept on the instance, and its plan decided. */
  osOperation(ctx: RequestContext, id: string, op: OsOperationName, params: OsOperationParams): Action {
    const cfg = this.cfg;
    const kind: OperationKind = op;
    const rule = RULES[kind];
    const given = rule.requires === 'networks' ? params.networks?.length : rule.requires ? params[rule.requires] : true;
    if (!given) throw new AgentError('AGENT_ERR_BAD_REQUEST', `${op} needs ${rule.requires}`);
    if (params.image_uuid !== undefined && !cfg.images.some((i) => i.uuid === params.image_uuid)) {
      throw new AgentError('AGENT_ERR_BAD_REQUEST', `image_uuid: no image ${params.image_uuid} in the catalogue`);
    }
    const keyProblem = sshKeysProblem(params.ssh_keys ?? []);
    if (keyProblem) throw new AgentError('AGENT_ERR_BAD_REQUEST', keyProblem);
    for (const [i, n] of (params.networks ?? []).entries()) {
      if (!cfg.networks.some((x) => x.uuid === n.uuid)) {
        throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].uuid: no network ${n.uuid} in the catalogue`);
      }
    }
    const cur = this.current(id);
    checkAcceptable(this.d, cur, kind);
    if (op === 'retry') {
      if (!cur.failed_operation) throw new AgentError('AGENT_ERR_INVALID_TRANSITION', 'nothing to retry: no failed provisioning is recorded');
      if (!osRule(cur.failed_operation.kind).retriable) {
        throw new AgentError('AGENT_ERR_INVALID_TRANSITION', 'a failed uninstall cannot be retried (no error -> stopped edge); delete the instance');
      }
    }
    const osOp: OsOperation | null = op === 'retry' ? cur.failed_operation!.kind : RULES[kind].os === null ? null : (op as OsOperation);
    // modify-ip (or its retry, with the networks it asked for): the addresses are checked (400 malformed or outside
    // the network, 409 in use) and reserved now, before anything is written; they replace the old ones on success.
    const ipRequest = op === 'modify-ip' ? params.networks : osOp === 'modify-ip' ? cur.failed_operation!.networks : undefined;
    const node = this.d.store.getNode(cur.node_id);
    if (!node) throw new AgentError('AGENT_ERR_INTERNAL', `instance ${cur.id} names a node that does not exist`);
    const pendingIp = ipRequest ? reserveAddresses({ store: this.d.store, networks: cfg.networks }, node, cur.id, ipRequest) : undefined;
    // A retry re-runs the failed operation with the parameters it recorded on the instance: it is given none.
    const pending = pendingParams(params);
    const imageUuid = (rule.setsImage ? pending?.image_uuid : undefined) ?? cur.image_uuid;
    const image = cfg.images.find((i) => i.uuid === imageUuid);
    const inputs: PlanInputs = {
      plan: 'provision',
      op: op === 'change-password' ? 'change-password' : osOp!,
      off_first: cur.state === 'running' && rule.powerOffFirst,
      virtual_media: image?.boot_method === 'virtual-media',
    };
    const action = this.d.rec.newAction(ctx, cur, kind, inputs);
    this.d.rec.mutate(cur.id, {
      task: kind,
      task_request_id: ctx.request_id,
      error: null,
      extra: { ...cur.extra, pending_ip: pendingIp, pending_params: pending },
      ...(osOp ? { operation_state: `${osOp}-processing` as OperationState } : {}),
    }, { cause: 'operation' });
    // The action as written (its plan's inputs): the runner need not read it back.
    this.launchAfterCommit(cur.id, ctx.request_id, kind, { start: { from: 'start', action } });
    return action;
  }

  /**
   * delete: from pending (an install in flight) too: the install's action is closed and its run aborted once this
   * commits; the delete's plan starts when that run has ended.
   */
  delete(ctx: RequestContext, id: string): Action {
    const cur = this.current(id);
    const node = this.d.store.getNode(cur.node_id);
    if (node?.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (cur.state === 'terminated') throw new AgentError('AGENT_ERR_INVALID_TRANSITION', 'the instance is already terminated');
    const installing = cur.state === 'pending' && cur.task === 'create';
    if (cur.task !== null && !installing) {
      throw new AgentError('AGENT_ERR_LOCKED', `instance ${cur.id} is locked by a running '${cur.task}' operation`);
    }
    if (!RULES.delete.accepts.includes(cur.state)) {
      throw new AgentError('AGENT_ERR_INVALID_TRANSITION', `cannot delete an instance in state '${cur.state}'`);
    }
    const action = this.d.rec.newAction(ctx, cur, 'delete', { plan: 'delete' });
    const event = RULES.delete.entry[cur.state];
    const patch: Partial<Instance> = { task: 'delete', task_request_id: ctx.request_id, error: null, target_power_state: null };
    if (installing) patch.operation_state = 'install-failed';
    this.d.rec.mutate(cur.id, patch, { cause: 'operation', ...(event ? { event } : {}) });
    // The install is over as far as the records go: one operation holds the instance at a time.
    if (installing && cur.task_request_id) this.d.rec.abortAction(cur.task_request_id, 'aborted: the instance is being deleted');
    this.d.store.afterCommit(() => {
      const preempted = installing ? this.d.runner.preempt(cur.id, new OperationAborted('preempted', 'aborted: the instance is being deleted')) : undefined;
      this.d.runner.launch(cur.id, ctx.request_id, 'delete', { after: preempted, replace: true });
    });
    return action;
  }
}

/** The parameters an OS operation was given that it records on the instance (none: undefined). */
function pendingParams(p: OsOperationParams): InstanceExtra['pending_params'] {
  const out: NonNullable<InstanceExtra['pending_params']> = {};
  if (p.image_uuid !== undefined) out.image_uuid = p.image_uuid;
  if (p.hostname !== undefined) out.hostname = p.hostname;
  if (p.ssh_keys !== undefined) out.ssh_keys = p.ssh_keys;
  if (p.password_hash !== undefined) out.password_hash = p.password_hash;
  if (p.user_data !== undefined) out.user_data = p.user_data;
  return Object.keys(out).length > 0 ? out : undefined;
}
