/**
 * Walks every (state, operation) pair of design.md section 3 against the real engine on the fake driver: whether the
 * operation is accepted (or refused with which code), and for accepted ones the outcome on success and on failure
 * (a fault injected into the simulated server), including the exact sequence of state edges taken, read from the
 * journal (test/helpers/engine.ts edgesOf). The expectations are transcribed from the design's table, not derived
 * from agent/operations/rules.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeFaults } from '../../../drivers/fake/lab.js';
import type { Instance, InstanceState } from '../../../agent/model.js';
import type { OsOperationName, PowerTarget } from '../../../agent/service.js';
import { edgesOf, sleep } from '../../helpers/engine.js';
import { ctx, IMAGE, IMAGE2, NETWORK, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

type Op = PowerTarget | OsOperationName | 'delete';
const OPS: Op[] = ['on', 'off', 'soft-off', 'reboot', 'soft-reboot', 'reinstall', 'switch-install', 'modify-ip', 'uninstall', 'change-password', 'retry', 'delete'];
const STATES: InstanceState[] = ['pending', 'running', 'stopped', 'shutting-down', 'terminated', 'error'];

type Refusal = 'AGENT_ERR_LOCKED' | 'AGENT_ERR_INVALID_TRANSITION' | 'noop';
interface Outcome {
  state: InstanceState;
  /** The exact state edges the operation took, in order (see `edgeList`). */
  edges: string[];
  op?: string | null;
  errorType?: string | null;
  power?: 'on' | 'off';
}
interface Expect {
  refuse?: Refusal;
  success?: Outcome;
  failure?: { fault: FakeFaults; outcome: Outcome };
}

const installFail: FakeFaults = { fail_install: 1 };

/** Edges as `from -event-> to`, with ` (cause)` unless the operation took it. */
const PD = 'pending -delete-> shutting-down';
const DS = 'shutting-down -delete-succeed-> terminated';
const DF = 'shutting-down -delete-failed-> error';
const OFF = 'running -power-off-> stopped';
const ON = 'stopped -power-on-> running';
const REBOOT = 'running -power-reboot-> stopped';
const SD = 'stopped -delete-> shutting-down';
const PS = 'stopped -provision-succeed-> running';
const PF = 'stopped -provision-failed-> error';
const US = 'stopped -uninstall-succeed-> stopped';
const CP = 'stopped -change-password-> stopped';

/** design.md section 3, row by row, with the exact state edges each outcome takes. */
const TABLE: Record<InstanceState, Partial<Record<Op, Expect>>> = {
  pending: {
    delete: { success: { state: 'terminated', power: 'off', edges: [PD, DS] }, failure: { fault: installFail, outcome: { state: 'error', errorType: 'delete_error', edges: [PD, DF] } } },
  },
  running: {
    on: { refuse: 'noop' },
    off: { success: { state: 'stopped', power: 'off', errorType: null, edges: [OFF] }, failure: { fault: { fail_power_off: 1 }, outcome: { state: 'running', errorType: 'power_off_error', edges: [] } } },
    'soft-off': { success: { state: 'stopped', power: 'off', edges: [OFF] }, failure: { fault: { fail_power_off: 1 }, outcome: { state: 'running', errorType: 'power_off_error', edges: [] } } },
    // A reboot is a verified off (PowerReboot), then a verified on (PowerOn); the on failing leaves it stopped.
    reboot: { success: { state: 'running', power: 'on', edges: [REBOOT, ON] }, failure: { fault: { fail_power_on: 1 }, outcome: { state: 'stopped', errorType: 'reboot_failed_error', edges: [REBOOT] } } },
    'soft-reboot': { success: { state: 'running', power: 'on', edges: [REBOOT, ON] }, failure: { fault: { fail_power_on: 1 }, outcome: { state: 'stopped', errorType: 'reboot_failed_error', edges: [REBOOT] } } },
    reinstall: { success: { state: 'running', op: 'reinstall-succeed', power: 'on', edges: [OFF, PS] }, failure: { fault: installFail, outcome: { state: 'error', op: 'reinstall-failed', errorType: 'install_error', power: 'off', edges: [OFF, PF] } } },
    'switch-install': { success: { state: 'running', op: 'switch-install-succeed', edges: [OFF, PS] }, failure: { fault: installFail, outcome: { state: 'error', op: 'switch-install-failed', errorType: 'install_error', edges: [OFF, PF] } } },
    'modify-ip': { success: { state: 'running', op: 'modify-ip-succeed', edges: [OFF, PS] }, failure: { fault: installFail, outcome: { state: 'error', op: 'modify-ip-failed', errorType: 'install_error', edges: [OFF, PF] } } },
    uninstall: { success: { state: 'stopped', op: 'uninstall-succeed', power: 'off', edges: [OFF, US] }, failure: { fault: installFail, outcome: { state: 'error', op: 'uninstall-failed', edges: [OFF, PF] } } },
    'change-password': { success: { state: 'stopped', power: 'off', errorType: null, edges: [OFF, CP] }, failure: { fault: installFail, outcome: { state: 'stopped', errorType: 'change_password_error', edges: [OFF] } } },
    retry: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    delete: { success: { state: 'terminated', edges: [OFF, SD, DS] }, failure: { fault: installFail, outcome: { state: 'error', errorType: 'delete_error', edges: [OFF, SD, DF] } } },
  },
  stopped: {
    on: { success: { state: 'running', power: 'on', edges: [ON] }, failure: { fault: { fail_power_on: 1 }, outcome: { state: 'stopped', errorType: 'power_on_error', edges: [] } } },
    off: { refuse: 'noop' },
    'soft-off': { refuse: 'noop' },
    reboot: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'soft-reboot': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    reinstall: { success: { state: 'running', op: 'reinstall-succeed', edges: [PS] }, failure: { fault: installFail, outcome: { state: 'error', op: 'reinstall-failed', edges: [PF] } } },
    'switch-install': { success: { state: 'running', op: 'switch-install-succeed', edges: [PS] }, failure: { fault: installFail, outcome: { state: 'error', op: 'switch-install-failed', edges: [PF] } } },
    'modify-ip': { success: { state: 'running', op: 'modify-ip-succeed', edges: [PS] }, failure: { fault: installFail, outcome: { state: 'error', op: 'modify-ip-failed', edges: [PF] } } },
    uninstall: { success: { state: 'stopped', op: 'uninstall-succeed', edges: [US] }, failure: { fault: installFail, outcome: { state: 'error', op: 'uninstall-failed', edges: [PF] } } },
    'change-password': { success: { state: 'stopped', edges: [CP] }, failure: { fault: installFail, outcome: { state: 'stopped', errorType: 'change_password_error', edges: [] } } },
    retry: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    delete: { success: { state: 'terminated', edges: [SD, DS] }, failure: { fault: installFail, outcome: { state: 'error', errorType: 'delete_error', edges: [SD, DF] } } },
  },
  'shutting-down': {},
  terminated: {
    on: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    off: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'soft-off': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    reboot: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'soft-reboot': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    reinstall: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'switch-install': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'modify-ip': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    uninstall: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'change-password': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    retry: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    delete: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
  },
  error: {
    // The instance entered error by a failed install, which ended with the node powered off (on_failure).
    on: { success: { state: 'error', power: 'on', errorType: 'install_error', edges: [] }, failure: { fault: { fail_power_on: 1 }, outcome: { state: 'error', errorType: 'install_error', power: 'off', edges: [] } } },
    off: { refuse: 'noop' },
    'soft-off': { refuse: 'noop' },
    reboot: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'soft-reboot': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    reinstall: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'switch-install': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'modify-ip': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    uninstall: { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    'change-password': { refuse: 'AGENT_ERR_INVALID_TRANSITION' },
    retry: { success: { state: 'running', op: 'install-succeed', errorType: null, power: 'on', edges: ['error -retry-provision-succeed-> running'] }, failure: { fault: installFail, outcome: { state: 'error', op: 'install-failed', errorType: 'install_error', edges: [] } } },
    delete: { success: { state: 'terminated', edges: ['error -retry-delete-> shutting-down', DS] }, failure: { fault: installFail, outcome: { state: 'error', errorType: 'delete_error', edges: ['error -retry-delete-> shutting-down', DF] } } },
  },
};
// pending and shutting-down hold their operation's lock: everything else is 409.
for (const op of OPS) {
  if (!TABLE.pending[op]) TABLE.pending[op] = { refuse: 'AGENT_ERR_LOCKED' };
  TABLE['shutting-down'][op] = { refuse: 'AGENT_ERR_LOCKED' };
}

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

async function bring(harness: Harness, state: InstanceState): Promise<Instance> {
  const e = harness.agent.engine;
  const lab = harness.agent.lab!;
  const node = nodeId(1);
  if (state === 'pending') lab.setFaults(node, { hang: true });
  if (state === 'error') lab.setFaults(node, { fail_install: 1 });
  const { instance } = await e.createInstance(ctx(), { name: 'walk', image_uuid: IMAGE, extra: { node_id: node } });
  if (state === 'pending') return e.getInstance(ctx(), instance.id);
  await e.idle();
  if (state === 'stopped' || state === 'shutting-down') {
    await e.setInstancePower(ctx(), instance.id, { target: 'off' });
    await e.idle();
  }
  if (state === 'terminated') {
    await e.deleteInstance(ctx(), instance.id);
    await e.idle();
  }
  if (state === 'shutting-down') {
    lab.setFaults(node, { hang: true });
    await e.deleteInstance(ctx(), instance.id);
  }
  const got = e.getInstance(ctx(), instance.id);
  expect(got.state).toBe(state);
  return got;
}

async function apply(harness: Harness, id: string, op: Op): Promise<{ accepted: boolean }> {
  const e = harness.agent.engine;
  if (op === 'delete') {
    await e.deleteInstance(ctx(), id);
    return { accepted: true };
  }
  if (['on', 'off', 'soft-off', 'reboot', 'soft-reboot'].includes(op)) return e.setInstancePower(ctx(), id, { target: op as PowerTarget });
  const params =
    op === 'switch-install'
      ? { image_uuid: IMAGE2 }
      : op === 'change-password'
        ? { password_hash: '$6$salt$hash' }
        : op === 'modify-ip'
          ? { networks: [{ uuid: NETWORK, fixed_ip: '127.0.2.50' }] }
          : {};
  await e.runOperation(ctx(), id, op as OsOperationName, params);
  return { accepted: true };
}

/** The edges `id` took after journal position `afterSeq`, as `from -event-> to` (with ` (cause)` unless 'operation'). */
function edgeList(harness: Harness, id: string, afterSeq: number): string[] {
  return edgesOf(harness, id, afterSeq).map((e) => `${e.from} -${e.event}-> ${e.to}${e.cause === 'operation' ? '' : ` (${e.cause})`}`);
}

function check(harness: Harness, inst: Instance, afterSeq: number, want: Outcome): void {
  expect(edgeList(harness, inst.id, afterSeq)).toEqual(want.edges);
  expect(inst.state).toBe(want.state);
  expect(inst.task).toBeNull();
  expect(inst.target_power_state).toBeNull();
  expect(inst.operation_state ?? '').not.toMatch(/-processing$/);
  if (want.op !== undefined) expect(inst.operation_state).toBe(want.op);
  if (want.errorType !== undefined) expect(inst.error?.error_type ?? null).toBe(want.errorType);
  if (want.power !== undefined) expect(inst.power_state).toBe(want.power);
}

describe('every (state, operation) pair of the design table', () => {
  for (const state of STATES) {
    for (const op of OPS) {
      const exp = TABLE[state][op];
      if (!exp) throw new Error(`table has no row for ${state} x ${op}`);
      if (exp.refuse) {
        it(`${state} x ${op}: ${exp.refuse === 'noop' ? 'already there: 202, nothing sent' : `refused ${exp.refuse}`}`, async () => {
          h = await startHarness();
          const inst = await bring(h, state);
          // "Nothing sent": no command other than the fresh power read that judged it.
          const sent = () => h!.agent.lab!.commands(nodeId(1)).filter((c) => c.op !== 'power.get').length;
          const before = sent();
          const actionsBefore = h.agent.store.listActions(inst.id).length;
          const seq = h.agent.store.lastSeq();
          if (exp.refuse === 'noop') {
            const res = await apply(h, inst.id, op);
            expect(res.accepted).toBe(false);
            expect(sent()).toBe(before);
          } else {
            await expect(apply(h, inst.id, op)).rejects.toMatchObject({ code: exp.refuse });
          }
          expect(h.agent.store.listActions(inst.id).length).toBe(actionsBefore);
          expect(edgeList(h, inst.id, seq)).toEqual([]);
          const after = h.agent.engine.getInstance(ctx(), inst.id);
          expect(after.state).toBe(inst.state);
          expect(after.task).toBe(inst.task);
        });
        continue;
      }
      it(`${state} x ${op}: success -> ${exp.success!.state}`, async () => {
        h = await startHarness();
        const inst = await bring(h, state);
        if (state === 'pending') h.agent.lab!.setFaults(nodeId(1), {});
        const seq = h.agent.store.lastSeq();
        await apply(h, inst.id, op);
        await h.agent.engine.idle();
        const after = h.agent.engine.getInstance(ctx(), inst.id);
        check(h, after, seq, exp.success!);
        const actions = h.agent.engine.listActions(ctx(), inst.id);
        const last = actions[actions.length - 1]!;
        expect(last.finish_time).not.toBeNull();
        expect(last.events.length).toBeGreaterThan(0);
        expect(last.events.every((e) => e.result === 'Success')).toBe(true);
        if (op === 'delete') expect(h.agent.store.getNode(nodeId(1))!.instance_id).toBeNull();
      });
      it(`${state} x ${op}: failure -> ${exp.failure!.outcome.state}`, async () => {
        h = await startHarness();
        const inst = await bring(h, state);
        h.agent.lab!.setFaults(nodeId(1), exp.failure!.fault);
        const seq = h.agent.store.lastSeq();
        await apply(h, inst.id, op);
        await h.agent.engine.idle();
        const after = h.agent.engine.getInstance(ctx(), inst.id);
        check(h, after, seq, exp.failure!.outcome);
        expect(after.error).not.toBeNull();
        expect(after.error!.error_msg).toMatch(/step '/);
        const actions = h.agent.engine.listActions(ctx(), inst.id);
        const last = actions[actions.length - 1]!;
        expect(last.finish_time).not.toBeNull();
        expect(last.events.some((e) => e.result === 'Error' && e.traceback)).toBe(true);
        if (op === 'delete') expect(h.agent.store.getNode(nodeId(1))!.instance_id).toBe(inst.id);
      });
    }
  }
});

describe('drift is its own edge', () => {
  it('a server switched off, then on, behind the agent: PowerOff then PowerOn, each with cause drift', async () => {
    h = await startHarness();
    const inst = await bring(h, 'running');
    const seq = h.agent.store.lastSeq();
    const server = h.agent.lab!.get(nodeId(1));
    await server.setPower('power-button', 'off');
    await sleep(20);
    await h.agent.engine.powerSyncOnce();
    await server.setPower('power-button', 'on');
    await sleep(20);
    await h.agent.engine.powerSyncOnce();
    expect(edgeList(h, inst.id, seq)).toEqual([`${OFF} (drift)`, `${ON} (drift)`]);
  });
});
