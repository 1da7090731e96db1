/**
 * Vocabularies at the API boundary, as data (design 3, "Power words"; style 4, "translate at the boundary with
 * tables"). Internal words live in drivers/power.ts; the seeds speak three other dialects, spelled here only:
 *
 * - seed 004 (OpenStack Ironic lineage): `"power on" | "power off" | null`, and request words for `PUT .../states/power`;
 * - seed 002 (nova): integer power states and the `status` / `vm_state` / `task_state` triple;
 * - seed 003: the internal state words themselves.
 *
 * docs/api.md reproduces these tables; change both together.
 */
import { SOFT_POWER_ACTIONS, type PowerAction } from '../drivers/power.js';
import type { ErrorType, InstanceState, OperationKind, PowerState, TargetPower } from './model.js';
import type { PowerTarget } from './service.js';

/** Ironic's power words (seed 004 `power_state`, `target_power_state`). */
export type IronicPower = 'power on' | 'power off' | null;

/** Internal power -> the three vocabularies. `unknown` is never taken for off: Ironic null, nova NOSTATE (0). */
export const POWER_VOCAB: Readonly<Record<PowerState, { ironic: IronicPower; nova: 0 | 1 | 4; internal: PowerState }>> = {
  on: { ironic: 'power on', nova: 1 /* RUNNING */, internal: 'on' },
  off: { ironic: 'power off', nova: 4 /* SHUTDOWN */, internal: 'off' },
  unknown: { ironic: null, nova: 0 /* NOSTATE */, internal: 'unknown' },
};

/** Ironic's request words of `PUT .../states/power` (seed 004 `target`). */
export type IronicPowerTarget = 'power on' | 'power off' | 'rebooting' | 'soft power off' | 'soft rebooting';

/** Internal power target -> Ironic's request word. */
export const IRONIC_POWER_TARGET: Readonly<Record<PowerAction, IronicPowerTarget>> = {
  on: 'power on',
  off: 'power off',
  reboot: 'rebooting',
  'soft-off': 'soft power off',
  'soft-reboot': 'soft rebooting',
};

/** Internal power target -> metald's alias for it in `PUT .../states/power`. */
export const POWER_TARGET_ALIAS: Readonly<Record<PowerAction, string>> = {
  on: 'on',
  off: 'off',
  reboot: 'reboot',
  'soft-off': 'soft_off',
  'soft-reboot': 'soft_reboot',
};

const powerTargetsBy = (words: Readonly<Record<PowerAction, string>>): [string, PowerAction][] =>
  (Object.keys(words) as PowerAction[]).map((t) => [words[t], t]);

/** Request words of `PUT .../states/power` (Ironic's, then metald's aliases) -> internal PowerTarget. */
export const POWER_TARGET_WORDS: Readonly<Record<string, PowerTarget>> = Object.fromEntries([
  ...powerTargetsBy(IRONIC_POWER_TARGET),
  ...powerTargetsBy(POWER_TARGET_ALIAS),
]);

/** The targets that accept a `timeout` (seconds for the OS to shut down on its own). */
export const SOFT_POWER_TARGETS: readonly PowerTarget[] = SOFT_POWER_ACTIONS;

/** nova's status / vm_state / task_state triple (seed 002 `status`, `OS-EXT-STS:vm_state`, `OS-EXT-STS:task_state`). */
export interface NovaStatus {
  status: string;
  vm_state: string;
  task_state: string | null;
}

/**
 * (state, task) -> seed 002. `default` applies when no task holds the instance, or the task has no row of its own.
 * `shutting-down` is resolved by power at run time (novaStatusOf): its row is the power-off case.
 */
export const NOVA_STATUS_TABLE: Readonly<
  Record<InstanceState, { default: NovaStatus; tasks: Partial<Record<OperationKind, NovaStatus>> }>
> = {
  pending: {
    default: { status: 'BUILD', vm_state: 'building', task_state: null },
    tasks: {
      create: { status: 'BUILD', vm_state: 'building', task_state: 'spawning' },
      adopt: { status: 'BUILD', vm_state: 'building', task_state: 'spawning' },
    },
  },
  running: {
    default: { status: 'ACTIVE', vm_state: 'active', task_state: null },
    tasks: {
      reboot: { status: 'HARD_REBOOT', vm_state: 'active', task_state: 'rebooting_hard' },
      'soft-reboot': { status: 'REBOOT', vm_state: 'active', task_state: 'rebooting' },
      'power-off': { status: 'ACTIVE', vm_state: 'active', task_state: 'powering-off' },
      'soft-power-off': { status: 'ACTIVE', vm_state: 'active', task_state: 'powering-off' },
      reinstall: { status: 'REBUILD', vm_state: 'active', task_state: 'rebuilding' },
      'switch-install': { status: 'REBUILD', vm_state: 'active', task_state: 'rebuilding' },
      'modify-ip': { status: 'ACTIVE', vm_state: 'active', task_state: 'networking' },
      uninstall: { status: 'ACTIVE', vm_state: 'active', task_state: 'uninstalling' },
      'change-password': { status: 'PASSWORD', vm_state: 'active', task_state: 'updating_password' },
      delete: { status: 'ACTIVE', vm_state: 'active', task_state: 'deleting' },
    },
  },
  stopped: {
    default: { status: 'SHUTOFF', vm_state: 'stopped', task_state: null },
    tasks: {
      'power-on': { status: 'SHUTOFF', vm_state: 'stopped', task_state: 'powering-on' },
      // A reboot passes through stopped (PowerReboot, then PowerOn): nova shows it as a hard reboot throughout.
      reboot: { status: 'HARD_REBOOT', vm_state: 'stopped', task_state: 'rebooting_hard' },
      'soft-reboot': { status: 'REBOOT', vm_state: 'stopped', task_state: 'rebooting' },
      reinstall: { status: 'REBUILD', vm_state: 'stopped', task_state: 'rebuilding' },
      'switch-install': { status: 'REBUILD', vm_state: 'stopped', task_state: 'rebuilding' },
      'modify-ip': { status: 'SHUTOFF', vm_state: 'stopped', task_state: 'networking' },
      uninstall: { status: 'SHUTOFF', vm_state: 'stopped', task_state: 'uninstalling' },
      'change-password': { status: 'PASSWORD', vm_state: 'stopped', task_state: 'updating_password' },
      delete: { status: 'SHUTOFF', vm_state: 'stopped', task_state: 'deleting' },
    },
  },
  error: {
    default: { status: 'ERROR', vm_state: 'error', task_state: null },
    tasks: {
      retry: { status: 'REBUILD', vm_state: 'error', task_state: 'rebuilding' },
      'power-on': { status: 'ERROR', vm_state: 'error', task_state: 'powering-on' },
      'power-off': { status: 'ERROR', vm_state: 'error', task_state: 'powering-off' },
      'soft-power-off': { status: 'ERROR', vm_state: 'error', task_state: 'powering-off' },
      delete: { status: 'ERROR', vm_state: 'error', task_state: 'deleting' },
    },
  },
  // status/vm_state follow the power while the node is wiped: ACTIVE/active if on, else SHUTOFF/stopped.
  'shutting-down': {
    default: { status: 'SHUTOFF', vm_state: 'stopped', task_state: 'deleting' },
    tasks: {},
  },
  terminated: {
    default: { status: 'DELETED', vm_state: 'deleted', task_state: null },
    tasks: {},
  },
};

/** Internal power -> Ironic words (seed 004). */
export function ironicPower(p: PowerState | TargetPower): IronicPower {
  return p === null ? null : POWER_VOCAB[p].ironic;
}

/** Internal power -> nova integer (seed 002 `OS-EXT-STS:power_state`). */
export function novaPower(p: PowerState): 0 | 1 | 4 {
  return POWER_VOCAB[p].nova;
}

/** Parses a request word (Ironic's or an alias); undefined when it is not one. */
export function parsePowerTarget(word: string): PowerTarget | undefined {
  return Object.prototype.hasOwnProperty.call(POWER_TARGET_WORDS, word) ? POWER_TARGET_WORDS[word] : undefined;
}

/** Ironic's words of the targets that accept a `timeout`, quoted, for error messages: `"soft power off" or ...`. */
export const SOFT_TARGET_WORDS = SOFT_POWER_TARGETS.map((t) => `"${IRONIC_POWER_TARGET[t]}"`).join(' or ');

/** Whether `timeout` is allowed with this target. */
export function acceptsTimeout(t: PowerTarget): boolean {
  return SOFT_POWER_TARGETS.includes(t);
}

/** seed 002's status triple for an instance's state, the task holding it (if any) and its power. */
export function novaStatusOf(state: InstanceState, task: OperationKind | null, power: PowerState): NovaStatus {
  if (state === 'shutting-down') {
    return power === 'on'
      ? { status: 'ACTIVE', vm_state: 'active', task_state: 'deleting' }
      : { status: 'SHUTOFF', vm_state: 'stopped', task_state: 'deleting' };
  }
  const row = NOVA_STATUS_TABLE[state];
  return (task !== null ? row.tasks[task] : undefined) ?? row.default;
}

/**
 * What a member (not an admin) reads instead of an error's raw `error_msg`: a reason per error code, else per
 * error type. The raw text names nodes, BMC addresses, drivers and BMC replies; admins see it (as they see the
 * traceback), members see these words and the step name.
 */
export const MEMBER_ERROR_REASONS: Readonly<Record<string, string>> = {
  BMC_ERR_UNREACHABLE: 'the BMC could not be reached',
  BMC_ERR_AUTH: 'the BMC refused the credentials',
  BMC_ERR_TIMEOUT: 'the BMC did not answer in time',
  BMC_ERR_VERIFY_FAILED: 'the BMC did not confirm the change',
  BMC_ERR_BOOT_FLAGS_IGNORED: 'the BMC did not keep the boot device setting',
  BMC_ERR_BUSY: 'the BMC was busy',
  BMC_ERR_COMMAND_FAILED: 'the BMC refused the command',
  BMC_ERR_BAD_RESPONSE: 'the BMC answered something that could not be read',
  BMC_ERR_UNSUPPORTED: "the server's management controller does not support this",
  BMC_ERR_ABORTED: 'the BMC command was aborted',
  BMC_ERR_INSTALL_FAILED: 'the installer reported a failure',
  AGENT_ERR_INTERRUPTED: 'interrupted by an agent restart',
  AGENT_ERR_TIMEOUT: 'it did not finish in time',
  AGENT_ERR_ABORTED: 'it was aborted',
  AGENT_ERR_NOT_ALIVE: 'the instance did not answer on its address after booting',
};

export const MEMBER_ERROR_TYPE_REASONS: Readonly<Record<ErrorType, string>> = {
  power_off_error: 'the server could not be powered off',
  power_on_error: 'the server could not be powered on',
  reboot_failed_error: 'the server could not be rebooted',
  install_error: 'the operating system operation failed',
  bmc_unreachable_error: "the server's power state could not be read",
  change_password_error: 'the password could not be changed',
  delete_error: 'the instance could not be wiped',
};
