/**
 * Power of a node outside any instance operation: a request on a free node (seed 004 on `/v1/nodes/{id}`), and the
 * verified command power sync's enforcement sends. Neither is an action: the node's `target_power_state` says it is
 * in flight, a failure is the node's `last_error`. A node with a request in flight is busy: not scheduled, not synced.
 */
import type { Logger } from 'pino';
import type { PowerAction, PowerState } from '../../drivers/power.js';
import type { Bmc } from '../../drivers/types.js';
import type { Config } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { Node, RequestContext } from '../model.js';
import type { PowerRequest, PowerResult } from '../service.js';
import type { Store } from '../store/types.js';
import { alreadyThere } from './accept.js';
import { codeOf, messageOf } from './errors.js';
import type { Recorder } from './recorder.js';
import { KIND_OF_TARGET, POWER_ACTION_OF, targetPowerOf, type PowerKind } from './rules.js';

export interface NodePowerDeps {
  config: () => Config;
  store: Store;
  rec: Recorder;
  log: Logger;
  bmc: (node: Node) => Bmc;
  /** The power read that decides "already there". */
  freshPower: (node: Node, kind: PowerKind) => Promise<PowerState>;
  powerDeadline: (kind: PowerKind, timeoutS: number | undefined) => number;
}

export class NodePower {
  /** Nodes with a node-level request in flight, each with its promise (stop and idle wait for it). */
  private readonly busy = new Map<string, Promise<void>>();
  /** Aborted by stop(): node-level commands end with it, recording nothing (like instance operations). */
  private readonly stopController = new AbortController();

  constructor(private readonly d: NodePowerDeps) {}

  isBusy(nodeId: string): boolean {
    return this.busy.has(nodeId);
  }

  get size(): number {
    return this.busy.size;
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.busy.values()]);
  }

  stop(reason: Error): void {
    this.stopController.abort(reason);
  }

  /** A power request on a free node (the caller has checked it exists, is free and not in maintenance). */
  async request(ctx: RequestContext, node: Node, req: PowerRequest, record?: (accepted: PowerResult) => void): Promise<PowerResult> {
    const kind = KIND_OF_TARGET[req.target];
    const bmc = this.d.bmc(node);
    if (!bmc.supports('power', POWER_ACTION_OF[kind])) {
      throw new AgentError('AGENT_ERR_NOT_ACCEPTABLE', `the driver of node ${node.name} cannot ${POWER_ACTION_OF[kind]}`);
    }
    if (this.busy.has(node.id)) throw new AgentError('AGENT_ERR_LOCKED', `node ${node.name} is busy`);
    const fresh = await this.d.freshPower(node, kind);
    // Anything may have changed while we read: accept only a node that is still free and idle.
    const cur = this.d.store.getNode(node.id);
    if (!cur) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${node.id} could not be found.`);
    if (cur.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (this.busy.has(node.id) || cur.instance_id !== null) throw new AgentError('AGENT_ERR_LOCKED', `node ${node.name} is busy`);
    // The reading, the target and the caller's record (an upstream command's result) are one commit.
    const accepted = this.d.store.transaction(() => {
      if (fresh !== 'unknown') this.d.rec.recordPower(node.id, fresh, 'operation');
      const res: PowerResult = { accepted: !alreadyThere(kind, fresh), action: null };
      if (res.accepted) this.d.rec.setNodeTarget(node.id, targetPowerOf(kind), 'operation', { request_id: ctx.request_id });
      record?.(res);
      return res.accepted;
    });
    if (!accepted) return { accepted: false, action: null };
    this.busy.set(node.id, Promise.resolve());
    const done = this.command(node, POWER_ACTION_OF[kind], this.d.powerDeadline(kind, req.timeout_s), 'operation', `node power ${req.target}`)
      .then((ok) => {
        if (ok) this.d.rec.setNodeError(node.id, null);
      })
      .catch((e: unknown) => this.d.log.error({ err: e, node_id: node.id }, 'node power bookkeeping failed'))
      .finally(() => this.busy.delete(node.id));
    this.busy.set(node.id, done);
    return { accepted: true, action: null };
  }

  /**
   * A verified power command on a node outside any instance operation (free node, enforcement): the reading is
   * recorded, a failure is set as the node's error, and the node's target (set by the caller at acceptance) is
   * cleared. Never throws.
   * @returns whether it succeeded
   */
  async command(node: Node, action: PowerAction, deadlineMs: number, cause: string, what: string): Promise<boolean> {
    const cfg = this.d.config();
    try {
      // The node's target (committed by the caller) is on disk before the command leaves (group commit).
      const res = await this.d.bmc(node).setPower(action, { signal: this.stopController.signal, wait: { delaysMs: cfg.power_poll_ms, deadlineMs }, onSending: () => this.d.store.durable() });
      this.d.rec.recordPower(node.id, res.power, cause);
      return true;
    } catch (e) {
      // Stopping: nothing is recorded as failed (the next start reads the node's power and clears its target).
      if (this.stopController.signal.aborted) return false;
      const errorType = action === 'off' || action === 'soft-off' ? 'power_off_error' : 'power_on_error';
      this.d.rec.setNodeError(node.id, { error_code: codeOf(e), error_msg: `${what} failed: ${messageOf(e)}`, error_type: errorType });
      return false;
    } finally {
      try {
        this.d.rec.setNodeTarget(node.id, null, cause);
      } catch (e) {
        this.d.log.error({ err: e, node_id: node.id }, 'could not clear the node power target');
      }
    }
  }
}
