/**
 * drivers/power.ts is the one module of the internal power words: the tables of the rules (agent/operations/rules.ts)
 * and the wire vocabularies (agent/vocab.ts) are derived from it, so each word is spelled once.
 */
import { describe, expect, it } from 'vitest';
import { EXPECTED_POWER, isReboot, isSoft, POWER_ACTIONS, POWER_STATES, REBOOT_AS } from '../../drivers/power.js';
import { OPERATION_KINDS } from '../../agent/model.js';
import { KIND_OF_TARGET, POWER_ACTION_OF, POWER_KINDS, targetPowerOf } from '../../agent/operations/rules.js';
import { IRONIC_POWER_TARGET, POWER_TARGET_ALIAS, POWER_TARGET_WORDS, SOFT_TARGET_WORDS, parsePowerTarget } from '../../agent/vocab.js';

describe('drivers/power.ts: the internal power words', () => {
  it('states, actions, what each action ends in, and how reboots are carried out', () => {
    expect(POWER_STATES).toEqual(['on', 'off', 'unknown']);
    expect(POWER_ACTIONS).toEqual(['on', 'off', 'soft-off', 'reboot', 'soft-reboot']);
    expect(POWER_ACTIONS.map((a) => EXPECTED_POWER[a])).toEqual(['on', 'off', 'off', 'on', 'on']);
    expect(POWER_ACTIONS.filter(isReboot)).toEqual(['reboot', 'soft-reboot']);
    expect(POWER_ACTIONS.filter(isSoft)).toEqual(['soft-off', 'soft-reboot']);
    expect(REBOOT_AS).toEqual({ reboot: ['off', 'on'], 'soft-reboot': ['soft-off', 'on'] });
    // A reboot's first half is verified off and its second on, as the reboot itself ends.
    for (const r of POWER_ACTIONS.filter(isReboot)) {
      expect(REBOOT_AS[r].map((a) => EXPECTED_POWER[a])).toEqual(['off', EXPECTED_POWER[r]]);
    }
  });

  it('rules: one power kind per action, and the target_power_state each records', () => {
    expect(POWER_KINDS.every((k) => (OPERATION_KINDS as readonly string[]).includes(k))).toBe(true);
    expect([...POWER_KINDS].sort()).toEqual(['power-off', 'power-on', 'reboot', 'soft-power-off', 'soft-reboot']);
    for (const a of POWER_ACTIONS) expect(POWER_ACTION_OF[KIND_OF_TARGET[a]]).toBe(a);
    expect(POWER_KINDS.map((k) => [k, targetPowerOf(k)])).toEqual([
      ['power-on', 'on'],
      ['power-off', 'off'],
      ['soft-power-off', 'off'],
      ['reboot', 'on'],
      ['soft-reboot', 'on'],
    ]);
  });

  it('wire words (agent/vocab.ts): every action has an Ironic word and an alias, each parsed back to it', () => {
    for (const a of POWER_ACTIONS) {
      expect(parsePowerTarget(IRONIC_POWER_TARGET[a])).toBe(a);
      expect(parsePowerTarget(POWER_TARGET_ALIAS[a])).toBe(a);
    }
    expect(Object.keys(POWER_TARGET_WORDS)).toEqual([
      'power on',
      'power off',
      'rebooting',
      'soft power off',
      'soft rebooting',
      'on',
      'off',
      'reboot',
      'soft_off',
      'soft_reboot',
    ]);
    expect(SOFT_TARGET_WORDS).toBe('"soft power off" or "soft rebooting"');
  });
});
