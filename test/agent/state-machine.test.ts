import { describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/errors.js';
import { INSTANCE_STATES } from '../../agent/model.js';
import { EDGES, STATE_EVENTS, canTransition, transition, type FromState } from '../../agent/state-machine.js';

/** Seed 003's diagram, transcribed independently of agent/state-machine.ts (plus the documented additions). */
const DIAGRAM: [FromState, string, string][] = [
  ['new', 'create', 'pending'],
  ['pending', 'create-succeed', 'running'],
  ['pending', 'delete', 'shutting-down'],
  ['running', 'power-off', 'stopped'],
  ['running', 'power-reboot', 'stopped'],
  ['stopped', 'power-on', 'running'],
  ['stopped', 'provision-succeed', 'running'],
  ['stopped', 'change-password', 'stopped'],
  ['pending', 'create-failed', 'error'],
  ['stopped', 'provision-failed', 'error'],
  ['error', 'retry-provision-succeed', 'running'],
  ['stopped', 'delete', 'shutting-down'],
  ['error', 'retry-delete', 'shutting-down'],
  ['shutting-down', 'delete-failed', 'error'],
  ['shutting-down', 'delete-succeed', 'terminated'],
  // documented additions (docs/decisions.md)
  ['stopped', 'uninstall-succeed', 'stopped'],
  ['new', 'adopt-running', 'running'],
  ['new', 'adopt-stopped', 'stopped'],
];

describe('state machine', () => {
  it('has exactly the diagram edges', () => {
    expect(EDGES.map((e) => [e.from, e.event, e.to]).sort()).toEqual([...DIAGRAM].sort());
  });

  const froms: FromState[] = ['new', ...INSTANCE_STATES];
  for (const from of froms) {
    for (const event of STATE_EVENTS) {
      const expected = DIAGRAM.find(([f, e]) => f === from && e === event)?.[2];
      it(`${from} --${event}--> ${expected ?? 'refused'}`, () => {
        if (expected) {
          expect(transition(from, event)).toBe(expected);
          expect(canTransition(from, event)).toBe(true);
        } else {
          expect(canTransition(from, event)).toBe(false);
          let err: unknown;
          try {
            transition(from, event);
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(AgentError);
          expect((err as AgentError).code).toBe('AGENT_ERR_INVALID_TRANSITION');
        }
      });
    }
  }

  it('terminated is final', () => {
    for (const event of STATE_EVENTS) expect(canTransition('terminated', event)).toBe(false);
  });
});
