/**
 * What the REST API (and later the upstream command handler) may ask of the core. Implemented by
 * agent/operations/engine.ts. Every mutating call returns only after its operation's record is committed to the
 * store; the operation itself then runs on and reports through the instance's state, its action and the journal.
 *
 * Errors are AgentError (agent/errors.ts): NOT_FOUND also for another project's instance seen by a member,
 * INVALID_TRANSITION (400) when the state forbids it, LOCKED (409) while another operation holds the instance,
 * NOT_ACCEPTABLE (406) when the driver cannot do it, STORE (500) when nothing could be committed.
 *
 * Ids are case-insensitive: catalogue uuids (image, instance type, network) and node ids given to createInstance and
 * runOperation are lowercased by the implementation before any lookup, and stored lower case.
 */
import type { PowerAction } from '../drivers/power.js';
import type { VerdictKind } from './liveness.js';
import type { Action, Instance, Node, OperationKind, RequestContext } from './model.js';

export interface CreateInstanceInput {
  name: string;
  description?: string | undefined;
  instance_type_uuid?: string | undefined;
  image_uuid: string;
  availability_zone?: string | undefined;
  networks?: { uuid: string; port_type?: string | undefined }[] | undefined;
  metadata?: Record<string, string> | undefined;
  extra?:
    | {
        node_id?: string | undefined;
        hostname?: string | undefined;
        ssh_keys?: string[] | undefined;
        password_hash?: string | undefined;
        user_data?: string | undefined;
      }
    | undefined;
}

/** Internal power request words, the power actions of drivers/power.ts (the API maps Ironic's words and the aliases onto these). */
export type PowerTarget = PowerAction;

export interface PowerRequest {
  target: PowerTarget;
  /** For soft-off/soft-reboot: seconds to wait for the OS before giving up. */
  timeout_s?: number | undefined;
}

/** `accepted: false` means the instance already is in the target state and nothing was sent (still 202). */
export interface PowerResult {
  accepted: boolean;
  action: Action | null;
}

export type OsOperationName = 'reinstall' | 'switch-install' | 'modify-ip' | 'uninstall' | 'change-password' | 'retry';

export interface OsOperationParams {
  image_uuid?: string | undefined;
  hostname?: string | undefined;
  ssh_keys?: string[] | undefined;
  password_hash?: string | undefined;
  user_data?: string | undefined;
  /** modify-ip: the new networks (addresses re-allocated from their pools, or `fixed_ip` when given). */
  networks?: { uuid: string; port_type?: string | undefined; fixed_ip?: string | undefined }[] | undefined;
}

export interface LivenessAnswer {
  instance_id: string;
  project_id: string;
  alive: boolean;
  /**
   * What `alive` stands on (agent/liveness.ts): `alive`/`dead` by probes, `powered-off` while an OS operation holds
   * the instance or its verified power is off (`alive` false). Not on seed 000's wire; metalctl and v1 may show it.
   */
  verdict?: VerdictKind;
  /** The operation holding the instance when `powered-off` because of one, else null. */
  operation?: OperationKind | null;
}

/**
 * One page of a list (nova's `limit` and `marker`): at most `limit` items after the item whose id is `marker` (the
 * last of the previous page), in the list's order. The API checks `limit` against `api.page_size`.
 * @throws AgentError BAD_REQUEST `marker [X] not found` when the marker names no item of the list.
 */
export interface PageRequest {
  limit: number;
  marker?: string | undefined;
}

export interface AgentService {
  readonly agentId: string;

  /**
   * A page of instances, oldest first: the caller's project's, or every project's with allProjects (admins).
   * includeDeleted (default true) keeps terminated ones.
   */
  listInstances(ctx: RequestContext, opts: { allProjects?: boolean; includeDeleted?: boolean; page: PageRequest }): Instance[];
  /** @throws AgentError NOT_FOUND */
  getInstance(ctx: RequestContext, id: string): Instance;
  /**
   * An instance's actions. With a page: that page, newest first (nova's order). Without: every action, oldest first
   * (the engine's own tests and tools; the API always pages).
   */
  listActions(ctx: RequestContext, instanceId: string, page?: PageRequest): Action[];
  getAction(ctx: RequestContext, instanceId: string, requestId: string): Action;

  createInstance(ctx: RequestContext, input: CreateInstanceInput): Promise<{ instance: Instance; action: Action }>;
  deleteInstance(ctx: RequestContext, id: string): Promise<Action>;
  setInstancePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult>;
  runOperation(ctx: RequestContext, id: string, op: OsOperationName, params: OsOperationParams): Promise<Action>;

  /**
   * Liveness of one instance: powered-off while an OS operation holds it or its power is off; else the monitor's
   * verdict while younger than liveness.interval, else a fresh probe bounded by agent/liveness.ts probeBudgetMs
   * (when the wait runs out: the last verdict held or journalled, else not alive).
   */
  ping(ctx: RequestContext, id: string): Promise<LivenessAnswer>;
  /**
   * Liveness of a page of instances (os-fping list, newest first as nova; terminated ones left out): the caller's
   * project's, or all with allProjects (admin); include/exclude filter before the page is cut.
   */
  pingMany(
    ctx: RequestContext,
    opts: { allProjects: boolean; include?: string[]; exclude?: string[]; page: PageRequest },
  ): Promise<LivenessAnswer[]>;

  /** A page of nodes, by name (admin). */
  listNodes(ctx: RequestContext, page: PageRequest): Node[];
  getNode(ctx: RequestContext, id: string): Node;
  setNodePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult>;
  setMaintenance(ctx: RequestContext, id: string, on: boolean, reason?: string): Promise<Node>;

  /** Liveness of the process (always true while it answers) and readiness (store open, start-up power reads done). */
  ready(): { ready: boolean; reasons: string[] };
}
