/** API behaviours that need the real service behind them (buildAgent with the fake lab, fastify inject). */
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, nodeId, startHarness, type Harness } from '../../helpers/harness.js';

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
