/**
 * The internal power words, in one place (design 3, "Power words"). Every other module derives its power types and
 * tables from these: the drivers (drivers/types.ts, drivers/bmc.ts), the model (agent/model.ts), the service
 * (agent/service.ts: a power request's target is a PowerAction), the rules (agent/operations/rules.ts) and the wire
 * vocabularies (agent/vocab.ts). It lives under drivers/ because drivers/ never imports agent/.
 */

/** What metald knows of a server's power. `unknown` is never taken for `off`. */
export const POWER_STATES = ['on', 'off', 'unknown'] as const;
export type PowerState = (typeof POWER_STATES)[number];

/** What a successful power read returns: never `unknown`. */
export type PowerReading = Exclude<PowerState, 'unknown'>;

/** What can be asked of a power driver, and the targets of a power request (the same words). */
export const POWER_ACTIONS = ['on', 'off', 'soft-off', 'reboot', 'soft-reboot'] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** The actions carried out as two verified steps (REBOOT_AS). */
export type RebootAction = Extract<PowerAction, 'reboot' | 'soft-reboot'>;
/** The actions sent to a BMC as one command and verified by one read-back. */
export type SinglePowerAction = Exclude<PowerAction, RebootAction>;

/** What the power reads once each action has taken effect. */
export const EXPECTED_POWER: Readonly<Record<PowerAction, PowerReading>> = {
  on: 'on',
  off: 'off',
  'soft-off': 'off',
  reboot: 'on',
  'soft-reboot': 'on',
};

/** How each kind of reboot is carried out: the first action verified off, then the second verified on. */
export const REBOOT_AS: Readonly<Record<RebootAction, readonly [SinglePowerAction, SinglePowerAction]>> = {
  reboot: ['off', 'on'],
  'soft-reboot': ['soft-off', 'on'],
};

/** The actions that leave the OS time to shut down on its own (and accept a timeout). */
export const SOFT_POWER_ACTIONS: readonly PowerAction[] = ['soft-off', 'soft-reboot'];

export function isReboot(action: PowerAction): action is RebootAction {
  return Object.prototype.hasOwnProperty.call(REBOOT_AS, action);
}

export function isSoft(action: PowerAction): boolean {
  return SOFT_POWER_ACTIONS.includes(action);
}
