/**
 * The fping engine against the real `fping` binary (Debian `fping`, installed by .ci/run). A silent host is made
 * with an nftables rule that drops echo requests to one loopback address (needs root and Debian `nftables`; CI is
 * root). Where these cannot run, the tests fail saying why.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FpingPinger, parseFpingOutput } from '../../../agent/pinger/fping.js';
import { ctx, IMAGE, NETWORK, startHarness } from '../../helpers/harness.js';

const FPING = '/usr/bin/fping';
const TABLE = `metald_test_${process.pid}`;
const SILENT = '127.0.9.9';

describe('parseFpingOutput', () => {
  it('reads alive lines with their round-trip time and unreachable lines', () => {
    const out = parseFpingOutput('127.0.0.1 is alive (0.048 ms)\n127.0.9.9 is unreachable\nICMP Host Unreachable from 1.2.3.4\n');
    expect(out.get('127.0.0.1')).toEqual({ alive: true, rtt_ms: 0.048 });
    expect(out.get('127.0.9.9')).toEqual({ alive: false, rtt_ms: null });
    expect(out.size).toBe(2);
  });
});

describe('FpingPinger (real fping)', () => {
  let ruleAdded = false;
  beforeAll(() => {
    if (!existsSync(FPING)) throw new Error(`${FPING} is missing: .ci/run installs it (apt-get install fping)`);
    if (process.getuid?.() !== 0) throw new Error('the silent-host test needs root for an nftables rule (CI runs as root)');
    try {
      execFileSync('nft', ['add', 'table', 'inet', TABLE]);
      execFileSync('nft', ['add', 'chain', 'inet', TABLE, 'in', '{ type filter hook input priority 0; policy accept; }']);
      execFileSync('nft', ['add', 'rule', 'inet', TABLE, 'in', 'ip', 'daddr', SILENT, 'icmp', 'type', 'echo-request', 'drop']);
      ruleAdded = true;
    } catch (e) {
      throw new Error(`cannot add the nftables rule (apt-get install nftables; needs root): ${(e as Error).message}`);
    }
  });
  afterAll(() => {
    if (ruleAdded) execFileSync('nft', ['delete', 'table', 'inet', TABLE]);
  });

  const pinger = new FpingPinger(FPING);

  it('reports a live loopback address alive with a round-trip time', async () => {
    const [r] = await pinger.ping(['127.0.0.1'], { timeoutMs: 500, retries: 0 });
    expect(r).toMatchObject({ addr: '127.0.0.1', alive: true });
    expect(r!.rtt_ms).toBeGreaterThan(0);
  });

  it('reports a silent address not alive, and keeps the answers apart', async () => {
    const res = await pinger.ping(['127.0.0.1', SILENT], { timeoutMs: 200, retries: 0 });
    expect(res.find((r) => r.addr === SILENT)).toEqual({ addr: SILENT, alive: false, rtt_ms: null, icmp_error: null });
    expect(res.find((r) => r.addr === '127.0.0.1')?.alive).toBe(true);
  });

  it('refuses anything that is not an IP literal (no name resolution, no argv injection)', async () => {
    await expect(pinger.ping(['-x'], { timeoutMs: 100, retries: 0 })).rejects.toThrow(/not an IP address/);
    await expect(pinger.ping(['localhost'], { timeoutMs: 100, retries: 0 })).rejects.toThrow(/not an IP address/);
  });
});

describe('os-fping through the engine with the fping engine', () => {
  let ruleAdded = false;
  afterAll(() => {
    if (ruleAdded) execFileSync('nft', ['delete', 'table', 'inet', `${TABLE}_e`]);
  });

  it('answers alive when a fixed address answers and not alive when it is silent (fresh probes)', async () => {
    if (!existsSync(FPING)) throw new Error(`${FPING} is missing: .ci/run installs it (apt-get install fping)`);
    const h = await startHarness({ liveness: `{engine: fping, fping_path: ${FPING}, interval: 1ms, timeout: 200ms, retries: 0, hysteresis: 1}` });
    try {
      const { instance } = await h.agent.engine.createInstance(ctx(), { name: 'ping', image_uuid: IMAGE, networks: [{ uuid: NETWORK }] });
      await h.agent.engine.idle();
      const addr = instance.addresses[0]!.addr;
      expect(addr).toMatch(/^127\.0\.2\./);
      expect(await h.agent.engine.ping(ctx(), instance.id)).toMatchObject({ instance_id: instance.id, project_id: instance.project_id, alive: true });
      execFileSync('nft', ['add', 'table', 'inet', `${TABLE}_e`]);
      ruleAdded = true;
      execFileSync('nft', ['add', 'chain', 'inet', `${TABLE}_e`, 'in', '{ type filter hook input priority 0; policy accept; }']);
      execFileSync('nft', ['add', 'rule', 'inet', `${TABLE}_e`, 'in', 'ip', 'daddr', addr, 'icmp', 'type', 'echo-request', 'drop']);
      await new Promise((r) => setTimeout(r, 5));
      expect((await h.agent.engine.ping(ctx(), instance.id)).alive).toBe(false);
    } finally {
      await h.close();
    }
  });
});
