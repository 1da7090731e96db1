import { describe, expect, it } from 'vitest';
import { BmcLock, bmcLockKey } from '../../drivers/bmc-lock.js';

describe('BmcLock', () => {
  it('runs calls to one key one at a time, FIFO', async () => {
    const lock = new BmcLock();
    const log: string[] = [];
    let running = 0;
    const job = (i: number) => async () => {
      running++;
      expect(running).toBe(1);
      log.push(`start ${i}`);
      await new Promise((r) => setTimeout(r, 3 - (i % 3)));
      log.push(`end ${i}`);
      running--;
      return i;
    };
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => lock.run('bmc', 0, job(i))));
    expect(results).toEqual([0, 1, 2, 3, 4]);
    expect(log).toEqual([0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]));
  });

  it('keeps minGapMs between the end of one call and the start of the next (fake clock)', async () => {
    let now = 0;
    const slept: number[] = [];
    const lock = new BmcLock({
      now: () => now,
      sleep: (ms) => {
        slept.push(ms);
        now += ms;
        return Promise.resolve();
      },
    });
    const spans: [number, number][] = [];
    const cmd = (took: number) => async () => {
      const start = now;
      now += took;
      spans.push([start, now]);
    };
    await Promise.all([lock.run('k', 50, cmd(10)), lock.run('k', 50, cmd(30)), lock.run('k', 50, cmd(5))]);
    expect(spans).toEqual([
      [0, 10],
      [60, 90],
      [140, 145],
    ]);
    now += 20;
    await lock.run('k', 50, cmd(1));
    expect(spans[3]).toEqual([195, 196]);
    expect(slept).toEqual([50, 50, 30]);
  });

  it('keeps the gap with real time', async () => {
    const lock = new BmcLock();
    const spans: [number, number][] = [];
    const cmd = async () => {
      const s = performance.now();
      await Promise.resolve();
      spans.push([s, performance.now()]);
    };
    await Promise.all([1, 2, 3].map(() => lock.run('k', 10, cmd)));
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0] - spans[i - 1]![1]).toBeGreaterThanOrEqual(10);
  });

  it('different keys do not wait for each other', async () => {
    const lock = new BmcLock();
    let release!: () => void;
    const held = lock.run('a', 0, () => new Promise<void>((r) => (release = r)));
    expect(await lock.run('b', 0, () => Promise.resolve('b ran'))).toBe('b ran');
    expect(lock.busy('a')).toBe(true);
    release();
    await held;
    expect(lock.busy('a')).toBe(false);
  });

  it('an aborted waiter leaves the queue without running; the others keep their order', async () => {
    const lock = new BmcLock();
    const ran: string[] = [];
    let release!: () => void;
    const first = lock.run('k', 0, () => new Promise<void>((r) => (release = r)));
    const ac = new AbortController();
    const second = lock.run('k', 0, async () => void ran.push('second'), ac.signal);
    const third = lock.run('k', 0, async () => void ran.push('third'));
    expect(lock.queued('k')).toBe(2);
    ac.abort(new Error('gave up'));
    await expect(second).rejects.toThrow('gave up');
    expect(lock.queued('k')).toBe(1);
    release();
    await Promise.all([first, third]);
    expect(ran).toEqual(['third']);
  });

  it('releases the lock when a call fails', async () => {
    const lock = new BmcLock();
    await expect(lock.run('k', 0, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await lock.run('k', 0, () => Promise.resolve(1))).toBe(1);
  });
});

describe('bmcLockKey', () => {
  it('keys on host and port', () => {
    expect(bmcLockKey({ address: '10.0.1.21', port: 623 })).toBe('10.0.1.21:623');
    expect(bmcLockKey({ address: 'https://BMC.example:8443/redfish' })).toBe('bmc.example:8443');
    expect(bmcLockKey({ address: 'https://10.0.1.22' })).toBe('10.0.1.22:');
    expect(bmcLockKey({ address: 'https://10.0.1.22', port: 443 })).toBe('10.0.1.22:443');
  });
});
