/**
 * The instance state machine of seed 003, as data. `transition` is pure and is the only way `state` moves.
 *
 *     [*] --> pending: CreateInstance              pending --> running: CreateInstance Succeed
 *     pending --> shutting_down: DeleteInstance    running --> stopped: PowerOff/PowerReboot
 *     stopped --> running: PowerOn/Provision Succeed
 *     stopped --> stopped: ChangePassword          pending --> error: CreateInstance Failed
 *     stopped --> error: Provision Failed          error --> running: Retry Provision Succeed
 *     stopped --> shutting_down: DeleteInstance    error --> shutting_down: Retry DeleteInstance
 *     shutting_down --> error: DeleteInstance Failed
 *     shutting_down --> terminated: DeleteInstance Succeed
 *
 * Documented additions (docs/decisions.md): stopped --> stopped on uninstall success (the OS is gone, the server
 * stays off), and [*] --> running | stopped on adoption of a node that already runs a tenant's OS (from a verified
 * power read).
 */
import { AgentError } from './errors.js';
import type { InstanceState } from './model.js';

export const STATE_DOCS: Record<InstanceState, string> = {
  pending: 'being created: resources allocated, OS being installed',
  running: 'running properly (reachable over SSH or RDP)',
  stopped: 'completely stopped (disks retained)',
  'shutting-down': 'being terminated (deleted)',
  terminated: 'terminated: every resource released; readable for terminated_retention',
  error: 'abnormal: provisioning or deletion failed (resources not completely released)',
};

/** The diagram's edge labels in lower-kebab. */
export const STATE_EVENTS = [
  'create',
  'create-succeed',
  'create-failed',
  'power-off',
  'power-reboot',
  'power-on',
  'provision-succeed',
  'provision-failed',
  'change-password',
  'uninstall-succeed',
  'retry-provision-succeed',
  'delete',
  'retry-delete',
  'delete-failed',
  'delete-succeed',
  'adopt-running',
  'adopt-stopped',
] as const;
export type StateEvent = (typeof STATE_EVENTS)[number];

/** `new` stands for the diagram's [*]: the instance does not exist yet. */
export type FromState = InstanceState | 'new';

export interface Edge {
  from: FromState;
  event: StateEvent;
  to: InstanceState;
  /** The diagram's label, or why the edge is a documented addition. */
  label: string;
}

export const EDGES: readonly Edge[] = [
  { from: 'new', event: 'create', to: 'pending', label: 'CreateInstance' },
  { from: 'pending', event: 'create-succeed', to: 'running', label: 'CreateInstance Succeed' },
  { from: 'pending', event: 'delete', to: 'shutting-down', label: 'DeleteInstance' },
  { from: 'running', event: 'power-off', to: 'stopped', label: 'PowerOff' },
  { from: 'running', event: 'power-reboot', to: 'stopped', label: 'PowerReboot' },
  { from: 'stopped', event: 'power-on', to: 'running', label: 'PowerOn' },
  { from: 'stopped', event: 'provision-succeed', to: 'running', label: 'Provision Succeed' },
  { from: 'stopped', event: 'change-password', to: 'stopped', label: 'ChangePassword' },
  { from: 'pending', event: 'create-failed', to: 'error', label: 'CreateInstance Failed' },
  { from: 'stopped', event: 'provision-failed', to: 'error', label: 'Provision Failed' },
  { from: 'error', event: 'retry-provision-succeed', to: 'running', label: 'Retry Provision Succeed' },
  { from: 'stopped', event: 'delete', to: 'shutting-down', label: 'DeleteInstance' },
  { from: 'error', event: 'retry-delete', to: 'shutting-down', label: 'Retry DeleteInstance' },
  { from: 'shutting-down', event: 'delete-failed', to: 'error', label: 'DeleteInstance Failed' },
  { from: 'shutting-down', event: 'delete-succeed', to: 'terminated', label: 'DeleteInstance Succeed' },
  { from: 'stopped', event: 'uninstall-succeed', to: 'stopped', label: 'addition: uninstall leaves the server off' },
  { from: 'new', event: 'adopt-running', to: 'running', label: 'addition: adoption, verified power on' },
  { from: 'new', event: 'adopt-stopped', to: 'stopped', label: 'addition: adoption, verified power off' },
];

const INDEX = new Map<string, InstanceState>(EDGES.map((e) => [`${e.from}|${e.event}`, e.to]));

/**
 * The state `event` leads to from `from`.
 * @throws AgentError AGENT_ERR_INVALID_TRANSITION when the diagram has no such edge.
 */
export function transition(from: FromState, event: StateEvent): InstanceState {
  const to = INDEX.get(`${from}|${event}`);
  if (to === undefined) {
    throw new AgentError('AGENT_ERR_INVALID_TRANSITION', `no transition from '${from}' on '${event}'`, { from, event });
  }
  return to;
}

export function canTransition(from: FromState, event: StateEvent): boolean {
  return INDEX.has(`${from}|${event}`);
}
