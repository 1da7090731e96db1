/**
 * A failed delete ends with the node powered off (a deleted tenant's OS must not keep running) unless config
 * `on_failure: leave`; the power-off is its own recorded step, `power_off_after_failure`. Asserted on what the fake
 * BMC received, not only on the store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ctx, IMAGE, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** A running instance on node 1 whose delete fails at the wipe (the installer reports a disk write error). */
async function failedDelete(onFailure: 'power_off' | 'leave'): Promise<{ id: string; sentFrom: number }> {
  h = await startHarness({ nodes: 1, extra: `on_failure: ${onFailure}` });
  const e = h.agent.engine;
  const { instance } = await e.createInstance(ctx(), { name: 'gone', image_uuid: IMAGE });
  await e.idle();
  expect(e.getInstance(ctx(), instance.id).state).toBe('running');
  const sentFrom = h.agent.lab!.commands(nodeId(1)).length;
  h.agent.lab!.setFaults(nodeId(1), { fail_install: 1 });
  await e.deleteInstance(ctx(), instance.id);
  await e.idle();
  return { id: instance.id, sentFrom };
}

/** The power commands the BMC received since `from`, as `op:arg`. */
function powerSent(harness: Harness, from: number): string[] {
  return harness.agent.lab!.commands(nodeId(1)).slice(from).filter((c) => c.op === 'power.set').map((c) => `${c.arg ?? ''}:${c.outcome}`);
}

describe('a failed delete', () => {
  it('powers the node off after the failed wipe (on_failure: power_off), as its own step', async () => {
    const { id, sentFrom } = await failedDelete('power_off');
    const harness = h!;
    const inst = harness.agent.engine.getInstance(ctx(), id);
    expect(inst.state).toBe('error');
    expect(inst.error?.error_type).toBe('delete_error');
    expect(inst.error?.error_msg).toMatch(/^step 'wipe' failed/);
    // off (before the wipe), on (to boot the ramdisk), then off again after the wipe failed.
    expect(powerSent(harness, sentFrom)).toEqual(['off:ok', 'on:ok', 'off:ok']);
    expect(harness.agent.lab!.snapshot(nodeId(1)).power).toBe('off');
    expect(inst.power_state).toBe('off');
    const action = harness.agent.engine.listActions(ctx(), id).find((a) => a.action === 'delete')!;
    const events = action.events.map((ev) => `${ev.event}:${ev.result ?? ''}`);
    expect(events.slice(-2)).toEqual(['wipe:Error', 'power_off_after_failure:Success']);
    expect(action.message).toMatch(/^step 'wipe' failed/);
  });

  it('leaves the node as it is with on_failure: leave (nothing sent after the failure)', async () => {
    const { id, sentFrom } = await failedDelete('leave');
    const harness = h!;
    const inst = harness.agent.engine.getInstance(ctx(), id);
    expect(inst.state).toBe('error');
    expect(inst.error?.error_type).toBe('delete_error');
    expect(powerSent(harness, sentFrom)).toEqual(['off:ok', 'on:ok']);
    expect(harness.agent.lab!.snapshot(nodeId(1)).power).toBe('on');
    const action = harness.agent.engine.listActions(ctx(), id).find((a) => a.action === 'delete')!;
    expect(action.events.map((ev) => ev.event)).not.toContain('power_off_after_failure');
  });
});
