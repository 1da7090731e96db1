/**
 * An in-memory AgentService for the API tests: it records every call (method, ctx, args) and applies the
 * ownership rule of the real engine (a member sees only their project's instances: NOT_FOUND otherwise).
 * `failNext(method, error)` makes the next call of `method` throw.
 */
import { randomUUID } from 'node:crypto';
import { AgentError } from '../../../agent/errors.js';
import type { Action, Instance, Node, RequestContext } from '../../../agent/model.js';
import type {
  AgentService,
  CreateInstanceInput,
  LivenessAnswer,
  OsOperationName,
  OsOperationParams,
  PageRequest,
  PowerRequest,
  PowerResult,
} from '../../../agent/service.js';

export interface Call {
  method: string;
  ctx: RequestContext | null;
  args: unknown[];
}

export const T0 = '2016-10-17T08:28:42.554036Z';

export function makeInstance(over: Partial<Instance> = {}): Instance {
  return {
    id: randomUUID(),
    project_id: 'p1',
    user_id: 'u1',
    name: 'Testvm1',
    description: null,
    node_id: '1b8c5f0e-0000-4000-8000-000000000001',
    instance_type_uuid: '2b8c5f0e-0000-4000-8000-000000000002',
    image_uuid: '1fd5ab9b-1769-4dd5-b0bd-e075614cc866',
    availability_zone: 'nova',
    networks: [{ uuid: '3b8c5f0e-0000-4000-8000-000000000003', port_type: 'normal' }],
    addresses: [
      {
        addr: '10.0.0.2',
        mac: 'fa:16:3e:1c:d0:5a',
        version: 4,
        type: 'fixed',
        network: 'private',
        network_uuid: '3b8c5f0e-0000-4000-8000-000000000003',
      },
    ],
    metadata: { role: 'db' },
    extra: { hostname: 'db-1', password_hash: '$6$salt$SECRETHASH', user_data: 'SECRET-USER-DATA', ssh_keys: ['ssh-ed25519 AAAA k'] },
    state: 'running',
    operation_state: 'install-succeed',
    error: null,
    power_state: 'on',
    target_power_state: null,
    task: null,
    task_request_id: null,
    progress: 100,
    failed_operation: null,
    created_at: '2014-07-24T00:26:07.000Z',
    updated_at: '2014-07-24T00:26:12.123456Z',
    launched_at: '2014-07-24T00:26:12Z',
    terminated_at: null,
    ...over,
  };
}

export function makeNode(over: Partial<Node> = {}): Node {
  return {
    id: '1b8c5f0e-0000-4000-8000-000000000001',
    name: 'node-01',
    type: 'small',
    boot_mode: 'uefi',
    macs: [{ mac: 'fa:16:3e:1c:d0:5a', pxe: true }],
    bmc: {
      drivers: ['ipmi'],
      address: '10.0.1.21',
      port: 623,
      username: 'admin',
      password_file: '/run/credentials/metald.service/node-01',
      options: { secret: 'x' },
    },
    maintenance: false,
    maintenance_reason: null,
    power_state: 'on',
    target_power_state: null,
    last_error: null,
    consecutive_power_failures: 0,
    instance_id: null,
    adopt: null,
    enforce_power: false,
    source: 'config',
    created_at: T0,
    updated_at: T0,
    ...over,
  };
}

export function makeAction(inst: Instance, over: Partial<Action> = {}): Action {
  return {
    request_id: `req-${randomUUID()}`,
    instance_id: inst.id,
    project_id: inst.project_id,
    user_id: inst.user_id,
    action: 'create',
    start_time: '2015-10-15T00:40:25Z',
    finish_time: null,
    message: null,
    events: [
      {
        event: 'power-off',
        start_time: '2015-10-15T00:40:25Z',
        finish_time: '2015-10-15T00:40:32Z',
        result: 'Error',
        traceback: 'BMC_ERR_UNREACHABLE: 10.0.1.21 timed out',
      },
    ],
    ...over,
  };
}

/** The service's paging contract over an ordered array: `limit` items after the marker; a marker not there is a 400. */
export function pageIn<T>(items: readonly T[], page: PageRequest, idOf: (t: T) => string): T[] {
  let from = 0;
  if (page.marker !== undefined) {
    const at = items.findIndex((t) => idOf(t) === page.marker);
    if (at < 0) throw new AgentError('AGENT_ERR_BAD_REQUEST', `marker [${page.marker}] not found`);
    from = at + 1;
  }
  return items.slice(from, from + page.limit);
}

export class StubService implements AgentService {
  readonly agentId = 'rack-a12';
  readonly calls: Call[] = [];
  instances = new Map<string, Instance>();
  nodes = new Map<string, Node>();
  actions: Action[] = [];
  readiness = { ready: true, reasons: [] as string[] };
  alive = true;
  powerAccepted = true;
  private failures = new Map<string, unknown>();

  addInstance(over: Partial<Instance> = {}): Instance {
    const i = makeInstance(over);
    this.instances.set(i.id, i);
    return i;
  }

  addNode(over: Partial<Node> = {}): Node {
    const n = makeNode(over);
    this.nodes.set(n.id, n);
    return n;
  }

  failNext(method: string, error: unknown): void {
    this.failures.set(method, error);
  }

  /** Calls of these methods (default: every method that is not a read the views make). */
  callsOf(method: string): Call[] {
    return this.calls.filter((c) => c.method === method);
  }

  private record(method: string, ctx: RequestContext | null, ...args: unknown[]): void {
    this.calls.push({ method, ctx, args });
    const f = this.failures.get(method);
    if (f !== undefined) {
      this.failures.delete(method);
      throw f;
    }
  }

  private visible(ctx: RequestContext, id: string): Instance {
    const i = this.instances.get(id);
    if (i === undefined || (!ctx.is_admin && i.project_id !== ctx.project_id)) {
      throw new AgentError('AGENT_ERR_NOT_FOUND', `Instance ${id} could not be found.`);
    }
    return i;
  }

  private newAction(ctx: RequestContext, inst: Instance, action: Action['action']): Action {
    const a = makeAction(inst, { request_id: ctx.request_id, user_id: ctx.user_id, action, events: [] });
    this.actions.push(a);
    return a;
  }

  listInstances(ctx: RequestContext, opts: { allProjects?: boolean; includeDeleted?: boolean; page: PageRequest }): Instance[] {
    const { page, ...rest } = opts;
    this.record('listInstances', ctx, rest, page); // the page apart: args[0] is what is listed, args[1] which page
    const visible = [...this.instances.values()].filter((i) => rest.allProjects === true || i.project_id === ctx.project_id);
    return pageIn(visible, page, (i) => i.id);
  }

  getInstance(ctx: RequestContext, id: string): Instance {
    this.record('getInstance', ctx, id);
    return this.visible(ctx, id);
  }

  /** `actions` is in store order (oldest first); a page is newest first (later-recorded first on equal times). */
  listActions(ctx: RequestContext, instanceId: string, page?: PageRequest): Action[] {
    this.record('listActions', ctx, instanceId, page);
    this.visible(ctx, instanceId);
    const mine = this.actions.filter((a) => a.instance_id === instanceId);
    if (page === undefined) return mine;
    const newest = mine.reverse().sort((a, b) => Date.parse(b.start_time) - Date.parse(a.start_time));
    return pageIn(newest, page, (a) => a.request_id);
  }

  getAction(ctx: RequestContext, instanceId: string, requestId: string): Action {
    this.record('getAction', ctx, instanceId, requestId);
    this.visible(ctx, instanceId);
    const a = this.actions.find((x) => x.instance_id === instanceId && x.request_id === requestId);
    if (a === undefined) throw new AgentError('AGENT_ERR_NOT_FOUND', `Action ${requestId} could not be found.`);
    return a;
  }

  async createInstance(ctx: RequestContext, input: CreateInstanceInput): Promise<{ instance: Instance; action: Action }> {
    this.record('createInstance', ctx, input);
    const instance = makeInstance({
      project_id: ctx.project_id,
      user_id: ctx.user_id,
      name: input.name,
      description: input.description ?? null,
      instance_type_uuid: input.instance_type_uuid ?? null,
      image_uuid: input.image_uuid,
      availability_zone: input.availability_zone ?? null,
      networks: input.networks ?? [],
      addresses: [],
      metadata: input.metadata ?? {},
      extra: input.extra ?? {},
      state: 'pending',
      operation_state: 'install-processing',
      power_state: 'off',
      task: 'create',
      task_request_id: ctx.request_id,
      progress: 0,
      launched_at: null,
    });
    this.instances.set(instance.id, instance);
    return { instance, action: this.newAction(ctx, instance, 'create') };
  }

  async deleteInstance(ctx: RequestContext, id: string): Promise<Action> {
    this.record('deleteInstance', ctx, id);
    return this.newAction(ctx, this.visible(ctx, id), 'delete');
  }

  async setInstancePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult> {
    this.record('setInstancePower', ctx, id, req);
    const inst = this.visible(ctx, id);
    if (!this.powerAccepted) return { accepted: false, action: null };
    return { accepted: true, action: this.newAction(ctx, inst, req.target === 'on' ? 'start' : 'stop') };
  }

  async runOperation(ctx: RequestContext, id: string, op: OsOperationName, params: OsOperationParams): Promise<Action> {
    this.record('runOperation', ctx, id, op, params);
    return this.newAction(ctx, this.visible(ctx, id), op === 'change-password' ? 'changePassword' : op);
  }

  async ping(ctx: RequestContext, id: string): Promise<LivenessAnswer> {
    this.record('ping', ctx, id);
    const i = this.visible(ctx, id);
    return { instance_id: i.id, project_id: i.project_id, alive: this.alive };
  }

  async pingMany(
    ctx: RequestContext,
    opts: { allProjects: boolean; include?: string[]; exclude?: string[]; page: PageRequest },
  ): Promise<LivenessAnswer[]> {
    const { page, ...rest } = opts;
    this.record('pingMany', ctx, rest, page); // as listInstances
    const chosen = this.listInstancesQuiet(ctx, rest.allProjects).filter(
      (i) => (rest.include ? rest.include.includes(i.id) : true) && !(rest.exclude ?? []).includes(i.id),
    );
    return pageIn(chosen, page, (i) => i.id).map((i) => ({ instance_id: i.id, project_id: i.project_id, alive: this.alive }));
  }

  private listInstancesQuiet(ctx: RequestContext, all: boolean): Instance[] {
    return [...this.instances.values()].filter((i) => all || i.project_id === ctx.project_id);
  }

  private adminOnly(ctx: RequestContext): void {
    if (!ctx.is_admin) throw new AgentError('AGENT_ERR_FORBIDDEN', 'admin only');
  }

  listNodes(ctx: RequestContext, page: PageRequest): Node[] {
    this.record('listNodes', ctx, page);
    this.adminOnly(ctx);
    return pageIn([...this.nodes.values()], page, (n) => n.id);
  }

  getNode(ctx: RequestContext, id: string): Node {
    this.record('getNode', ctx, id);
    this.adminOnly(ctx);
    const n = this.nodes.get(id);
    if (n === undefined) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${id} could not be found.`);
    return n;
  }

  async setNodePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult> {
    this.record('setNodePower', ctx, id, req);
    this.getNodeQuiet(id);
    return { accepted: true, action: null };
  }

  async setMaintenance(ctx: RequestContext, id: string, on: boolean, reason?: string): Promise<Node> {
    this.record('setMaintenance', ctx, id, on, reason);
    const n = this.getNodeQuiet(id);
    n.maintenance = on;
    n.maintenance_reason = on ? (reason ?? null) : null;
    return n;
  }

  private getNodeQuiet(id: string): Node {
    const n = this.nodes.get(id);
    if (n === undefined) throw new AgentError('AGENT_ERR_NOT_FOUND', `Node ${id} could not be found.`);
    return n;
  }

  ready(): { ready: boolean; reasons: string[] } {
    this.record('ready', null);
    return this.readiness;
  }

  /** Calls that change something (what a refused request must never reach). */
  mutations(): Call[] {
    const m = ['createInstance', 'deleteInstance', 'setInstancePower', 'runOperation', 'setNodePower', 'setMaintenance'];
    return this.calls.filter((c) => m.includes(c.method));
  }
}
