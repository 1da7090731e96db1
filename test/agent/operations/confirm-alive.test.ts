/**
 * The ICMP confirmation of an install (engine confirmAlive, through waitFor of drivers/wait.ts), on a manual clock:
 * it probes at once, then after each power_poll delay (5, 10, 20 ms in the harness, the last repeating), and a last
 * time at the deadline (timeouts.deploy); an instance that never answers fails the step with AGENT_ERR_NOT_ALIVE at
 * the deadline, one that answers in time completes the install at the next probe.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Pinger } from '../../../agent/ports.js';
import { drive } from '../../helpers/engine.js';
import { ctx, IMAGE, nodeId, startHarness, type Harness } from '../../helpers/harness.js';
import { ManualClock } from '../../helpers/manual-clock.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const DEPLOY_MS = 1000;

/** A pinger whose addresses answer from `aliveAfterMs` after its first ping on (never when null); records when it pinged. */
function scriptedPinger(clock: ManualClock, aliveAfterMs: number | null): Pinger & { at: number[] } {
  const at: number[] = [];
  return {
    engine: 'scripted',
    at,
    async ping(addrs) {
      at.push(clock.now());
      const alive = aliveAfterMs !== null && clock.now() - at[0]! >= aliveAfterMs;
      return addrs.map((addr) => ({ addr, alive, rtt_ms: alive ? 0 : null }));
    },
  };
}

async function install(aliveAfterMs: number | null) {
  const clock = new ManualClock();
  const pinger = scriptedPinger(clock, aliveAfterMs);
  h = await startHarness({ nodes: 1, fake: '{power_delay: 0ms, install: 30ms}', clock, deploy: `${DEPLOY_MS}ms`, pinger });
  const e = h.agent.engine;
  const id = (await e.createInstance(ctx(), { name: 'alive', image_uuid: IMAGE, extra: { node_id: nodeId(1) } })).instance.id;
  await drive(h, clock);
  const step = h.agent.store.listActions(id).at(-1)!.events.find((x) => x.event === 'confirm_alive')!;
  const start = Date.parse(step.start_time);
  return { inst: e.getInstance(ctx('admin'), id), step, start, pings: pinger.at.map((t) => t - start), took: Date.parse(step.finish_time!) - start };
}

/** Probe times of the policy [0, 5, 10, 20] (20 repeating) up to `until` ms. */
function schedule(until: number): number[] {
  const out = [0, 5, 15];
  while (out.at(-1)! + 20 < until) out.push(out.at(-1)! + 20);
  return out;
}

describe('confirm_alive', () => {
  it('an instance that never answers fails the step with AGENT_ERR_NOT_ALIVE at the deadline, after a final probe there', async () => {
    const { inst, step, pings, took } = await install(null);
    expect(inst.state).toBe('error');
    expect(inst.error).toMatchObject({ error_code: 'AGENT_ERR_NOT_ALIVE' });
    expect(step.result).toBe('Error');
    // The delays do not divide the deadline: the last wait is cut to it.
    expect(pings).toEqual([...schedule(DEPLOY_MS), DEPLOY_MS]);
    expect(took).toBe(DEPLOY_MS);
  });

  it('an instance that answers before the deadline completes the install at the next probe', async () => {
    const { inst, step, pings, took } = await install(300);
    expect(inst.state).toBe('running');
    expect(inst.operation_state).toBe('install-succeed');
    expect(step.result).toBe('Success');
    expect(pings).toEqual([...schedule(300), 315]);
    expect(took).toBe(315);
  });
});
