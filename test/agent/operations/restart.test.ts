/**
 * In-process restarts on the same state_dir: a plan resumes where it was stopped (in a step, or between two); an
 * action written without a plan fails cleanly; a lock left without its action is released at start; terminated
 * instances stay readable for terminated_retention and are purged after it.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { InlineWalSync } from '../../../agent/store/wal-sync.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import { systemClock, type Clock } from '../../../agent/ports.js';
import { openStore } from '../../../agent/store/sqlite.js';
import { FakeLab } from '../../../drivers/fake/lab.js';
import type { Action } from '../../../agent/model.js';
import { ctx, IMAGE, nodeId, startHarness, writeConfig } from '../../helpers/harness.js';

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error('gave up waiting');
}

function readAction(configPath: string, requestId: string): Action {
  const store = openStore({ dir: loadConfigFile(configPath).state_dir, agentId: 'test-agent' });
  try {
    return store.getAction(requestId)!;
  } finally {
    store.close();
  }
}

let dir: string | null = null;
const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

async function boot(configPath: string, clock: Clock = systemClock, lab?: FakeLab): Promise<Agent> {
  const agent = await buildAgent(loadConfigFile(configPath), { log: pino({ level: 'silent' }), clock, walSync: new InlineWalSync(), ...(lab ? { fakeLab: lab } : {}) });
  agents.push(agent);
  await agent.start();
  return agent;
}

describe('restart on the same store', () => {
  it('releases a lock that has no action in flight, failing what it claimed', async () => {
    const cfg = writeConfig();
    dir = cfg.dir;
    let agent = await boot(cfg.configPath);
    const { instance } = await agent.engine.createInstance(ctx(), { name: 'r', image_uuid: IMAGE });
    await agent.engine.idle();
    // Simulate a store that holds a lock but no unfinished action.
    const inst = agent.store.getInstance(instance.id)!;
    agent.store.putInstance({ ...inst, task: 'reinstall', task_request_id: 'req-00000000-0000-4000-8000-0000000000ff', operation_state: 'reinstall-processing' });
    await agent.stop();
    agents.pop();

    agent = await boot(cfg.configPath);
    const after = agent.engine.getInstance(ctx(), instance.id);
    expect(after.task).toBeNull();
    expect(after.operation_state).toBe('reinstall-failed');
    expect(after.error?.error_code).toBe('AGENT_ERR_INTERRUPTED');
    // And the instance takes the next operation.
    await agent.engine.setInstancePower(ctx(), instance.id, { target: 'off' });
    await agent.engine.idle();
    expect(agent.engine.getInstance(ctx(), instance.id).state).toBe('stopped');
  });

  it('keeps a terminated instance readable (DELETED) for terminated_retention, then purges it', async () => {
    const cfg = writeConfig();
    dir = cfg.dir;
    let agent = await boot(cfg.configPath);
    const { instance } = await agent.engine.createInstance(ctx(), { name: 'gone', image_uuid: IMAGE });
    await agent.engine.idle();
    await agent.engine.deleteInstance(ctx(), instance.id);
    await agent.engine.idle();
    expect(agent.engine.getInstance(ctx(), instance.id).state).toBe('terminated');
    expect(agent.engine.purgeTerminated()).toBe(0);
    await agent.stop();
    agents.pop();

    // Eight days later (retention is 7 d in the test config): the start-up purge removes it and its actions.
    const later: Clock = { now: () => Date.now() + 8 * 86_400_000, sleep: systemClock.sleep };
    agent = await boot(cfg.configPath, later);
    expect(() => agent.engine.getInstance(ctx(), instance.id)).toThrow(/could not be found/);
    expect(agent.store.listActions(instance.id)).toEqual([]);
  });

  it('a graceful stop leaves the running step open like a crash; the next start resumes the plan at that step', async () => {
    const cfg = writeConfig({ fake: '{power_delay: 5ms, install: 1s}' });
    dir = cfg.dir;
    // The simulated servers outlive the agent, as a rack outlives a restart of metald.
    const lab = new FakeLab();
    let agent = await boot(cfg.configPath, systemClock, lab);
    const { instance, action } = await agent.engine.createInstance(ctx(), { name: 'stop', image_uuid: IMAGE });
    await until(() => agent.store.getAction(action.request_id)!.events.some((e) => e.event === 'deploy'));
    await agent.stop();
    agents.pop();
    const before = readAction(cfg.configPath, action.request_id);
    const deploy = before.events.findIndex((e) => e.event === 'deploy');
    expect(before.events[deploy]!.finish_time).toBeNull();

    agent = await boot(cfg.configPath, systemClock, lab);
    await agent.engine.idle();
    const after = agent.engine.getInstance(ctx(), instance.id);
    expect(after).toMatchObject({ state: 'running', operation_state: 'install-succeed', task: null, error: null });
    const a = agent.store.getAction(action.request_id)!;
    expect(a.finish_time).not.toBeNull();
    expect(a.message).toBeNull();
    // The same deploy event, closed by the resumed step: not a second install.
    expect(a.events[deploy]).toMatchObject({ event: 'deploy', start_time: before.events[deploy]!.start_time, result: 'Success' });
    expect(a.events.filter((e) => e.event === 'deploy')).toHaveLength(1);
  });

  it('an operation stopped between two steps resumes at the next one, not repeating the finished one', async () => {
    const cfg = writeConfig({ fake: '{power_delay: 5ms, install: 1s}' });
    dir = cfg.dir;
    const lab = new FakeLab();
    let agent = await boot(cfg.configPath, systemClock, lab);
    const { instance, action } = await agent.engine.createInstance(ctx(), { name: 'between', image_uuid: IMAGE });
    // The job is handed over once the step's opening is on disk (group commit), a moment after the event appears.
    await until(() => agent.store.getAction(action.request_id)!.events.some((e) => e.event === 'deploy') && lab.snapshot(nodeId(1)).installing !== null);
    await agent.stop();
    agents.pop();
    // As if the crash came after 'deploy' closed and before the next step opened: close the open step.
    const store = openStore({ dir: loadConfigFile(cfg.configPath).state_dir, agentId: 'test-agent' });
    const events = store.getAction(action.request_id)!.events;
    const i = events.findIndex((e) => e.finish_time === null);
    expect(events[i]?.event).toBe('deploy');
    store.updateActionEvent(action.request_id, i, { ...events[i]!, finish_time: events[i]!.start_time, result: 'Success' });
    store.close();
    // The installer's job, on the server, ends on its own (as the closed step says it did).
    await until(() => lab.snapshot(nodeId(1)).installing === null);
    expect(lab.snapshot(nodeId(1)).job?.outcome).toEqual({ ok: true });
    const installsBefore = lab.commands(nodeId(1)).length;

    agent = await boot(cfg.configPath, systemClock, lab);
    await agent.engine.idle();
    expect(agent.engine.getInstance(ctx(), instance.id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', task: null, error: null });
    const a = agent.store.getAction(action.request_id)!;
    expect(a.events.map((e) => e.event).slice(i)).toEqual(['deploy', 'set_boot_device', 'power_off', 'power_on', 'confirm_alive']);
    // Nothing before the next step was sent again: the first command after the restart is the boot device.
    const sent = lab.commands(nodeId(1)).slice(installsBefore).filter((c) => c.op !== 'power.get');
    expect(sent[0]).toMatchObject({ op: 'boot.set' });
  });

  it('an action whose plan was not kept (written by an older metald) fails cleanly naming its open step', async () => {
    const cfg = writeConfig({ fake: '{power_delay: 5ms, install: 5s}' });
    dir = cfg.dir;
    const lab = new FakeLab();
    let agent = await boot(cfg.configPath, systemClock, lab);
    const { instance, action } = await agent.engine.createInstance(ctx(), { name: 'legacy', image_uuid: IMAGE });
    await until(() => agent.store.getAction(action.request_id)!.events.some((e) => e.event === 'deploy'));
    await agent.stop();
    agents.pop();
    const db = new Database(join(loadConfigFile(cfg.configPath).state_dir, 'metald.db'));
    db.prepare('UPDATE actions SET plan_step = NULL, plan_data = NULL WHERE request_id = ?').run(action.request_id);
    db.close();

    agent = await boot(cfg.configPath, systemClock, lab);
    await agent.engine.idle();
    const after = agent.engine.getInstance(ctx(), instance.id);
    expect(after).toMatchObject({ state: 'error', operation_state: 'install-failed', task: null });
    expect(after.error?.error_msg).toBe("step 'deploy' failed: interrupted by an agent restart during step 'deploy'");
    const a = agent.store.getAction(action.request_id)!;
    expect(a.finish_time).not.toBeNull();
    expect(a.events.find((e) => e.event === 'deploy')).toMatchObject({ result: 'Error', traceback: "interrupted by an agent restart during step 'deploy'" });
  });
});

describe('config nodes at a start', () => {
  it('a start (or SIGHUP) that changes nothing about the nodes writes no node row; a changed node is written', async () => {
    const writes: string[] = [];
    const h = await startHarness({ storeFault: { beforeWrite: (op) => void writes.push(op) } });
    try {
      writes.length = 0;
      h.agent.engine.syncConfigNodes();
      expect(writes.filter((op) => op === 'putNode')).toEqual([]);
      // A node whose stored settings differ from the config's is refreshed.
      const n = h.agent.store.getNode(nodeId(1))!;
      h.agent.store.putNode({ ...n, name: 'renamed-out-of-band' });
      writes.length = 0;
      h.agent.engine.syncConfigNodes();
      expect(writes.filter((op) => op === 'putNode')).toEqual(['putNode']);
      expect(h.agent.store.getNode(nodeId(1))!.name).toBe(n.name);
    } finally {
      await h.close();
    }
  });
});
