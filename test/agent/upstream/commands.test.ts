/**
 * The upstream command handler (agent/upstream/commands.ts) on a real agent (SQLite store in a temp dir, fake lab):
 * the instance ops through the engine's REST code path, exactly-once by command_id (also across a store reopen),
 * generation fencing, the result in the acceptance's commit (a failed commit stores neither), refusals stored,
 * not-ready refusals not stored, and a body never logged.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import { AgentError } from '../../../agent/errors.js';
import type { StoreFaultInjector, StoreWriteOp } from '../../../agent/store/sqlite.js';
import { StoreError } from '../../../agent/store/types.js';
import { InlineWalSync } from '../../../agent/store/wal-sync.js';
import type { CommandBody } from '../../../agent/upstream/protocol.js';
import { readGeneration } from '../../../agent/upstream/types.js';
import { powerSets, runningInstance } from '../../helpers/engine.js';
import { ctx, IMAGE, IMAGE2, MEMBER_TOKEN, nodeId, PROJECT, startHarness, writeConfig, type Harness } from '../../helpers/harness.js';
import { command, handlerOf, LogLines, newCommandId, result, send } from './command-helpers.js';

let h: Harness | null = null;
const extra: Agent[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of extra.splice(0)) await a.stop().catch(() => undefined);
  await h?.close();
  h = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Fails the first write named `op` once armed, then disarms. */
class FailWrite implements StoreFaultInjector {
  armed: StoreWriteOp | null = null;
  beforeWrite(op: StoreWriteOp): void {
    if (op !== this.armed) return;
    this.armed = null;
    throw new StoreError(`injected fault in ${op}`);
  }
}

const USER = 'f5a98f28f61e4fd19622f9016c481d48';

describe('instance commands: the REST code path, the action under request_id = command_id', () => {
  it('instance.create: accepted; the instance is the command\'s project and user; the install runs', async () => {
    h = await startHarness({ nodes: 2 });
    const handler = handlerOf(h.agent);
    const cmd = command({ op: 'instance.create', project_id: PROJECT, user_id: USER, instance: { name: 'web-1', image_uuid: IMAGE, extra: { node_id: nodeId(2) } } });
    const r = await result(handler, cmd);
    expect(r).toMatchObject({ status: 'accepted', repeat: false, request_id: cmd.command_id, node_id: nodeId(2), already: false, error: null });
    const inst = h.agent.store.getInstance(r.instance_id!)!;
    expect(inst).toMatchObject({ project_id: PROJECT, user_id: USER, name: 'web-1', node_id: nodeId(2), task_request_id: cmd.command_id });
    expect(h.agent.store.getAction(cmd.command_id)).toMatchObject({ action: 'create', instance_id: inst.id, project_id: PROJECT, user_id: USER });
    await h.agent.engine.idle();
    expect(h.agent.store.getInstance(inst.id)).toMatchObject({ state: 'running', task: null });
    expect(h.agent.store.getCommandResult(cmd.command_id)?.result).toMatchObject({ status: 'accepted', instance_id: inst.id });
  });

  it('instance.power: accepted with its action; already there: accepted, already, no action, nothing sent', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    const off = command({ op: 'instance.power', instance_id: id, target: 'off' });
    const r = await result(handler, off);
    expect(r).toMatchObject({ status: 'accepted', request_id: off.command_id, instance_id: id, node_id: nodeId(1), already: false });
    expect(h.agent.store.getAction(off.command_id)).toMatchObject({ action: 'stop', instance_id: id, user_id: 'controller' });
    await h.agent.engine.idle();
    expect(h.agent.store.getInstance(id)).toMatchObject({ state: 'stopped', power_state: 'off' });
    const sent = powerSets(h, nodeId(1)).length;
    const again = command({ op: 'instance.power', instance_id: id, target: 'off' });
    expect(await result(handler, again)).toMatchObject({ status: 'accepted', request_id: null, already: true, instance_id: id });
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(1)).length).toBe(sent);
    expect(h.agent.store.getAction(again.command_id)).toBeNull();
  });

  it('instance.power: a timeout with a hard target is refused as the REST API refuses it', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const r = await result(handlerOf(h.agent), command({ op: 'instance.power', instance_id: id, target: 'off', timeout_s: 5 }));
    expect(r).toMatchObject({ status: 'refused', instance_id: id, error: { code: 'AGENT_ERR_BAD_REQUEST', retryable: false } });
  });

  it('instance.operation (the REST action body) and instance.delete: accepted, run to their end', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    const re = command({ op: 'instance.operation', instance_id: id, operation: { reinstall: { image_uuid: IMAGE2 } } });
    expect(await result(handler, re)).toMatchObject({ status: 'accepted', request_id: re.command_id, instance_id: id });
    expect(h.agent.store.getAction(re.command_id)).toMatchObject({ action: 'reinstall', project_id: PROJECT });
    await h.agent.engine.idle();
    expect(h.agent.store.getInstance(id)).toMatchObject({ image_uuid: IMAGE2, state: 'running', task: null });
    const del = command({ op: 'instance.delete', instance_id: id });
    expect(await result(handler, del)).toMatchObject({ status: 'accepted', request_id: del.command_id, instance_id: id, node_id: nodeId(1) });
    await h.agent.engine.idle();
    expect(h.agent.store.getInstance(id)!.state).toBe('terminated');
    expect(h.agent.store.getAction(del.command_id)).toMatchObject({ action: 'delete', message: null });
  });

  it('refusals by the rules are results: stored, sent refused with the agent\'s code, repeated as stored', async () => {
    h = await startHarness({ nodes: 1 });
    const handler = handlerOf(h.agent);
    const missing = '0b8c5f0e-0000-4000-8000-0000000000aa';
    const cmd = command({ op: 'instance.power', instance_id: missing, target: 'reboot' });
    const first = await result(handler, cmd);
    expect(first).toMatchObject({ status: 'refused', repeat: false, request_id: null, instance_id: missing, error: { code: 'AGENT_ERR_NOT_FOUND', retryable: false } });
    expect(h.agent.store.getCommandResult(cmd.command_id)).not.toBeNull();
    const repeat = await result(handler, cmd);
    expect(repeat).toEqual({ ...first, repeat: true });
  });
});

describe('exactly once by command_id', () => {
  it('a repeat gets the first result with repeat: true and runs nothing, also after a store reopen', async () => {
    const cfg = writeConfig({ nodes: 1 });
    dirs.push(cfg.dir);
    const boot = async (): Promise<Agent> => {
      const agent = await buildAgent(loadConfigFile(cfg.configPath), { log: pino({ level: 'silent' }), walSync: new InlineWalSync() });
      extra.push(agent);
      await agent.start();
      return agent;
    };
    let agent = await boot();
    const { instance } = await agent.engine.createInstance(ctx(), { name: 'x', image_uuid: IMAGE });
    await agent.engine.idle();
    const cmd = command({ op: 'instance.power', instance_id: instance.id, target: 'reboot' });
    const first = await result(handlerOf(agent), cmd);
    expect(first.status).toBe('accepted');
    await agent.engine.idle();
    const sets = agent.lab!.commands(nodeId(1)).length;
    const seq = agent.store.lastSeq();
    const again = await result(handlerOf(agent), cmd);
    expect(again).toEqual({ ...first, repeat: true });
    await agent.engine.idle();
    expect(agent.lab!.commands(nodeId(1)).length).toBe(sets);
    expect(agent.store.lastSeq()).toBe(seq);

    await agent.stop();
    extra.pop();
    agent = await boot();
    const seq2 = agent.store.lastSeq();
    const sets2 = agent.lab!.commands(nodeId(1)).filter((c) => c.op === 'power.set').length;
    expect(await result(handlerOf(agent), cmd)).toEqual({ ...first, repeat: true });
    await agent.engine.idle();
    expect(agent.store.lastSeq()).toBe(seq2);
    expect(agent.lab!.commands(nodeId(1)).filter((c) => c.op === 'power.set').length).toBe(sets2);
  });

  it('the same command twice at once: one runs, the other gets its result as a repeat', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    const cmd = command({ op: 'instance.power', instance_id: id, target: 'off' });
    const sent = powerSets(h, nodeId(1)).length;
    const [a, b] = await Promise.all([result(handler, cmd), result(handler, cmd)]);
    expect(a).toMatchObject({ status: 'accepted', repeat: false, request_id: cmd.command_id });
    expect(b).toEqual({ ...a, repeat: true });
    await h.agent.engine.idle();
    expect(powerSets(h, nodeId(1)).slice(sent)).toEqual(['off']);
  });
});

describe('one code path with the REST API', () => {
  it('a command and a REST call on the same instance: the second is refused LOCKED, either way round', async () => {
    h = await startHarness({ nodes: 1, fake: '{power_delay: 300ms, install: 30ms}', power: '5s' });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    // REST first (the service call the route makes), then the command.
    await h.agent.engine.setInstancePower(ctx(), id, { target: 'reboot' });
    const cmd = command({ op: 'instance.power', instance_id: id, target: 'reboot' });
    expect(await result(handler, cmd)).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_LOCKED', retryable: true } });
    expect(h.agent.store.getCommandResult(cmd.command_id)?.result).toMatchObject({ status: 'refused' });
    await h.agent.engine.idle();
    // The command first, then REST.
    const cmd2 = command({ op: 'instance.power', instance_id: id, target: 'reboot' });
    expect(await result(handler, cmd2)).toMatchObject({ status: 'accepted' });
    await expect(h.agent.engine.setInstancePower(ctx(), id, { target: 'reboot' })).rejects.toSatisfy((e: unknown) => e instanceof AgentError && e.code === 'AGENT_ERR_LOCKED');
    await h.agent.engine.idle();
  });

  it('the same over HTTP: the REST API answers 409 while a command\'s reboot runs, and the command is refused while a REST one does', async () => {
    h = await startHarness({ nodes: 1, fake: '{power_delay: 300ms, install: 30ms}', power: '5s' });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    const put = () => h!.agent.api.inject({ method: 'PUT', url: `/v1/instances/${id}/states/power`, headers: { 'x-auth-token': MEMBER_TOKEN }, payload: { target: 'rebooting' } });
    expect(await result(handler, command({ op: 'instance.power', instance_id: id, target: 'reboot' }))).toMatchObject({ status: 'accepted' });
    const rest = await put();
    expect(rest.statusCode, rest.body).toBe(409);
    await h.agent.engine.idle();
    const first = await put();
    expect(first.statusCode, first.body).toBe(202);
    expect(await result(handler, command({ op: 'instance.power', instance_id: id, target: 'reboot' }))).toMatchObject({ status: 'refused', error: { code: 'AGENT_ERR_LOCKED' } });
    await h.agent.engine.idle();
  });
});

describe('generation fencing', () => {
  it('an older generation is refused and not stored; the same id from the current one runs; a newer one is stored', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const handler = handlerOf(h.agent);
    expect(await result(handler, command({ op: 'node.maintenance', node_id: nodeId(1), maintenance: false }, { generation: 5 }))).toMatchObject({ status: 'done' });
    expect(readGeneration(h.agent.store)).toBe(5);
    const cmdId = newCommandId();
    const stale = await result(handler, command({ op: 'instance.power', instance_id: id, target: 'off' }, { generation: 4, id: cmdId }));
    expect(stale).toMatchObject({ status: 'refused', repeat: false, error: { code: 'PROTO_ERR_STALE_GENERATION', retryable: false } });
    expect(h.agent.store.getCommandResult(cmdId)).toBeNull();
    expect(h.agent.store.getAction(cmdId)).toBeNull();
    const current = await result(handler, command({ op: 'instance.power', instance_id: id, target: 'off' }, { generation: 5, id: cmdId }));
    expect(current).toMatchObject({ status: 'accepted', repeat: false, request_id: cmdId });
    await h.agent.engine.idle();
    expect(readGeneration(h.agent.store)).toBe(5);
    await result(handler, command({ op: 'node.maintenance', node_id: nodeId(1), maintenance: false }, { generation: 7 }));
    expect(readGeneration(h.agent.store)).toBe(7);
  });
});

describe('the result in the acceptance\'s commit', () => {
  for (const failing of ['putCommandResult', 'insertAction'] as const) {
    it(`a failed ${failing} in the acceptance: error PROTO_ERR_INTERNAL, neither action nor result; a repeat runs it`, async () => {
      const fault = new FailWrite();
      h = await startHarness({ nodes: 1, storeFault: fault });
      const id = await runningInstance(h);
      const handler = handlerOf(h.agent);
      const cmd = command({ op: 'instance.power', instance_id: id, target: 'reboot' });
      const sent = powerSets(h, nodeId(1)).length;
      fault.armed = failing;
      const answer = await send(handler, cmd);
      expect(answer).toMatchObject({ type: 'error', code: 'PROTO_ERR_INTERNAL', fatal: false, in_reply_to: { type: 'command', command_id: cmd.command_id } });
      expect(h.agent.store.getCommandResult(cmd.command_id)).toBeNull();
      expect(h.agent.store.getAction(cmd.command_id)).toBeNull();
      expect(h.agent.store.getInstance(id)).toMatchObject({ task: null, task_request_id: null });
      await h.agent.engine.idle();
      expect(powerSets(h, nodeId(1)).length).toBe(sent);
      const again = await result(handler, cmd);
      expect(again).toMatchObject({ status: 'accepted', repeat: false, request_id: cmd.command_id });
      await h.agent.engine.idle();
      expect(h.agent.store.getAction(cmd.command_id)).toMatchObject({ action: 'reboot', message: null });
    });
  }

  it('the same for the ops that are done at once (maintenance, enrolment, a catalogue put): no effect without the result', async () => {
    const fault = new FailWrite();
    h = await startHarness({ nodes: 1, storeFault: fault });
    const handler = handlerOf(h.agent);
    const newNode = '1b8c5f0e-0000-4000-8000-0000000000f1';
    const newImage = '9fd5ab9b-1769-4dd5-b0bd-e075614cc866';
    const cmds = [
      command({ op: 'node.maintenance', node_id: nodeId(1), maintenance: true, reason: 'r' }),
      command({ op: 'node.enrol', node: { id: newNode, name: 'node-f1', type: 'small', macs: [{ mac: 'fa:16:3e:00:00:f1', pxe: true }], bmc: { driver: 'fake', address: 'fake://f1' } } } as CommandBody),
      command({ op: 'image.put', image: { uuid: newImage, name: 'img', url: 'http://127.0.0.1:1/i.img', sha256: 'd'.repeat(64), os: 'linux' } }),
    ];
    const effects = () => [h!.agent.store.getNode(nodeId(1))!.maintenance, h!.agent.store.getNode(newNode) !== null, h!.agent.engine.catalogue.config().images.some((i) => i.uuid === newImage)];
    const seq = h.agent.store.lastSeq();
    for (const cmd of cmds) {
      fault.armed = 'putCommandResult';
      expect(await send(handler, cmd)).toMatchObject({ type: 'error', code: 'PROTO_ERR_INTERNAL' });
      expect(h.agent.store.getCommandResult(cmd.command_id)).toBeNull();
    }
    expect(effects()).toEqual([false, false, false]);
    expect(h.agent.store.lastSeq()).toBe(seq);
    for (const cmd of cmds) expect(await result(handler, cmd)).toMatchObject({ status: 'done', repeat: false });
    expect(effects()).toEqual([true, true, true]);
  });

  it('a refusal whose store write fails is not a result: error PROTO_ERR_INTERNAL, nothing stored', async () => {
    const fault = new FailWrite();
    h = await startHarness({ nodes: 1, storeFault: fault });
    const cmd = command({ op: 'instance.delete', instance_id: '0b8c5f0e-0000-4000-8000-0000000000aa' });
    fault.armed = 'putCommandResult';
    expect(await send(handlerOf(h.agent), cmd)).toMatchObject({ type: 'error', code: 'PROTO_ERR_INTERNAL' });
    expect(h.agent.store.getCommandResult(cmd.command_id)).toBeNull();
  });
});

describe('before the engine is ready', () => {
  it('refused AGENT_ERR_NOT_READY (retryable), not stored, nothing run', async () => {
    const cfg = writeConfig({ nodes: 1 });
    dirs.push(cfg.dir);
    const agent = await buildAgent(loadConfigFile(cfg.configPath), { log: pino({ level: 'silent' }), walSync: new InlineWalSync() });
    extra.push(agent);
    agent.engine.prepare();
    const cmd = command({ op: 'node.maintenance', node_id: nodeId(1), maintenance: true, reason: 'r' });
    expect(await result(handlerOf(agent), cmd)).toMatchObject({ status: 'refused', node_id: nodeId(1), error: { code: 'AGENT_ERR_NOT_READY', retryable: true } });
    expect(agent.store.getCommandResult(cmd.command_id)).toBeNull();
    expect(agent.store.getNode(nodeId(1))!.maintenance).toBe(false);
  });
});

describe('logging', () => {
  it('logs op, command_id and status, never the body (a password hash)', async () => {
    h = await startHarness({ nodes: 1 });
    const id = await runningInstance(h);
    const logs = new LogLines();
    const hash = '$6$saltsalt$' + 'Q'.repeat(40);
    const cmd = command({ op: 'instance.operation', instance_id: id, operation: { 'change-password': { password_hash: hash } } });
    expect(await result(handlerOf(h.agent, logs.log), cmd)).toMatchObject({ status: 'accepted' });
    await h.agent.engine.idle();
    const text = logs.lines.join('');
    expect(text).toContain(cmd.command_id);
    expect(text).toContain('instance.operation');
    expect(text).toContain('accepted');
    expect(text).not.toContain('Q'.repeat(40));
  });
});
