/**
 * The engine: the service the REST API (and later the upstream link) calls. It validates and lowercases what comes
 * in, accepts operations in one transaction (./accept.ts: the lock and the action, with the plan launched once that
 * commits), and runs them as declared plans (./plans/, ./runner.ts). It owns the lifecycle: start-up recovery
 * (./recovery.ts), power sync and adoption (./power-sync.ts, ./adoption.ts), node-level power (./node-power.ts).
 *
 * Invariants (tested by test/agent/operations/*.test.ts, including a property test):
 * - one mutating operation per instance at a time (instance.task), persisted, so a restart knows what was in flight;
 * - no operation touches a node in maintenance;
 * - a failure never leaves a `-processing` value and names the step that failed;
 * - power steps inside an OS operation never move `state`; the operation owns it.
 */
import type { Logger } from 'pino';
import { isReboot, isSoft, type PowerState } from '../../drivers/power.js';
import type { Bmc } from '../../drivers/types.js';
import type { Config } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { Action, Instance, Node, RequestContext } from '../model.js';
import type { Ports } from '../ports.js';
import type {
  AgentService,
  CreateInstanceInput,
  LivenessAnswer,
  OsOperationName,
  OsOperationParams,
  PageRequest,
  PowerRequest,
  PowerResult,
} from '../service.js';
import type { Store } from '../store/types.js';
import { Acceptor, checkAcceptable } from './accept.js';
import { OperationAborted, codeOf, messageOf } from './errors.js';
import { Recorder } from './recorder.js';
import { KIND_OF_TARGET, POWER_ACTION_OF, type PowerKind } from './rules.js';
import type { AliveChange, Liveness } from '../liveness.js';
import { Adoption } from './adoption.js';
import { Catalogue } from './catalogue.js';
import { Fleet } from './fleet.js';
import { NodePower } from './node-power.js';
import { PowerSync, type PowerSyncStats } from './power-sync.js';
import { recover } from './recovery.js';
import { Runner, type RunnerDeps } from './runner.js';
import { UUID_RE } from './ids.js';

/**
 * Catalogue ids (image, instance type, network uuids) and node ids are matched case-insensitively, normalised once at
 * the boundary: the config loader lowercases its own, the service's entry points lowercase incoming ones with these.
 */
const lowerId = (id: string | undefined): string | undefined => id?.toLowerCase();
const lowerNetworks = <N extends { uuid: string }>(networks: N[] | undefined): N[] | undefined =>
  networks?.map((n) => ({ ...n, uuid: n.uuid.toLowerCase() }));

function lowerCreateIds(input: CreateInstanceInput): CreateInstanceInput {
  return {
    ...input,
    image_uuid: input.image_uuid.toLowerCase(),
    instance_type_uuid: lowerId(input.instance_type_uuid),
    networks: lowerNetworks(input.networks),
    ...(input.extra ? { extra: { ...input.extra, ...(input.extra.node_id !== undefined ? { node_id: input.extra.node_id.toLowerCase() } : {}) } } : {}),
  };
}

function lowerOperationIds(params: OsOperationParams): OsOperationParams {
  return { ...params, image_uuid: lowerId(params.image_uuid), networks: lowerNetworks(params.networks) };
}

/** A page request for the store: ids are stored lower case. */
const pageOf = (page: PageRequest): { limit: number; marker?: string } => ({
  limit: page.limit,
  ...(page.marker !== undefined ? { marker: page.marker.toLowerCase() } : {}),
});

/** The store's page, or nova's 400 when the marker names no item of the list (as nova's common.limited_by_marker). */
function found<T>(items: T[] | null, page: PageRequest): T[] {
  if (items === null) throw new AgentError('AGENT_ERR_BAD_REQUEST', `marker [${page.marker ?? ''}] not found`);
  return items;
}

/** Called inside an acceptance's transaction with what was accepted (Engine's mutating operations). */
export type RecordAccepted<T> = (accepted: T) => void;

function recorded<T>(accepted: T, record: RecordAccepted<T> | undefined): T {
  record?.(accepted);
  return accepted;
}

export interface EngineDeps {
  config: () => Config;
  store: Store;
  ports: Ports;
  liveness: Liveness;
  log: Logger;
  /** The runner's hook (agent/operations/runner.ts): each operation that ended, for the metrics. */
  onOperationEnded?: RunnerDeps['onOperationEnded'];
}

export class Engine implements AgentService {
  readonly agentId: string;
  private isReady = false;
  private readyReasons: string[] = ['start-up recovery and power reads not done'];
  /** The only writer of instance and node rows and of the journal. */
  private readonly rec: Recorder;
  private readonly runner: Runner;
  /**
   * Acceptance inside a transaction the caller holds: the upstream command handler records a command's id and
   * accepts it in one commit (`store.transaction(() => { record(); engine.acceptor.power(...) })`).
   */
  readonly acceptor: Acceptor;
  private readonly nodePower: NodePower;
  private readonly adoption: Adoption;
  /** Enrolment, removal and adoption requests of nodes (the upstream commands'). */
  readonly fleet: Fleet;
  /** `prepare` ran: `start` need not sync the config's nodes again. */
  private configSynced = false;
  private readonly powerSync: PowerSync;

  private readonly deps: EngineDeps;
  /** The catalogue every part reads: the config file's, with the upstream commands' entries (./catalogue.ts). */
  readonly catalogue: Catalogue;

  constructor(given: EngineDeps) {
    this.catalogue = new Catalogue(given.store, given.config);
    const deps: EngineDeps = { ...given, config: () => this.catalogue.config() };
    this.deps = deps;
    this.agentId = deps.config().agent_id;
    this.rec = new Recorder(deps);
    this.runner = new Runner({ ...deps, rec: this.rec });
    this.nodePower = new NodePower({
      config: deps.config,
      store: deps.store,
      rec: this.rec,
      log: deps.log,
      bmc: (node) => this.bmc(node),
      freshPower: (node, kind) => this.freshPower(node, kind),
      powerDeadline: (kind, timeoutS) => this.powerDeadline(kind, timeoutS),
    });
    this.acceptor = new Acceptor({
      config: deps.config,
      store: deps.store,
      rec: this.rec,
      runner: this.runner,
      uuid: () => deps.ports.uuid(),
      now: () => this.now(),
      isNodeBusy: (nodeId) => this.nodePower.isBusy(nodeId),
    });
    this.fleet = new Fleet({ config: deps.config, store: deps.store, rec: this.rec, now: () => this.now(), isNodeBusy: (nodeId) => this.nodePower.isBusy(nodeId) });
    this.adoption = new Adoption({
      config: deps.config,
      store: deps.store,
      now: () => this.now(),
      uuid: () => deps.ports.uuid(),
      recorder: this.rec,
    });
    this.powerSync = new PowerSync({
      config: deps.config,
      store: deps.store,
      log: deps.log,
      now: () => this.now(),
      bmc: (node) => this.bmc(node),
      isNodeBusy: (nodeId) => this.nodePower.isBusy(nodeId),
      isInstanceRunning: (instanceId) => this.runner.isRunning(instanceId),
      nodePower: (node, action, deadlineMs, cause, what) => this.nodePower.command(node, action, deadlineMs, cause, what),
      completeAdoption: (nodeId, power) => this.adoption.completeAdoption(nodeId, power),
      recorder: this.rec,
    });
  }

  private get cfg(): Config {
    return this.deps.config();
  }
  private get store(): Store {
    return this.deps.store;
  }
  private get log(): Logger {
    return this.deps.log;
  }
  private now(): string {
    return new Date(this.deps.ports.clock.now()).toISOString();
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Syncs config nodes into the store, resumes (or fails) what was in flight at the last stop, reads every node's
   * power, then starts power sync. Mutations are refused (503) until this is done; resumed plans go on in the
   * background (an install waiting for its installer may take an hour).
   */
  async start(): Promise<void> {
    if (!this.configSynced) this.syncConfigNodes();
    recover({ store: this.store, rec: this.rec, runner: this.runner, log: this.log });
    await this.powerSyncOnce();
    this.isReady = true;
    this.readyReasons = [];
    this.powerSync.schedulePowerSync();
  }

  /**
   * Stops the loops and aborts running operations without recording an outcome: their records stay in flight and
   * the next start resumes them, exactly as after a crash.
   */
  async stop(): Promise<void> {
    this.powerSync.halt();
    this.isReady = false;
    this.readyReasons = ['stopping'];
    const reason = new OperationAborted('shutdown', 'the agent is stopping');
    this.runner.abortAll(reason);
    this.nodePower.stop(reason);
    await this.runner.settled();
    await this.nodePower.settled();
    await this.powerSync.settled();
    await this.deps.ports.bmcs.invalidate();
  }

  ready(): { ready: boolean; reasons: string[] } {
    return { ready: this.isReady, reasons: [...this.readyReasons] };
  }

  /** Waits until no operation runs, node-level power requests included (tests and the demo). */
  async idle(): Promise<void> {
    while (this.runner.size > 0 || this.nodePower.size > 0) {
      await this.runner.settled();
      await this.nodePower.settled();
    }
  }

  /**
   * The config's nodes into the store before the API listens (agent/build-agent.ts): one transaction, which at a
   * first start of a large fleet holds the loop while no request can wait on it. `start` does it if this did not.
   */
  prepare(): void {
    this.syncConfigNodes();
    this.configSynced = true;
  }

  /** Inserts config nodes the store lacks and refreshes the settings of those it has (SIGHUP does the same). */
  syncConfigNodes(): void {
    this.fleet.syncConfigNodes();
  }

  // ------------------------------------------------------------------ reads

  listInstances(ctx: RequestContext, opts: { allProjects?: boolean; includeDeleted?: boolean; page: PageRequest }): Instance[] {
    const projectId = ctx.is_admin && opts.allProjects === true ? null : ctx.project_id;
    return found(
      this.store.instancePage({ projectId, includeTerminated: opts.includeDeleted ?? true, order: 'oldest-first', ...pageOf(opts.page) }),
      opts.page,
    );
  }

  getInstance(ctx: RequestContext, id: string): Instance {
    const inst = UUID_RE.test(id) ? this.store.getInstance(id.toLowerCase()) : null;
    if (!inst || (!ctx.is_admin && inst.project_id !== ctx.project_id)) {
      throw new AgentError('AGENT_ERR_NOT_FOUND', `Instance ${id} could not be found.`);
    }
    return inst;
  }

  listActions(ctx: RequestContext, instanceId: string, page?: PageRequest): Action[] {
    const inst = this.getInstance(ctx, instanceId);
    if (page === undefined) return this.store.listActions(inst.id);
    return found(this.store.actionPage({ instanceId: inst.id, ...pageOf(page) }), page);
  }

  getAction(ctx: RequestContext, instanceId: string, requestId: string): Action {
    const inst = this.getInstance(ctx, instanceId);
    const action = this.store.getAction(requestId);
    if (!action || action.instance_id !== inst.id) {
      throw new AgentError('AGENT_ERR_NOT_FOUND', `Action ${requestId} not found`);
    }
    return action;
  }

  listNodes(ctx: RequestContext, page: PageRequest): Node[] {
    this.requireAdmin(ctx);
    return found(this.store.nodePage(pageOf(page)), page);
  }

  getNode(ctx: RequestContext, id: string): Node {
    this.requireAdmin(ctx);
    const node = UUID_RE.test(id) ? this.store.getNode(id.toLowerCase()) : null;
    if (!node) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${id} could not be found.`);
    return node;
  }

  // ------------------------------------------------------------------ operations

  /**
   * The mutating operations take an optional `record`, run inside the acceptance's transaction with what was
   * accepted: the upstream command handler (agent/upstream/commands.ts) stores the command's result there, so a
   * command and its acceptance are one commit, through the same code as the REST call.
   */
  async createInstance(ctx: RequestContext, body: CreateInstanceInput, record?: RecordAccepted<{ instance: Instance; action: Action }>): Promise<{ instance: Instance; action: Action }> {
    this.requireReady();
    const input = lowerCreateIds(body);
    const { instance } = this.store.transaction(() => recorded(this.acceptor.create(ctx, input), record));
    return { instance: this.store.getInstance(instance.id)!, action: this.store.getAction(ctx.request_id)! };
  }

  async setInstancePower(ctx: RequestContext, id: string, req: PowerRequest, record?: RecordAccepted<PowerResult>): Promise<PowerResult> {
    this.requireReady();
    const kind = KIND_OF_TARGET[req.target];
    const inst = this.getInstance(ctx, id);
    const node = this.nodeOf(inst);
    if (!this.bmc(node).supports('power', POWER_ACTION_OF[kind])) {
      throw new AgentError('AGENT_ERR_NOT_ACCEPTABLE', `the driver of node ${node.name} cannot ${POWER_ACTION_OF[kind]}`);
    }
    // Refusals that need no BMC first; then ask the hardware, not our memory (Ironic's _can_skip_state_change).
    checkAcceptable({ store: this.store, runner: this.runner }, inst, kind, node);
    const fresh = await this.freshPower(node, kind);
    // The action as written in that commit (no read back: the request's answer carries no body).
    return this.store.transaction(() => {
      const action = this.acceptor.power(ctx, inst.id, kind, fresh, this.powerDeadline(kind, req.timeout_s));
      return recorded(action ? { accepted: true, action } : { accepted: false, action: null }, record);
    });
  }

  async runOperation(ctx: RequestContext, id: string, op: OsOperationName, request: OsOperationParams, record?: RecordAccepted<Action>): Promise<Action> {
    this.requireReady();
    const params = lowerOperationIds(request);
    const inst = this.getInstance(ctx, id);
    this.store.transaction(() => recorded(this.acceptor.osOperation(ctx, inst.id, op, params), record));
    return this.store.getAction(ctx.request_id)!;
  }

  async deleteInstance(ctx: RequestContext, id: string, record?: RecordAccepted<Action>): Promise<Action> {
    this.requireReady();
    const inst = this.getInstance(ctx, id);
    this.store.transaction(() => recorded(this.acceptor.delete(ctx, inst.id), record));
    return this.store.getAction(ctx.request_id)!;
  }

  /**
   * The power read that decides "already in the target state", taken at acceptance for on/off requests (a reboot
   * is never already there: no read). A failed read is `unknown`, which is neither on nor off.
   */
  private async freshPower(node: Node, kind: PowerKind): Promise<PowerState> {
    if (isReboot(POWER_ACTION_OF[kind])) return 'unknown';
    try {
      return (await this.bmc(node).readPower({ timeoutMs: this.cfg.timeouts.bmc_call_ms })).power;
    } catch (e) {
      this.log.warn({ node_id: node.id, code: codeOf(e), msg: messageOf(e) }, 'power read at acceptance failed: power unknown');
      return 'unknown';
    }
  }

  /** How long a power request may take to be verified: the request's timeout for soft ones, else the config's. */
  private powerDeadline(kind: PowerKind, timeoutS: number | undefined): number {
    if (!isSoft(POWER_ACTION_OF[kind])) return this.cfg.timeouts.power_ms;
    return timeoutS !== undefined ? timeoutS * 1000 : this.cfg.timeouts.soft_power_ms;
  }

  // ------------------------------------------------------------------ node API

  async setNodePower(ctx: RequestContext, id: string, req: PowerRequest, record?: RecordAccepted<PowerResult>): Promise<PowerResult> {
    this.requireReady();
    const node = this.getNode(ctx, id);
    if (node.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (node.instance_id) {
      const inst = this.store.getInstance(node.instance_id);
      if (inst && inst.state !== 'terminated') return this.setInstancePower({ ...ctx, is_admin: true }, inst.id, req, record);
    }
    return this.nodePower.request(ctx, node, req, record);
  }

  async setMaintenance(ctx: RequestContext, id: string, on: boolean, reason?: string, record?: RecordAccepted<Node>): Promise<Node> {
    const node = this.getNode(ctx, id);
    return this.store.transaction(() => recorded(this.rec.setMaintenance(node.id, on, reason), record));
  }

  // ------------------------------------------------------------------ liveness

  async ping(ctx: RequestContext, id: string): Promise<LivenessAnswer> {
    const inst = this.getInstance(ctx, id);
    const v = await this.deps.liveness.check(inst);
    return { instance_id: inst.id, project_id: inst.project_id, ...v };
  }

  async pingMany(
    ctx: RequestContext,
    opts: { allProjects: boolean; include?: string[]; exclude?: string[]; page: PageRequest },
  ): Promise<LivenessAnswer[]> {
    if (opts.allProjects) this.requireAdmin(ctx);
    const lower = (ids: string[] | undefined) => ids?.map((s) => s.toLowerCase());
    const list = found(
      this.store.instancePage({
        projectId: opts.allProjects ? null : ctx.project_id,
        includeTerminated: false,
        order: 'newest-first',
        include: lower(opts.include),
        exclude: lower(opts.exclude),
        ...pageOf(opts.page),
      }),
      opts.page,
    );
    const verdicts = await this.deps.liveness.checkMany(list);
    return list.map((i) => ({ instance_id: i.id, project_id: i.project_id, ...verdicts.get(i.id)! }));
  }

  /** Called by the liveness monitor with the verdicts one probe changed: journalled together, in one commit. */
  onAliveChanges(changes: readonly AliveChange[]): void {
    try {
      this.store.transaction(() => {
        for (const c of changes) this.rec.journal('instance.alive', { instance_id: c.instanceId, cause: 'monitor', data: { alive: c.alive } });
      });
    } catch (e) {
      this.log.error({ err: e, changes: changes.length }, 'could not journal liveness changes');
    }
  }

  // ------------------------------------------------------------------ power sync

  /** Power sync's lag, sweeps and reads (the metald_power_sync_* metrics of /metrics). */
  powerSyncStats(): PowerSyncStats {
    return this.powerSync.stats();
  }

  /** The next power sync again by the current `power_sync.interval` (SIGHUP changed it). */
  reschedulePowerSync(): void {
    this.powerSync.reschedule();
  }

  /** Reads every idle node's power; follows drift (or enforces, per node); completes waiting adoptions. */
  async powerSyncOnce(): Promise<void> {
    await this.powerSync.powerSyncOnce();
  }

  // ------------------------------------------------------------------ helpers

  private requireAdmin(ctx: RequestContext): void {
    if (!ctx.is_admin) throw new AgentError('AGENT_ERR_FORBIDDEN', 'this operation needs the admin role');
  }

  private requireReady(): void {
    if (!this.isReady) throw new AgentError('AGENT_ERR_NOT_READY', `the agent is not ready: ${this.readyReasons.join('; ')}`);
  }

  private nodeOf(inst: Instance): Node {
    const node = this.store.getNode(inst.node_id);
    if (!node) throw new AgentError('AGENT_ERR_INTERNAL', `instance ${inst.id} names a node that does not exist`);
    return node;
  }

  private bmc(node: Node): Bmc {
    return this.deps.ports.bmcs.forNode(node);
  }

  /** Removes terminated instances past terminated_retention. */
  purgeTerminated(): number {
    const cutoff = new Date(this.deps.ports.clock.now() - this.cfg.terminated_retention_ms).toISOString();
    return this.store.purgeTerminated(cutoff);
  }
}
