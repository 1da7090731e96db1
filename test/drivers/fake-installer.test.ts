/**
 * The fake installer runs on the simulated server (drivers/fake/installer.ts): a job outlives its waiter and, with a
 * state_file, the process; a deploy with the same job id attaches to it. All on the manual clock.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeLab, type FakeServerStateFile } from '../../drivers/fake/lab.js';
import type { BoundDriver } from '../../drivers/types.js';
import { flush, ManualClock, untilSettled } from '../helpers/manual-clock.js';
import { bindFakes, nextNodeId } from './helpers.js';

const INSTALL = { operation: 'install', imageName: 'debian-12' };

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function stateFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metald-fake-installer-'));
  dirs.push(dir);
  return join(dir, 'bmc.json');
}

/** A lab on a manual clock and one server (install: 10 s, so step i ends at +2i s); `id` reused for a "restart". */
function setup(options: Record<string, unknown> = {}, clock = new ManualClock(), id = nextNodeId('inst')) {
  const lab = new FakeLab({ now: clock.now, sleep: clock.sleep });
  const [d] = bindFakes(lab, id, ['fake'], { install: '10s', ...options });
  return { clock, lab, id, d: d!, t0: clock.now() };
}

/** Powers the server on from the network, so a deploy ramdisk runs (power_delay 0: at once). */
async function pxeOn(d: BoundDriver): Promise<void> {
  await d.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
  await d.power!.setPower('on');
}

/** Moves the clock by `ms` with nobody else waiting on it (a timer of the test's own). */
async function advance(clock: ManualClock, ms: number): Promise<void> {
  const t = clock.sleep(ms);
  clock.next();
  await t;
}

describe('fake installer job', () => {
  it('installs: progress 0..100 at each fifth of `install`, then the OS is recorded; uninstall clears it', async () => {
    const { clock, lab, id, d, t0 } = setup();
    await pxeOn(d);
    const progress: Array<[number, number]> = [];
    await untilSettled(clock, lab.deploy(id, 'j1', INSTALL, { onProgress: (p) => progress.push([p, clock.now() - t0]) }));
    expect(progress).toEqual([[0, 0], [20, 2_000], [40, 4_000], [60, 6_000], [80, 8_000], [100, 10_000]]);
    expect(lab.snapshot(id)).toMatchObject({ osInstalled: 'debian-12', installing: null, job: { id: 'j1', startedAt: t0, outcome: { ok: true } } });
    await untilSettled(clock, lab.deploy(id, 'j2', { operation: 'uninstall', imageName: null }));
    expect(lab.snapshot(id)).toMatchObject({ osInstalled: null, job: { id: 'j2', outcome: { ok: true } } });
  });

  it('needs the server on and booted from the network', async () => {
    const { lab, id, d } = setup({ os_installed: 'ubuntu-22.04' });
    await expect(lab.deploy(id, 'j1', INSTALL)).rejects.toThrow('server is powered off');
    await d.power!.setPower('on');
    await expect(lab.deploy(id, 'j1', INSTALL)).rejects.toThrow('the server did not boot the deploy ramdisk: boot device is disk');
    expect(lab.snapshot(id)).toMatchObject({ osInstalled: 'ubuntu-22.04', job: null });
    lab.wipe(id);
    expect(lab.snapshot(id).osInstalled).toBeNull();
  });

  it('fails at step 3 with fail_install, keeping the old OS', async () => {
    const { clock, lab, id, d } = setup({ os_installed: 'old' });
    await pxeOn(d);
    lab.setFaults(id, { fail_install: 1 });
    const progress: number[] = [];
    await expect(untilSettled(clock, lab.deploy(id, 'j1', { operation: 'reinstall', imageName: 'new' }, { onProgress: (p) => progress.push(p) }))).rejects.toThrow(
      'installer reported failure: disk write error',
    );
    expect(progress).toEqual([0, 20, 40]);
    expect(lab.snapshot(id)).toMatchObject({ osInstalled: 'old', installing: null, job: { failAtStep: 3, outcome: { ok: false } } });
  });

  it('a second lab on the same state_file (the agent restarted) attaches to the running job and ends it at its original time', async () => {
    const file = stateFile();
    const { clock, lab, id, d, t0 } = setup({ state_file: file });
    await pxeOn(d);
    const ac = new AbortController();
    const first = lab.deploy(id, 'req-1/deploy', INSTALL, { signal: ac.signal });
    for (let i = 0; i < 2; i++) {
      await flush();
      clock.next();
    }
    await flush();
    expect(clock.now() - t0).toBe(4_000);
    ac.abort(); // the old agent goes away; the server does not
    await expect(first).rejects.toThrow('installer aborted');

    const again = setup({ state_file: file }, clock, id);
    expect(again.lab.snapshot(id).installing).toEqual({ operation: 'install', progress: 40 });
    const progress: Array<[number, number]> = [];
    await untilSettled(clock, again.lab.deploy(id, 'req-1/deploy', INSTALL, { onProgress: (p) => progress.push([p, clock.now() - t0]) }));
    expect(progress).toEqual([[40, 4_000], [60, 6_000], [80, 8_000], [100, 10_000]]);
    expect(again.lab.snapshot(id)).toMatchObject({ osInstalled: 'debian-12', installing: null });
    const st = JSON.parse(readFileSync(file, 'utf8')) as FakeServerStateFile;
    expect(st).toMatchObject({ version: 2, osInstalled: 'debian-12', job: { id: 'req-1/deploy', startedAt: t0, outcome: { ok: true } } });
  });

  it('a deploy with the id of a finished job reports its outcome at once, whatever the server does now', async () => {
    const { clock, lab, id, d } = setup();
    await pxeOn(d);
    await untilSettled(clock, lab.deploy(id, 'ok-job', INSTALL));
    await d.power!.setPower('off');
    const progress: number[] = [];
    const ok = lab.deploy(id, 'ok-job', INSTALL, { onProgress: (p) => progress.push(p) });
    await flush();
    expect(clock.waiting).toBe(0);
    await expect(ok).resolves.toBeUndefined();
    expect(progress).toEqual([100]);

    await pxeOn(d);
    lab.setFaults(id, { fail_install: 1 });
    await expect(untilSettled(clock, lab.deploy(id, 'bad-job', INSTALL))).rejects.toThrow('installer reported failure: disk write error');
    // Not run again (the fault is used up: a new run would succeed).
    await expect(lab.deploy(id, 'bad-job', INSTALL)).rejects.toThrow('installer reported failure: disk write error');
    expect(lab.snapshot(id).job).toMatchObject({ id: 'bad-job', outcome: { ok: false } });
  });

  it('refuses another job id while one runs, and leaves the running one alone', async () => {
    const { clock, lab, id, d, t0 } = setup();
    await pxeOn(d);
    const first = untilSettled(clock, lab.deploy(id, 'j1', INSTALL));
    await flush();
    await expect(lab.deploy(id, 'j2', { operation: 'install', imageName: 'other' })).rejects.toThrow('an installer is already running (install)');
    await first;
    expect(clock.now() - t0).toBe(10_000);
    expect(lab.snapshot(id)).toMatchObject({ osInstalled: 'debian-12', job: { id: 'j1' } });
  });

  it('power off during the job fails it though nobody waits; a deploy with a new id then starts', async () => {
    const { clock, lab, id, d } = setup();
    await pxeOn(d);
    const ac = new AbortController();
    const wait = lab.deploy(id, 'j1', INSTALL, { signal: ac.signal });
    ac.abort();
    await expect(wait).rejects.toThrow('installer aborted');
    await advance(clock, 3_000);
    expect(lab.snapshot(id).installing).toEqual({ operation: 'install', progress: 20 });
    await d.power!.setPower('off');
    expect(lab.snapshot(id)).toMatchObject({ installing: null, osInstalled: null, job: { id: 'j1', outcome: { ok: false, message: 'the server was powered off during the install' } } });
    await advance(clock, 10_000);
    expect(lab.snapshot(id).osInstalled).toBeNull();
    await expect(lab.deploy(id, 'j1', INSTALL)).rejects.toThrow('the server was powered off during the install');

    await pxeOn(d);
    await untilSettled(clock, lab.deploy(id, 'j2', INSTALL));
    expect(lab.snapshot(id)).toMatchObject({ osInstalled: 'debian-12', job: { id: 'j2', outcome: { ok: true } } });
  });

  it('once the server boots again the old job is gone with its ramdisk: the same id starts it afresh', async () => {
    // What a delete re-run from its start after a restart does: power off (the wipe dies), network boot, wipe again.
    const { clock, lab, id, d } = setup();
    await pxeOn(d);
    lab.setFaults(id, { fail_install: 1 });
    await expect(untilSettled(clock, lab.deploy(id, 'req/wipe', { operation: 'uninstall', imageName: null }))).rejects.toThrow(
      'installer reported failure: disk write error',
    );
    await d.power!.setPower('off');
    await pxeOn(d);
    const t1 = clock.now();
    await untilSettled(clock, lab.deploy(id, 'req/wipe', { operation: 'uninstall', imageName: null }));
    expect(lab.snapshot(id).job).toMatchObject({ id: 'req/wipe', startedAt: t1, outcome: { ok: true } });
  });

  it('a reboot during the job fails it, and its waiter hears why', async () => {
    const { clock, lab, id, d } = setup();
    await pxeOn(d);
    const wait = lab.deploy(id, 'j1', INSTALL);
    await flush();
    await d.power!.setPower('reboot');
    await expect(untilSettled(clock, wait)).rejects.toThrow('the server rebooted during the install');
  });

  it('an abort ends the wait, not the job: it goes on and installs with nobody waiting', async () => {
    const { clock, lab, id, d } = setup();
    await pxeOn(d);
    const ac = new AbortController();
    const reason = new Error('agent stopping');
    const wait = lab.deploy(id, 'j1', INSTALL, { signal: ac.signal });
    await flush();
    clock.next();
    await flush();
    ac.abort(reason);
    await expect(wait).rejects.toMatchObject({ message: 'installer aborted', cause: reason });
    expect(clock.waiting).toBe(0);
    expect(lab.snapshot(id).installing).toEqual({ operation: 'install', progress: 20 });
    await advance(clock, 8_000);
    expect(lab.snapshot(id)).toMatchObject({ installing: null, osInstalled: 'debian-12', job: { id: 'j1', outcome: { ok: true } } });
  });

  it('the deadline ends the wait, naming it; the job keeps running and a later wait sees it end', async () => {
    const { clock, lab, id, d, t0 } = setup();
    await pxeOn(d);
    const deadlineAt = t0 + 5_000;
    await expect(untilSettled(clock, lab.deploy(id, 'j1', INSTALL, { deadlineAt }))).rejects.toThrow(
      `installer did not finish by ${new Date(deadlineAt).toISOString()}`,
    );
    expect(clock.now()).toBe(deadlineAt);
    expect(lab.snapshot(id).installing).toEqual({ operation: 'install', progress: 40 });
    await untilSettled(clock, lab.deploy(id, 'j1', INSTALL));
    expect(clock.now() - t0).toBe(10_000);
    expect(lab.snapshot(id).osInstalled).toBe('debian-12');
  });

  it('still reads a version 1 state file (no job), and writes version 2', async () => {
    const file = stateFile();
    const v1 = {
      version: 1,
      power: 'on',
      pending: null,
      persistentBoot: { device: 'disk', persistent: true, mode: 'uefi' },
      nextBoot: null,
      bootedFrom: 'pxe',
      boots: 4,
      media: null,
      osInstalled: 'old',
      faults: { fail_power_on: 1 },
      log: [{ seq: 1, at: 5, via: 'fake', op: 'power.set', arg: 'on', outcome: 'ok' }],
    };
    writeFileSync(file, JSON.stringify(v1));
    const { clock, lab, id } = setup({ state_file: file });
    expect(lab.snapshot(id)).toMatchObject({ power: 'on', bootedFrom: 'pxe', boots: 4, osInstalled: 'old', installing: null, job: null, faults: { fail_power_on: 1 } });
    expect(lab.commands(id)).toHaveLength(1);
    await untilSettled(clock, lab.deploy(id, 'j1', INSTALL));
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 2, boots: 4, osInstalled: 'debian-12', job: { id: 'j1', bootsAtStart: 4 } });
  });
});
