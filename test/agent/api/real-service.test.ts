/** API behaviours that need the real service behind them (buildAgent with the fake lab, fastify inject). */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ADMIN_PROJECT,
  ADMIN_TOKEN,
  IMAGE,
  MEMBER_TOKEN,
  PROJECT,
  ctx,
  nodeId,
  startHarness,
  type Harness,
} from '../../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('PUT /v1/nodes/{id}/fake-faults against the real fake lab', () => {
  const put = (payload: unknown) =>
    h!.agent.api.inject({
      method: 'PUT',
      url: `/v1/nodes/${nodeId(1)}/fake-faults`,
      headers: { 'x-auth-token': ADMIN_TOKEN },
      payload: payload as object,
    });

  it.each([
    [{ power_get: 'timeout' }, 'body.power_get: must be boolean,integer'],
    [{ explode: true }, 'explode: unknown fault (known: unreachable'],
    [{ unreachable: 1 }, 'unreachable: expected true or false, got 1'],
    [{ fail_power_on: -1 }, 'fail_power_on: expected a whole number >= 0, got -1'],
    [{ fail_power_on: 1.5 }, 'body.fail_power_on: must be boolean,integer'],
    [{ fail_power_on: { n: 1 } }, 'body.fail_power_on: must be boolean,integer'],
    [{ ['k'.repeat(100)]: true }, 'must NOT have more than 64 characters'],
  ])('%j -> 400 naming the problem; faults unchanged', async (payload, needle) => {
    h = await startHarness({ nodes: 1 });
    expect((await put({ fail_install: 2 })).statusCode).toBe(204);
    const res = await put(payload);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toEqual({ error_code: 'AGENT_ERR_BAD_REQUEST', error_msg: expect.stringContaining(needle) });
    expect(res.json().error_msg).toMatch(/^Invalid input: /);
    expect(res.body).not.toContain('k'.repeat(65));
    expect(h.agent.lab!.server(nodeId(1)).faults()).toEqual({ fail_install: 2 });
  });

  it('valid faults are set (204) and {} clears them', async () => {
    h = await startHarness({ nodes: 1 });
    expect((await put({ unreachable: true, fail_power_off: 3 })).statusCode).toBe(204);
    expect(h.agent.lab!.server(nodeId(1)).faults()).toEqual({ unreachable: true, fail_power_off: 3 });
    expect((await put({})).statusCode).toBe(204);
    expect(h.agent.lab!.server(nodeId(1)).faults()).toEqual({});
  });
});

describe('errors as members and admins read them (real engine, fake BMC)', () => {
  it('a failed power off: members read the step and a reason, admins the BMC detail', async () => {
    h = await startHarness({ nodes: 1 });
    const { instance } = await h.agent.engine.createInstance(ctx('member'), { name: 'b11', image_uuid: IMAGE });
    await h.agent.engine.idle();
    h.agent.lab!.setFaults(nodeId(1), { fail_power_off: 1 });
    const off = await h.agent.api.inject({
      method: 'PUT',
      url: `/v1/instances/${instance.id}/states/power`,
      headers: { 'x-auth-token': MEMBER_TOKEN },
      payload: { target: 'power off' },
    });
    expect(off.statusCode, off.body).toBe(202);
    await h.agent.engine.idle();
    const raw = h.agent.store.getInstance(instance.id)!.error!;
    expect(raw.error_type).toBe('power_off_error');
    // The stored message carries BMC internals (node name or id, the driver's words): the case under test.
    expect(raw.error_msg).toContain(nodeId(1));

    const get = (token: string, url: string) => h!.agent.api.inject({ method: 'GET', url, headers: { 'x-auth-token': token } });
    const member = await get(MEMBER_TOKEN, `/v1/${PROJECT}/instances/${instance.id}/status`);
    expect(member.json().error.error_type).toBe('power_off_error');
    expect(member.json().error.error_msg).toMatch(/^step 'power_off' failed: the /);
    const actions = await get(MEMBER_TOKEN, `/v2/${PROJECT}/servers/${instance.id}/os-instance-actions`);
    expect(actions.json().instanceActions[0].message).toBe("step 'power_off' failed (an admin can see why)");
    for (const body of [member.body, actions.body]) {
      for (const word of ['node-01', nodeId(1), 'fake BMC', 'rejected', 'fail_power_off']) expect(body).not.toContain(word);
    }
    const admin = await get(ADMIN_TOKEN, `/v1/${ADMIN_PROJECT}/instances/${instance.id}/status`);
    expect(admin.json().error.error_msg).toBe(raw.error_msg);
  });
});
