/**
 * The domain model of metald: nodes (physical servers), instances (tenants' servers on them), actions
 * (one per accepted operation, with one event per step) and the event journal (the outbox upstream).
 *
 * These are the shapes held in the store and passed between the core modules. Wire shapes (seed documents) are
 * derived from them in agent/api/views.ts and agent/vocab.ts; nothing here is a wire shape.
 */

import type { PowerReading, PowerState } from '../drivers/power.js';

/** Internal power words (drivers/power.ts). `unknown` is never taken for `off`. */
export type { PowerState } from '../drivers/power.js';
/** What an accepted power request is driving towards (seed 004's target_power_state, internal words). */
export type TargetPower = PowerReading | null;

/** Seed 003 `state` (the diagram's `shutting_down` is `shutting-down` on the wire and here). */
export const INSTANCE_STATES = ['pending', 'running', 'stopped', 'shutting-down', 'terminated', 'error'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** The OS operations of seed 003 that own an `operation_state`. */
export const OS_OPERATIONS = ['install', 'reinstall', 'switch-install', 'modify-ip', 'uninstall'] as const;
export type OsOperation = (typeof OS_OPERATIONS)[number];

/** Seed 003 `operation_state`: the fifteen values, `<op>-processing|succeed|failed`. */
export type OperationState = `${OsOperation}-${'processing' | 'succeed' | 'failed'}`;
export const OPERATION_STATES: readonly OperationState[] = OS_OPERATIONS.flatMap((op) =>
  (['processing', 'succeed', 'failed'] as const).map((s) => `${op}-${s}` as OperationState),
);

/**
 * Every operation metald accepts on an instance. Power words are internal; the API maps Ironic's words and aliases.
 * `adopt` is the enrolment of a node already running a tenant's OS.
 */
export const OPERATION_KINDS = [
  'create',
  'adopt',
  'power-on',
  'power-off',
  'soft-power-off',
  'reboot',
  'soft-reboot',
  'reinstall',
  'switch-install',
  'modify-ip',
  'uninstall',
  'change-password',
  'retry',
  'delete',
] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

/** Seed 003 error types plus documented additions (docs/api.md). */
export type ErrorType =
  | 'power_off_error'
  | 'power_on_error'
  | 'reboot_failed_error'
  | 'install_error'
  | 'bmc_unreachable_error'
  | 'change_password_error'
  | 'delete_error';

export interface InstanceError {
  error_code: string;
  error_msg: string;
  error_type: ErrorType;
}

export interface Address {
  addr: string;
  mac: string;
  version: 4 | 6;
  type: 'fixed' | 'floating';
  /** Network name (the key of seed 002's `addresses`). */
  network: string;
  /** Catalogue network uuid, when the address came from a pool. */
  network_uuid?: string | undefined;
}

export interface NetworkRequest {
  uuid: string;
  port_type?: string | undefined;
  /** modify-ip only: the address asked for (else one from the pool). Never in `Instance.networks`. */
  fixed_ip?: string | undefined;
}

/**
 * Extensions of the create body. `password_hash` and `user_data` are secrets: never logged, never in events or in
 * API output.
 */
export interface InstanceExtra {
  node_id?: string | undefined;
  hostname?: string | undefined;
  ssh_keys?: string[] | undefined;
  password_hash?: string | undefined;
  user_data?: string | undefined;
  /**
   * A modify-ip in flight: the networks asked for and the addresses allocated to them at acceptance, reserved (no
   * other instance gets them) until the operation ends; they become `networks`/`addresses` only when it succeeds.
   */
  pending_ip?: { networks: NetworkRequest[]; addresses: Address[] } | undefined;
  /**
   * An OS operation in flight: the parameters it was given, kept from acceptance until its `record_parameters` step
   * makes them the instance's (so a restart before that step still has them). Holds secrets, like the rest of extra.
   */
  pending_params?: { image_uuid?: string; hostname?: string; ssh_keys?: string[]; password_hash?: string; user_data?: string } | undefined;
}

export interface Instance {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string | null;
  node_id: string;
  instance_type_uuid: string | null;
  image_uuid: string | null;
  availability_zone: string | null;
  networks: NetworkRequest[];
  addresses: Address[];
  metadata: Record<string, string>;
  extra: InstanceExtra;
  state: InstanceState;
  operation_state: OperationState | null;
  error: InstanceError | null;
  power_state: PowerState;
  target_power_state: TargetPower;
  /** The operation holding the instance's lock, if any (one mutating operation at a time). */
  task: OperationKind | null;
  /** request_id of the action holding the lock. */
  task_request_id: string | null;
  /** Installer progress 0-100 (seed 002 `progress`). */
  progress: number;
  /** The last provisioning operation that failed (what `retry` re-runs, with the parameters recorded above). */
  failed_operation: { kind: OsOperation; networks?: NetworkRequest[] | undefined } | null;
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  terminated_at: string | null;
}

export type BootMode = 'uefi' | 'legacy';

export interface NodeMac {
  mac: string;
  pxe: boolean;
}

/**
 * BMC settings as stored: the ordered driver names, and the drivers' settings (every other key of the node's `bmc`
 * mapping), opaque to the core: validated by the drivers' schemas (drivers/registry.ts) and passed through to them.
 * Never a secret itself, only the file it is in.
 */
export interface BmcSettings {
  /** Ordered driver names; the next is tried only after an error that proves nothing was sent. */
  drivers: string[];
  [setting: string]: unknown;
}

export interface Node {
  id: string;
  name: string;
  type: string;
  boot_mode: BootMode;
  macs: NodeMac[];
  bmc: BmcSettings;
  maintenance: boolean;
  maintenance_reason: string | null;
  /** Observed power; `unknown` after N consecutive failed reads. */
  power_state: PowerState;
  /**
   * What a node-level power command (a free node's power request, enforcement) is driving towards while it runs;
   * null otherwise. An instance's power request keeps its target on the instance.
   */
  target_power_state: TargetPower;
  /** Set while the BMC cannot be read (bmc_unreachable_error) or other node-level problem. */
  last_error: InstanceError | null;
  consecutive_power_failures: number;
  instance_id: string | null;
  /** Pending adoption (config or command) waiting for a verified power read. */
  adopt: AdoptRequest | null;
  /** Enforce the expected power state instead of following drift (opt-in). */
  enforce_power: boolean;
  source: 'config' | 'controller';
  created_at: string;
  updated_at: string;
}

export interface AdoptRequest {
  instance_id: string;
  project_id: string;
  user_id: string;
  name: string;
  addresses: Address[];
  image_uuid?: string | undefined;
  instance_type_uuid?: string | undefined;
  metadata?: Record<string, string> | undefined;
  /** The request id of the adoption's action (an upstream node.adopt: its command_id); else one is made. */
  request_id?: string | undefined;
}

export type ActionEventResult = 'Success' | 'Error';

export interface ActionEvent {
  event: string;
  start_time: string;
  finish_time: string | null;
  result: ActionEventResult | null;
  /** Operator-facing detail of a failure (admins only on the API). */
  traceback: string | null;
}

/** nova action names where nova has one, seed 003's otherwise. */
export type ActionName =
  | 'create'
  | 'adopt'
  | 'start'
  | 'stop'
  | 'reboot'
  | 'delete'
  | 'changePassword'
  | 'reinstall'
  | 'switch-install'
  | 'modify-ip'
  | 'uninstall'
  | 'retry';

export interface Action {
  request_id: string;
  instance_id: string;
  project_id: string;
  user_id: string;
  action: ActionName;
  start_time: string;
  finish_time: string | null;
  message: string | null;
  events: ActionEvent[];
  /**
   * Where the operation's plan is (agent/operations/runner.ts): the index of the step that runs or is about to run,
   * persisted before the step starts, and the plan's own data (an installer job id, a deadline). Never a secret;
   * never shown by the API. Absent or null: no step has started.
   */
  plan?: ActionPlan | null;
}

/** A plan's position, kept with its action (see Action.plan). */
export interface ActionPlan {
  step: number;
  data: Record<string, unknown>;
}

/** Kinds of journal entries (the outbox). Every change of these is journalled before it is sent upstream. */
export type JournalKind =
  | 'instance.created'
  | 'instance.state'
  | 'instance.operation_state'
  | 'instance.power'
  | 'instance.target_power'
  | 'instance.error'
  | 'instance.addresses'
  | 'instance.alive'
  | 'instance.deleted'
  | 'action.started'
  | 'action.event'
  | 'action.finished'
  | 'node.power'
  | 'node.error'
  | 'node.maintenance'
  | 'node.released'
  | 'node.enrolled'
  | 'node.removed';

export interface JournalEntry {
  seq: number;
  agent_id: string;
  at: string;
  kind: JournalKind;
  instance_id: string | null;
  node_id: string | null;
  /** Why it changed: 'operation', 'drift', 'recovery', 'poll', ... */
  cause: string;
  data: Record<string, unknown>;
}

/** Who is calling: from an API token or the upstream controller. */
export interface RequestContext {
  request_id: string;
  project_id: string;
  user_id: string;
  roles: string[];
  is_admin: boolean;
}
