/**
 * How each operation uses the state machine: the table of design.md section 3, row by row, as data.
 * The engine (agent/operations/engine.ts) reads it; test/agent/operations/rules.test.ts walks every
 * (state, operation) pair against it.
 */
import { EXPECTED_POWER, type PowerAction, type PowerReading } from '../../drivers/power.js';
import type { ActionName, ErrorType, InstanceState, OperationKind, OsOperation } from '../model.js';
import type { StateEvent } from '../state-machine.js';

export interface OperationRule {
  /** The action recorded (nova's name where nova has one, seed 003's otherwise). */
  action: ActionName;
  /** States in which the operation is accepted ('new' is create/adopt only). */
  accepts: readonly InstanceState[];
  /** From `running`, take the PowerOff edge (power the server off) before the operation itself. */
  powerOffFirst: boolean;
  /** The seed-003 operation whose `<op>-processing|succeed|failed` this operation owns (retry: the retried one). */
  os: OsOperation | 'retried' | null;
  /** Edge taken on success, by the state the instance is in when the work is done; absent: state unchanged. */
  success: Partial<Record<InstanceState, StateEvent>>;
  /** Edge taken on failure, likewise; absent: state unchanged (the error is still recorded). */
  failure: Partial<Record<InstanceState, StateEvent>>;
  /** error_type recorded on failure. */
  errorType: ErrorType;
  /** Whether `error` is cleared when the operation is accepted (power in `error` keeps the error). */
  clearsError: (state: InstanceState) => boolean;
  /** A failure ends with the node powered off when config on_failure is power_off. */
  powerOffOnFailure: boolean;
  /** Edge taken at acceptance, by the state the instance is in then; absent: none. */
  entry: Partial<Record<InstanceState | 'new', StateEvent>>;
  /** Power the server is left in on success (null: the retried operation's, or unchanged). */
  finalPower: PowerReading | null;
  /** The plan that carries it out (agent/operations/plans/); null: none (adoption is not run as a plan). */
  plan: 'power' | 'provision' | 'delete' | null;
  /** The parameter the request must give (400 without it). */
  requires: 'image_uuid' | 'password_hash' | 'networks' | null;
  /** Its `image_uuid` parameter becomes the instance's image. */
  setsImage: boolean;
  /** Once failed, `retry` may re-run it (the error -> running edge); false for a failed uninstall. */
  retriable: boolean;
  /** Success ends the instance: terminated_at set, secrets and addresses released. */
  releases: boolean;
}

const always = () => true;

/**
 * power off and soft power off: from running (or error, keeping the error), PowerOff on success. A stopped instance
 * is accepted too: the engine answers "already there" only from a fresh power read, so a stopped instance whose
 * server reads on (or cannot be read) gets its command, and its state stays stopped.
 */
function powerOff(): OperationRule {
  return {
    action: 'stop',
    accepts: ['running', 'error', 'stopped'],
    powerOffFirst: false,
    os: null,
    success: { running: 'power-off' },
    failure: {},
    errorType: 'power_off_error',
    clearsError: (s) => s !== 'error',
    powerOffOnFailure: false,
    entry: {},
    finalPower: 'off',
    plan: 'power',
    requires: null,
    setsImage: false,
    retriable: false,
    releases: false,
  };
}

/**
 * reboot and soft reboot: carried out as a verified (soft) off, then a verified on. The off, once verified, takes
 * running -> stopped (PowerReboot); success is the PowerOn edge once `on` is verified. A failure leaves the state
 * where it is: running if off was never verified, stopped if the on failed.
 */
function reboot(): OperationRule {
  return {
    action: 'reboot',
    accepts: ['running'],
    powerOffFirst: false,
    os: null,
    success: { stopped: 'power-on' },
    failure: {},
    errorType: 'reboot_failed_error',
    clearsError: always,
    powerOffOnFailure: false,
    entry: {},
    finalPower: 'on',
    plan: 'power',
    requires: null,
    setsImage: false,
    retriable: false,
    releases: false,
  };
}

/** reinstall, switch-install, modify-ip: from stopped (running first powers off), Provision Succeed / Failed. */
function provisioning(os: 'reinstall' | 'switch-install' | 'modify-ip'): OperationRule {
  return {
    action: os,
    accepts: ['stopped', 'running'],
    powerOffFirst: true,
    os,
    success: { stopped: 'provision-succeed' },
    failure: { stopped: 'provision-failed' },
    errorType: 'install_error',
    clearsError: always,
    powerOffOnFailure: true,
    entry: {},
    finalPower: 'on',
    plan: 'provision',
    requires: os === 'switch-install' ? 'image_uuid' : os === 'modify-ip' ? 'networks' : null,
    setsImage: os !== 'modify-ip',
    retriable: true,
    releases: false,
  };
}

export const RULES: Record<OperationKind, OperationRule> = {
  create: {
    action: 'create',
    accepts: [],
    powerOffFirst: false,
    os: 'install',
    success: { pending: 'create-succeed' },
    failure: { pending: 'create-failed' },
    errorType: 'install_error',
    clearsError: always,
    powerOffOnFailure: true,
    entry: { new: 'create' },
    finalPower: 'on',
    plan: 'provision',
    requires: null,
    setsImage: false,
    retriable: true,
    releases: false,
  },
  adopt: {
    action: 'adopt',
    accepts: [],
    powerOffFirst: false,
    os: null,
    success: {},
    failure: {},
    errorType: 'bmc_unreachable_error',
    clearsError: always,
    powerOffOnFailure: false,
    entry: {},
    finalPower: null,
    plan: null,
    requires: null,
    setsImage: false,
    retriable: false,
    releases: false,
  },
  // running: accepted when a fresh read does not say on (the server is off behind our back, or unknown); state stays.
  'power-on': {
    action: 'start',
    accepts: ['stopped', 'error', 'running'],
    powerOffFirst: false,
    os: null,
    success: { stopped: 'power-on' },
    failure: {},
    errorType: 'power_on_error',
    clearsError: (s) => s !== 'error',
    powerOffOnFailure: false,
    entry: {},
    finalPower: 'on',
    plan: 'power',
    requires: null,
    setsImage: false,
    retriable: false,
    releases: false,
  },
  'power-off': powerOff(),
  'soft-power-off': powerOff(),
  reboot: reboot(),
  'soft-reboot': reboot(),
  reinstall: provisioning('reinstall'),
  'switch-install': provisioning('switch-install'),
  'modify-ip': provisioning('modify-ip'),
  uninstall: {
    action: 'uninstall',
    accepts: ['stopped', 'running'],
    powerOffFirst: true,
    os: 'uninstall',
    success: { stopped: 'uninstall-succeed' },
    failure: { stopped: 'provision-failed' },
    errorType: 'install_error',
    clearsError: always,
    powerOffOnFailure: true,
    entry: {},
    finalPower: 'off',
    plan: 'provision',
    requires: null,
    setsImage: false,
    retriable: false,
    releases: false,
  },
  'change-password': {
    action: 'changePassword',
    accepts: ['stopped', 'running'],
    powerOffFirst: true,
    os: null,
    success: { stopped: 'change-password' },
    failure: {},
    errorType: 'change_password_error',
    clearsError: always,
    powerOffOnFailure: true,
    entry: {},
    finalPower: 'off',
    plan: 'provision',
    requires: 'password_hash',
    setsImage: false,
    retriable: false,
    releases: false,
  },
  retry: {
    action: 'retry',
    accepts: ['error'],
    powerOffFirst: false,
    os: 'retried',
    success: { error: 'retry-provision-succeed' },
    failure: {},
    errorType: 'install_error',
    clearsError: always,
    powerOffOnFailure: true,
    entry: {},
    finalPower: null,
    plan: 'provision',
    requires: null,
    setsImage: false,
    retriable: false,
    releases: false,
  },
  // pending: the install is aborted first. running: PowerOff edge first. error: the diagram's Retry DeleteInstance.
  delete: {
    action: 'delete',
    accepts: ['pending', 'stopped', 'error', 'running'],
    powerOffFirst: true,
    os: null,
    success: { 'shutting-down': 'delete-succeed' },
    failure: { 'shutting-down': 'delete-failed' },
    errorType: 'delete_error',
    clearsError: always,
    // A deleted tenant's OS must not keep running: a failed delete ends powered off too (unless on_failure: leave).
    powerOffOnFailure: true,
    entry: { pending: 'delete', stopped: 'delete', error: 'retry-delete' },
    finalPower: 'off',
    plan: 'delete',
    requires: null,
    setsImage: false,
    retriable: false,
    releases: true,
  },
};

/** The rule of the operation that owns an OS operation's states (install is create's). */
export function osRule(op: OsOperation | 'change-password'): OperationRule {
  return RULES[op === 'install' ? 'create' : op];
}

/** Operations that are power requests (seed 004 `PUT .../states/power`) -> the power action each carries out. */
export const POWER_ACTION_OF = {
  'power-on': 'on',
  'power-off': 'off',
  'soft-power-off': 'soft-off',
  reboot: 'reboot',
  'soft-reboot': 'soft-reboot',
} as const satisfies Partial<Record<OperationKind, PowerAction>>;
export type PowerKind = keyof typeof POWER_ACTION_OF;
export const POWER_KINDS = Object.keys(POWER_ACTION_OF) as readonly PowerKind[];

/** A power request's target (a power action) -> the operation kind that carries it out: POWER_ACTION_OF inverted. */
export const KIND_OF_TARGET = Object.fromEntries(
  POWER_KINDS.map((k) => [POWER_ACTION_OF[k], k]),
) as unknown as Readonly<Record<PowerAction, PowerKind>>;

/** The target_power_state an accepted power request records ("power on" throughout a reboot). */
export function targetPowerOf(kind: PowerKind): PowerReading {
  return EXPECTED_POWER[POWER_ACTION_OF[kind]];
}
