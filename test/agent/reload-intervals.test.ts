/**
 * SIGHUP (agent.reload) changing `liveness.interval` or `power_sync.interval`: the loops already waiting on the old
 * interval (here 1 h) wait by the new one from then on, instead of sleeping out the old wait first.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../agent/config/load.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/daemon.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

async function counter(name: string): Promise<number> {
  const res = await h!.agent.api.inject({ method: 'GET', url: '/metrics' });
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(res.body);
  if (!m) throw new Error(`${name} is not in /metrics`);
  return Number(m[1]);
}

describe('reload applies a new interval to the loops already waiting', () => {
  it('liveness 1h -> 200ms and power_sync 1h -> 200ms: both sweep again within seconds', async () => {
    h = await startHarness({ liveness: '{engine: fake, interval: 1h, timeout: 100ms, retries: 0, jitter: 0}' });
    const live0 = await counter('metald_liveness_sweeps_total');
    const sync0 = await counter('metald_power_sync_sweeps_total');
    const text = readFileSync(h.configPath, 'utf8').replace('interval: 1h, failures_before_unknown', 'interval: 200ms, failures_before_unknown').replace('interval: 1h, timeout: 100ms', 'interval: 200ms, timeout: 100ms');
    expect(text).not.toContain('interval: 1h');
    writeFileSync(h.configPath, text);
    const res = h.agent.reload(loadConfigFile(h.configPath));
    expect(res.errors).toEqual([]);
    await waitFor(async () => (await counter('metald_liveness_sweeps_total')) > live0, 5000, 'a liveness sweep after the reload');
    await waitFor(async () => (await counter('metald_power_sync_sweeps_total')) > sync0, 5000, 'a power sync after the reload');
  });
});
