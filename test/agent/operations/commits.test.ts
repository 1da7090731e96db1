/**
 * What one power operation costs the store, in commits (each one fsync with synchronous=FULL): counted through the
 * store's write hook (test/helpers/store-fault.ts CommitCounter), on the fake driver, in process, on a manual clock.
 * One on or off: the acceptance (before the 202), the step's start with its `sent` mark (before the command leaves),
 * and the step's close with the reading and the operation's end. A reboot is two such steps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PowerTarget } from '../../../agent/model.js';
import { drive } from '../../helpers/engine.js';
import { ADOPTED_ID, ctx, startHarness, type Harness } from '../../helpers/harness.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { CommitCounter } from '../../helpers/store-fault.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** Runs one power request on the adopted instance to its end; returns the commits it made and the action's events. */
async function commitsOf(harness: Harness, clock: ManualClock, counter: CommitCounter, target: PowerTarget): Promise<number> {
  const before = counter.count;
  const res = await harness.agent.engine.setInstancePower(ctx(), ADOPTED_ID, { target });
  expect(res.accepted).toBe(true);
  await drive(harness, clock);
  const action = harness.agent.store.getAction(res.action!.request_id)!;
  expect(action.message).toBeNull();
  expect(action.events.every((e) => e.result === 'Success' && e.finish_time !== null)).toBe(true);
  return counter.count - before;
}

describe('commits per power operation', () => {
  it('power off, then power on: 3 commits each (accept, start with sent, close with the end)', async () => {
    const clock = new ManualClock();
    const counter = new CommitCounter();
    h = await startHarness({ nodes: 0, adopt: true, clock, storeFault: counter });
    expect(await commitsOf(h, clock, counter, 'off')).toBe(6);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'stopped', power_state: 'off', task: null, target_power_state: null });
    expect(await commitsOf(h, clock, counter, 'on')).toBe(6);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'running', power_state: 'on', task: null, target_power_state: null });
  });

  it('a reboot: 5 commits (accept, then per step its start with sent and its close; the last close ends it)', async () => {
    const clock = new ManualClock();
    const counter = new CommitCounter();
    h = await startHarness({ nodes: 0, adopt: true, clock, storeFault: counter });
    expect(await commitsOf(h, clock, counter, 'reboot')).toBe(11);
    expect(h.agent.engine.getInstance(ctx(), ADOPTED_ID)).toMatchObject({ state: 'running', power_state: 'on', task: null });
  });
});
