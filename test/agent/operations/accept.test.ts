/**
 * Accept, commit, launch (issue 6 item 2): acceptance writes inside the transaction its caller holds, and the plan is
 * launched only once that transaction commits (Store.afterCommit). So a caller can record something of its own (the
 * upstream command's id, later) and accept the operation in one commit: both or neither, and a rolled-back
 * acceptance never reaches the BMC.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runningInstance } from '../../helpers/engine.js';
import { ctx, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('accept in the caller\'s transaction, launch after its commit', () => {
  it('a rollback after acceptance leaves neither the caller\'s record nor the action, and nothing is sent', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const { store, engine, lab } = h.agent;
    const sent = lab!.commands(nodeId(1)).length;
    const c = ctx();
    expect(() =>
      store.transaction(() => {
        store.setMeta('command:c-1', c.request_id);
        engine.acceptor.osOperation(c, id, 'reinstall', {});
        throw new Error('the caller fails after accepting');
      }),
    ).toThrow('the caller fails after accepting');
    await engine.idle();
    expect(store.getMeta('command:c-1')).toBeNull();
    expect(store.getAction(c.request_id)).toBeNull();
    expect(engine.getInstance(ctx(), id)).toMatchObject({ state: 'running', task: null, task_request_id: null, operation_state: 'install-succeed' });
    // What the BMC saw: nothing.
    expect(lab!.commands(nodeId(1)).length).toBe(sent);
  });

  it('the plan starts only once the transaction commits: no step inside it, its step after', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const { store, engine, lab } = h.agent;
    const sent = lab!.commands(nodeId(1)).length;
    const c = ctx();
    let inside = -1;
    store.transaction(() => {
      store.setMeta('command:c-2', c.request_id);
      engine.acceptor.power(c, id, 'power-off', 'on', 1000);
      inside = store.getAction(c.request_id)!.events.length;
    });
    expect(inside).toBe(0);
    expect(store.getMeta('command:c-2')).toBe(c.request_id);
    // The launch ran as the commit returned; the power step's event opens as its command is handed to the driver.
    await engine.idle();
    expect(store.getAction(c.request_id)!.events.map((e) => [e.event, e.result])).toEqual([['power_off', 'Success']]);
    expect(lab!.commands(nodeId(1)).slice(sent).filter((x) => x.op === 'power.set').map((x) => x.arg)).toEqual(['off']);
    expect(engine.getInstance(ctx(), id)).toMatchObject({ state: 'stopped', task: null });
  });
});
