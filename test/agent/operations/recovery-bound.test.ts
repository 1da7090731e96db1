/**
 * Operations interrupted by a stop (or a crash) resume at start in the background, at most recovery.concurrency at
 * once: the agent is ready before they end, and every one of them finishes.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { Deployer, Pinger } from '../../../agent/ports.js';
import { FakeLab } from '../../../drivers/fake/lab.js';
import { waitFor } from '../../helpers/daemon.js';
import { sleep } from '../../helpers/engine.js';
import { ctx, IMAGE, nodeId, writeConfig } from '../../helpers/harness.js';

const K = 5;
const BOUND = 2;

let dir: string | null = null;
const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** Every address answers: an install is confirmed as soon as its deploy returns. */
const alive: Pinger = { engine: 'test', ping: async (addrs) => addrs.map((addr) => ({ addr, alive: true, rtt_ms: 0 })) };

/** An installer that counts the deploys in flight; `holdMs` null: a deploy never ends (until aborted). */
function installer(holdMs: number | null) {
  const calls = { inFlight: 0, max: 0, total: 0 };
  const deployer: Deployer = {
    prepare: async () => {},
    revoke: async () => {},
    async deploy(_node, _job, opts) {
      calls.total++;
      calls.inFlight++;
      calls.max = Math.max(calls.max, calls.inFlight);
      try {
        if (holdMs !== null) await sleep(holdMs);
        else
          await new Promise((_, reject) => {
            if (opts.signal.aborted) reject(opts.signal.reason);
            opts.signal.addEventListener('abort', () => reject(opts.signal.reason), { once: true });
          });
      } finally {
        calls.inFlight--;
      }
    },
  };
  return { deployer, calls };
}

describe('operations resumed at start', () => {
  it(`with ${K} interrupted installs and recovery.concurrency ${BOUND}: at most ${BOUND} run at once, the agent is ready before they end, all finish`, async () => {
    const cfg = writeConfig({ nodes: K, extra: `recovery: {concurrency: ${BOUND}}` });
    dir = cfg.dir;
    const config = loadConfigFile(cfg.configPath);
    const lab = new FakeLab();
    const first = installer(null);
    const a = await buildAgent(config, { log: pino({ level: 'silent' }), fakeLab: lab, deployer: first.deployer, pinger: alive });
    agents.push(a);
    await a.start();
    const ids: string[] = [];
    for (let i = 1; i <= K; i++) {
      ids.push((await a.engine.createInstance(ctx(), { name: `r${i}`, image_uuid: IMAGE, extra: { node_id: nodeId(i) } })).instance.id);
    }
    await waitFor(() => first.calls.inFlight === K, 5000, 'every install in its deploy step');
    await a.stop();
    agents.pop();

    const second = installer(30);
    const b = await buildAgent(config, { log: pino({ level: 'silent' }), fakeLab: lab, deployer: second.deployer, pinger: alive });
    agents.push(b);
    await b.start();
    expect(b.engine.ready().ready).toBe(true);
    expect(ids.filter((id) => b.store.getInstance(id)!.task !== null)).toHaveLength(K); // still in flight when ready
    await b.engine.idle();
    expect(second.calls.total).toBe(K);
    expect(second.calls.max).toBe(BOUND);
    for (const id of ids) expect(b.store.getInstance(id)).toMatchObject({ state: 'running', task: null });
  });
});
