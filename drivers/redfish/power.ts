/**
 * Redfish power: the system's `PowerState` read through one table, and `ComputerSystem.Reset` with a `ResetType`
 * chosen from the system's `ResetType@Redfish.AllowableValues`, in the order of RESET_CHOICES.
 *
 * - A state in transition reads as the state it is leaving (PoweringOn: off, PoweringOff: on), so a verification
 *   poll never counts a change before it is done, and power sync never takes a transition for drift.
 * - Before the first read of the system every action is offered; afterwards only the actions the BMC lists a value
 *   for. An action without a value is BMC_ERR_UNSUPPORTED before anything is sent (the API's 406).
 * - A toggle (`PushPowerButton`) is sent only when power reads the other way, so "on when on" stays a no-op.
 * - The values may be listed inline or in the action's `@Redfish.ActionInfo` resource (NOTE(vendor): Supermicro X11/X12
 *   and newer iDRAC firmware list them there only); the ActionInfo is read once per driver.
 * - No `AllowableValues` at all: the standard set is assumed (as sushy does); no Reset action: nothing is supported.
 * - insecure: true is logged as a warning on every power read (power sync), as well as at bind.
 */
import { BmcError } from '../errors.js';
import { EXPECTED_POWER, POWER_ACTIONS, type PowerAction, type PowerReading } from '../power.js';
import type { CallOptions, PowerDriver } from '../types.js';
import type { Json, RedfishClient } from './client.js';

/** Redfish PowerState -> our word. */
export const POWER_STATE_MAP: Readonly<Record<string, PowerReading>> = {
  On: 'on',
  Off: 'off',
  PoweringOn: 'off',
  PoweringOff: 'on',
  Paused: 'on',
};

/**
 * Per action, the ResetType values that carry it out, in order of preference. NOTE(vendor): HPE iLO lists no
 * GracefulRestart and some iLO/Dell firmware only a PushPowerButton for a soft off; BMCs without `On` have `ForceOn`.
 * No fallback turns a hard off into a soft one (GracefulShutdown may never finish): without ForceOff, off is refused.
 */
export const RESET_CHOICES: Readonly<Record<PowerAction, readonly string[]>> = {
  on: ['On', 'ForceOn', 'PushPowerButton'],
  off: ['ForceOff'],
  'soft-off': ['GracefulShutdown', 'PushPowerButton'],
  reboot: ['ForceRestart', 'PowerCycle'],
  'soft-reboot': ['GracefulRestart'],
};

/** Values that toggle power (sent only when power reads the other way). */
const TOGGLES = new Set(['PushPowerButton']);

/** What a BMC without `AllowableValues` is taken to accept. */
const STANDARD_RESETS = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'GracefulRestart', 'ForceOn', 'PushPowerButton', 'PowerCycle'];

const RESET_ACTION = '#ComputerSystem.Reset';

export interface SystemView {
  path: string;
  json: Json;
  etag: string | null;
}

export interface PowerContext {
  driver: string;
  client: RedfishClient;
  /** GETs the system (fresh) and remembers what it offers. */
  readSystem(opts: CallOptions): Promise<SystemView>;
  /** Called on every power read (logs the insecure warning). */
  onPowerRead(): void;
}

/** The ResetType values the system offers; null when it has no Reset action. */
export function allowedResets(system: Json): readonly string[] | null {
  const action = (system['Actions'] as Json | undefined)?.[RESET_ACTION] as Json | undefined;
  if (!action) return null;
  const listed = action['ResetType@Redfish.AllowableValues'];
  return Array.isArray(listed) ? listed.filter((v): v is string => typeof v === 'string') : STANDARD_RESETS;
}

/** The ResetType for `action`, or null when the BMC lists none that carries it out. */
export function chooseReset(action: PowerAction, allowed: readonly string[]): string | null {
  return RESET_CHOICES[action].find((v) => allowed.includes(v)) ?? null;
}

export function readPowerState(driver: string, system: Json): PowerReading {
  const s = system['PowerState'];
  const p = typeof s === 'string' ? POWER_STATE_MAP[s] : undefined;
  if (!p) throw new BmcError('BMC_ERR_BAD_RESPONSE', driver, `the system reports PowerState ${JSON.stringify(s ?? null)}, which is not a power state`);
  return p;
}

export interface RedfishPower extends PowerDriver {
  /** Remembers what the system offers (after `complete`). */
  noteSystem(system: Json): void;
  /** The system with its Reset action's AllowableValues inlined from `@Redfish.ActionInfo` when only listed there. */
  complete(system: Json, opts: CallOptions): Promise<Json>;
}

export function createRedfishPower(ctx: PowerContext): RedfishPower {
  let offered: readonly PowerAction[] | null = null;
  /** ActionInfo path -> its ResetType AllowableValues (null: it lists none). */
  const infos = new Map<string, readonly string[] | null>();
  const noteSystem = (system: Json) => {
    const allowed = allowedResets(system) ?? [];
    offered = POWER_ACTIONS.filter((a) => chooseReset(a, allowed) !== null);
  };
  return {
    noteSystem,

    async complete(system, opts) {
      const action = (system['Actions'] as Json | undefined)?.[RESET_ACTION] as Json | undefined;
      const ref = action?.['@Redfish.ActionInfo'];
      if (!action || Array.isArray(action['ResetType@Redfish.AllowableValues']) || typeof ref !== 'string') return system;
      const path = ctx.client.path(ref, `${RESET_ACTION} @Redfish.ActionInfo`);
      if (!infos.has(path)) {
        const { json } = await ctx.client.call('GET', path, opts);
        const params = Array.isArray(json?.['Parameters']) ? (json['Parameters'] as Json[]) : [];
        const values = params.find((p) => p['Name'] === 'ResetType')?.['AllowableValues'];
        infos.set(path, Array.isArray(values) ? values.filter((v): v is string => typeof v === 'string') : null);
      }
      const listed = infos.get(path);
      if (!listed) return system;
      const actions = system['Actions'] as Json;
      return { ...system, Actions: { ...actions, [RESET_ACTION]: { ...action, 'ResetType@Redfish.AllowableValues': listed } } };
    },

    async getPower(opts) {
      ctx.onPowerRead();
      const { json } = await ctx.readSystem(opts ?? {});
      return readPowerState(ctx.driver, json);
    },

    async setPower(action, opts = {}) {
      const { path, json } = await ctx.readSystem(opts);
      const allowed = allowedResets(json);
      const choice = allowed ? chooseReset(action, allowed) : null;
      if (!choice) {
        const listed = allowed ? allowed.join(', ') || 'none' : `no ${RESET_ACTION} action`;
        throw new BmcError(
          'BMC_ERR_UNSUPPORTED',
          ctx.driver,
          `power ${action}: the BMC offers no ResetType for it (wanted one of ${RESET_CHOICES[action].join(', ')}; it lists ${listed}); nothing was sent`,
        );
      }
      if (TOGGLES.has(choice) && readPowerState(ctx.driver, json) === EXPECTED_POWER[action]) return;
      const target = (((json['Actions'] as Json)[RESET_ACTION] as Json)['target'] as string | undefined) ?? `${path}/Actions/ComputerSystem.Reset`;
      await ctx.client.act('POST', ctx.client.path(target, `${RESET_ACTION} target`), { ResetType: choice }, opts);
    },

    supportedPowerActions() {
      return offered ?? POWER_ACTIONS;
    },
  };
}
