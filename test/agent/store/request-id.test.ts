/**
 * B8: a repeated request id never replaces an action. The REST API generates request ids server-side, so the repeat
 * can only come from inside (the upstream command id later); the engine refuses it with a 409 AGENT_ERR_CONFLICT
 * before anything is written, and the first action stays as it was.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../../agent/errors.js';
import { ctx, IMAGE, startHarness, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

async function refused(p: Promise<unknown>): Promise<AgentError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AgentError);
  expect((e as AgentError).code).toBe('AGENT_ERR_CONFLICT');
  expect((e as AgentError).status).toBe(409);
  return e as AgentError;
}

describe('a repeated request id', () => {
  it('is refused by every accepting path and leaves the first action and the instance untouched', async () => {
    h = await startHarness({ nodes: 2 });
    const engine = h.agent.engine;
    const store = h.agent.store;
    const c = ctx();
    const { instance } = await engine.createInstance(c, { name: 'vm1', image_uuid: IMAGE });
    await engine.idle();
    const first = store.getAction(c.request_id)!;
    expect(first.action).toBe('create');
    expect(first.finish_time).not.toBeNull();
    const instBefore = store.getInstance(instance.id)!;
    const seqBefore = store.lastSeq();
    const countBefore = store.listInstances().length;

    const again = { ...ctx(), request_id: c.request_id };
    const e = await refused(engine.setInstancePower(again, instance.id, { target: 'off' }));
    expect(e.message).toContain(c.request_id);
    await refused(engine.runOperation(again, instance.id, 'reinstall', {}));
    await refused(engine.deleteInstance(again, instance.id));
    await refused(engine.createInstance(again, { name: 'vm2', image_uuid: IMAGE }));
    await engine.idle();

    expect(store.getAction(c.request_id)).toStrictEqual(first);
    expect(store.getInstance(instance.id)).toStrictEqual(instBefore);
    expect(store.listInstances()).toHaveLength(countBefore);
    expect(store.lastSeq()).toBe(seqBefore);
    expect(engine.listActions(ctx(), instance.id)).toHaveLength(1);
    expect(h.agent.store.listNodes().filter((n) => n.instance_id !== null)).toHaveLength(1);

    // A fresh request id is accepted.
    expect((await engine.setInstancePower(ctx(), instance.id, { target: 'off' })).accepted).toBe(true);
  });
});
