/**
 * A plan resumes where it was (issue 6 item 1), in process and on a manual clock: a reinstall (a plan that waits on
 * the installer and on the installed system) is stopped in the middle of each of its steps, then a new agent on the
 * same state_dir and the same simulated servers (the fake lab outlives the agent as a rack outlives a restart)
 * resumes it at that step: the steps that had finished are not run again, the interrupted power change is not sent
 * again (it is verified), the installer's job is the one that was running, and the reinstall succeeds.
 * The daemon-level SIGKILL variant is test/agent/recovery.test.ts.
 */
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { InlineWalSync } from '../../../agent/store/wal-sync.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { PingResult, Pinger } from '../../../agent/ports.js';
import { FakeLab } from '../../../drivers/fake/lab.js';
import { ctx, IMAGE, nodeId, writeConfig } from '../../helpers/harness.js';
import { flush, ManualClock } from '../../helpers/manual-clock.js';

let dir: string | null = null;
const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** The fake lab's pinger, but a server answers only from its third probe after each boot (an OS takes time to boot). */
class SlowBootPinger implements Pinger {
  readonly engine = 'fake';
  private probes = 0;
  private boots = -1;
  constructor(private readonly lab: FakeLab, private readonly node: string) {}
  async ping(addrs: readonly string[]): Promise<PingResult[]> {
    const s = this.lab.snapshot(this.node);
    if (s.boots !== this.boots) {
      this.boots = s.boots;
      this.probes = 0;
    }
    this.probes += 1;
    const alive = this.probes >= 3 && s.power === 'on' && s.osInstalled !== null && s.installing === null;
    return addrs.map((addr) => ({ addr, alive, rtt_ms: alive ? 1 : null }));
  }
}

async function boot(configPath: string, clock: ManualClock, lab: FakeLab): Promise<Agent> {
  const agent = await buildAgent(loadConfigFile(configPath), { log: pino({ level: 'silent' }), clock, walSync: new InlineWalSync(), fakeLab: lab, pinger: new SlowBootPinger(lab, nodeId(1)) });
  agents.push(agent);
  const started = agent.start();
  await driveUntil(clock, async () => {
    await Promise.race([started, flush()]);
    return agent.engine.ready().ready;
  });
  await started;
  return agent;
}

/** Moves the manual clock, one timer at a time, until `done` says so. */
async function driveUntil(clock: ManualClock, done: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 5_000; i++) {
    await flush();
    if (await done()) return;
    clock.next();
  }
  throw new Error(`gave up driving the clock (waiting: ${clock.waiting}, t=${clock.now()})`);
}

/** The plan step whose action event is open now (from the journal's action.event entries), or null. */
function openStep(agent: Agent, requestId: string): { step: number; event: string } | null {
  const entries = agent.store.readJournal(0, 100_000).filter((e) => e.kind === 'action.event' && e.data['request_id'] === requestId && typeof e.data['step'] === 'number');
  const open = new Map<number, string>();
  for (const e of entries) {
    if (e.data['result'] === null) open.set(e.data['step'] as number, String(e.data['event']));
    else open.delete(e.data['step'] as number);
  }
  const [first] = [...open.entries()];
  return first ? { step: first[0], event: first[1] } : null;
}

const powerSetsOf = (lab: FakeLab) => lab.commands(nodeId(1)).filter((c) => c.op === 'power.set').map((c) => c.arg);

/** The reinstall plan of a running instance on a pxe image: its steps that run, by plan index. */
const STEPS: { step: number; event: string; unsent?: boolean; instant?: boolean }[] = [
  { step: 0, event: 'power_off' },
  // The fake lab's prepare is instant (nothing to serve): no moment to stop it in. Its repeat after a restart is the
  // network deployer's (test/agent/boot/).
  { step: 3, event: 'prepare_boot', instant: true },
  { step: 5, event: 'set_boot_device' },
  { step: 6, event: 'power_on' },
  { step: 7, event: 'deploy' },
  { step: 9, event: 'set_boot_device' },
  { step: 10, event: 'power_off' },
  { step: 11, event: 'power_on' },
  { step: 12, event: 'confirm_alive' },
];
/**
 * Power steps stopped before their command left (waiting for the BMC's turn): not started yet (a power step's event
 * opens with its `sent` mark), so the restart runs them: sent once, after it.
 */
const UNSENT = STEPS.filter((s) => s.event.startsWith('power_')).map((s) => ({ ...s, unsent: true }));

describe('a reinstall stopped in the middle of each step resumes at that step', () => {
  for (const target of [...STEPS.filter((s) => !s.instant), ...UNSENT]) {
    const power = target.event.startsWith('power_');
    it(`step ${target.step} (${target.event})${power ? (target.unsent ? ', before its command left' : ', its command sent') : ''}`, async () => {
      const clock = new ManualClock();
      const lab = new FakeLab({ now: clock.now, sleep: clock.sleep });
      // min_gap makes every BMC call of a step wait on the clock, so even a boot-device step can be caught open.
      const cfg = writeConfig({ nodes: 1, fake: '{power_delay: 300ms, install: 2s}', deploy: '60s', power: '10s', editConfig: (y) => y.replace('bmc: {min_gap: 0ms}', 'bmc: {min_gap: 50ms}') });
      dir = cfg.dir;
      let agent = await boot(cfg.configPath, clock, lab);
      const { instance } = await agent.engine.createInstance(ctx(), { name: 'resume', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
      await driveUntil(clock, () => agent.engine.getInstance(ctx(), instance.id).task === null).catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(agent.engine.getInstance(ctx(), instance.id))} ${JSON.stringify(agent.store.listActions(instance.id))}`);
      });
      expect(agent.engine.getInstance(ctx(), instance.id).state).toBe('running');

      const setsAtStart = powerSetsOf(lab).length;
      const action = await agent.engine.runOperation(ctx(), instance.id, 'reinstall', {});
      const sent = () => agent.store.getAction(action.request_id)!.plan?.data[`${target.step}_sent`] === true;
      // The events of the steps before the target, all closed (the target's not opened yet).
      const done = STEPS.filter((s) => s.step < target.step).length;
      const setsAtTarget = STEPS.filter((s) => s.step < target.step && s.event.startsWith('power_')).length;
      await driveUntil(clock, () => {
        if (target.unsent) {
          // Waiting for the BMC's turn (min_gap): the steps before are closed, its command not sent, no event open.
          const events = agent.store.getAction(action.request_id)!.events;
          return events.length === done && events.every((e) => e.finish_time !== null) && clock.waiting > 0 && powerSetsOf(lab).length - setsAtStart === setsAtTarget && !sent();
        }
        const open = openStep(agent, action.request_id);
        // A power step is caught verifying its sent command.
        return open !== null && open.step === target.step && (!power || sent());
      });
      const before = agent.store.getAction(action.request_id)!;
      if (target.unsent) {
        expect(openStep(agent, action.request_id)).toBeNull();
        expect(before.events).toHaveLength(done);
        expect(before.plan?.data[`${target.step}_sent`]).toBeUndefined();
      } else {
        expect(openStep(agent, action.request_id)).toEqual({ step: target.step, event: target.event });
        expect(before.plan?.step).toBe(target.step);
      }
      const openIndex = target.unsent ? done : before.events.findIndex((e) => e.finish_time === null);
      const setsBefore = powerSetsOf(lab);
      const jobBefore = lab.snapshot(nodeId(1)).job;
      const stopping = agent.stop();
      await driveUntil(clock, async () => {
        await Promise.race([stopping, flush()]);
        return agent.engine.ready().reasons.includes('stopping');
      });
      await stopping;
      agents.pop();

      agent = await boot(cfg.configPath, clock, lab);
      await driveUntil(clock, () => agent.engine.getInstance(ctx(), instance.id).task === null);
      const after = agent.engine.getInstance(ctx(), instance.id);
      expect(after.error).toBeNull();
      expect(after).toMatchObject({ state: 'running', operation_state: 'reinstall-succeed' });

      const a = agent.store.getAction(action.request_id)!;
      // The steps that had finished are as they were; the interrupted one is the same event, now closed Success.
      expect(a.events.slice(0, openIndex)).toEqual(before.events.slice(0, openIndex));
      expect(a.events[openIndex]).toMatchObject({ event: target.event, result: 'Success', ...(target.unsent ? {} : { start_time: before.events[openIndex]!.start_time }) });
      // Every later event is a later step: nothing before the interrupted step ran again.
      const later = STEPS.filter((s) => s.step > target.step).map((s) => s.event);
      expect(a.events.slice(openIndex + 1).map((e) => e.event)).toEqual(later);
      expect(a.events.every((e) => e.finish_time !== null && e.result === 'Success')).toBe(true);
      // What the BMC saw: the interrupted power command was not sent again.
      const setsAfter = powerSetsOf(lab).slice(setsBefore.length);
      const word = (s: { event: string }) => (s.event === 'power_on' ? 'on' : 'off');
      const laterPowerSets = STEPS.filter((s) => s.step > target.step && s.event.startsWith('power_')).map(word);
      // The interrupted command is sent after the restart only if it had not left before it.
      expect(setsAfter).toEqual(target.unsent ? [word(target), ...laterPowerSets] : laterPowerSets);
      // The installer: a deploy interrupted is the job that was running, finished, not a second one started.
      if (target.event === 'deploy') {
        expect(jobBefore?.outcome).toBeNull();
        expect(lab.snapshot(nodeId(1)).job).toMatchObject({ id: jobBefore!.id, startedAt: jobBefore!.startedAt, outcome: { ok: true } });
      }
    }, 30_000);
  }
});
