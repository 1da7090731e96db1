/**
 * Scale check of the emulator for power sync at 1,000 BMCs: ONE process serving 1,000 systems over HTTPS, a GET of
 * every system through one session on keep-alive connections, every system powered on, the process's memory.
 * The figures are printed (and quoted in the commit that added this test); the bounds are loose on purpose (2 shared
 * cores): they catch a per-system cost gone wrong, not a slow machine.
 */
import { Agent } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { emulatorControl, emuRequest, launchEmulator, type EmulatorProcess, type EmulatorStats } from './launch.js';

const N = 1_000;
const CONCURRENCY = 16;
const dir = mkdtempSync(join(tmpdir(), 'rfemu-scale-'));
let emu: EmulatorProcess;
let agent: Agent;
let token: string;

beforeAll(async () => {
  emu = await launchEmulator(['--systems', String(N), '--tls-dir', join(dir, 'tls'), '--power-delay-ms', '100']);
  const ca = readFileSync(emu.caFile!, 'utf8');
  agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca });
  const login = await emuRequest(emu.url, 'POST', '/redfish/v1/SessionService/Sessions', { agent, body: { UserName: emu.username, Password: emu.password } });
  token = login.headers['x-auth-token'] as string;
});

afterAll(async () => {
  agent?.destroy();
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `f` over `items` with at most CONCURRENCY in flight. */
async function pool<T, R>(items: T[], f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  }));
  return out;
}

const get = (path: string): ReturnType<typeof emuRequest> => emuRequest(emu.url, 'GET', path, { agent, headers: { 'X-Auth-Token': token } });
const stats = (): Promise<EmulatorStats> => emulatorControl(emu.url, readFileSync(emu.caFile!, 'utf8')).stats();
const mib = (b: number): string => (b / 1024 / 1024).toFixed(1);

test(`1,000 systems in one process: GET of all of them, then all powered on; memory`, async () => {
  const idle = await stats();
  expect(idle.systems).toBe(N);

  const t0 = performance.now();
  const members = ((await get('/redfish/v1/Systems')).body as { Members: { '@odata.id': string }[] }).Members.map((m) => m['@odata.id']);
  expect(members).toHaveLength(N);
  const systems = await pool(members, get);
  const sweepMs = performance.now() - t0;
  expect(systems.filter((r) => r.status === 200 && (r.body as { PowerState: string }).PowerState === 'Off')).toHaveLength(N);

  const t1 = performance.now();
  const resets = await pool(members, (p) => emuRequest(emu.url, 'POST', `${p}/Actions/ComputerSystem.Reset`, { agent, headers: { 'X-Auth-Token': token }, body: { ResetType: 'On' } }));
  const resetMs = performance.now() - t1;
  expect(resets.every((r) => r.status === 204)).toBe(true);
  await new Promise((r) => setTimeout(r, 300));
  const after = await emulatorControl(emu.url, readFileSync(emu.caFile!, 'utf8')).systems();
  expect(after.filter((s) => s.powerState === 'On' && s.reads === 1)).toHaveLength(N);
  const loaded = await stats();

  console.log(`[redfish emulator scale] ${N} systems: idle RSS ${mib(idle.rssBytes)} MiB (heap ${mib(idle.heapUsedBytes)} MiB); GET of all ${N} over HTTPS keep-alive x${CONCURRENCY}: ${sweepMs.toFixed(0)} ms (${(N / (sweepMs / 1000)).toFixed(0)}/s); ${N} resets: ${resetMs.toFixed(0)} ms; emulator CPU for both ${loaded.cpuMs - idle.cpuMs} ms; RSS after ${mib(loaded.rssBytes)} MiB (heap ${mib(loaded.heapUsedBytes)} MiB)`);
  expect(loaded.rssBytes).toBeLessThan(300 * 1024 * 1024);
  expect(sweepMs).toBeLessThan(20_000);
}, 60_000);
