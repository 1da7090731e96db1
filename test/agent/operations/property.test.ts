/**
 * Property: random sequences of REST API calls with random fake-driver failures never take an instance off the seed-003
 * diagram, never leave one `-processing` (or locked) once the agent is idle, and never run two operations on one
 * instance at once.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FakeFaults } from '../../../drivers/fake/lab.js';
import { INSTANCE_STATES } from '../../../agent/model.js';
import type { OsOperationName, PowerTarget } from '../../../agent/service.js';
import { transition, type FromState, type StateEvent } from '../../../agent/state-machine.js';
import { IMAGE, IMAGE2, MEMBER_TOKEN, NETWORK, PROJECT, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

const NODES = 3;

type Call =
  | { t: 'create'; node: number | null }
  | { t: 'power'; target: PowerTarget; which: number }
  | { t: 'op'; op: OsOperationName; which: number }
  | { t: 'delete'; which: number }
  | { t: 'fault'; node: number; faults: FakeFaults }
  | { t: 'wait'; ms: number }
  | { t: 'idle' };

const faultArb: fc.Arbitrary<FakeFaults> = fc.oneof(
  fc.constant({}),
  fc.record({ fail_install: fc.integer({ min: 1, max: 2 }) }),
  fc.record({ fail_power_on: fc.constant(1) }),
  fc.record({ fail_power_off: fc.constant(1) }),
  // A reboot is a verified off then on (the BMC's own reset is never sent): its failures come from these two.
  fc.record({ fail_power_off: fc.constant(1), fail_power_on: fc.constant(1) }),
  fc.record({ ignore_power: fc.constant(1) }),
  fc.constant({ unreachable: true }),
);

const callArb: fc.Arbitrary<Call> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('create' as const), node: fc.option(fc.integer({ min: 1, max: NODES }), { nil: null }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('power' as const), target: fc.constantFrom<PowerTarget>('on', 'off', 'soft-off', 'reboot', 'soft-reboot'), which: fc.nat(5) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('op' as const), op: fc.constantFrom<OsOperationName>('reinstall', 'switch-install', 'modify-ip', 'uninstall', 'change-password', 'retry'), which: fc.nat(5) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('delete' as const), which: fc.nat(5) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('fault' as const), node: fc.integer({ min: 1, max: NODES }), faults: faultArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'idle' as const }) },
);

/** Checks what must hold at every moment. */
function checkAlways(h: Harness): void {
  const store = h.agent.store;
  for (const inst of store.listInstances()) {
    expect(INSTANCE_STATES).toContain(inst.state);
    const open = store.listActions(inst.id).filter((a) => a.finish_time === null);
    expect(open.length, `instance ${inst.id} runs ${open.length} operations at once`).toBeLessThanOrEqual(1);
    if (inst.task === null) expect(open.length).toBe(0);
  }
  // Every state change in the journal is an edge of the diagram.
  for (const e of store.readJournal(1, 100_000)) {
    if (e.kind !== 'instance.state') continue;
    const d = e.data as { state: string; event: StateEvent; from?: FromState };
    expect(transition(d.from ?? 'new', d.event)).toBe(d.state);
  }
}

/** Checks what must hold once nothing runs. */
function checkIdle(h: Harness): void {
  for (const inst of h.agent.store.listInstances()) {
    expect(inst.task).toBeNull();
    expect(inst.target_power_state).toBeNull();
    expect(inst.operation_state ?? '').not.toMatch(/-processing$/);
    if (inst.state === 'pending' || inst.state === 'shutting-down') throw new Error(`instance ${inst.id} idle in ${inst.state}`);
  }
}

/** One call through the REST API (fastify inject: the real routes, auth and validation, no socket). */
async function perform(h: Harness, call: Call): Promise<void> {
  const live = h.agent.store.listInstances().filter((i) => i.state !== 'terminated');
  const pick = (n: number) => live[n % Math.max(1, live.length)];
  const api = async (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) => {
    const res = await h.agent.api.inject({ method, url, headers: { 'x-auth-token': MEMBER_TOKEN }, ...(payload !== undefined ? { payload: payload as object } : {}) });
    // Refusals (400/404/406/409) are part of the game; a 5xx is a bug.
    expect(res.statusCode, `${method} ${url} -> ${res.statusCode} ${res.body}`).toBeLessThan(500);
    return res;
  };
  const words: Record<PowerTarget, string> = { on: 'power on', off: 'power off', 'soft-off': 'soft power off', reboot: 'rebooting', 'soft-reboot': 'soft rebooting' };
  switch (call.t) {
    case 'create':
      await api('POST', `/v1/${PROJECT}/instances`, { name: 'p', image_uuid: IMAGE, ...(call.node ? { extra: { node_id: nodeId(call.node) } } : {}) });
      break;
    case 'power': {
      const i = pick(call.which);
      if (i) await api('PUT', `/v1/instances/${i.id}/states/power`, { target: words[call.target] });
      break;
    }
    case 'op': {
      const i = pick(call.which);
      const params =
        call.op === 'switch-install'
          ? { image_uuid: IMAGE2 }
          : call.op === 'change-password'
            ? { password_hash: '$6$x$y' }
            : call.op === 'modify-ip'
              ? { networks: [{ uuid: NETWORK }] }
              : {};
      if (i) await api('POST', `/v1/${PROJECT}/instances/${i.id}/actions`, { [call.op]: params });
      break;
    }
    case 'delete': {
      const i = pick(call.which);
      if (i) await api('DELETE', `/v1/${PROJECT}/instances/${i.id}`);
      break;
    }
    case 'fault':
      h.agent.lab!.setFaults(nodeId(call.node), call.faults);
      break;
    case 'wait':
      await new Promise((r) => setTimeout(r, call.ms));
      break;
    case 'idle':
      await h.agent.engine.idle();
      break;
  }
}

describe('random API sequences with random BMC failures', () => {
  it('keep every instance on the diagram, never -processing when idle, one operation at a time', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(callArb, { minLength: 5, maxLength: 25 }), async (calls) => {
        const h = await startHarness({ nodes: NODES, fake: '{power_delay: 2ms, install: 15ms}' });
        try {
          for (const call of calls) {
            await perform(h, call);
            checkAlways(h);
          }
          for (let n = 1; n <= NODES; n++) h.agent.lab!.setFaults(nodeId(n), {});
          await h.agent.engine.idle();
          checkAlways(h);
          checkIdle(h);
        } finally {
          await h.close();
        }
      }),
      { numRuns: 40 },
    );
  }, 180_000);
});
