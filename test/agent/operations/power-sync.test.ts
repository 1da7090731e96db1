/**
 * Power sync and adoption: drift follows the diagram's PowerOff/PowerOn edges with cause `drift`; N failed reads
 * make power `unknown` with bmc_unreachable_error without moving `state` (unknown is never taken for off); a good
 * read clears it; an adoption waits for a verified power read.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runningInstance, sleep } from '../../helpers/engine.js';
import { ADOPTED_ID, PROJECT, ctx, nodeId, startHarness, type Harness } from '../../helpers/harness.js';
import type { StoreWriteOp } from '../../../agent/store/sqlite.js';
import { ADOPTIONS_PER_COMMIT } from '../../../agent/operations/power-sync.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

function stateEvents(harness: Harness, id: string) {
  return harness.agent.store.readJournal(1, 10_000).filter((e) => e.kind === 'instance.state' && e.instance_id === id);
}

describe('power sync', () => {
  it('follows a server switched off behind its back (PowerOff edge, cause drift), then on again (PowerOn)', async () => {
    h = await startHarness();
    const id = await runningInstance(h, 'sync');
    await h.agent.lab!.get(nodeId(1)).setPower('power-button', 'off');
    await sleep(20);
    await h.agent.engine.powerSyncOnce();
    let inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst.state).toBe('stopped');
    expect(inst.power_state).toBe('off');
    expect(stateEvents(h, id).at(-1)).toMatchObject({ cause: 'drift', data: { state: 'stopped', event: 'power-off', from: 'running' } });

    await h.agent.lab!.get(nodeId(1)).setPower('power-button', 'on');
    await sleep(20);
    await h.agent.engine.powerSyncOnce();
    inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst.state).toBe('running');
    expect(stateEvents(h, id).at(-1)).toMatchObject({ cause: 'drift', data: { state: 'running', event: 'power-on' } });
  });

  it('marks power unknown after N failed reads without moving state, and clears it on the next good read', async () => {
    h = await startHarness();
    const id = await runningInstance(h, 'sync');
    h.agent.lab!.setFaults(nodeId(1), { unreachable: true });
    await h.agent.engine.powerSyncOnce();
    let inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst.power_state).toBe('on'); // one failure is not enough (failures_before_unknown: 2)
    expect(inst.error).toBeNull();
    await h.agent.engine.powerSyncOnce();
    inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst.power_state).toBe('unknown');
    expect(inst.state).toBe('running');
    expect(inst.error).toMatchObject({ error_type: 'bmc_unreachable_error', error_code: 'BMC_ERR_UNREACHABLE' });
    expect(h.agent.store.getNode(nodeId(1))!.last_error?.error_type).toBe('bmc_unreachable_error');
    await h.agent.engine.powerSyncOnce();
    expect(h.agent.engine.getInstance(ctx(), id).state).toBe('running'); // unknown is never taken for off

    h.agent.lab!.setFaults(nodeId(1), {});
    await h.agent.engine.powerSyncOnce();
    inst = h.agent.engine.getInstance(ctx(), id);
    expect(inst.power_state).toBe('on');
    expect(inst.error).toBeNull();
    expect(h.agent.store.getNode(nodeId(1))!.last_error).toBeNull();
  });
});

describe('adoption', () => {
  it('adopts a node already running a tenant OS from a verified power read, with no install', async () => {
    h = await startHarness({ adopt: true });
    const inst = h.agent.engine.getInstance(ctx(), ADOPTED_ID);
    expect(inst).toMatchObject({ state: 'running', power_state: 'on', operation_state: null, name: 'Testvm1' });
    expect(inst.addresses[0]).toMatchObject({ addr: '127.0.2.2', mac: 'fa:16:3e:1c:d0:5b', type: 'fixed', network: 'private' });
    const node = h.agent.store.getNode(nodeId(4))!;
    expect(node.instance_id).toBe(ADOPTED_ID);
    // No install ran: no boot device, no installer.
    expect(h.agent.lab!.commands(nodeId(4)).filter((c) => c.op !== 'power.get')).toEqual([]);
    const actions = h.agent.engine.listActions(ctx(), ADOPTED_ID);
    expect(actions.map((a) => a.action)).toEqual(['adopt']);
    expect(actions[0]!.events.map((e) => [e.event, e.result])).toEqual([['read_power', 'Success']]);
  });

  it('waits while the BMC cannot be read (the node shows the error), then adopts on the next good read', async () => {
    h = await startHarness({ adopt: true, adoptFake: '{power_delay: 5ms, initial_power: "off", os_installed: debian-12, faults: {unreachable: true}}' });
    expect(() => h!.agent.engine.getInstance(ctx(), ADOPTED_ID)).toThrow(/could not be found/);
    expect(h.agent.store.getNode(nodeId(4))!.last_error?.error_type).toBe('bmc_unreachable_error');
    h.agent.lab!.setFaults(nodeId(4), {});
    await h.agent.engine.powerSyncOnce();
    const inst = h.agent.engine.getInstance(ctx(), ADOPTED_ID);
    expect(inst).toMatchObject({ state: 'stopped', power_state: 'off' });
    expect(h.agent.store.getNode(nodeId(4))!.last_error).toBeNull();
  });

  it('adopts the waiting nodes of a start ADOPTIONS_PER_COMMIT per commit, not one per node', async () => {
    const M = ADOPTIONS_PER_COMMIT + 8;
    const adopted = (k: number) => `cbce6087-6156-453c-a512-${String(k).padStart(12, '0')}`;
    const more = Array.from({ length: M }, (_, k) => {
      const i = 10 + k;
      return `  - id: ${nodeId(i)}
    name: node-${i}
    type: large
    macs: [{mac: "fa:16:3e:00:00:${i}", pxe: true}]
    bmc: {driver: fake, address: "fake://node-${i}", fake: {power_delay: 1ms, initial_power: "${k % 2 ? 'on' : 'off'}", os_installed: debian-12}}
    adopt:
      instance_id: ${adopted(k)}
      project_id: ${PROJECT}
      user_id: u
      name: vm-${i}
      addresses: [{addr: 127.0.2.${i}, mac: "fa:16:3e:00:01:${i}", version: 4, type: fixed, network: private}]`;
    });
    const writes: [StoreWriteOp, number][] = [];
    h = await startHarness({ editConfig: (yaml) => `${yaml}${more.join('\n')}\n`, storeFault: { beforeWrite: (op, at) => void writes.push([op, at.transaction]) } });
    for (let k = 0; k < M; k++) {
      expect(h.agent.engine.getInstance(ctx(), adopted(k))).toMatchObject({ state: k % 2 ? 'running' : 'stopped', node_id: nodeId(10 + k) });
    }
    const commits = new Set(writes.filter(([op]) => op === 'putInstance').map(([, t]) => t));
    expect(writes.filter(([op]) => op === 'putInstance')).toHaveLength(M);
    expect(commits.size).toBe(2);
  });
});
