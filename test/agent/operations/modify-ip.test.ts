/**
 * modify-ip (issue 5 B1): a bad address is 400 and an address in use is 409 at acceptance, before anything is
 * touched; the new addresses are reserved while the operation runs and become the instance's only when it succeeds;
 * a failure releases them and names the step that failed.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import { ctx, IMAGE, NETWORK, nodeId, startHarness, writeConfig, type Harness } from '../../helpers/harness.js';

let h: Harness | null = null;
let own: Agent | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
  await own?.stop();
  own = null;
});

/** Two running instances, on node 1 and node 2. */
async function twoRunning(harness: Harness): Promise<{ a: string; b: string }> {
  const e = harness.agent.engine;
  const { instance: a } = await e.createInstance(ctx(), { name: 'a', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
  const { instance: b } = await e.createInstance(ctx(), { name: 'b', image_uuid: IMAGE, extra: { node_id: nodeId(2) } });
  await e.idle();
  return { a: a.id, b: b.id };
}

const modify = (fixedIp: string) => ({ networks: [{ uuid: NETWORK, fixed_ip: fixedIp }] });

describe('modify-ip acceptance', () => {
  const refusals: [string, string, string, RegExp][] = [
    ['an address that is not an IP', 'not-an-ip', 'AGENT_ERR_BAD_REQUEST', /^networks\[0\]\.fixed_ip: /],
    ['an address outside the network', '10.9.9.9', 'AGENT_ERR_BAD_REQUEST', /^networks\[0\]\.fixed_ip: 10\.9\.9\.9 is outside network private \(127\.0\.2\.0\/24\)/],
    ['an address of the other family', 'fd00::5', 'AGENT_ERR_BAD_REQUEST', /^networks\[0\]\.fixed_ip: .* is outside network private/],
    ['an address in use by another instance', 'B', 'AGENT_ERR_CONFLICT', /is in use/],
  ];
  for (const [what, ip, code, message] of refusals) {
    it(`${what} is refused (${code}) and nothing is touched`, async () => {
      h = await startHarness({ nodes: 2 });
      const e = h.agent.engine;
      const { a, b } = await twoRunning(h);
      const before = h.agent.store.getInstance(a)!;
      const sent = h.agent.lab!.commands(nodeId(1)).length;
      const fixed = ip === 'B' ? h.agent.store.getInstance(b)!.addresses[0]!.addr : ip;
      await expect(e.runOperation(ctx(), a, 'modify-ip', modify(fixed))).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
      const after = h.agent.store.getInstance(a)!;
      expect(after).toEqual(before);
      expect(h.agent.store.listActions(a)).toHaveLength(1);
      await e.idle();
      expect(h.agent.lab!.commands(nodeId(1)).length).toBe(sent);
    });
  }
});

describe('modify-ip addresses', () => {
  it('are reserved while it runs and become the instance’s only when it succeeds', async () => {
    h = await startHarness({ nodes: 2 });
    const e = h.agent.engine;
    const { a, b } = await twoRunning(h);
    const old = h.agent.store.getInstance(a)!.addresses;
    await e.runOperation(ctx(), a, 'modify-ip', modify('127.0.2.77'));
    // Running: the instance still shows its old addresses, and nobody else can take the new one.
    expect(h.agent.store.getInstance(a)!.task).toBe('modify-ip');
    expect(h.agent.store.getInstance(a)!.addresses).toEqual(old);
    await expect(e.runOperation(ctx(), b, 'modify-ip', modify('127.0.2.77'))).rejects.toMatchObject({ code: 'AGENT_ERR_CONFLICT' });
    await e.idle();
    const done = h.agent.store.getInstance(a)!;
    expect(done.operation_state).toBe('modify-ip-succeed');
    expect(done.addresses.map((x) => [x.addr, x.network_uuid])).toEqual([['127.0.2.77', NETWORK]]);
    expect(done.networks).toEqual([{ uuid: NETWORK }]);
    // The outbox carries the change, so the controller hears of the new address.
    const changes = h.agent.store.readJournal(1, 100_000).filter((j) => j.instance_id === a && j.kind === 'instance.addresses');
    expect(changes.map((j) => (j.data['addresses'] as { addr: string }[]).map((x) => x.addr))).toEqual([['127.0.2.77']]);
    // The old address is free again.
    await e.runOperation(ctx(), b, 'modify-ip', modify(old[0]!.addr));
    await e.idle();
    expect(h.agent.store.getInstance(b)!.addresses[0]!.addr).toBe(old[0]!.addr);
  });

  it('are released when it fails, the old ones kept, and the failure names its step; retry re-runs the same request', async () => {
    h = await startHarness({ nodes: 2 });
    const e = h.agent.engine;
    const { a, b } = await twoRunning(h);
    const old = h.agent.store.getInstance(a)!.addresses;
    h.agent.lab!.setFaults(nodeId(1), { fail_install: 1 });
    await e.runOperation(ctx(), a, 'modify-ip', modify('127.0.2.77'));
    await e.idle();
    const failed = h.agent.store.getInstance(a)!;
    expect(failed.state).toBe('error');
    expect(failed.operation_state).toBe('modify-ip-failed');
    expect(failed.error?.error_msg).toMatch(/^step 'deploy' failed/);
    expect(failed.addresses).toEqual(old);
    // Released: another instance may take it now (and then a retry of the first is refused at acceptance).
    await e.runOperation(ctx(), b, 'modify-ip', modify('127.0.2.77'));
    await expect(e.runOperation(ctx(), a, 'retry', {})).rejects.toMatchObject({ code: 'AGENT_ERR_CONFLICT' });
    await e.idle();
    // b moves on: the retry gets the address it asked for.
    await e.runOperation(ctx(), b, 'modify-ip', modify('127.0.2.78'));
    await e.idle();
    await e.runOperation(ctx(), a, 'retry', {});
    await e.idle();
    const retried = h.agent.store.getInstance(a)!;
    expect(retried.state).toBe('running');
    expect(retried.operation_state).toBe('modify-ip-succeed');
    expect(retried.addresses.map((x) => x.addr)).toEqual(['127.0.2.77']);
  });

  it('a failure outside any BMC step (a store write) names the step, never the generic operation', async () => {
    // Fails the second instance write after it is armed: the first is the acceptance, the second the recording of
    // the operation's parameters before the ramdisk boot.
    let armed = false;
    let writes = 0;
    const { configPath } = writeConfig({ nodes: 1 });
    own = await buildAgent(loadConfigFile(configPath), {
      log: pino({ level: 'silent' }),
      storeFault: {
        beforeWrite(op) {
          if (armed && op === 'putInstance' && ++writes === 2) throw new Error('disk I/O error');
        },
      },
    });
    await own.start();
    const e = own.engine;
    const { instance } = await e.createInstance(ctx(), { name: 'a', image_uuid: IMAGE });
    await e.idle();
    await e.setInstancePower(ctx(), instance.id, { target: 'off' });
    await e.idle();
    armed = true;
    await e.runOperation(ctx(), instance.id, 'modify-ip', modify('127.0.2.77'));
    await e.idle();
    const failed = own.store.getInstance(instance.id)!;
    expect(failed.task).toBeNull();
    expect(failed.operation_state).toBe('modify-ip-failed');
    expect(failed.error?.error_msg).toMatch(/^step 'record_parameters' failed: /);
    expect(own.store.listActions(instance.id).at(-1)!.message).toMatch(/^step 'record_parameters' failed: /);
  });
});
