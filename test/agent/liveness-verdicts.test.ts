/** The monitor's last-sweep verdicts (LivenessStats.verdicts, the metald_liveness_verdicts gauge): counted per sweep. */
import { describe, expect, it } from 'vitest';
import { Liveness, type LivenessTarget } from '../../agent/liveness.js';
import { systemClock, type Pinger } from '../../agent/ports.js';

const target = (id: string, addr: string, over: Partial<LivenessTarget> = {}): LivenessTarget => ({
  id,
  addresses: [{ addr, mac: 'fa:16:3e:00:00:01', version: 4, type: 'fixed', network: 'private' }],
  ...over,
});

describe('Liveness: the last sweep verdicts', () => {
  it('counts alive, dead and powered-off instances of each sweep; the next sweep replaces them', async () => {
    const up = new Set(['10.0.0.1']);
    const pinger: Pinger = { engine: 'fake', ping: async (addrs) => addrs.map((addr) => ({ addr, alive: up.has(addr), rtt_ms: up.has(addr) ? 1 : null })) };
    const live = new Liveness(pinger, systemClock, () => ({ interval_ms: 60_000, timeout_ms: 10, retries: 0, batch: 2 }));
    const fleet = [
      target('a', '10.0.0.1'),
      target('b', '10.0.0.2'),
      target('c', '10.0.0.3', { task: 'reinstall' }),
      target('d', '10.0.0.4', { power_state: 'off' }),
      target('e', '10.0.0.5'),
    ];
    const page = (after: string | null, limit: number) => fleet.filter((t) => after === null || t.id > after).slice(0, limit);
    expect(live.stats().verdicts).toBeNull();
    expect(await live.sweepOnce(page)).toEqual({ alive: 1, dead: 2, 'powered-off': 2 });
    up.add('10.0.0.5');
    expect(await live.sweepOnce(page)).toEqual({ alive: 2, dead: 1, 'powered-off': 2 });
  });

  it('the monitor keeps the last sweep that ended without an error', async () => {
    let fail = false;
    const pinger: Pinger = {
      engine: 'fake',
      ping: async (addrs) => {
        if (fail) throw new Error('engine broke');
        return addrs.map((addr) => ({ addr, alive: true, rtt_ms: 1 }));
      },
    };
    const live = new Liveness(pinger, systemClock, () => ({ interval_ms: 5, timeout_ms: 10, retries: 0, batch: 10 }));
    live.startMonitor(() => [target('a', '10.0.0.1')]);
    try {
      for (let i = 0; i < 200 && live.stats().sweeps < 1; i++) await new Promise((r) => setTimeout(r, 5));
      expect(live.stats().verdicts).toEqual({ alive: 1, dead: 0, 'powered-off': 0 });
      fail = true;
      const after = live.stats().sweeps;
      for (let i = 0; i < 200 && live.stats().sweeps < after + 2; i++) await new Promise((r) => setTimeout(r, 5));
      expect(live.stats().sweeps).toBeGreaterThanOrEqual(after + 2);
      expect(live.stats().verdicts).toEqual({ alive: 1, dead: 0, 'powered-off': 0 });
    } finally {
      await live.stop();
    }
  });
});
