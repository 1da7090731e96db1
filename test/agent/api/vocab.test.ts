/** agent/vocab.ts: the power table, the request-word parser and the seed 002 status table. */
import { describe, expect, it } from 'vitest';
import { INSTANCE_STATES, OPERATION_KINDS } from '../../../agent/model.js';
import {
  NOVA_STATUS_TABLE,
  acceptsTimeout,
  ironicPower,
  novaPower,
  novaStatusOf,
  parsePowerTarget,
} from '../../../agent/vocab.js';

describe('vocab', () => {
  it('power: internal -> Ironic words and nova ints; unknown is never off', () => {
    expect([ironicPower('on'), ironicPower('off'), ironicPower('unknown'), ironicPower(null)]).toEqual(['power on', 'power off', null, null]);
    expect([novaPower('on'), novaPower('off'), novaPower('unknown')]).toEqual([1, 4, 0]);
  });

  it('request words and aliases; nothing else', () => {
    expect(parsePowerTarget('soft rebooting')).toBe('soft-reboot');
    expect(parsePowerTarget('soft_off')).toBe('soft-off');
    expect(parsePowerTarget('toString')).toBeUndefined();
    expect(parsePowerTarget('Power On')).toBeUndefined();
    expect([acceptsTimeout('soft-off'), acceptsTimeout('soft-reboot'), acceptsTimeout('off'), acceptsTimeout('reboot')]).toEqual([true, true, false, false]);
  });

  it('status table: the brief rows', () => {
    const row = (s: Parameters<typeof novaStatusOf>[0], t: Parameters<typeof novaStatusOf>[1], p: Parameters<typeof novaStatusOf>[2] = 'on') => {
      const r = novaStatusOf(s, t, p);
      return [r.status, r.vm_state, r.task_state];
    };
    expect(row('pending', 'create', 'off')).toEqual(['BUILD', 'building', 'spawning']);
    expect(row('pending', null, 'off')).toEqual(['BUILD', 'building', null]);
    expect(row('running', null)).toEqual(['ACTIVE', 'active', null]);
    expect(row('running', 'reboot')).toEqual(['HARD_REBOOT', 'active', 'rebooting_hard']);
    expect(row('running', 'soft-reboot')).toEqual(['REBOOT', 'active', 'rebooting']);
    expect(row('running', 'power-off')).toEqual(['ACTIVE', 'active', 'powering-off']);
    expect(row('running', 'soft-power-off')).toEqual(['ACTIVE', 'active', 'powering-off']);
    expect(row('stopped', null, 'off')).toEqual(['SHUTOFF', 'stopped', null]);
    expect(row('stopped', 'power-on', 'off')).toEqual(['SHUTOFF', 'stopped', 'powering-on']);
    expect(row('stopped', 'reinstall', 'off')).toEqual(['REBUILD', 'stopped', 'rebuilding']);
    expect(row('stopped', 'switch-install', 'off')).toEqual(['REBUILD', 'stopped', 'rebuilding']);
    expect(row('stopped', 'modify-ip', 'off')).toEqual(['SHUTOFF', 'stopped', 'networking']);
    expect(row('stopped', 'uninstall', 'off')).toEqual(['SHUTOFF', 'stopped', 'uninstalling']);
    expect(row('stopped', 'change-password', 'off')).toEqual(['PASSWORD', 'stopped', 'updating_password']);
    expect(row('error', 'retry', 'off')).toEqual(['REBUILD', 'error', 'rebuilding']);
    expect(row('error', null, 'off')).toEqual(['ERROR', 'error', null]);
    expect(row('shutting-down', 'delete', 'on')).toEqual(['ACTIVE', 'active', 'deleting']);
    expect(row('shutting-down', 'delete', 'off')).toEqual(['SHUTOFF', 'stopped', 'deleting']);
    expect(row('shutting-down', null, 'unknown')).toEqual(['SHUTOFF', 'stopped', 'deleting']);
    expect(row('terminated', null, 'off')).toEqual(['DELETED', 'deleted', null]);
  });

  it('every (state, task) pair has an answer', () => {
    for (const s of INSTANCE_STATES) {
      expect(NOVA_STATUS_TABLE[s]).toBeDefined();
      for (const t of [null, ...OPERATION_KINDS]) {
        for (const p of ['on', 'off', 'unknown'] as const) {
          expect(novaStatusOf(s, t, p).status).toMatch(/^[A-Z_]+$/);
        }
      }
    }
  });
});
