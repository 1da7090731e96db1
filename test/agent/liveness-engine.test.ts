/**
 * The daemon's ICMP engine: chosen by `liveness.engine` (agent/pinger/select.ts), named with its reason in ONE log
 * line at start, on /readyz and on /metrics, and closed at stop once the operations that probe through it stopped.
 */
import { existsSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { loadConfigFile } from '../../agent/config/load.js';
import type { Pinger } from '../../agent/ports.js';
import { writeConfig } from '../helpers/harness.js';

const FPING = '/usr/bin/fping';

let dir = '';
let agent: Agent | null = null;
afterEach(async () => {
  await agent?.stop();
  agent = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function build(liveness: string, pinger?: Pinger): Promise<{ agent: Agent; lines: () => Record<string, unknown>[] }> {
  const w = writeConfig({ liveness });
  dir = w.dir;
  const out: string[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (out.push(c.toString()), cb()) });
  const a = await buildAgent(loadConfigFile(w.configPath), { log: pino({ level: 'info' }, sink), ...(pinger ? { pinger } : {}) });
  agent = a;
  await a.start();
  return { agent: a, lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function readyz(a: Agent) {
  return (await a.api.inject({ method: 'GET', url: '/readyz' })).json() as { status: string; liveness?: { engine: string; reason: string } };
}

async function metrics(a: Agent): Promise<string> {
  return (await a.api.inject({ method: 'GET', url: '/metrics' })).body;
}

describe('the liveness engine of the daemon', () => {
  it('fping: one start-up line names it and why; /readyz and /metrics show it', async () => {
    if (!existsSync(FPING)) throw new Error(`${FPING} is missing: .ci/run installs it (apt-get install fping)`);
    const { agent: a, lines } = await build(`{engine: fping, fping_path: ${FPING}}`);
    const said = lines().filter((l) => String(l['msg']).startsWith('liveness engine'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ engine: 'fping', reason: 'configured (liveness.engine: fping)', msg: 'liveness engine: fping (configured (liveness.engine: fping))' });
    expect(await readyz(a)).toEqual({
      status: 'ready',
      reasons: [],
      liveness: { engine: 'fping', reason: 'configured (liveness.engine: fping)' },
      upstream: expect.objectContaining({ state: 'disabled' }),
    });
    const text = await metrics(a);
    expect(text).toContain('# TYPE metald_liveness_engine gauge');
    expect(text).toContain('metald_liveness_engine{engine="fping"} 1');
  });

  it('auto picks what select.ts picks, and says its reason', async () => {
    const { agent: a, lines } = await build(`{engine: auto, fping_path: ${FPING}}`);
    const { liveness } = await readyz(a);
    expect(liveness?.engine).toMatch(/^(raw|fping)$/);
    expect(liveness?.reason).toMatch(/^auto: /);
    expect(lines().filter((l) => l['msg'] === `liveness engine: ${liveness!.engine} (${liveness!.reason})`)).toHaveLength(1);
    expect(await metrics(a)).toContain(`metald_liveness_engine{engine="${liveness!.engine}"} 1`);
  });

  it('fake: the fake lab answers, and says so', async () => {
    const { agent: a } = await build('{engine: fake}');
    expect((await readyz(a)).liveness).toEqual({ engine: 'fake', reason: 'configured: the fake lab answers (allow_fake_drivers)' });
    expect(await metrics(a)).toContain('metald_liveness_engine{engine="fake"} 1');
  });

  it('the engine is closed at stop, after the operations stopped and before the store closed', async () => {
    const seen: string[] = [];
    const pinger: Pinger = {
      engine: 'test',
      ping: async (addrs) => addrs.map((addr) => ({ addr, alive: true, rtt_ms: 0.1 })),
      close: async () => {
        seen.push(`closed; store open: ${String(isOpen())}; engine: ${a.engine.ready().reasons.join()}`);
      },
    };
    const { agent: a } = await build('{engine: fake}', pinger);
    const isOpen = () => {
      try {
        a.store.listInstances();
        return true;
      } catch {
        return false;
      }
    };
    expect((await readyz(a)).liveness).toEqual({ engine: 'test', reason: 'injected by the caller' });
    await a.stop();
    agent = null;
    expect(seen).toEqual(['closed; store open: true; engine: stopping']);
  });
});
