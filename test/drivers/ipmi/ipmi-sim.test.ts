/**
 * The ipmi_sim launcher (test/emulators/ipmi-sim.ts) itself, driven by bare ipmitool: its BMCs are real, separate,
 * keep power and boot device in their chassis_control state, log every command, and hang when paused.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { IPMI_SIM, IPMITOOL, startIpmiSim, startIpmiSims, stopAllIpmiSims, type IpmiSim } from '../../emulators/ipmi-sim.js';
import { processArgvs } from './helpers.js';

afterEach(stopAllIpmiSims);

function parentOf(pid: number): number {
  return Number(/^\d+ \(.*\) \S (\d+) /.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1]);
}

/** Bare ipmitool against `sim` (the password through -E, stdin ignored). */
function ipmitool(sim: IpmiSim, args: string[], password = sim.password): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = ['-I', 'lanplus', '-H', sim.host, '-p', String(sim.port), '-U', sim.username, '-E', '-C', '3', '-N', '1', '-R', '1', ...args];
  return new Promise((res) => {
    const child = execFile(IPMITOOL, argv, { env: { IPMI_PASSWORD: password } }, (err, stdout, stderr) =>
      res({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end();
  });
}

describe('ipmi_sim launcher', () => {
  it('starts separate BMCs whose chassis state and log follow the commands', async () => {
    const [a, b] = (await startIpmiSims(2, { password: 'pw-launcher1' })) as [IpmiSim, IpmiSim];
    expect(a.port).not.toBe(b.port);
    expect(await a.power()).toBe('off');
    expect((await ipmitool(a, ['chassis', 'power', 'status'])).stdout).toContain('Chassis Power is off');

    expect((await ipmitool(a, ['chassis', 'power', 'on'])).code).toBe(0);
    expect(await a.power()).toBe('on');
    expect((await ipmitool(a, ['chassis', 'power', 'status'])).stdout).toContain('Chassis Power is on');
    expect((await ipmitool(a, ['chassis', 'bootdev', 'pxe'])).stdout).toContain('Set Boot Device to pxe');
    expect(await a.boot()).toBe('pxe');
    expect(await a.log()).toEqual(['power 1', 'boot pxe']);

    expect(await b.power()).toBe('off');
    expect(await b.log()).toEqual([]);
  });

  it('refuses a wrong password and logs nothing', async () => {
    const [a] = (await startIpmiSims(1, { password: 'pw-launcher2' })) as [IpmiSim];
    const r = await ipmitool(a, ['chassis', 'power', 'on'], 'not-the-password');
    expect(r.code).not.toBe(0);
    expect(await a.log()).toEqual([]);
  });

  it('hangs while paused, answers again when resumed, and is gone after stop', async () => {
    const [a] = (await startIpmiSims(1, { password: 'pw-launcher3', power: 'on' })) as [IpmiSim];
    a.pause();
    const hung = await ipmitool(a, ['chassis', 'power', 'status']);
    expect(hung.code).not.toBe(0);
    a.resume();
    expect((await ipmitool(a, ['chassis', 'power', 'status'])).stdout).toContain('Chassis Power is on');
    await a.stop();
    expect(existsSync(`/proc/${a.pid}`)).toBe(false);
    expect(existsSync(a.dir)).toBe(false);
  });

  it('starts 50 BMCs at once, each answering on its own port with its own state', async () => {
    const t0 = performance.now();
    const sims = await startIpmiSims(50, { password: 'pw-launcher4' });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(new Set(sims.map((s) => s.port)).size).toBe(50);
    const odd = sims.filter((_, i) => i % 2 === 1);
    for (let i = 0; i < odd.length; i += 10) {
      await Promise.all(odd.slice(i, i + 10).map((s) => ipmitool(s, ['chassis', 'power', 'on'])));
    }
    const powers = await Promise.all(sims.map((s) => s.power()));
    expect(powers).toEqual(sims.map((_, i) => (i % 2 === 1 ? 'on' : 'off')));
    await stopAllIpmiSims();
    expect(sims.filter((s) => existsSync(`/proc/${s.pid}`))).toEqual([]);
  });

  it('refuses a port another ipmi_sim holds (ipmi_sim itself would share it silently), and one a socket holds', async () => {
    const first = await startIpmiSim({ password: 'pw-launcher5' });
    await expect(startIpmiSim({ password: 'pw-launcher6', port: first.port })).rejects.toThrow(`UDP port ${first.port} is also bound by another process`);
    const holder = createSocket('udp4');
    await new Promise<void>((res) => holder.bind(0, '127.0.0.1', () => res()));
    const { port } = holder.address();
    try {
      await expect(startIpmiSim({ password: 'pw-launcher6', port })).rejects.toThrow(/exited \(1\) before listening/);
    } finally {
      holder.close();
    }
    expect((await ipmitool(first, ['chassis', 'power', 'status'])).stdout).toContain('Chassis Power is off');
    const mine = [...(await processArgvs())].filter(([pid, argv]) => argv[0] === IPMI_SIM && parentOf(pid) === process.pid);
    expect(mine.map(([pid]) => pid)).toEqual([first.pid]);
  });
});
