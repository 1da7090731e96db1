import { describe, expect, it } from 'vitest';
import { createBmc } from '../../drivers/bmc.js';
import { BmcLock } from '../../drivers/bmc-lock.js';
import { BmcError } from '../../drivers/errors.js';
import type { BoundDriver } from '../../drivers/types.js';
import { bindFakes, FakeLab, fastBmc, nextNodeId } from './helpers.js';

/** A node with two access paths to one simulated server: fake-a first, then fake-b. */
function twoPaths(options: Record<string, unknown> = {}) {
  const lab = new FakeLab();
  const id = nextNodeId();
  const drivers = bindFakes(lab, id, ['fake-a', 'fake-b'], options);
  const sets = () => lab.commands(id).filter((c) => c.op === 'power.set');
  return { lab, id, drivers, sets };
}

describe('createBmc: fall-through', () => {
  it('auth failure on the first driver: the next one is used', async () => {
    const { lab, id, drivers, sets } = twoPaths();
    lab.setFaults(id, { auth: true }, 'fake-a');
    const r = await fastBmc(id, drivers).setPower('on');
    expect(r).toEqual({ power: 'on', tried: ['fake-a', 'fake-b'], succeeded: 'fake-b' });
    expect(sets().map((c) => c.via)).toEqual(['fake-b']);
  });

  it('unreachable first driver: reads and boot settings go through the next', async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { unreachable: true }, 'fake-a');
    const bmc = fastBmc(id, drivers);
    expect(await bmc.readPower()).toEqual({ power: 'off', tried: ['fake-a', 'fake-b'], succeeded: 'fake-b' });
    expect(await bmc.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' })).toEqual({ tried: ['fake-a', 'fake-b'], succeeded: 'fake-b' });
    expect(lab.commands(id).every((c) => c.via === 'fake-b')).toBe(true);
  });

  it('a failed command does not fall through', async () => {
    const { lab, id, drivers, sets } = twoPaths();
    lab.setFaults(id, { fail_power_on: 1 }, 'fake-a');
    const err = await fastBmc(id, drivers).setPower('on').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcError);
    expect(err).toMatchObject({ code: 'BMC_ERR_COMMAND_FAILED', driver: 'fake-a', nothingSent: false });
    expect(sets().map((c) => [c.via, c.outcome])).toEqual([['fake-a', 'failed']]);
    expect(lab.snapshot(id).power).toBe('off');
  });

  it('when every driver proves nothing was sent, the error names each', async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { auth: true }, 'fake-a');
    lab.setFaults(id, { unreachable: true }, 'fake-b');
    const p = fastBmc(id, drivers).readPower();
    await expect(p).rejects.toMatchObject({ code: 'BMC_ERR_UNREACHABLE', nothingSent: true });
    await expect(p).rejects.toThrow(/every driver failed before sending anything: fake-a: .*credentials.*; fake-b: .*unreachable/);
    expect(lab.commands(id)).toEqual([]);
  });

  it('an unsupported action is refused without sending; supports() says so', async () => {
    const { lab, id, drivers } = twoPaths({ supports_soft: false });
    const bmc = fastBmc(id, drivers);
    expect(bmc.supports('power')).toBe(true);
    expect(bmc.supports('power', 'reboot')).toBe(true);
    expect(bmc.supports('power', 'soft-off')).toBe(false);
    expect(bmc.supports('media')).toBe(true);
    await expect(bmc.setPower('soft-off')).rejects.toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    expect(lab.commands(id)).toEqual([]);
  });

  it('a capability no driver has is BMC_ERR_UNSUPPORTED', async () => {
    const { drivers, id } = twoPaths();
    const powerOnly: BoundDriver = { name: 'p', capabilities: ['power'], power: drivers[0]!.power! };
    const bmc = fastBmc(id, [powerOnly]);
    expect(bmc.supports('boot')).toBe(false);
    await expect(bmc.insertMedia('http://x')).rejects.toMatchObject({ code: 'BMC_ERR_UNSUPPORTED' });
  });

  it('refuses a driver that declares a capability it lacks', () => {
    expect(() => createBmc('n', [{ name: 'x', capabilities: ['boot'] }], { lock: new BmcLock(), minGapMs: 0, callTimeoutMs: 10, wait: { delaysMs: [1], deadlineMs: 1 } })).toThrow(
      /declares boot but does not implement it/,
    );
  });
});

describe('createBmc: reboot is a verified off, then a verified on', () => {
  for (const [action, off] of [
    ['reboot', 'off'],
    ['soft-reboot', 'soft-off'],
  ] as const) {
    it(`${action} of a running server: ${off} verified, then on verified; the BMC's own reset is never sent`, async () => {
      const { lab, id, drivers, sets } = twoPaths({ initial_power: 'on' });
      const r = await fastBmc(id, drivers).setPower(action);
      expect(r).toEqual({ power: 'on', tried: ['fake-a'], succeeded: 'fake-a' });
      expect(sets().map((c) => c.arg)).toEqual([off, 'on']);
      expect(lab.snapshot(id)).toMatchObject({ power: 'on', boots: 1 });
    });
  }

  it('a BMC that accepts the off and does nothing: BMC_ERR_VERIFY_FAILED, no on sent', async () => {
    const { lab, id, drivers, sets } = twoPaths({ initial_power: 'on' });
    lab.setFaults(id, { ignore_power: 1 });
    await expect(fastBmc(id, drivers, { wait: { delaysMs: [2], deadlineMs: 30 } }).setPower('reboot')).rejects.toMatchObject({ code: 'BMC_ERR_VERIFY_FAILED' });
    expect(sets().map((c) => [c.arg, c.outcome])).toEqual([['off', 'ignored']]);
  });

  it('supports(power, soft-reboot) means soft-off and on are supported', () => {
    const { id, drivers } = twoPaths({ supports_soft: false });
    const bmc = fastBmc(id, drivers);
    expect(bmc.supports('power', 'reboot')).toBe(true);
    expect(bmc.supports('power', 'soft-reboot')).toBe(false);
  });
});

describe('createBmc: timeouts never re-send', () => {
  it('reboot whose off answer is lost: power read back off, the off not re-sent, then on; one boot', async () => {
    const { lab, id, drivers, sets } = twoPaths({ initial_power: 'on' });
    lab.setFaults(id, { lose_reply: 1 });
    const r = await fastBmc(id, drivers, { callTimeoutMs: 30 }).setPower('reboot');
    expect(r).toMatchObject({ power: 'on', succeeded: 'fake-a', tried: ['fake-a'] });
    expect(sets().map((c) => [c.via, c.arg, c.outcome])).toEqual([
      ['fake-a', 'off', 'reply-lost'],
      ['fake-a', 'on', 'ok'],
    ]);
    expect(lab.snapshot(id).boots).toBe(1);
  });

  it('power on whose answer is lost but which did run: counted as done', async () => {
    const { lab, id, drivers, sets } = twoPaths();
    lab.setFaults(id, { lose_reply: 1 });
    expect((await fastBmc(id, drivers, { callTimeoutMs: 30 }).setPower('on')).power).toBe('on');
    expect(sets()).toHaveLength(1);
  });

  it('power on that timed out and did not run: BMC_ERR_TIMEOUT, not re-sent, next driver not tried', async () => {
    const { lab, id, drivers, sets } = twoPaths();
    lab.setFaults(id, { ignore_power: 1, lose_reply: 1 });
    const p = fastBmc(id, drivers, { callTimeoutMs: 30, wait: { delaysMs: [2], deadlineMs: 20 } }).setPower('on');
    await expect(p).rejects.toMatchObject({ code: 'BMC_ERR_TIMEOUT', driver: 'fake-a', nothingSent: false });
    await expect(p).rejects.toThrow(/no answer within 30 ms; power then read off \(expected on\); the command was not re-sent/);
    expect(sets().map((c) => [c.via, c.arg])).toEqual([['fake-a', 'on']]);
    expect(lab.snapshot(id).power).toBe('off');
    expect(lab.commands(id).filter((c) => c.op === 'power.get').length).toBeGreaterThan(0);
  });

  it('a hung BMC is abandoned at the call deadline', async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { hang: true });
    const bmc = fastBmc(id, drivers, { callTimeoutMs: 25, wait: { delaysMs: [1], deadlineMs: 10 } });
    let t0 = performance.now();
    await expect(bmc.readPower()).rejects.toMatchObject({ code: 'BMC_ERR_TIMEOUT', message: expect.stringMatching(/no answer within 25 ms/) as unknown });
    expect(performance.now() - t0).toBeLessThan(1_000);
    t0 = performance.now();
    await expect(bmc.setPower('off')).rejects.toMatchObject({ code: 'BMC_ERR_TIMEOUT' });
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(lab.commands(id).filter((c) => c.op === 'power.set')).toHaveLength(1);
  });

  it('a per-call timeoutMs overrides the default deadline', async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { hang: true });
    await expect(fastBmc(id, drivers, { callTimeoutMs: 60_000 }).readPower({ timeoutMs: 10 })).rejects.toThrow(/no answer within 10 ms/);
  });

  it("the caller's signal gives BMC_ERR_ABORTED", async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { hang: true });
    const ac = new AbortController();
    // A long call deadline: the abort itself ends the hung command, not the deadline.
    const p = fastBmc(id, drivers, { callTimeoutMs: 60_000 }).readPower({ signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    const t0 = performance.now();
    await expect(p).rejects.toMatchObject({ code: 'BMC_ERR_ABORTED' });
    expect(performance.now() - t0).toBeLessThan(1_000);
  });
});

describe('createBmc: verification', () => {
  it('ignored power command: BMC_ERR_VERIFY_FAILED naming expected and read', async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { ignore_power: 1 });
    const p = fastBmc(id, drivers, { wait: { delaysMs: [2, 4], deadlineMs: 30 } }).setPower('on');
    await expect(p).rejects.toMatchObject({ code: 'BMC_ERR_VERIFY_FAILED', driver: 'fake-a' });
    await expect(p).rejects.toThrow('power on was accepted by fake-a but power read off, expected on, within 30 ms');
  });

  it('waits out a slow BMC under the policy (delays in order, the last repeats)', async () => {
    let now = 0;
    const slept: number[] = [];
    const lab = new FakeLab({ now: () => now });
    const id = nextNodeId();
    const drivers = bindFakes(lab, id, ['fake'], { power_delay: 100 });
    const bmc = fastBmc(id, drivers, {
      now: () => now,
      sleep: (ms) => {
        slept.push(ms);
        now += ms;
        return Promise.resolve();
      },
      wait: { delaysMs: [10, 20, 40], deadlineMs: 1_000 },
    });
    expect((await bmc.setPower('on')).power).toBe('on');
    expect(slept).toEqual([10, 20, 40, 40]);
  });

  it('the last read happens at the deadline', async () => {
    let now = 0;
    const slept: number[] = [];
    const lab = new FakeLab({ now: () => now });
    const id = nextNodeId();
    const drivers = bindFakes(lab, id, ['fake'], { power_delay: 1_000 });
    const bmc = fastBmc(id, drivers, {
      now: () => now,
      sleep: (ms) => {
        slept.push(ms);
        now += ms;
        return Promise.resolve();
      },
      wait: { delaysMs: [40], deadlineMs: 100 },
    });
    await expect(bmc.setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_VERIFY_FAILED' });
    expect(slept).toEqual([40, 40, 20]);
  });

  it('a read-back that fails for good after the command is VERIFY_FAILED, never a nothing-sent error', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const [d] = bindFakes(lab, id, ['fake']);
    const driver: BoundDriver = {
      ...d!,
      power: {
        ...d!.power!,
        setPower: async (a, o) => {
          await d!.power!.setPower(a, o);
          lab.setFaults(id, { auth: true });
        },
      },
    };
    await expect(fastBmc(id, [driver]).setPower('on')).rejects.toMatchObject({ code: 'BMC_ERR_VERIFY_FAILED', nothingSent: false });
  });

  it('boot flags dropped by the BMC: BMC_ERR_BOOT_FLAGS_IGNORED naming the fields', async () => {
    const { lab, id, drivers } = twoPaths();
    lab.setFaults(id, { ignore_boot_flags: true });
    const bmc = fastBmc(id, drivers);
    const p = bmc.setBoot({ device: 'pxe', persistent: true, mode: 'uefi' });
    await expect(p).rejects.toMatchObject({ code: 'BMC_ERR_BOOT_FLAGS_IGNORED', driver: 'fake-a' });
    await expect(p).rejects.toThrow('persistent: asked true, BMC reports false; mode: asked uefi, BMC reports legacy');
    await expect(bmc.setBoot({ device: 'pxe', persistent: false, mode: 'legacy' })).resolves.toEqual({ tried: ['fake-a'], succeeded: 'fake-a' });
    expect((await bmc.readBoot()).boot).toEqual({ device: 'pxe', persistent: false, mode: 'legacy' });
  });

  it('a closed handle refuses calls', async () => {
    const { id, drivers } = twoPaths();
    const bmc = fastBmc(id, drivers);
    await bmc.close();
    await bmc.close();
    await expect(bmc.readPower()).rejects.toMatchObject({ code: 'BMC_ERR_ABORTED' });
  });
});

describe('createBmc: one lock per BMC', () => {
  it('keeps the minimum gap between commands to the same BMC, across drivers', async () => {
    const lab = new FakeLab({ now: () => performance.now() });
    const id = nextNodeId();
    const drivers = bindFakes(lab, id, ['fake-a', 'fake-b'], { power_delay: 0 });
    lab.setFaults(id, { unreachable: true }, 'fake-a');
    const bmc = fastBmc(id, drivers, { minGapMs: 15, wait: { delaysMs: [1], deadlineMs: 200 } });
    await Promise.all([bmc.readPower(), bmc.setPower('on'), bmc.readPower(), bmc.setBoot({ device: 'disk', persistent: true, mode: 'uefi' })]);
    const at = lab.commands(id).map((c) => c.at);
    expect(at.length).toBeGreaterThanOrEqual(5);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(15);
  });

  it('serves two callers of one BMC in arrival order (FIFO)', async () => {
    const lab = new FakeLab();
    const id = nextNodeId();
    const lock = new BmcLock();
    const [a] = bindFakes(lab, id, ['fake-a']);
    const [b] = bindFakes(lab, id, ['fake-b']);
    const opts = { lock, lockKey: '10.0.1.21:623', minGapMs: 2 };
    const one = fastBmc(id, [a!], opts);
    const two = fastBmc(id, [b!], opts);
    await Promise.all([one.readPower(), two.readPower(), one.readInventory(), two.readBoot(), one.readPower()]);
    expect(lab.commands(id).map((c) => `${c.via} ${c.op}`)).toEqual([
      'fake-a power.get',
      'fake-b power.get',
      'fake-a inventory.get',
      'fake-b boot.get',
      'fake-a power.get',
    ]);
  });

  it('a call still queued at its deadline is BMC_ERR_BUSY, sends nothing and does not fall through', async () => {
    const { lab, id, drivers } = twoPaths();
    const lock = new BmcLock();
    lab.setFaults(id, { hang: true }, 'fake-a');
    const first = fastBmc(id, drivers, { lock, callTimeoutMs: 200 }).readPower();
    const second = fastBmc(id, drivers, { lock, callTimeoutMs: 20 }).readPower();
    await expect(second).rejects.toMatchObject({ code: 'BMC_ERR_BUSY', driver: 'fake-a', message: expect.stringMatching(/nothing was sent/) as unknown });
    await expect(first).rejects.toMatchObject({ code: 'BMC_ERR_TIMEOUT' });
    expect(lab.commands(id)).toHaveLength(1);
  });
});
