/**
 * IPMI power: `chassis power status|on|off|soft|cycle`. `on` when on and `off` when off succeed (the BMC accepts them
 * again). `reboot` is `chassis power cycle` (drivers/bmc.ts never sends it: it carries out a reboot as a verified off
 * then on); `soft-reboot` has no IPMI command (bmc.ts does it as soft-off then on). A BMC may refuse `cycle` of an off
 * chassis (BMC_ERR_COMMAND_FAILED).
 */
import { BmcError } from '../errors.js';
import type { PowerAction, PowerDriver } from '../types.js';
import type { IpmitoolClient } from './client.js';
import { DRIVER, parsePowerStatus, type ChassisPowerVerb } from './ipmitool.js';

const VERB: Partial<Record<PowerAction, Exclude<ChassisPowerVerb, 'status'>>> = {
  on: 'on',
  off: 'off',
  'soft-off': 'soft',
  reboot: 'cycle',
};

export const IPMI_POWER_ACTIONS = Object.keys(VERB) as PowerAction[];

export function createIpmiPower(client: IpmitoolClient): PowerDriver {
  return {
    async getPower(opts) {
      const out = await client.run('power status read', { kind: 'power', verb: 'status' }, opts);
      return parsePowerStatus(out.stdout);
    },
    async setPower(action, opts) {
      const verb = VERB[action];
      if (!verb) throw new BmcError('BMC_ERR_UNSUPPORTED', DRIVER, `power ${action}: IPMI has no such command (nothing was sent)`);
      await client.run(`chassis power ${verb}`, { kind: 'power', verb }, opts);
    },
    supportedPowerActions: () => IPMI_POWER_ACTIONS,
  };
}
