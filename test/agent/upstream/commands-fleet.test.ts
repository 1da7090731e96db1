/**
 * The node and catalogue commands (agent/upstream/commands-fleet.ts) on a real agent with the fake lab: node power
 * and maintenance through the REST code path; enrolment by the config file's node rules; removal of a free node
 * only; adoption completed by power sync. The catalogue ops: commands-catalogue.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandBody } from '../../../agent/upstream/protocol.js';
import { powerSets, runningInstance } from '../../helpers/engine.js';
import { nodeId, PROJECT, startHarness, type Harness } from '../../helpers/harness.js';
import { command, handlerOf, result } from './command-helpers.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const NEW_NODE = '1b8c5f0e-0000-4000-8000-0000000000a1';
const ADOPT_ID = 'cbce6087-6156-453c-a512-60bf3d75d6a0';

function enrolBody(over: Record<string, unknown> = {}, bmc: Record<string, unknown> = {}): CommandBody {
  return {
    op: 'node.enrol',
    node: {
      id: NEW_NODE,
      name: 'node-a1',
      type: 'small',
      macs: [{ mac: 'FA:16:3E:00:00:A1', pxe: true }],
      bmc: { driver: 'fake', address: 'fake://node-a1', ...bmc },
      ...over,
    },
  } as CommandBody;
}

function journalAfter(h: Harness, seq: number): { kind: string; node_id: string | null; cause: string; data: Record<string, unknown> }[] {
  return h.agent.store.readJournal(seq + 1, 1000);
}

describe('node.power and node.maintenance: the REST code path', () => {
  it('node.power on a free node: accepted; the command is sent; node.power events carry request_id = command_id', async () => {
    h = await startHarness({ nodes: 2 });
    const handler = handlerOf(h.agent);
    const seq = h.agent.store.lastSeq();
    const sent = powerSets(h, nodeId(2)).length;
    const cmd = command({ op: 'node.power', node_id: nodeId(2), target: 'on' });
    expect(await result(handler, cmd)).toMatchObject({ status: 'accepted', request_id: cmd.command_id, node_id: nodeId(2), instance_id: null, already: false });
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(2)).slice(sent)).toEqual(['on']);
    expect(h.agent.store.getNode(nodeId(2))).toMatchObject({ power_state: 'on', target_power_state: null });
    expect(journalAfter(h, seq).some((e) => e.kind === 'node.power' && e.data['request_id'] === cmd.command_id)).toBe(true);
    // Already on: accepted, already, nothing sent.
    const again = command({ op: 'node.power', node_id: nodeId(2), target: 'on' });
    expect(await result(handler, again)).toMatchObject({ status: 'accepted', request_id: null, already: true });
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(2)).slice(sent)).toEqual(['on']);
  });

  it('node.power on a node holding an instance: the instance\'s power operation, its action under the command id', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const cmd = command({ op: 'node.power', node_id: nodeId(1), target: 'off' });
    expect(await result(handlerOf(h.agent), cmd)).toMatchObject({ status: 'accepted', request_id: cmd.command_id, instance_id: id, node_id: nodeId(1) });
    expect(h.agent.store.getAction(cmd.command_id)).toMatchObject({ action: 'stop', instance_id: id });
    await h.agent.engine.idle();
  });

  it('node.maintenance: done, journalled; then an instance command on the node is refused MAINTENANCE', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    const seq = h.agent.store.lastSeq();
    const cmd = command({ op: 'node.maintenance', node_id: nodeId(1), maintenance: true, reason: 'DIMM replacement' });
    expect(await result(handler, cmd)).toMatchObject({ status: 'done', node_id: nodeId(1), instance_id: id });
    expect(h.agent.store.getNode(nodeId(1))).toMatchObject({ maintenance: true, maintenance_reason: 'DIMM replacement' });
    expect(journalAfter(h, seq).map((e) => [e.kind, e.data])).toEqual([['node.maintenance', { maintenance: true, reason: 'DIMM replacement' }]]);
    const power = await result(handler, command({ op: 'instance.power', instance_id: id, target: 'reboot' }));
    expect(power).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_MAINTENANCE', retryable: true } });
  });
});

describe('node.enrol, node.remove', () => {
  it('enrols a node as the config file gives it (source controller, cause upstream), then removes it', async () => {
    h = await startHarness({ nodes: 1 });
    const handler = handlerOf(h.agent);
    const seq = h.agent.store.lastSeq();
    const cmd = command(enrolBody({}, { password_file: '/run/credentials/node-a1' }));
    expect(await result(handler, cmd)).toMatchObject({ status: 'done', node_id: NEW_NODE, error: null });
    const node = h.agent.store.getNode(NEW_NODE)!;
    // The loader's resolution: MAC lower case, the defaults, the drivers list.
    expect(node).toMatchObject({ name: 'node-a1', source: 'controller', boot_mode: 'uefi', maintenance: false, macs: [{ mac: 'fa:16:3e:00:00:a1', pxe: true }] });
    expect(node.bmc).toMatchObject({ drivers: ['fake'], address: 'fake://node-a1', password_file: '/run/credentials/node-a1' });
    expect(journalAfter(h, seq).map((e) => [e.kind, e.node_id, e.cause])).toEqual([['node.enrolled', NEW_NODE, 'upstream']]);

    const seq2 = h.agent.store.lastSeq();
    const rm = command({ op: 'node.remove', node_id: NEW_NODE });
    expect(await result(handler, rm)).toMatchObject({ status: 'done', node_id: NEW_NODE });
    expect(h.agent.store.getNode(NEW_NODE)).toBeNull();
    expect(journalAfter(h, seq2).map((e) => [e.kind, e.node_id, e.data])).toEqual([['node.removed', NEW_NODE, { name: 'node-a1' }]]);
  });

  it('refuses by the node rules: a password key, a relative password_file, a taken name or MAC, two pxe MACs', async () => {
    h = await startHarness({ nodes: 1 });
    const handler = handlerOf(h.agent);
    const cases: [CommandBody, string, RegExp][] = [
      [enrolBody({}, { password: 'hunter2' }), 'AGENT_ERR_BAD_REQUEST', /node\.bmc\.password/],
      [enrolBody({}, { password_file: 'creds/node-a1' }), 'AGENT_ERR_BAD_REQUEST', /absolute/],
      [enrolBody({ name: 'node-01' }), 'AGENT_ERR_CONFLICT', /node name node-01/],
      [enrolBody({ macs: [{ mac: 'fa:16:3e:00:00:01', pxe: true }] }), 'AGENT_ERR_CONFLICT', /MAC fa:16:3e:00:00:01/],
      [enrolBody({ id: nodeId(1), name: 'other' , macs: [{ mac: 'fa:16:3e:00:00:b1', pxe: true }] }), 'AGENT_ERR_CONFLICT', /already enrolled/],
      [enrolBody({ macs: [{ mac: 'fa:16:3e:00:00:b1', pxe: true }, { mac: 'fa:16:3e:00:00:b2', pxe: true }] }), 'AGENT_ERR_BAD_REQUEST', /node\.macs: exactly one MAC/],
    ];
    for (const [body, code, message] of cases) {
      const r = await result(handler, command(body));
      expect(r).toMatchObject({ status: 'refused', error: { code } });
      expect(r.error!.message).toMatch(message);
      expect(r.error!.message).not.toContain('hunter2');
    }
    expect(h.agent.store.getNode(NEW_NODE)).toBeNull();
  });

  it('removal is refused for a config node, an unknown node and a node holding an instance', async () => {
    h = await startHarness({ nodes: 1 });
    const handler = handlerOf(h.agent);
    expect(await result(handler, command({ op: 'node.remove', node_id: nodeId(1) }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_BAD_REQUEST' } });
    expect(h.agent.store.getNode(nodeId(1))).not.toBeNull();
    expect(await result(handler, command({ op: 'node.remove', node_id: nodeId(9) }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_NOT_FOUND' } });
    await result(handler, command(enrolBody()));
    const created = await result(handler, command({ op: 'instance.create', project_id: PROJECT, user_id: 'u', instance: { name: 'on-a1', image_uuid: '1fd5ab9b-1769-4dd5-b0bd-e075614cc866', extra: { node_id: NEW_NODE } } }));
    expect(created.status).toBe('accepted');
    await h.agent.engine.idle();
    expect(await result(handler, command({ op: 'node.remove', node_id: NEW_NODE }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_CONFLICT' } });
    expect(h.agent.store.getNode(NEW_NODE)).not.toBeNull();
  });
});

describe('node.adopt', () => {
  it('sets the adoption; power sync completes it from a verified read (running)', async () => {
    h = await startHarness({ nodes: 2, fakeFor: (i) => (i === 2 ? '{power_delay: 5ms, install: 30ms, initial_power: "on"}' : undefined) });
    const handler = handlerOf(h.agent);
    const cmd = command({
      op: 'node.adopt',
      node_id: nodeId(2),
      adopt: { instance_id: ADOPT_ID, project_id: PROJECT, user_id: 'u', name: 'legacy', addresses: [{ addr: '127.0.2.50', mac: 'fa:16:3e:00:00:02', network: 'private' }] },
    });
    expect(await result(handler, cmd)).toMatchObject({ status: 'accepted', request_id: cmd.command_id, node_id: nodeId(2), instance_id: ADOPT_ID });
    expect(h.agent.store.getNode(nodeId(2))!.adopt).toMatchObject({ instance_id: ADOPT_ID, addresses: [{ addr: '127.0.2.50', version: 4, type: 'fixed' }] });
    await h.agent.engine.powerSyncOnce();
    expect(h.agent.store.getInstance(ADOPT_ID)).toMatchObject({ state: 'running', node_id: nodeId(2), project_id: PROJECT });
    expect(h.agent.store.getAction(cmd.command_id)).toMatchObject({ action: 'adopt', instance_id: ADOPT_ID, message: null });
    // The address is held now: a second adoption of it elsewhere is refused.
    const again = await result(handler, command({ op: 'node.adopt', node_id: nodeId(1), adopt: { instance_id: 'cbce6087-6156-453c-a512-60bf3d75d6a1', project_id: PROJECT, user_id: 'u', name: 'x', addresses: [{ addr: '127.0.2.50', mac: 'fa:16:3e:00:00:01', network: 'private' }] } }));
    expect(again).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_CONFLICT' } });
  });

  it('refuses an address outside its network and an unknown network, by the config rules', async () => {
    h = await startHarness({ nodes: 1 });
    const r = await result(handlerOf(h.agent), command({ op: 'node.adopt', node_id: nodeId(1), adopt: { instance_id: ADOPT_ID, project_id: PROJECT, user_id: 'u', name: 'x', addresses: [{ addr: '10.9.9.9', mac: 'fa:16:3e:00:00:01', network: 'private' }, { addr: '10.9.9.8', mac: 'fa:16:3e:00:00:01', network: 'nope' }] } }));
    expect(r).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_BAD_REQUEST' } });
    expect(r.error!.message).toMatch(/adopt\.addresses\[0\]\.addr: is outside network private/);
    expect(r.error!.message).toMatch(/adopt\.addresses\[1\]\.network: no network named "nope"/);
    expect(h.agent.store.getNode(nodeId(1))!.adopt).toBeNull();
  });
});
