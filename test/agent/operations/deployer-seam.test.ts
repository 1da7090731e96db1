/**
 * The deployer seam (agent/ports.ts Deployer) as the runner drives it: an install prepares its job before the node is
 * powered on into the installer, waits for it under the same job id, and a failed operation or a delete revokes the
 * instance's jobs. The recording deployer stands for agent/boot/'s network deployer; the BMC's own command log (the
 * fake lab's) says when the node was powered on.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { Deployer, Pinger } from '../../../agent/ports.js';
import { FakeLab } from '../../../drivers/fake/lab.js';
import { ctx, IMAGE, nodeId, writeConfig } from '../../helpers/harness.js';

let dir: string | null = null;
let agent: Agent | null = null;
afterEach(async () => {
  await agent?.stop().catch(() => undefined);
  agent = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

const alive: Pinger = { engine: 'test', ping: async (addrs) => addrs.map((addr) => ({ addr, alive: true, rtt_ms: 0 })) };

type Call = { call: 'prepare' | 'deploy' | 'revoke'; id: string; powerOns: number; powerOffs: number };

/** The power changes of this kind node 1's BMC had received so far (the lab's own command log). */
const sent = (lab: FakeLab, arg: 'on' | 'off') => lab.commands(nodeId(1)).filter((c) => c.op === 'power.set' && c.arg === arg).length;

/** Records each call with the power changes the node's BMC had received by then. */
function recorder(lab: FakeLab, failDeploy: boolean) {
  const calls: Call[] = [];
  const at = () => ({ powerOns: sent(lab, 'on'), powerOffs: sent(lab, 'off') });
  const deployer: Deployer = {
    prepare: async (_node, _job, opts) => void calls.push({ call: 'prepare', id: opts.jobId, ...at() }),
    deploy: async (_node, _job, opts) => {
      calls.push({ call: 'deploy', id: opts.jobId, ...at() });
      if (failDeploy) throw new Error('the installer reported: checksum mismatch');
    },
    revoke: async (instanceId) => void calls.push({ call: 'revoke', id: instanceId, ...at() }),
  };
  return { deployer, calls };
}

async function start(failDeploy: boolean) {
  const cfg = writeConfig({ nodes: 1 });
  dir = cfg.dir;
  const lab = new FakeLab();
  const rec = recorder(lab, failDeploy);
  agent = await buildAgent(loadConfigFile(cfg.configPath), { log: pino({ level: 'silent' }), fakeLab: lab, deployer: rec.deployer, pinger: alive });
  await agent.start();
  return { a: agent, lab, calls: rec.calls };
}

describe('the deployer seam', () => {
  it('an install prepares its job before the power on into the installer, then waits for that job by the same id', async () => {
    const { a, calls } = await start(false);
    const { instance, action } = await a.engine.createInstance(ctx(), { name: 's1', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
    await a.engine.idle();
    expect(a.store.getInstance(instance.id)).toMatchObject({ state: 'running', task: null });
    const [prep, dep, ...rest] = calls;
    expect(prep).toMatchObject({ call: 'prepare', id: `${action.request_id}/deploy` });
    expect(dep).toMatchObject({ call: 'deploy', id: prep!.id });
    // Prepared while the node was still off (no power on yet); the installer waited for after the power on.
    expect(prep!.powerOns).toBe(0);
    expect(dep!.powerOns).toBe(1);
    expect(rest).toEqual([]);
  });

  it('a failed install revokes the instance\'s jobs, and a delete revokes them before it powers the node off', async () => {
    const { a, lab, calls } = await start(true);
    const { instance } = await a.engine.createInstance(ctx(), { name: 's1', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
    await a.engine.idle();
    expect(a.store.getInstance(instance.id)).toMatchObject({ state: 'error' });
    expect(calls.map((c) => c.call)).toEqual(['prepare', 'deploy', 'revoke']);
    expect(calls[2]!.id).toBe(instance.id);

    // The failure's power off came after the revoke.
    expect(sent(lab, 'off')).toBeGreaterThan(calls[2]!.powerOffs);

    calls.length = 0;
    const offsBefore = sent(lab, 'off');
    await a.engine.deleteInstance(ctx(), instance.id);
    await a.engine.idle();
    // The revoke came before the delete's first power off reached the BMC, and the delete did power it off.
    expect(calls[0]).toMatchObject({ call: 'revoke', id: instance.id, powerOffs: offsBefore });
    expect(sent(lab, 'off')).toBeGreaterThan(offsBefore);
  });
});
