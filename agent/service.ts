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
import type { Action, Instance, Node, RequestContext } from './model.js';

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
}

export interface AgentService {
  readonly agentId: string;

  listInstances(ctx: RequestContext, opts?: { allProjects?: boolean; includeDeleted?: boolean }): Instance[];
  /** @throws AgentError NOT_FOUND */
  getInstance(ctx: RequestContext, id: string): Instance;
  listActions(ctx: RequestContext, instanceId: string): Action[];
  getAction(ctx: RequestContext, instanceId: string, requestId: string): Action;

  createInstance(ctx: RequestContext, input: CreateInstanceInput): Promise<{ instance: Instance; action: Action }>;
  deleteInstance(ctx: RequestContext, id: string): Promise<Action>;
  setInstancePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult>;
  runOperation(ctx: RequestContext, id: string, op: OsOperationName, params: OsOperationParams): Promise<Action>;

  /** Liveness of one instance (monitor verdict if fresh, else a bounded fresh probe). */
  ping(ctx: RequestContext, id: string): Promise<LivenessAnswer>;
  /** Liveness of many (os-fping list): the caller's project, or all with allProjects (admin). */
  pingMany(ctx: RequestContext, opts: { allProjects: boolean; include?: string[]; exclude?: string[] }): Promise<LivenessAnswer[]>;

  listNodes(ctx: RequestContext): Node[];
  getNode(ctx: RequestContext, id: string): Node;
  setNodePower(ctx: RequestContext, id: string, req: PowerRequest): Promise<PowerResult>;
  setMaintenance(ctx: RequestContext, id: string, on: boolean, reason?: string): Promise<Node>;

  /** Liveness of the process (always true while it answers) and readiness (store open, start-up power reads done). */
  ready(): { ready: boolean; reasons: string[] };
}
