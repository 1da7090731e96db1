/**
 * The recorder: the only writer of instance and node rows and of the journal (the outbox). Every change of an
 * instance goes through `mutate`, which journals each observable field that changed; every journal entry goes
 * through `journal`, typed by its kind's data schema (agent/journal-events.ts). The engine decides, the recorder
 * writes.
 */
import type { PowerReading, PowerState } from '../../drivers/power.js';
import { AgentError } from '../errors.js';
import { instanceSummary, type ActionEventDetails, type EventData } from '../journal-events.js';
import type { Liveness } from '../liveness.js';
import type { Action, ActionEvent, Instance, InstanceError, JournalKind, Node, OperationKind, RequestContext } from '../model.js';
import type { Clock } from '../ports.js';
import { transition, type StateEvent } from '../state-machine.js';
import { DuplicateActionError, type Store } from '../store/types.js';
import { OperationAborted } from './errors.js';
import type { PlanInputs } from './plan.js';
import { RULES } from './rules.js';

export interface RecorderDeps {
  store: Store;
  ports: { clock: Clock };
  liveness: Pick<Liveness, 'forget'>;
}

/** The journal kinds `mutate` emits for a changed instance field. */
type InstanceFieldKind = 'instance.state' | 'instance.operation_state' | 'instance.power' | 'instance.target_power' | 'instance.error' | 'instance.addresses';

export class Recorder {
  constructor(private readonly deps: RecorderDeps) {}

  private get store(): Store {
    return this.deps.store;
  }
  private now(): string {
    return new Date(this.deps.ports.clock.now()).toISOString();
  }

  /** Writes a node row whose change journals nothing (settings refreshed from the config, a counter) or whose entry the caller emits. */
  putNode(node: Node): void {
    this.store.putNode(node);
  }

  /** Enrols a new node (from the configuration): writes it and journals `node.enrolled`. */
  enrolNode(node: Node, cause: string): void {
    this.store.transaction(() => {
      this.store.putNode(node);
      this.journal('node.enrolled', { node_id: node.id, cause, data: { name: node.name, type: node.type } });
    });
  }

  /** Removes a node (free, nothing in flight: the caller checked) and journals `node.removed`. */
  removeNode(nodeId: string, cause: string): void {
    this.store.transaction(() => {
      const n = this.store.getNode(nodeId);
      if (!n) return;
      this.store.deleteNode(nodeId);
      this.journal('node.removed', { node_id: nodeId, cause, data: { name: n.name } });
    });
  }

  /** Writes a new instance and its node (now holding it), and journals `instance.created` (its public summary). */
  insertInstance(instance: Instance, node: Node, cause: string): void {
    this.store.transaction(() => {
      this.store.putInstance(instance);
      this.store.putNode(node);
      this.journal('instance.created', { instance_id: instance.id, node_id: node.id, cause, data: instanceSummary(instance) });
    });
  }

  /** Sets or clears a node's maintenance flag (with its reason) and journals it. */
  setMaintenance(nodeId: string, on: boolean, reason: string | undefined): Node {
    return this.store.transaction(() => {
      const cur = this.store.getNode(nodeId);
      if (!cur) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${nodeId} could not be found.`);
      const next: Node = { ...cur, maintenance: on, maintenance_reason: on ? reason ?? null : null, updated_at: this.now() };
      this.store.putNode(next);
      this.journal('node.maintenance', { node_id: nodeId, cause: 'operation', data: { maintenance: on, reason: next.maintenance_reason } });
      return next;
    });
  }

  /** Frees a node of the instance it held (a delete's last step); nothing when it holds another, or none. */
  releaseNode(nodeId: string, instanceId: string): void {
    this.store.transaction(() => {
      const n = this.store.getNode(nodeId);
      if (!n || n.instance_id !== instanceId) return;
      this.store.putNode({ ...n, instance_id: null, updated_at: this.now() });
      this.journal('node.released', { node_id: nodeId, cause: 'operation', data: { instance_id: null, released_instance_id: instanceId } });
    });
  }

  /** Records the accepted operation's action; a request id that already names an action is refused (409). */
  newAction(ctx: RequestContext, inst: Instance, kind: OperationKind, inputs?: PlanInputs): Action {
    const action: Action = {
      request_id: ctx.request_id,
      instance_id: inst.id,
      project_id: inst.project_id,
      user_id: ctx.user_id,
      action: RULES[kind].action,
      start_time: this.now(),
      finish_time: null,
      message: null,
      events: [],
      // The plan's inputs, kept with the action so a restart rebuilds the same plan (agent/operations/runner.ts).
      plan: inputs ? { step: 0, data: { inputs } } : null,
    };
    try {
      this.store.insertAction(action);
    } catch (e) {
      if (!(e instanceof DuplicateActionError)) throw e;
      throw new AgentError('AGENT_ERR_CONFLICT', `request id ${ctx.request_id.slice(0, 64)} already names an action; a repeated request is refused`);
    }
    this.journal('action.started', { instance_id: inst.id, cause: 'operation', data: { request_id: action.request_id, action: action.action } });
    return action;
  }

  appendEvent(requestId: string, instanceId: string, ev: ActionEvent, details: ActionEventDetails = {}): number {
    const index = this.store.appendActionEvent(requestId, ev);
    this.journal('action.event', { instance_id: instanceId, cause: 'operation', data: { request_id: requestId, event: ev.event, result: ev.result, ...details } });
    return index;
  }

  /** Closes an action's open events with Error and the action itself, with `message`. */
  abortAction(requestId: string, message: string): void {
    const a = this.store.getAction(requestId);
    if (!a || a.finish_time !== null) return;
    this.closeOpenEvents(requestId, message, a);
    this.closeAction(requestId, message);
  }

  /** Closes an action's open events with Error (`message` as traceback), leaving the action itself open. */
  closeOpenEvents(requestId: string, message: string, action: Action | null = this.store.getAction(requestId)): void {
    if (!action) return;
    this.store.transaction(() => {
      action.events.forEach((ev, i) => {
        if (ev.finish_time === null) this.store.updateActionEvent(requestId, i, { ...ev, finish_time: this.now(), result: 'Error', traceback: message });
      });
    });
  }

  /** Closes an open action with `message` (null: success) and journals it; a closed one is left as it is. */
  closeAction(requestId: string, message: string | null): void {
    this.store.transaction(() => {
      const a = this.store.finishAction(requestId, this.now(), message);
      if (!a) return;
      this.journal('action.finished', { instance_id: a.instance_id, cause: 'operation', data: { request_id: requestId, action: a.action as Action['action'], result: message === null ? 'Success' : 'Error', message } });
    });
  }

  /**
   * The one way an instance changes: re-reads it, applies the patch (and the state edge, if any, through the state
   * machine), writes it and journals every observable field that changed, in one transaction. With `owner`, the
   * write is refused when another operation took the instance over (a preempting delete).
   */
  mutate(id: string, patch: Partial<Instance>, opts: { event?: StateEvent; cause: string; owner?: string; quiet?: boolean }, read?: Instance): Instance {
    return this.store.transaction(() => {
      // `read`: the instance as the caller read it in this same synchronous stretch (nothing can write between).
      const cur = read ?? this.store.getInstance(id);
      if (!cur) throw new AgentError('AGENT_ERR_INTERNAL', `instance ${id} vanished`);
      if (opts.owner !== undefined && cur.task_request_id !== opts.owner && cur.task_request_id !== null) {
        throw new OperationAborted('preempted', 'aborted: another operation took over the instance');
      }
      const next: Instance = { ...cur, ...patch, updated_at: this.now() };
      if (opts.event) next.state = transition(cur.state, opts.event);
      this.store.putInstance(next);
      const fields: [keyof Instance, InstanceFieldKind][] = [
        ['state', 'instance.state'],
        ['operation_state', 'instance.operation_state'],
        ['power_state', 'instance.power'],
        ['target_power_state', 'instance.target_power'],
        ['error', 'instance.error'],
        // modify-ip's new addresses, and a delete releasing them, reach the controller too.
        ['addresses', 'instance.addresses'],
      ];
      for (const [field, kind] of fields) {
        if (JSON.stringify(cur[field]) !== JSON.stringify(next[field]) || (field === 'state' && opts.event)) {
          this.journal(kind, {
            instance_id: id,
            cause: opts.cause,
            // One entry per changed field, its data `{ <field>: value }`. A computed key cannot be typed, hence the cast:
            // test/agent/operations/journal-events.test.ts checks these entries against their schemas at run time.
            data: { [field]: next[field], ...(field === 'state' && opts.event ? { event: opts.event, from: cur.state } : {}) } as EventData<InstanceFieldKind>,
          });
        }
      }
      if (next.state === 'terminated' && cur.state !== 'terminated') {
        this.journal('instance.deleted', { instance_id: id, cause: opts.cause, data: {} });
      }
      return next;
    });
  }

  /**
   * The one way a journal entry is written: its `data` is typed by its kind's schema (agent/journal-events.ts).
   */
  journal<K extends JournalKind>(kind: K, e: { instance_id?: string; node_id?: string; cause: string; data: EventData<K> }): void {
    this.store.appendJournal({ kind, instance_id: e.instance_id ?? null, node_id: e.node_id ?? null, cause: e.cause, data: e.data });
  }

  /** What may leave the agent about an instance: never `extra` (password hash, user data). */

  /**
   * Records an observed power reading on the node (its id, or the node as read in this same synchronous stretch) and
   * its instance; a reading that changes nothing writes nothing.
   * @param given the node's instance as read in this same synchronous stretch (else it is read)
   * @returns the node's instance as it is now (null: the node or its instance is missing, or it holds none)
   */
  recordPower(node: string | Node, power: PowerState, cause: string, given?: Instance): Instance | null {
    // Read once (or given: the rows as the caller just read them), before any transaction opens (a reading that
    // changes nothing opens none); the writes follow with no await between, so nothing else can write in between.
    const n = typeof node === 'string' ? this.store.getNode(node) : node;
    if (!n) return null;
    const nodeId = n.id;
    const read = !n.instance_id ? null : given?.id === n.instance_id ? given : this.store.getInstance(n.instance_id);
    const inst = read && read.state !== 'terminated' && read.power_state !== power ? read : null;
    if (n.power_state === power && !inst) return read;
    return this.store.transaction(() => {
      if (n.power_state !== power) {
        this.store.putNode({ ...n, power_state: power, updated_at: this.now() });
        this.journal('node.power', { node_id: nodeId, cause, data: { power_state: power } });
      }
      if (!inst) return read;
      const next = this.mutate(inst.id, { power_state: power }, { cause }, inst);
      // A verified power change outdates the liveness verdict (a server just switched off is not alive).
      this.deps.liveness.forget(inst.id);
      return next;
    });
  }

  setNodeError(nodeId: string, error: InstanceError | null): void {
    this.store.transaction(() => {
      const n = this.store.getNode(nodeId);
      if (!n || JSON.stringify(n.last_error) === JSON.stringify(error)) return;
      this.store.putNode({ ...n, last_error: error, updated_at: this.now() });
      this.journal('node.error', { node_id: nodeId, cause: 'operation', data: { error } });
    });
  }

  /** Stores a node-level power target (null: none) and journals the change, in one transaction. */
  setNodeTarget(nodeId: string, target: PowerReading | null, cause: string, details: { request_id?: string } = {}): void {
    this.store.transaction(() => {
      const n = this.store.getNode(nodeId);
      if (!n || n.target_power_state === target) return;
      this.store.putNode({ ...n, target_power_state: target, updated_at: this.now() });
      this.journal('node.power', { node_id: nodeId, cause, data: { target_power_state: target, ...details } });
    });
  }
}
