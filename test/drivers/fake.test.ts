import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeDriverFactory } from '../../drivers/fake/index.js';
import { defaultDriverPorts } from '../../drivers/ports.js';
import { FakeLab, parseDuration, parseFakeOptions, type FakeServerStateFile } from '../../drivers/fake/lab.js';
import { DEFAULT_COMMAND_LOG } from '../../drivers/fake/options.js';
import type { PowerAction } from '../../drivers/types.js';
import { runBootContract, runErrorContract, runInventoryContract, runMediaContract, runPowerContract, type MakeSubject } from './contract.js';
import { bindFakes, nextNodeId, target } from './helpers.js';

function makeFake(options: Record<string, unknown> = {}, quirks: { dropsBootFlags?: boolean } = {}): MakeSubject {
  return ({ power }) => {
    const lab = new FakeLab();
    const nodeId = nextNodeId('contract');
    const driver = fakeDriverFactory(lab).create(target(nodeId, { power_delay: '3ms', initial_power: power, ...options }), defaultDriverPorts);
    // The lab's own view of the server: its power and the power commands it carried out.
    const peer = {
      power: () => Promise.resolve(lab.snapshot(nodeId).power),
      powerLog: () => Promise.resolve(lab.commands(nodeId).filter((c) => c.op === 'power.set' && c.outcome === 'ok').map((c) => c.arg as PowerAction)),
      boot: () => Promise.resolve(lab.snapshot(nodeId).boot),
      media: () => Promise.resolve(lab.snapshot(nodeId).media),
    };
    return Promise.resolve({ driver, quirks, peer });
  };
}

runPowerContract('fake', makeFake());
runPowerContract('fake without soft actions', makeFake({ supports_soft: false }));
runBootContract('fake', makeFake());
runBootContract('fake dropping boot flags (like ipmi_sim)', makeFake({ faults: { ignore_boot_flags: true } }, { dropsBootFlags: true }));
runMediaContract('fake', makeFake());
runInventoryContract('fake', makeFake({ inventory: { macs: ['fa:16:3e:1c:d0:5a'] } }));
runErrorContract('fake', { unreachable: makeFake({ faults: { unreachable: true } }), badAuth: makeFake({ faults: { auth: true } }) });

describe('fake options', () => {
  it('parses durations', () => {
    expect(parseDuration(250, 'x')).toBe(250);
    expect(parseDuration('300ms', 'x')).toBe(300);
    expect(parseDuration('2s', 'x')).toBe(2_000);
    expect(parseDuration('1.5m', 'x')).toBe(90_000);
    expect(() => parseDuration('soon', 'power_delay')).toThrow(/power_delay: expected a duration/);
    expect(() => parseDuration(-1, 'x')).toThrow();
  });

  it('has defaults', () => {
    expect(parseFakeOptions(undefined, 'n')).toMatchObject({
      powerDelayMs: 0,
      supportsSoft: true,
      initialPower: 'off',
      osInstalled: null,
      faults: {},
      commandLogMax: DEFAULT_COMMAND_LOG,
    });
    expect(DEFAULT_COMMAND_LOG).toBe(1_000);
    expect(() => parseFakeOptions({ command_log: 0 }, 'n')).toThrow(/command_log: expected a whole number >= 1, got 0/);
    expect(() => parseFakeOptions({ command_log: '5' }, 'n')).toThrow(/command_log: expected a whole number >= 1/);
  });

  it('lists every bad option with its key', () => {
    const bad = { power_delay: 'fast', initial_power: 'maybe', colour: 'red', faults: { hang: 'yes', fail_power_on: -1 } };
    expect(() => parseFakeOptions(bad, 'n1')).toThrow(
      /fake driver options of node n1: .*colour: unknown option.*power_delay: expected a duration.*initial_power: expected "on" or "off".*hang: expected true or false.*fail_power_on: expected a whole number/,
    );
  });

  it('binding with bad options fails clearly', () => {
    expect(() => fakeDriverFactory(new FakeLab()).create(target('n2', { install: [] }), defaultDriverPorts)).toThrow(/install: expected a duration/);
  });

  it('rejects unknown faults at run time', () => {
    const lab = new FakeLab();
    lab.server('n3');
    expect(() => lab.setFaults('n3', { explode: true } as never)).toThrow(/explode: unknown fault/);
    expect(() => lab.setFaults('nobody', {})).toThrow(/no server for node nobody/);
  });
});

describe('fake server', () => {
  it('an installed OS is up (answers pings) only os_boot after the server came on', async () => {
    let now = 1_000;
    const lab = new FakeLab({ now: () => now });
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake'], { power_delay: '1s', os_boot: '3s', os_installed: 'debian-12' });
    expect(lab.snapshot(id).osUp).toBe(false);
    await d!.power!.setPower('on');
    now += 1_000; // on now, booting
    expect(lab.snapshot(id)).toMatchObject({ power: 'on', osUp: false });
    now += 2_999;
    expect(lab.snapshot(id).osUp).toBe(false);
    now += 1;
    expect(lab.snapshot(id).osUp).toBe(true);
    // A reboot (off, then on) boots it again.
    await d!.power!.setPower('off');
    now += 1_000;
    expect(lab.snapshot(id).osUp).toBe(false);
    await d!.power!.setPower('on');
    now += 1_000 + 2_000;
    expect(lab.snapshot(id).osUp).toBe(false);
    now += 1_000;
    expect(lab.snapshot(id).osUp).toBe(true);
  });

  it('makes a power change visible only after power_delay', async () => {
    let now = 1_000;
    const lab = new FakeLab({ now: () => now });
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake'], { power_delay: '2s' });
    await d!.power!.setPower('on');
    expect(await d!.power!.getPower()).toBe('off');
    now += 2_000;
    expect(await d!.power!.getPower()).toBe('on');
  });

  it('reboot of an off server powers it on; soft-off of an off server does nothing', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    await d!.power!.setPower('soft-off');
    expect(await d!.power!.getPower()).toBe('off');
    await d!.power!.setPower('reboot');
    expect(await d!.power!.getPower()).toBe('on');
    expect(lab.snapshot(id).boots).toBe(1);
  });

  it('consumes a next-boot override on boot and keeps a persistent one', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake'], { initial_power: 'on' });
    await d!.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
    await d!.power!.setPower('reboot');
    expect(lab.snapshot(id)).toMatchObject({ bootedFrom: 'pxe', boot: { device: 'disk', persistent: true } });
    await d!.boot!.setBoot({ device: 'pxe', persistent: true, mode: 'uefi' });
    await d!.power!.setPower('reboot');
    await d!.power!.setPower('reboot');
    expect(lab.snapshot(id)).toMatchObject({ bootedFrom: 'pxe', boot: { device: 'pxe', persistent: true }, boots: 3 });
  });

  it('boots cdrom only with media inserted', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    await d!.boot!.setBoot({ device: 'cdrom', persistent: true, mode: 'uefi' });
    await d!.power!.setPower('on');
    expect(lab.snapshot(id).bootedFrom).toBe('disk');
    await d!.media!.insertMedia('http://x/ramdisk.iso');
    await d!.power!.setPower('reboot');
    expect(lab.snapshot(id)).toMatchObject({ bootedFrom: 'cdrom', media: 'http://x/ramdisk.iso' });
  });

  it('logs every received command, not the refused ones', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    await d!.power!.getPower();
    lab.setFaults(id, { fail_power_on: 1 });
    await expect(d!.power!.setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_COMMAND_FAILED', nothingSent: false });
    lab.setFaults(id, { unreachable: true });
    await expect(d!.power!.setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_UNREACHABLE' });
    expect(lab.commands(id).map((c) => [c.op, c.arg, c.outcome])).toEqual([
      ['power.get', null, 'ok'],
      ['power.set', 'on', 'failed'],
    ]);
    expect(lab.faults(id)).toEqual({ unreachable: true });
  });

  it('keeps the newest command_log commands, seq increasing, in memory and in the state file across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metald-fake-log-'));
    try {
      const file = join(dir, 'bmc.json');
      const id = nextNodeId();
      const lab = new FakeLab();
      const [d] = bindFakes(lab, id, ['fake'], { command_log: 5, state_file: file });
      for (let i = 0; i < 12; i++) await d!.power!.getPower();
      expect(lab.commands(id).map((c) => c.seq)).toEqual([8, 9, 10, 11, 12]);
      const onDisk = JSON.parse(readFileSync(file, 'utf8')) as FakeServerStateFile;
      expect(onDisk.log.map((c) => c.seq)).toEqual([8, 9, 10, 11, 12]);
      // A new process on the same file, with a smaller bound: trimmed at load, seq goes on from the last one.
      const lab2 = new FakeLab();
      const [d2] = bindFakes(lab2, id, ['fake'], { command_log: 3, state_file: file });
      expect(lab2.commands(id).map((c) => c.seq)).toEqual([10, 11, 12]);
      await d2!.power!.setPower('on');
      expect(lab2.commands(id).map((c) => [c.seq, c.op])).toEqual([[11, 'power.get'], [12, 'power.get'], [13, 'power.set']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bounds the command log by default (DEFAULT_COMMAND_LOG), keeping the newest', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    for (let i = 0; i < DEFAULT_COMMAND_LOG + 10; i++) await d!.power!.getPower();
    const log = lab.commands(id);
    expect(log).toHaveLength(DEFAULT_COMMAND_LOG);
    expect(log[0]!.seq).toBe(11);
    expect(log.at(-1)!.seq).toBe(DEFAULT_COMMAND_LOG + 10);
  });

  it('counts faults down', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    lab.setFaults(id, { fail_reboot: 2, ignore_power: 1 });
    await expect(d!.power!.setPower('reboot')).rejects.toMatchObject({ code: 'BMC_ERR_COMMAND_FAILED' });
    await expect(d!.power!.setPower('soft-reboot')).rejects.toMatchObject({ code: 'BMC_ERR_COMMAND_FAILED' });
    await d!.power!.setPower('on'); // ignored
    expect(await d!.power!.getPower()).toBe('off');
    await d!.power!.setPower('on');
    expect(await d!.power!.getPower()).toBe('on');
    expect(lab.faults(id)).toEqual({ fail_reboot: 0, ignore_power: 0 });
  });

  it('hang: the call settles only when aborted, and nothing is applied', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    lab.setFaults(id, { hang: true });
    const ac = new AbortController();
    const p = d!.power!.setPower('on', { signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await expect(p).rejects.toMatchObject({ code: 'BMC_ERR_TIMEOUT' });
    lab.setFaults(id, {});
    expect(await d!.power!.getPower()).toBe('off');
  });
});
