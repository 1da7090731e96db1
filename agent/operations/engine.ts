/**
 * The engine: accepts operations (committing their records before answering), runs them as sequences of steps
 * against the node's BMC and the installer, moves instances only along the state machine's edges as the rules table
 * says, records every step as an action event, and journals every change (the outbox).
 *
 * Invariants (tested by test/agent/operations/*.test.ts, including a property test):
 * - one mutating operation per instance at a time (instance.task), persisted, so a restart knows what was in flight;
 * - no operation touches a node in maintenance;
 * - a failure never leaves a `-processing` value and names the step that failed;
 * - power steps inside an OS operation never move `state`; the operation owns it.
 */
import type { Logger } from 'pino';
import { isReboot, REBOOT_AS, type PowerAction, type PowerReading, type SinglePowerAction } from '../../drivers/power.js';
import type { Bmc, CallRecord } from '../../drivers/types.js';
import { waitFor } from '../../drivers/wait.js';
import type { Config } from '../config/types.js';
import { AgentError } from '../errors.js';
import type {
  Action,
  Address,
  Instance,
  InstanceError,
  Node,
  OperationKind,
  OperationState,
  OsOperation,
  RequestContext,
} from '../model.js';
import type { DeployJob, Ports } from '../ports.js';
import type {
  AgentService,
  CreateInstanceInput,
  LivenessAnswer,
  OsOperationName,
  OsOperationParams,
  PowerRequest,
  PowerResult,
} from '../service.js';
import { transition, type StateEvent } from '../state-machine.js';
import type { Store } from '../store/types.js';
import { OperationAborted, StepFailed, abortReason, codeOf, messageOf } from './errors.js';
import { Recorder } from './recorder.js';
import { KIND_OF_TARGET, POWER_ACTION_OF, POWER_KINDS, RULES, targetPowerOf, type PowerKind } from './rules.js';
import type { Liveness } from '../liveness.js';
import { Adoption } from './adoption.js';
import { PowerSync } from './power-sync.js';
import { UUID_RE } from './ids.js';
import { allocateAddresses, reserveAddresses, type IpamInput } from './ipam.js';
import { pickNode } from './scheduler.js';

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

/** The addresses an instance's OS is (being) installed with: a modify-ip's reserved ones while it runs. */
function addressesAfter(inst: Instance): Address[] {
  return inst.extra.pending_ip?.addresses ?? inst.addresses;
}

/**
 * Runs bookkeeping that belongs to a step but is outside `step()` (no action event of its own), so that a failure
 * there (a store write) names that step. Aborts pass through.
 * @throws StepFailed named `name`
 */
function namedStep<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof OperationAborted || e instanceof StepFailed) throw e;
    throw new StepFailed(name, e instanceof AgentError ? e.code : codeOf(e), messageOf(e), { cause: e });
  }
}

function lowerOperationIds(params: OsOperationParams): OsOperationParams {
  return { ...params, image_uuid: lowerId(params.image_uuid), networks: lowerNetworks(params.networks) };
}

export interface EngineDeps {
  config: () => Config;
  store: Store;
  ports: Ports;
  liveness: Liveness;
  log: Logger;
}

interface Running {
  kind: OperationKind;
  requestId: string;
  controller: AbortController;
  done: Promise<void>;
}

/** What a running operation carries through its steps. */
interface Run {
  instanceId: string;
  requestId: string;
  kind: OperationKind;
  signal: AbortSignal;
}

/** The action event of a single power step. */
const POWER_STEP_OF: Record<SinglePowerAction, string> = {
  on: 'power_on',
  off: 'power_off',
  'soft-off': 'soft_power_off',
};

export class Engine implements AgentService {
  readonly agentId: string;
  private readonly running = new Map<string, Running>();
  /** Nodes with a node-level operation (no instance) in flight, each with its promise (stop and idle wait for it). */
  private readonly nodeBusy = new Map<string, Promise<void>>();
  /** Aborted by stop(): node-level power commands end with it (recording nothing, like instance operations). */
  private readonly stopController = new AbortController();
  private isReady = false;
  private readyReasons: string[] = ['start-up recovery and power reads not done'];
  private readonly adoption: Adoption;
  private readonly powerSync: PowerSync;

  /** The only writer of instance and node rows and of the journal. */
  private readonly rec: Recorder;

  constructor(private readonly deps: EngineDeps) {
    this.agentId = deps.config().agent_id;
    this.rec = new Recorder(deps);
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
      isNodeBusy: (nodeId) => this.nodeBusy.has(nodeId),
      isInstanceRunning: (instanceId) => this.running.has(instanceId),
      nodePower: (node, action, deadlineMs, cause, what) => this.nodePower(node, action, deadlineMs, cause, what),
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
   * Syncs config nodes into the store, fails or resumes what was in flight at the last stop, reads every node's
   * power, then starts power sync. Mutations are refused (503) until this is done.
   */
  async start(): Promise<void> {
    this.syncConfigNodes();
    await this.recover();
    await this.powerSyncOnce();
    this.isReady = true;
    this.readyReasons = [];
    this.powerSync.schedulePowerSync();
  }

  /**
   * Stops the loops and aborts running operations without recording an outcome: their records stay in flight and
   * the next start resumes or fails them, exactly as after a crash.
   */
  async stop(): Promise<void> {
    this.powerSync.halt();
    this.isReady = false;
    this.readyReasons = ['stopping'];
    for (const r of this.running.values()) r.controller.abort(new OperationAborted('shutdown', 'the agent is stopping'));
    this.stopController.abort(new OperationAborted('shutdown', 'the agent is stopping'));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await Promise.allSettled([...this.nodeBusy.values()]);
    await this.powerSync.settled();
    await this.deps.ports.bmcs.invalidate();
  }

  ready(): { ready: boolean; reasons: string[] } {
    return { ready: this.isReady, reasons: [...this.readyReasons] };
  }

  /** Waits until no operation runs, node-level power requests included (tests and the demo). */
  async idle(): Promise<void> {
    while (this.running.size > 0 || this.nodeBusy.size > 0) {
      await Promise.allSettled([...this.running.values()].map((r) => r.done));
      await Promise.allSettled([...this.nodeBusy.values()]);
    }
  }

  /** Inserts config nodes the store lacks and refreshes the settings of those it has (SIGHUP does the same). */
  syncConfigNodes(): void {
    const now = this.now();
    this.store.transaction(() => {
      for (const nc of this.cfg.nodes) {
        const existing = this.store.getNode(nc.id);
        // The drivers' settings are opaque here: stored as the config resolved them, read by the drivers only.
        const bmc = { ...nc.bmc, drivers: [...nc.bmc.drivers] };
        const adopt = nc.adopt && !existing?.instance_id && !this.store.getInstance(nc.adopt.instance_id) ? { ...nc.adopt } : null;
        if (!existing) {
          const node: Node = {
            id: nc.id,
            name: nc.name,
            type: nc.type,
            boot_mode: nc.boot_mode,
            macs: nc.macs,
            bmc,
            maintenance: nc.maintenance,
            maintenance_reason: nc.maintenance ? 'set in the configuration' : null,
            power_state: 'unknown',
            target_power_state: null,
            last_error: null,
            consecutive_power_failures: 0,
            instance_id: null,
            adopt,
            enforce_power: nc.enforce_power,
            source: 'config',
            created_at: now,
            updated_at: now,
          };
          this.rec.enrolNode(node, 'config');
        } else {
          const forced = nc.maintenance && !existing.maintenance;
          this.rec.putNode({
            ...existing,
            name: nc.name,
            type: nc.type,
            boot_mode: nc.boot_mode,
            macs: nc.macs,
            bmc,
            enforce_power: nc.enforce_power,
            maintenance: existing.maintenance || nc.maintenance,
            maintenance_reason: forced ? 'set in the configuration' : existing.maintenance_reason,
            adopt: existing.adopt ?? adopt,
            updated_at: now,
          });
        }
      }
    });
  }

  // ------------------------------------------------------------------ reads

  listInstances(ctx: RequestContext, opts: { allProjects?: boolean; includeDeleted?: boolean } = {}): Instance[] {
    return this.store
      .listInstances()
      .filter((i) => (opts.includeDeleted ?? true) || i.state !== 'terminated')
      .filter((i) => (ctx.is_admin && opts.allProjects) || i.project_id === ctx.project_id);
  }

  getInstance(ctx: RequestContext, id: string): Instance {
    const inst = UUID_RE.test(id) ? this.store.getInstance(id.toLowerCase()) : null;
    if (!inst || (!ctx.is_admin && inst.project_id !== ctx.project_id)) {
      throw new AgentError('AGENT_ERR_NOT_FOUND', `Instance ${id} could not be found.`);
    }
    return inst;
  }

  listActions(ctx: RequestContext, instanceId: string): Action[] {
    const inst = this.getInstance(ctx, instanceId);
    return this.store.listActions(inst.id);
  }

  getAction(ctx: RequestContext, instanceId: string, requestId: string): Action {
    const inst = this.getInstance(ctx, instanceId);
    const action = this.store.getAction(requestId);
    if (!action || action.instance_id !== inst.id) {
      throw new AgentError('AGENT_ERR_NOT_FOUND', `Action ${requestId} not found`);
    }
    return action;
  }

  listNodes(ctx: RequestContext): Node[] {
    this.requireAdmin(ctx);
    return this.store.listNodes().sort((a, b) => a.name.localeCompare(b.name));
  }

  getNode(ctx: RequestContext, id: string): Node {
    this.requireAdmin(ctx);
    const node = UUID_RE.test(id) ? this.store.getNode(id.toLowerCase()) : null;
    if (!node) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${id} could not be found.`);
    return node;
  }

  // ------------------------------------------------------------------ create

  async createInstance(ctx: RequestContext, body: CreateInstanceInput): Promise<{ instance: Instance; action: Action }> {
    this.requireReady();
    const input = lowerCreateIds(body);
    const cfg = this.cfg;
    const image = cfg.images.find((i) => i.uuid === input.image_uuid);
    if (!image) throw new AgentError('AGENT_ERR_BAD_REQUEST', `image_uuid: no image ${input.image_uuid} in the catalogue`);
    let nodeType: string | null = null;
    if (input.instance_type_uuid !== undefined) {
      const t = cfg.instance_types.find((x) => x.uuid === input.instance_type_uuid);
      if (!t) throw new AgentError('AGENT_ERR_BAD_REQUEST', `instance_type_uuid: no instance type ${input.instance_type_uuid} in the catalogue`);
      nodeType = t.node_type;
    }
    const networks = input.networks ?? (cfg.networks[0] ? [{ uuid: cfg.networks[0].uuid }] : []);
    for (const [i, n] of networks.entries()) {
      if (!cfg.networks.some((x) => x.uuid === n.uuid)) {
        throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].uuid: no network ${n.uuid} in the catalogue`);
      }
    }
    const id = this.deps.ports.uuid();
    const now = this.now();

    const result = this.store.transaction(() => {
      const node = pickNode({ nodes: this.store, isNodeBusy: (n) => this.nodeBusy.has(n) }, input.extra?.node_id, nodeType);
      const instanceTypeUuid = input.instance_type_uuid ?? this.instanceTypeFor(node);
      const addresses = allocateAddresses(this.ipam(), node, networks);
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
        state: transition('new', 'create'),
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
      this.rec.insertInstance(instance, { ...node, instance_id: id, updated_at: now }, 'operation');
      this.rec.journal('instance.state', { instance_id: id, cause: 'operation', data: { state: 'pending', event: 'create' } });
      this.rec.journal('instance.operation_state', { instance_id: id, cause: 'operation', data: { operation_state: 'install-processing' } });
      const action = this.rec.newAction(ctx, instance, 'create');
      this.rec.appendEvent(action.request_id, id, {
        event: 'schedule',
        start_time: now,
        finish_time: now,
        result: 'Success',
        traceback: null,
      }, { node_id: node.id, node_name: node.name });
      return { instance, action };
    });
    this.launch(result.instance.id, ctx.request_id, 'create', (run) => this.runProvision(run, 'install', {}));
    return { instance: this.store.getInstance(id)!, action: this.store.getAction(ctx.request_id)! };
  }

  /**
   * The instance type of an instance created without one, so that its flavor is never a dangling link: the one
   * catalogue instance type for the node's type; none when the catalogue has no instance types.
   * @throws AgentError BAD_REQUEST naming instance_type_uuid when none or several fit the node.
   */
  private instanceTypeFor(node: Node): string | null {
    const types = this.cfg.instance_types;
    if (types.length === 0) return null;
    const fits = types.filter((t) => t.node_type === node.type);
    if (fits.length === 1) return fits[0]!.uuid;
    const why = fits.length === 0 ? 'no instance type is' : `${fits.length} instance types are`;
    throw new AgentError('AGENT_ERR_BAD_REQUEST', `instance_type_uuid: required: ${why} for nodes of type '${node.type}' (node ${node.name})`);
  }

  // ------------------------------------------------------------------ power

  async setInstancePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult> {
    this.requireReady();
    const kind = KIND_OF_TARGET[req.target];
    const inst = this.getInstance(ctx, id);
    const node = this.nodeOf(inst);
    const bmc = this.bmc(node);
    if (!bmc.supports('power', POWER_ACTION_OF[kind])) {
      throw new AgentError('AGENT_ERR_NOT_ACCEPTABLE', `the driver of node ${node.name} cannot ${POWER_ACTION_OF[kind]}`);
    }
    // Refusals that need no BMC first; then ask the hardware, not our memory (Ironic's _can_skip_state_change).
    this.checkAcceptable(inst, kind);
    const fresh = await this.freshPower(node, kind);
    const accepted = this.store.transaction(() => {
      const cur = this.store.getInstance(inst.id)!;
      this.checkAcceptable(cur, kind);
      if (fresh !== 'unknown') this.rec.recordPower(node.id, fresh, 'operation');
      if (this.alreadyThere(kind, fresh)) {
        // The server is already where it was asked to be: follow it if the state says otherwise (as power sync would).
        const event = RULES[kind].success[cur.state];
        if (event) this.rec.mutate(cur.id, {}, { event, cause: 'drift' });
        return null;
      }
      const rule = RULES[kind];
      const action = this.rec.newAction(ctx, cur, kind);
      this.rec.mutate(cur.id, {
        task: kind,
        task_request_id: ctx.request_id,
        target_power_state: targetPowerOf(kind),
        ...(rule.clearsError(cur.state) ? { error: null } : {}),
      }, { cause: 'operation' });
      return action;
    });
    if (!accepted) return { accepted: false, action: null };
    this.launch(inst.id, ctx.request_id, kind, (run) => this.runPower(run, kind, req.timeout_s));
    return { accepted: true, action: this.store.getAction(ctx.request_id) };
  }

  /**
   * The power read that decides "already in the target state", taken at acceptance for on/off requests (a reboot
   * is never already there: no read). A failed read is `unknown`, which is neither on nor off.
   */
  private async freshPower(node: Node, kind: PowerKind): Promise<'on' | 'off' | 'unknown'> {
    if (kind === 'reboot' || kind === 'soft-reboot') return 'unknown';
    try {
      return (await this.bmc(node).readPower({ timeoutMs: this.cfg.timeouts.bmc_call_ms })).power;
    } catch (e) {
      this.log.warn({ node_id: node.id, code: codeOf(e), msg: messageOf(e) }, 'power read at acceptance failed: power unknown');
      return 'unknown';
    }
  }

  /** Already in the target state (202, nothing sent): judged by a fresh read only; `unknown` is neither on nor off. */
  private alreadyThere(kind: PowerKind, fresh: 'on' | 'off' | 'unknown'): boolean {
    if (kind === 'power-on') return fresh === 'on';
    if (kind === 'power-off' || kind === 'soft-power-off') return fresh === 'off';
    return false;
  }

  private checkAcceptable(inst: Instance, kind: OperationKind): void {
    const node = this.store.getNode(inst.node_id);
    if (node?.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (inst.task !== null || this.running.has(inst.id)) {
      throw new AgentError('AGENT_ERR_LOCKED', `instance ${inst.id} is locked by a running '${inst.task ?? 'operation'}' operation`);
    }
    if (!RULES[kind].accepts.includes(inst.state)) {
      throw new AgentError('AGENT_ERR_INVALID_TRANSITION', `cannot ${kind} an instance in state '${inst.state}'`);
    }
  }

  private async runPower(run: Run, kind: PowerKind, timeoutS: number | undefined): Promise<void> {
    const node = this.nodeOf(this.inst(run));
    const bmc = this.bmc(node);
    const action = POWER_ACTION_OF[kind];
    const deadline = this.powerDeadline(kind, timeoutS);
    // A reboot is a verified off then a verified on: PowerReboot once off is verified, PowerOn (success) once on is.
    await this.powerStep(run, bmc, node, action, deadline, undefined, () => {
      if (this.inst(run).state === 'running') this.rec.mutate(run.instanceId, {}, { event: 'power-reboot', cause: 'operation', owner: run.requestId });
    });
  }

  // ------------------------------------------------------------------ OS operations

  async runOperation(ctx: RequestContext, id: string, op: OsOperationName, request: OsOperationParams): Promise<Action> {
    this.requireReady();
    const params = lowerOperationIds(request);
    const inst = this.getInstance(ctx, id);
    const kind: OperationKind = op;
    if (op === 'switch-install' && !params.image_uuid) throw new AgentError('AGENT_ERR_BAD_REQUEST', 'switch-install needs image_uuid');
    if (op === 'change-password' && !params.password_hash) throw new AgentError('AGENT_ERR_BAD_REQUEST', 'change-password needs password_hash');
    if (op === 'modify-ip' && !params.networks?.length) throw new AgentError('AGENT_ERR_BAD_REQUEST', 'modify-ip needs networks');
    if (params.image_uuid !== undefined && !this.cfg.images.some((i) => i.uuid === params.image_uuid)) {
      throw new AgentError('AGENT_ERR_BAD_REQUEST', `image_uuid: no image ${params.image_uuid} in the catalogue`);
    }
    for (const [i, n] of (params.networks ?? []).entries()) {
      if (!this.cfg.networks.some((x) => x.uuid === n.uuid)) {
        throw new AgentError('AGENT_ERR_BAD_REQUEST', `networks[${i}].uuid: no network ${n.uuid} in the catalogue`);
      }
    }
    this.store.transaction(() => {
      const cur = this.store.getInstance(inst.id)!;
      this.checkAcceptable(cur, kind);
      if (op === 'retry') {
        if (!cur.failed_operation) throw new AgentError('AGENT_ERR_INVALID_TRANSITION', 'nothing to retry: no failed provisioning is recorded');
        if (cur.failed_operation.kind === 'uninstall') {
          throw new AgentError('AGENT_ERR_INVALID_TRANSITION', 'a failed uninstall cannot be retried (no error -> stopped edge); delete the instance');
        }
      }
      const osOp: OsOperation | null = op === 'retry' ? cur.failed_operation!.kind : RULES[kind].os === null ? null : (op as OsOperation);
      // modify-ip (or its retry, with the networks it asked for): the addresses are checked (400 malformed or outside
      // the network, 409 in use) and reserved now, before anything is written; they replace the old ones on success.
      const ipRequest = op === 'modify-ip' ? params.networks : osOp === 'modify-ip' ? cur.failed_operation!.networks : undefined;
      const pendingIp = ipRequest ? reserveAddresses(this.ipam(), this.nodeOf(cur), cur.id, ipRequest) : undefined;
      this.rec.newAction(ctx, cur, kind);
      this.rec.mutate(cur.id, {
        task: kind,
        task_request_id: ctx.request_id,
        error: null,
        extra: { ...cur.extra, pending_ip: pendingIp },
        ...(osOp ? { operation_state: `${osOp}-processing` as OperationState } : {}),
      }, { cause: 'operation' });
    });
    this.launch(inst.id, ctx.request_id, kind, async (run) => {
      if (op === 'retry') {
        // The failed operation's parameters were recorded on the instance when it ran: re-run with those.
        await this.runProvision(run, this.inst(run).failed_operation!.kind, {});
      } else if (op === 'change-password') {
        await this.runProvision(run, 'change-password', params);
      } else {
        await this.runProvision(run, op, params);
      }
    });
    return this.store.getAction(ctx.request_id)!;
  }

  /**
   * install, reinstall, switch-install, modify-ip, uninstall, change-password: power off (the PowerOff edge when the
   * instance is running), boot the deploy ramdisk, let the installer work, then boot the installed system (or leave
   * the server off for uninstall and change-password). The edges are the rules table's.
   */
  private async runProvision(run: Run, op: OsOperation | 'change-password', params: OsOperationParams): Promise<void> {
    const inst = this.inst(run);
    const node = this.nodeOf(inst);
    const bmc = this.bmc(node);
    const t = this.cfg.timeouts;

    const takesPowerOff = inst.state === 'running' && RULES[run.kind].powerOffFirst;
    if (takesPowerOff) {
      await this.powerStep(run, bmc, node, 'off', t.power_ms);
      namedStep('power_off', () => this.rec.mutate(run.instanceId, {}, { event: 'power-off', cause: 'operation', owner: run.requestId }));
    }
    // Parameters that change the instance are recorded now, so a retry re-runs the same job (modify-ip's addresses
    // were reserved at acceptance and become the instance's on success).
    const changes: Partial<Instance> = {};
    if ((op === 'reinstall' || op === 'switch-install') && params.image_uuid) changes.image_uuid = params.image_uuid;
    const extra = { ...this.inst(run).extra };
    for (const k of ['hostname', 'ssh_keys', 'password_hash', 'user_data'] as const) {
      if (params[k] !== undefined) (extra as Record<string, unknown>)[k] = params[k];
    }
    changes.extra = extra;
    changes.progress = 0;
    const current = namedStep('record_parameters', () => this.rec.mutate(run.instanceId, changes, { cause: 'operation', owner: run.requestId }));

    const image = this.cfg.images.find((i) => i.uuid === current.image_uuid) ?? null;
    const virtualMedia = image?.boot_method === 'virtual-media';
    // Always from a verified off (a server switched on behind our back would not boot the ramdisk), unless this
    // operation has just verified it.
    if (!takesPowerOff) await this.powerStep(run, bmc, node, 'off', t.power_ms);
    if (virtualMedia) {
      const iso = this.cfg.boot?.ramdisk.iso;
      const base = this.cfg.boot?.public_url;
      if (!iso || !base) throw new StepFailed('insert_media', 'AGENT_ERR_CONFIG', 'virtual media needs boot.public_url and boot.ramdisk.iso');
      await this.step(run, 'insert_media', () => bmc.insertMedia(`${base}/ramdisk.iso`, { signal: run.signal }));
    }
    await this.step(run, 'set_boot_device', () =>
      bmc.setBoot({ device: virtualMedia ? 'cdrom' : 'pxe', persistent: false, mode: node.boot_mode }, { signal: run.signal }),
    );
    await this.powerStep(run, bmc, node, 'on', t.power_ms);
    const job: DeployJob = {
      operation: op,
      instance_id: current.id,
      image: image ? { uuid: image.uuid, name: image.name, url: image.url, sha256: image.sha256, os: image.os } : null,
      hostname: current.extra.hostname ?? current.name,
      addresses: addressesAfter(current),
      password_hash: current.extra.password_hash ?? null,
      ssh_keys: current.extra.ssh_keys ?? [],
      user_data: current.extra.user_data ?? null,
    };
    await this.step(run, 'deploy', () =>
      this.deps.ports.deployer.deploy(this.store.getNode(node.id)!, job, {
        signal: run.signal,
        jobId: `${run.requestId}/deploy`,
        deadlineAt: this.deps.ports.clock.now() + t.deploy_ms,
        onProgress: (p) => {
          if (!run.signal.aborted) this.rec.mutate(run.instanceId, { progress: Math.max(0, Math.min(100, Math.round(p))) }, { cause: 'installer', owner: run.requestId, quiet: true });
        },
      }),
    );
    if (virtualMedia) await this.step(run, 'eject_media', () => bmc.ejectMedia({ signal: run.signal }));
    await this.step(run, 'set_boot_device', () => bmc.setBoot({ device: 'disk', persistent: true, mode: node.boot_mode }, { signal: run.signal }));
    if (op === 'uninstall' || op === 'change-password') {
      await this.powerStep(run, bmc, node, 'off', t.power_ms);
    } else {
      await this.powerStep(run, bmc, node, 'reboot', t.power_ms);
      await this.confirmAlive(run);
    }
  }

  /** Completion is confirmed by the instance answering ICMP on one of its fixed addresses after it boots from disk. */
  private async confirmAlive(run: Run): Promise<void> {
    // The addresses the installed system has: a modify-ip's new ones.
    const target = (): Instance => ({ ...this.inst(run), addresses: addressesAfter(this.inst(run)) });
    if (!target().addresses.some((a) => a.type === 'fixed')) return;
    await this.step(run, 'confirm_alive', async () => {
      // Probe at once, then after each configured delay (the last repeating), a final probe at the deadline.
      const waited = await waitFor(
        { delaysMs: [0, ...this.cfg.power_poll_ms], deadlineMs: this.cfg.timeouts.deploy_ms },
        async () => ({ done: await this.deps.liveness.probe(target(), run.signal) }),
        { clock: this.deps.ports.clock, signal: run.signal },
      );
      if (waited.status === 'aborted') throw waited.reason;
      if (waited.status === 'deadline') {
        throw new StepFailed('confirm_alive', 'AGENT_ERR_NOT_ALIVE', `no fixed address of the instance answered ICMP within ${this.cfg.timeouts.deploy_ms} ms`);
      }
    });
  }

  // ------------------------------------------------------------------ delete

  async deleteInstance(ctx: RequestContext, id: string): Promise<Action> {
    this.requireReady();
    const inst = this.getInstance(ctx, id);
    let preempt: Running | undefined;
    this.store.transaction(() => {
      const cur = this.store.getInstance(inst.id)!;
      const node = this.store.getNode(cur.node_id);
      if (node?.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
      if (cur.state === 'terminated') throw new AgentError('AGENT_ERR_INVALID_TRANSITION', 'the instance is already terminated');
      const installing = cur.state === 'pending' && cur.task === 'create';
      if (cur.task !== null && !installing) {
        throw new AgentError('AGENT_ERR_LOCKED', `instance ${cur.id} is locked by a running '${cur.task}' operation`);
      }
      if (!RULES.delete.accepts.includes(cur.state)) {
        throw new AgentError('AGENT_ERR_INVALID_TRANSITION', `cannot delete an instance in state '${cur.state}'`);
      }
      this.rec.newAction(ctx, cur, 'delete');
      const event: StateEvent | undefined = cur.state === 'error' ? 'retry-delete' : cur.state === 'running' ? undefined : 'delete';
      const patch: Partial<Instance> = { task: 'delete', task_request_id: ctx.request_id, error: null, target_power_state: null };
      if (installing) patch.operation_state = 'install-failed';
      this.rec.mutate(cur.id, patch, { cause: 'operation', ...(event ? { event } : {}) });
      if (installing) {
        // The install is over as far as the records go: one operation holds the instance at a time.
        preempt = this.running.get(cur.id);
        if (cur.task_request_id) this.rec.abortAction(cur.task_request_id, 'aborted: the instance is being deleted');
      }
    });
    if (preempt) preempt.controller.abort(new OperationAborted('preempted', 'aborted: the instance is being deleted'));
    const waitFor = preempt?.done;
    this.launch(inst.id, ctx.request_id, 'delete', async (run) => {
      if (waitFor) await waitFor.catch(() => undefined);
      await this.runDelete(run);
    }, { replace: true });
    return this.store.getAction(ctx.request_id)!;
  }

  private async runDelete(run: Run): Promise<void> {
    const inst = this.inst(run);
    const node = this.nodeOf(inst);
    const bmc = this.bmc(node);
    const t = this.cfg.timeouts;
    if (inst.state === 'running' && RULES.delete.powerOffFirst) {
      await this.powerStep(run, bmc, node, 'off', t.power_ms);
      this.rec.mutate(run.instanceId, {}, { event: 'power-off', cause: 'operation', owner: run.requestId });
      this.rec.mutate(run.instanceId, {}, { event: 'delete', cause: 'operation', owner: run.requestId });
    } else {
      await this.powerStep(run, bmc, node, 'off', t.power_ms);
    }
    // Wipe: boot the ramdisk and let the installer erase the disk (the same path as uninstall).
    await this.step(run, 'set_boot_device', () => bmc.setBoot({ device: 'pxe', persistent: false, mode: node.boot_mode }, { signal: run.signal }));
    await this.powerStep(run, bmc, node, 'on', t.power_ms);
    await this.step(run, 'wipe', () =>
      this.deps.ports.deployer.deploy(this.store.getNode(node.id)!, {
        operation: 'uninstall',
        instance_id: inst.id,
        image: null,
        hostname: null,
        addresses: [],
        password_hash: null,
        ssh_keys: [],
        user_data: null,
      }, { signal: run.signal, jobId: `${run.requestId}/wipe`, deadlineAt: this.deps.ports.clock.now() + t.deploy_ms, onProgress: () => undefined }),
    );
    await this.powerStep(run, bmc, node, 'off', t.power_ms);
    await this.step(run, 'release_node', async () => {
      this.rec.releaseNode(node.id, inst.id);
    });
  }

  // ------------------------------------------------------------------ running operations

  /**
   * Runs `body` in the background as the operation holding the instance's lock; records success or failure by the
   * rules table. An abort for shutdown records nothing (recovery handles it at the next start); an abort by a
   * preempting delete closes the action without touching the state.
   */
  private launch(instanceId: string, requestId: string, kind: OperationKind, body: (run: Run) => Promise<void>, opts: { replace?: boolean } = {}): void {
    const controller = new AbortController();
    const run: Run = { instanceId, requestId, kind, signal: controller.signal };
    const entry: Running = { kind, requestId, controller, done: Promise.resolve() };
    if (!opts.replace && this.running.has(instanceId)) throw new AgentError('AGENT_ERR_LOCKED', 'instance is locked');
    this.running.set(instanceId, entry);
    entry.done = (async () => {
      try {
        await body(run);
        this.finishSuccess(run);
      } catch (e) {
        const aborted = abortReason(run.signal) ?? (e instanceof OperationAborted ? e : null);
        if (aborted?.kind === 'shutdown') return;
        if (aborted?.kind === 'preempted') {
          this.rec.closeAction(run.requestId, aborted.message);
          return;
        }
        await this.finishFailure(run, e);
      } finally {
        if (this.running.get(instanceId) === entry) this.running.delete(instanceId);
      }
    })().catch((e: unknown) => {
      this.log.error({ err: e, instance_id: instanceId, request_id: requestId }, 'operation bookkeeping failed');
    });
  }

  private finishSuccess(run: Run): void {
    const rule = RULES[run.kind];
    const inst = this.inst(run);
    const event = rule.success[inst.state];
    const patch: Partial<Instance> = { task: null, task_request_id: null, target_power_state: null };
    const os = rule.os === 'retried' ? inst.failed_operation?.kind ?? null : rule.os;
    if (os) patch.operation_state = `${os}-succeed`;
    if (os && os !== 'uninstall') patch.progress = 100;
    if (os) patch.failed_operation = null;
    const pending = inst.extra.pending_ip;
    if (pending) {
      // modify-ip succeeded: its reserved addresses are now the instance's (the old ones are free).
      if (os === 'modify-ip') {
        patch.addresses = pending.addresses;
        patch.networks = pending.networks.map((n) => ({ uuid: n.uuid, ...(n.port_type !== undefined ? { port_type: n.port_type } : {}) }));
      }
      patch.extra = { ...inst.extra, pending_ip: undefined };
    }
    // Set once, when the instance first reaches running (nova's launched_at); later provisioning keeps it.
    if (event && transition(inst.state, event) === 'running' && os && inst.launched_at === null) patch.launched_at = this.now();
    if (run.kind === 'delete') {
      patch.terminated_at = this.now();
      // Nothing of the tenant's secrets outlives the instance (it stays readable for terminated_retention).
      patch.extra = {};
      // Its addresses are released (free for the next instance): it shows none.
      patch.addresses = [];
      this.deps.liveness.forget(run.instanceId);
    }
    this.store.transaction(() => {
      this.rec.mutate(run.instanceId, patch, { cause: 'operation', owner: run.requestId, ...(event ? { event } : {}) });
      this.rec.closeAction(run.requestId, null);
    });
    this.log.info({ instance_id: run.instanceId, request_id: run.requestId, operation: run.kind }, 'operation succeeded');
  }

  private async finishFailure(run: Run, e: unknown): Promise<void> {
    const rule = RULES[run.kind];
    const step = e instanceof StepFailed ? e.step : this.stepOfFailure(run);
    const msg = `step '${step}' failed: ${messageOf(e)}`;
    this.log.warn({ instance_id: run.instanceId, request_id: run.requestId, operation: run.kind, step, code: codeOf(e), msg: messageOf(e) }, 'operation failed');
    let inst = this.inst(run);
    if (rule.powerOffOnFailure && this.cfg.on_failure === 'power_off') {
      const node = this.nodeOf(inst);
      try {
        await this.powerStep({ ...run, signal: new AbortController().signal }, this.bmc(node), node, 'off', this.cfg.timeouts.power_ms, 'power_off_after_failure');
      } catch {
        // Recorded as its own failed step; the operation's error stays the first failure.
      }
      inst = this.inst(run);
    }
    const event = rule.failure[inst.state];
    const error: InstanceError = { error_code: codeOf(e), error_msg: msg, error_type: rule.errorType };
    // A power request on an instance in `error` keeps the error that put it there (the action records the failure).
    const keepError = inst.state === 'error' && !rule.clearsError(inst.state) && inst.error !== null;
    const patch: Partial<Instance> = { task: null, task_request_id: null, target_power_state: null, ...(keepError ? {} : { error }) };
    const os = rule.os === 'retried' ? inst.failed_operation?.kind ?? null : rule.os;
    if (os) {
      patch.operation_state = `${os}-failed`;
      if (rule.os !== 'retried') patch.failed_operation = { kind: os, ...(inst.extra.pending_ip ? { networks: inst.extra.pending_ip.networks } : {}) };
    }
    // The addresses a failed modify-ip had reserved are released (a retry asks for them again).
    if (inst.extra.pending_ip) patch.extra = { ...inst.extra, pending_ip: undefined };
    this.store.transaction(() => {
      this.rec.mutate(run.instanceId, patch, { cause: 'operation', owner: run.requestId, ...(event ? { event } : {}) });
      this.rec.closeAction(run.requestId, msg);
    });
  }

  /**
   * The step a failure that is no step's own (a store write between steps) is charged to: the action's open step,
   * else the one after its last (`after_<step>`), else `start`.
   */
  private stepOfFailure(run: Run): string {
    try {
      const events = this.store.getAction(run.requestId)?.events ?? [];
      const open = events.find((ev) => ev.finish_time === null);
      if (open) return open.event;
      const last = events[events.length - 1];
      return last ? `after_${last.event}` : 'start';
    } catch {
      return 'start';
    }
  }

  /**
   * One step: an action event opened before and closed after, with the BMC call record in the journal.
   * @throws StepFailed naming the step.
   */
  private async step<T>(run: Run, name: string, fn: () => Promise<T>): Promise<T> {
    if (run.signal.aborted) throw run.signal.reason;
    const start = this.now();
    const index = this.store.transaction(() =>
      this.rec.appendEvent(run.requestId, run.instanceId, { event: name, start_time: start, finish_time: null, result: null, traceback: null }),
    );
    try {
      const out = await fn();
      const rec = out as unknown as Partial<CallRecord> | undefined;
      const record = rec && typeof rec === 'object' && Array.isArray(rec.tried) ? { tried: rec.tried, succeeded: rec.succeeded ?? null } : {};
      this.store.transaction(() => {
        this.store.updateActionEvent(run.requestId, index, { event: name, start_time: start, finish_time: this.now(), result: 'Success', traceback: null });
        this.rec.journal('action.event', { instance_id: run.instanceId, cause: 'operation', data: { request_id: run.requestId, event: name, result: 'Success', ...record } });
      });
      return out;
    } catch (e) {
      const aborted = abortReason(run.signal);
      // Stopping leaves the step open, exactly as a crash would: the next start closes it naming the step.
      if (aborted?.kind === 'shutdown') throw aborted;
      const text = aborted ? aborted.message : `${codeOf(e)}: ${messageOf(e)}`;
      if (this.store.getAction(run.requestId)?.finish_time) {
        if (aborted) throw aborted;
        throw e;
      }
      this.store.transaction(() => {
        this.store.updateActionEvent(run.requestId, index, { event: name, start_time: start, finish_time: this.now(), result: 'Error', traceback: text });
        this.rec.journal('action.event', { instance_id: run.instanceId, cause: 'operation', data: { request_id: run.requestId, event: name, result: 'Error', code: codeOf(e) } });
      });
      if (aborted) throw aborted;
      throw e instanceof StepFailed ? e : new StepFailed(name, codeOf(e), messageOf(e), { cause: e });
    }
  }

  /**
   * A verified power change, recorded on the node and the instance (never moving `state`). A reboot is two steps (a
   * verified off, `offVerified`, then a verified on: REBOOT_AS); the off takes `deadlineMs`, the on the config's.
   */
  private async powerStep(run: Run, bmc: Bmc, node: Node, action: PowerAction, deadlineMs: number, name?: string, offVerified?: () => void): Promise<void> {
    if (isReboot(action)) {
      const [off, on] = REBOOT_AS[action];
      await this.powerStep(run, bmc, node, off, deadlineMs);
      offVerified?.();
      await this.powerStep(run, bmc, node, on, this.cfg.timeouts.power_ms);
      return;
    }
    const stepName = name ?? POWER_STEP_OF[action];
    const res = await this.step(run, stepName, () =>
      bmc.setPower(action, { signal: run.signal, wait: { delaysMs: this.cfg.power_poll_ms, deadlineMs } }),
    );
    this.rec.recordPower(node.id, res.power, 'operation');
  }

  // ------------------------------------------------------------------ node API

  async setNodePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult> {
    this.requireReady();
    const node = this.getNode(ctx, id);
    if (node.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (node.instance_id) {
      const inst = this.store.getInstance(node.instance_id);
      if (inst && inst.state !== 'terminated') return this.setInstancePower({ ...ctx, is_admin: true }, inst.id, req);
    }
    const kind = KIND_OF_TARGET[req.target];
    const bmc = this.bmc(node);
    if (!bmc.supports('power', POWER_ACTION_OF[kind])) {
      throw new AgentError('AGENT_ERR_NOT_ACCEPTABLE', `the driver of node ${node.name} cannot ${POWER_ACTION_OF[kind]}`);
    }
    if (this.nodeBusy.has(node.id)) throw new AgentError('AGENT_ERR_LOCKED', `node ${node.name} is busy`);
    const fresh = await this.freshPower(node, kind);
    // Anything may have changed while we read: accept only a node that is still free and idle.
    const cur = this.store.getNode(node.id);
    if (!cur) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${id} could not be found.`);
    if (cur.maintenance) throw new AgentError('AGENT_ERR_MAINTENANCE', `node ${node.name} is in maintenance`);
    if (this.nodeBusy.has(node.id) || cur.instance_id !== null) throw new AgentError('AGENT_ERR_LOCKED', `node ${node.name} is busy`);
    if (fresh !== 'unknown') this.rec.recordPower(node.id, fresh, 'operation');
    if (this.alreadyThere(kind, fresh)) return { accepted: false, action: null };
    this.nodeBusy.set(node.id, Promise.resolve());
    try {
      this.rec.setNodeTarget(node.id, targetPowerOf(kind), 'operation', { request_id: ctx.request_id });
    } catch (e) {
      this.nodeBusy.delete(node.id);
      throw e;
    }
    const done = this.nodePower(node, POWER_ACTION_OF[kind], this.powerDeadline(kind, req.timeout_s), 'operation', `node power ${req.target}`)
      .then((ok) => {
        if (ok) this.rec.setNodeError(node.id, null);
      })
      .catch((e: unknown) => this.log.error({ err: e, node_id: node.id }, 'node power bookkeeping failed'))
      .finally(() => this.nodeBusy.delete(node.id));
    this.nodeBusy.set(node.id, done);
    return { accepted: true, action: null };
  }

  async setMaintenance(ctx: RequestContext, id: string, on: boolean, reason?: string): Promise<Node> {
    const node = this.getNode(ctx, id);
    return this.rec.setMaintenance(node.id, on, reason);
  }

  // ------------------------------------------------------------------ liveness

  async ping(ctx: RequestContext, id: string): Promise<LivenessAnswer> {
    const inst = this.getInstance(ctx, id);
    const alive = await this.deps.liveness.check(inst);
    return { instance_id: inst.id, project_id: inst.project_id, alive };
  }

  async pingMany(ctx: RequestContext, opts: { allProjects: boolean; include?: string[]; exclude?: string[] }): Promise<LivenessAnswer[]> {
    if (opts.allProjects) this.requireAdmin(ctx);
    let list = this.listInstances(ctx, { allProjects: opts.allProjects, includeDeleted: false });
    if (opts.include) {
      const inc = new Set(opts.include.map((s) => s.toLowerCase()));
      list = list.filter((i) => inc.has(i.id));
    }
    if (opts.exclude) {
      const exc = new Set(opts.exclude.map((s) => s.toLowerCase()));
      list = list.filter((i) => !exc.has(i.id));
    }
    const verdicts = await this.deps.liveness.checkMany(list);
    return list.map((i) => ({ instance_id: i.id, project_id: i.project_id, alive: verdicts.get(i.id) ?? false }));
  }

  /** Called by the liveness monitor when a verdict changes. */
  onAliveChange(instanceId: string, alive: boolean): void {
    try {
      this.rec.journal('instance.alive', { instance_id: instanceId, cause: 'monitor', data: { alive } });
    } catch (e) {
      this.log.error({ err: e, instance_id: instanceId }, 'could not journal a liveness change');
    }
  }

  // ------------------------------------------------------------------ power sync and adoption

  /** Reads every idle node's power; follows drift (or enforces, per node); completes waiting adoptions. */
  async powerSyncOnce(): Promise<void> {
    await this.powerSync.powerSyncOnce();
  }

  /**
   * A verified power command on a node outside any instance operation (free node, enforcement): the reading is
   * recorded, a failure is set as the node's error, and the node's target (set by the caller at acceptance) is
   * cleared. Never throws.
   * @returns whether it succeeded
   */
  private async nodePower(node: Node, action: PowerAction, deadlineMs: number, cause: string, what: string): Promise<boolean> {
    try {
      const res = await this.bmc(node).setPower(action, { signal: this.stopController.signal, wait: { delaysMs: this.cfg.power_poll_ms, deadlineMs } });
      this.rec.recordPower(node.id, res.power, cause);
      return true;
    } catch (e) {
      // Stopping: nothing is recorded as failed (the next start reads the node's power and clears its target).
      if (this.stopController.signal.aborted) return false;
      const errorType = action === 'off' || action === 'soft-off' ? 'power_off_error' : 'power_on_error';
      this.rec.setNodeError(node.id, { error_code: codeOf(e), error_msg: `${what} failed: ${messageOf(e)}`, error_type: errorType });
      return false;
    } finally {
      try {
        this.rec.setNodeTarget(node.id, null, cause);
      } catch (e) {
        this.log.error({ err: e, node_id: node.id }, 'could not clear the node power target');
      }
    }
  }

  /** How long a power request may take to be verified: the request's timeout for soft ones, else the config's. */
  private powerDeadline(kind: PowerKind, timeoutS: number | undefined): number {
    const soft = kind === 'soft-power-off' || kind === 'soft-reboot';
    if (!soft) return this.cfg.timeouts.power_ms;
    return timeoutS !== undefined ? timeoutS * 1000 : this.cfg.timeouts.soft_power_ms;
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Every operation in flight at the last stop is resumed where that is safe (delete: power off, wipe, release are
   * idempotent) or failed cleanly (everything else: no `-processing` is left, the failure names the interrupted
   * step, power-changing operations settle on a fresh power read).
   */
  private async recover(): Promise<void> {
    const unfinished = this.store.listUnfinishedActions();
    for (const action of unfinished) {
      const inst = this.store.getInstance(action.instance_id);
      const openStep = action.events.find((e) => e.finish_time === null)?.event ?? null;
      const interrupted = `interrupted by an agent restart${openStep ? ` during step '${openStep}'` : ''}`;
      // The step a failure names: the open one, else the one after the last that closed (never a generic word).
      const lastEvent = action.events[action.events.length - 1];
      const failedStep = openStep ?? (lastEvent ? `after_${lastEvent.event}` : 'start');
      if (!inst || inst.task_request_id !== action.request_id) {
        this.rec.abortAction(action.request_id, interrupted);
        continue;
      }
      this.store.transaction(() => {
        action.events.forEach((ev, i) => {
          if (ev.finish_time === null) this.store.updateActionEvent(action.request_id, i, { ...ev, finish_time: this.now(), result: 'Error', traceback: interrupted });
        });
      });
      const kind = inst.task ?? 'create';
      this.log.warn({ instance_id: inst.id, request_id: action.request_id, operation: kind, step: openStep }, 'recovering an operation in flight');
      if (kind === 'delete') {
        this.launch(inst.id, action.request_id, 'delete', (run) => this.runDelete(run));
        continue;
      }
      if ((POWER_KINDS as readonly string[]).includes(kind)) {
        await this.recoverPower(inst, kind as PowerKind, action.request_id, interrupted);
        continue;
      }
      const err = new StepFailed(failedStep, 'AGENT_ERR_INTERRUPTED', interrupted);
      const run: Run = { instanceId: inst.id, requestId: action.request_id, kind, signal: new AbortController().signal };
      if (inst.state === 'running') {
        // Interrupted before its first power off took the PowerOff edge: the OS was not touched.
        this.store.transaction(() => {
          const os = RULES[kind].os === 'retried' ? inst.failed_operation?.kind : RULES[kind].os;
          this.rec.mutate(inst.id, {
            task: null,
            task_request_id: null,
            ...(os ? { operation_state: `${os}-failed` as OperationState } : {}),
            error: { error_code: 'AGENT_ERR_INTERRUPTED', error_msg: `step '${failedStep}' failed: ${interrupted}`, error_type: RULES[kind].errorType },
          }, { cause: 'recovery' });
          this.rec.closeAction(action.request_id, interrupted);
        });
        continue;
      }
      await this.finishFailure(run, err);
    }
    // A node-level power request (free node, enforcement) does not outlive the process: its target is stale. The
    // power sync that follows reads every node's power.
    for (const n of this.store.listNodes()) {
      if (n.target_power_state !== null) this.rec.setNodeTarget(n.id, null, 'recovery');
    }
    // A lock whose action is gone (it cannot happen through the engine, which commits both together) would hold the
    // instance forever: release it, failing whatever it claimed to be doing.
    for (const inst of this.store.listInstances()) {
      if (inst.task === null || this.running.has(inst.id)) continue;
      this.log.error({ instance_id: inst.id, operation: inst.task }, 'a lock without an action in flight: released');
      const processing = inst.operation_state?.endsWith('-processing') ? (inst.operation_state.replace(/-processing$/, '-failed') as OperationState) : inst.operation_state;
      this.rec.mutate(inst.id, {
        task: null,
        task_request_id: null,
        target_power_state: null,
        operation_state: processing,
        error: { error_code: 'AGENT_ERR_INTERRUPTED', error_msg: `the '${inst.task}' operation was lost at an agent restart`, error_type: RULES[inst.task].errorType },
      }, { cause: 'recovery' });
    }
  }

  /**
   * Settles a power request that was in flight at the last stop. Its command may have been sent and still be taking
   * effect, so power is polled under the waiting policy (up to the request's power deadline) for what the command in
   * flight would read, never re-sending it. A reboot is a verified off then a verified on: an instance still
   * `running` was interrupted in its off (if the server now reads off, the PowerReboot edge is taken, and the reboot
   * fails, stopped, since nothing will switch it on); a `stopped` one in its on.
   */
  private async recoverPower(inst: Instance, kind: PowerKind, requestId: string, interrupted: string): Promise<void> {
    const node = this.nodeOf(inst);
    const rebootInOff = (kind === 'reboot' || kind === 'soft-reboot') && inst.state === 'running';
    const want = targetPowerOf(kind);
    const expect = rebootInOff ? 'off' : want;
    const power = await this.pollPower(node, expect, this.powerDeadline(kind, undefined));
    if (power !== null) this.rec.recordPower(node.id, power, 'recovery');
    const cur = this.store.getInstance(inst.id)!;
    this.store.transaction(() => {
      const patch: Partial<Instance> = { task: null, task_request_id: null, target_power_state: null };
      let event: StateEvent | undefined;
      if (power === want && !rebootInOff) {
        event = RULES[kind].success[cur.state];
        this.rec.closeAction(requestId, null);
      } else {
        if (rebootInOff && power === 'off') event = 'power-reboot';
        patch.error = { error_code: 'AGENT_ERR_INTERRUPTED', error_msg: `${interrupted}; power reads ${power ?? 'unknown'}`, error_type: RULES[kind].errorType };
        this.rec.closeAction(requestId, interrupted);
      }
      this.rec.mutate(inst.id, patch, { cause: 'recovery', ...(event ? { event } : {}) });
    });
  }

  /**
   * Reads power until it reads `expect` or `deadlineMs` passes, sending nothing.
   * @returns the last reading, or null when no read succeeded
   */
  private async pollPower(node: Node, expect: PowerReading, deadlineMs: number): Promise<PowerReading | null> {
    // Read at once, then after each configured delay (the last repeating), a final read at the deadline.
    const waited = await waitFor<PowerReading>(
      { delaysMs: [0, ...this.cfg.power_poll_ms], deadlineMs },
      async () => {
        try {
          const power = (await this.bmc(node).readPower({ timeoutMs: this.cfg.timeouts.bmc_call_ms })).power;
          return { done: power === expect, seen: power };
        } catch {
          // unknown: never taken for on or off; keep polling until the deadline.
          return { done: false };
        }
      },
      { clock: this.deps.ports.clock },
    );
    return waited.last ?? null;
  }

  // ------------------------------------------------------------------ helpers

  private requireAdmin(ctx: RequestContext): void {
    if (!ctx.is_admin) throw new AgentError('AGENT_ERR_FORBIDDEN', 'this operation needs the admin role');
  }

  private requireReady(): void {
    if (!this.isReady) throw new AgentError('AGENT_ERR_NOT_READY', `the agent is not ready: ${this.readyReasons.join('; ')}`);
  }

  private inst(run: Run): Instance {
    return this.store.getInstance(run.instanceId)!;
  }

  private nodeOf(inst: Instance): Node {
    const node = this.store.getNode(inst.node_id);
    if (!node) throw new AgentError('AGENT_ERR_INTERNAL', `instance ${inst.id} names a node that does not exist`);
    return node;
  }

  /** What address allocation reads: the store and the catalogue's networks. */
  private ipam(): IpamInput {
    return { store: this.store, networks: this.cfg.networks };
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

