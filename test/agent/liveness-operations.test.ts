/**
 * The liveness monitor inside a real agent (store, engine, fake lab): its verdicts become `instance.alive` journal
 * entries (the outbox a controller reads), and while an OS operation powers the server off it says `powered-off`
 * instead of "dead": nothing journalled, os-fping answers seed 000's `alive: false`, and probing resumes after the
 * operation without a "dead" flip.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JournalEntry } from '../../agent/model.js';
import type { LivenessAnswer } from '../../agent/service.js';
import { IMAGE2, MEMBER_TOKEN, PROJECT, ctx, startHarness, type Harness } from '../helpers/harness.js';
import { runningInstance, sleep } from '../helpers/engine.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

const aliveRows = (hh: Harness, id: string, afterSeq = 0): JournalEntry[] =>
  hh.agent.store.readJournal(afterSeq + 1, 100_000).filter((e) => e.kind === 'instance.alive' && e.instance_id === id);

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('the liveness monitor in the agent', () => {
  it('journals the first verdict; a reinstall journals no alive change while os-fping says powered-off; probing resumes after it', async () => {
    h = await startHarness({
      fake: '{power_delay: 5ms, install: 300ms}',
      liveness: '{engine: fake, interval: 20ms, jitter: 0.1, timeout: 50ms, retries: 0, hysteresis: 2}',
    });
    const hh = h;
    const id = await runningInstance(hh);
    await until(() => aliveRows(hh, id).length > 0, 'the first verdict');
    expect(aliveRows(hh, id).map((e) => [e.kind, e.cause, e.data])).toEqual([['instance.alive', 'monitor', { alive: true }]]);

    const seq = hh.agent.store.lastSeq();
    await hh.agent.engine.runOperation(ctx(), id, 'reinstall', { image_uuid: IMAGE2 });
    let done = false;
    void hh.agent.engine.idle().then(() => (done = true));
    const answers: LivenessAnswer[] = [];
    const wire: unknown[] = [];
    while (!done) {
      answers.push(await hh.agent.engine.ping(ctx(), id));
      const res = await hh.agent.api.inject({ method: 'GET', url: `/v2.1/${PROJECT}/os-fping/${id}`, headers: { 'x-auth-token': MEMBER_TOKEN } });
      wire.push(res.json());
      await sleep(10);
    }
    expect(hh.agent.store.getInstance(id)!.operation_state).toBe('reinstall-succeed');
    const during = answers.filter((a) => a.verdict === 'powered-off');
    expect(during.length).toBeGreaterThan(5);
    expect(during.every((a) => a.alive === false && a.operation === 'reinstall')).toBe(true);
    expect(answers.filter((a) => a.verdict === 'dead')).toEqual([]);
    // Seed 000's shape on the wire, no field added.
    expect(wire).toContainEqual({ server: { alive: false, id, project_id: PROJECT } });
    for (const w of wire) expect(Object.keys((w as { server: object }).server).sort()).toEqual(['alive', 'id', 'project_id']);

    // Probing resumes: more sweeps, the verdict alive again, and no alive entry at all since the reinstall began.
    const sweeps = async () => Number(/^metald_liveness_sweeps_total (\d+)/m.exec((await hh.agent.api.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);
    const before = await sweeps();
    await sleep(150);
    expect(await sweeps()).toBeGreaterThan(before);
    expect(await hh.agent.engine.ping(ctx(), id)).toMatchObject({ alive: true, verdict: 'alive', operation: null });
    expect(aliveRows(hh, id, seq)).toEqual([]);
  });
});
