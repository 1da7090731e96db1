/**
 * What one power operation costs the store, in commits (group commit syncs the WAL once per loop turn for them all): counted through the
 * store's write hook (test/helpers/store-fault.ts CommitCounter), on the fake driver, in process, on a manual clock.
 * One on or off: the acceptance (before the 202), the step's start with its `sent` mark (before the command leaves),
 * and the step's close with the reading and the operation's end. A reboot is two such steps.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PowerTarget } from '../../../agent/service.js';
import { drive } from '../../helpers/engine.js';
import { ADOPTED_ID, ctx, nodeId, startHarness, type Harness } from '../../helpers/harness.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import type { StoreWriteOp } from '../../../agent/store/sqlite.js';
import { CommitCounter } from '../../helpers/store-fault.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** Runs one power request on the adopted instance to its end; returns the writes of each commit it made. */
async function commitsOf(harness: Harness, clock: ManualClock, counter: CommitCounter, target: PowerTarget): Promise<StoreWriteOp[][]> {
  const before = counter.count;
  const res = await harness.agent.engine.setInstancePower(ctx(), ADOPTED_ID, { target });
  expect(res.accepted).toBe(true);
  await drive(harness, clock);
  const action = harness.agent.store.getAction(res.action!.request_id)!;
  expect(action.message).toBeNull();
  expect(action.events.every((e) => e.result === 'Success' && e.finish_time !== null)).toBe(true);
  expect(action.plan?.data['0_sent']).toBe(true);
  return counter.commits.slice(before);
}

/** A power step's two commits: its start with the `sent` mark, then its close with the reading (and, last, the end). */
function expectStep(start: StoreWriteOp[], close: StoreWriteOp[], last: boolean): void {
  expect(start).toEqual(['appendActionEvent', 'appendJournal', 'setActionPlan']);
  expect(close.slice(0, 2)).toEqual(['updateActionEvent', 'appendJournal']);
  expect(close).toContain('putNode'); // the reading, on the node and the instance
  expect(close.includes('putAction')).toBe(last); // the action closed (finishSuccess)
}

describe('commits per power operation', () => {
  it('power off, then power on: 3 commits each (accept, start with sent, close with the end)', async () => {
    const clock = new ManualClock();
    const counter = new CommitCounter();
    h = await startHarness({ nodes: 0, adopt: true, clock, storeFault: counter });
    const off = await commitsOf(h, clock, counter, 'off');
    expect(off).toHaveLength(3);
    expect(off[0]).toContain('insertAction');
    expectStep(off[1]!, off[2]!, true);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'stopped', power_state: 'off', task: null, target_power_state: null });
    const on = await commitsOf(h, clock, counter, 'on');
    expect(on).toHaveLength(3);
    expectStep(on[1]!, on[2]!, true);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'running', power_state: 'on', task: null, target_power_state: null });
  });

  it('a reboot: 5 commits (accept, then per step its start with sent and its close; the last close ends it)', async () => {
    const clock = new ManualClock();
    const counter = new CommitCounter();
    h = await startHarness({ nodes: 0, adopt: true, clock, storeFault: counter });
    const reboot = await commitsOf(h, clock, counter, 'reboot');
    expect(reboot).toHaveLength(5);
    expectStep(reboot[1]!, reboot[2]!, false);
    expectStep(reboot[3]!, reboot[4]!, true);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'running', power_state: 'on', task: null });
  });
});

describe('reads per power operation', () => {
  it('power off: the rows read (each one a parse) are counted; the action is read only by this test', async () => {
    const clock = new ManualClock();
    h = await startHarness({ nodes: 0, adopt: true, clock });
    const store = h.agent.store;
    const reads = { instance: vi.spyOn(store, 'getInstance'), node: vi.spyOn(store, 'getNode'), action: vi.spyOn(store, 'getAction') };
    const res = await h.agent.engine.setInstancePower(ctx(), ADOPTED_ID, { target: 'off' });
    await drive(h, clock);
    expect(store.getAction(res.action!.request_id)!.finish_time).not.toBeNull();
    const counts = { instance: reads.instance.mock.calls.length, node: reads.node.mock.calls.length, action: reads.action.mock.calls.length };
    // The instance: at the request, at acceptance (passed on to the reading's record and the lock), for the node of
    // the step, in the reading's record, at the end. The node: at the request (for the BMC and the refusals), at
    // acceptance (passed on to the reading's record), for the BMC and the record of the command. The action: this
    // test's (the engine answers with the action as written).
    expect(counts).toEqual({ instance: 5, node: 4, action: 1 });
  });
});

describe("a power step's start", () => {
  it('fails before its command left (the BMC busy past the call deadline): its event opened and closed Error in one commit', async () => {
    const counter = new CommitCounter();
    // Every call waits out a 1 s gap after the previous one, beyond its 100 ms deadline: BMC_ERR_BUSY, nothing sent.
    h = await startHarness({ nodes: 0, adopt: true, storeFault: counter, editConfig: (y) => y.replace('bmc: {min_gap: 0ms}', 'bmc: {min_gap: 1s}').replace('bmc_call: 2s', 'bmc_call: 100ms') });
    const sets = () => h!.agent.lab!.commands(nodeId(1)).filter((x) => x.op === 'power.set').length;
    const sent = sets();
    const res = await h.agent.engine.setInstancePower(ctx(), ADOPTED_ID, { target: 'off' });
    expect(res.accepted).toBe(true);
    const before = counter.count;
    await h.agent.engine.idle();
    const action = h.agent.store.getAction(res.action!.request_id)!;
    expect(action.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Error']]);
    expect(action.events[0]!.traceback).toMatch(/BMC_ERR_BUSY/);
    expect(action.message).toMatch(/step 'power_off' failed/);
    expect(action.plan?.data['0_sent']).toBeUndefined();
    expect(sets()).toBe(sent);
    // The step's event (opened and closed), then the failure recorded.
    expect(counter.commits.slice(before).map((c) => c.filter((op) => op !== 'appendJournal'))).toEqual([
      ['appendActionEvent', 'setActionPlan', 'updateActionEvent'],
      ['putInstance', 'putAction'],
    ]);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'running', task: null, error: { error_type: 'power_off_error' } });
  });
});

