/**
 * In-process restarts on the same state_dir: a lock left without its action is released at start; terminated
 * instances stay readable for terminated_retention and are purged after it.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import { systemClock, type Clock } from '../../../agent/ports.js';
import { openStore } from '../../../agent/store/sqlite.js';
import { ctx, IMAGE, writeConfig } from '../../helpers/harness.js';

let dir: string | null = null;
const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

async function boot(configPath: string, clock: Clock = systemClock): Promise<Agent> {
  const agent = await buildAgent(loadConfigFile(configPath), { log: pino({ level: 'silent' }), clock });
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

  it('a graceful stop leaves the running step open like a crash; the next start fails it naming the step', async () => {
    const cfg = writeConfig({ fake: '{power_delay: 5ms, install: 5s}' });
    dir = cfg.dir;
    let agent = await boot(cfg.configPath);
    const { instance, action } = await agent.engine.createInstance(ctx(), { name: 'stop', image_uuid: IMAGE });
    for (let i = 0; i < 200 && !agent.store.getAction(action.request_id)!.events.some((e) => e.event === 'deploy'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await agent.stop();
    agents.pop();

    agent = await boot(cfg.configPath);
    const after = agent.engine.getInstance(ctx(), instance.id);
    expect(after).toMatchObject({ state: 'error', operation_state: 'install-failed', task: null });
    expect(after.error?.error_msg).toContain("interrupted by an agent restart during step 'deploy'");
    const a = agent.store.getAction(action.request_id)!;
    expect(a.finish_time).not.toBeNull();
    expect(a.events.find((e) => e.event === 'deploy')).toMatchObject({ result: 'Error', traceback: "interrupted by an agent restart during step 'deploy'" });
  });

  it('an operation stopped between two steps fails naming the step after the last closed one, never a generic word', async () => {
    const cfg = writeConfig({ fake: '{power_delay: 5ms, install: 5s}' });
    dir = cfg.dir;
    let agent = await boot(cfg.configPath);
    const { instance, action } = await agent.engine.createInstance(ctx(), { name: 'between', image_uuid: IMAGE });
    for (let i = 0; i < 200 && !agent.store.getAction(action.request_id)!.events.some((e) => e.event === 'deploy'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await agent.stop();
    agents.pop();
    // As if the crash came after 'deploy' closed and before the next step opened: close the open step.
    const store = openStore({ dir: loadConfigFile(cfg.configPath).state_dir, agentId: 'test-agent' });
    const events = store.getAction(action.request_id)!.events;
    const i = events.findIndex((e) => e.finish_time === null);
    expect(events[i]?.event).toBe('deploy');
    store.updateActionEvent(action.request_id, i, { ...events[i]!, finish_time: events[i]!.start_time, result: 'Success' });
    store.close();

    agent = await boot(cfg.configPath);
    const after = agent.engine.getInstance(ctx(), instance.id);
    expect(after).toMatchObject({ state: 'error', operation_state: 'install-failed', task: null });
    expect(after.error?.error_msg).toBe("step 'after_deploy' failed: interrupted by an agent restart");
  });
});
