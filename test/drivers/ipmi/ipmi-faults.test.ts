/**
 * The ipmi driver's deadlines and secrecy against real peers: a dead port, a hung (SIGSTOPped) ipmi_sim whose
 * ipmitool must be killed with its process group, and an argv sampler reading every process's /proc/<pid>/cmdline
 * while calls run.
 */
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createBmc } from '../../../drivers/bmc.js';
import { BmcLock } from '../../../drivers/bmc-lock.js';
import type { BoundDriver } from '../../../drivers/types.js';
import { startIpmiSim, stopAllIpmiSims } from '../../emulators/ipmi-sim.js';
import { bindIpmi, ipmitoolsFor, isAlive, processArgvs } from './helpers.js';

afterEach(stopAllIpmiSims);

const chain = (driver: BoundDriver, callTimeoutMs: number) =>
  createBmc(`node-${Math.random()}`, [driver], { lock: new BmcLock(), minGapMs: 0, callTimeoutMs, wait: { delaysMs: [20, 50], deadlineMs: 1_000 } });

/** A UDP port on 127.0.0.1 where nothing listens. */
async function deadPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  const { port } = s.address();
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

describe('ipmi driver faults', () => {
  it('a dead BMC port is BMC_ERR_UNREACHABLE (nothing sent) within its retry policy, before the deadline', async () => {
    const port = await deadPort();
    const bmc = chain(bindIpmi({ host: '127.0.0.1', port, username: 'admin', password: 'pw-dead-1' }), 5_000);
    const t0 = performance.now();
    await expect(bmc.readPower()).rejects.toMatchObject({ code: 'BMC_ERR_UNREACHABLE', nothingSent: true, driver: 'ipmi' });
    expect(performance.now() - t0).toBeLessThan(4_000);
  });

  it('a hung BMC (SIGSTOP): the call ends by its deadline and its ipmitool process group is killed', async () => {
    const sim = await startIpmiSim({ password: 'pw-hang-1', power: 'on' });
    sim.pause();
    // ipmitool alone would wait 5 x 5 s: only the deadline can end it.
    const bmc = chain(bindIpmi(sim, { settings: { retries: 5, retry_timeout_s: 5 } }), 700);
    const t0 = performance.now();
    const call = bmc.readPower();
    const seen: number[] = [];
    while (seen.length === 0 && performance.now() - t0 < 600) {
      seen.push(...(await ipmitoolsFor(sim.port)));
      if (seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(seen.length).toBeGreaterThan(0);
    await expect(call).rejects.toMatchObject({ code: 'BMC_ERR_TIMEOUT', driver: 'ipmi' });
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(650);
    expect(took).toBeLessThan(1_500);
    const until = performance.now() + 500;
    while (seen.some(isAlive) && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(seen.filter(isAlive)).toEqual([]);
    expect(await ipmitoolsFor(sim.port)).toEqual([]);
    sim.resume();
    expect(await sim.log()).toEqual([]);
  });

  it('an argv sampler reading every process while calls run finds ipmitool but never the password', async () => {
    const sim = await startIpmiSim({ password: 'Zq8-sampler-pw' });
    const bmc = chain(bindIpmi(sim), 5_000);
    const wrong = chain(bindIpmi(sim, { password: 'Wx7-wrong-pw' }), 5_000);
    let running = true;
    const ipmitoolArgvs: string[][] = [];
    const leaks: string[] = [];
    const sampler = (async () => {
      while (running) {
        for (const argv of (await processArgvs()).values()) {
          const line = argv.join(' ');
          if (line.includes('Zq8-sampler-pw') || line.includes('Wx7-wrong-pw')) leaks.push(line);
          if (/ipmitool$/.test(argv[0] ?? '')) ipmitoolArgvs.push(argv);
        }
      }
    })();
    try {
      for (let i = 0; i < 3; i++) {
        await bmc.setPower('on');
        await bmc.setPower('off');
        await bmc.setBoot({ device: 'pxe', persistent: false, mode: 'legacy' });
        await expect(wrong.readPower()).rejects.toMatchObject({ code: 'BMC_ERR_AUTH' });
      }
    } finally {
      running = false;
      await sampler;
    }
    expect(ipmitoolArgvs.length).toBeGreaterThan(0);
    expect(ipmitoolArgvs.some((a) => a.includes(String(sim.port)) && a.includes('-E'))).toBe(true);
    expect(leaks).toEqual([]);
  });
});
