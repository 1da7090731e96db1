/**
 * Liveness: the monitor's verdict while it is younger than the interval, else a fresh probe; alive if any fixed
 * address answers (nova's rule); floating addresses are not probed; changes are reported once.
 */
import { describe, expect, it } from 'vitest';
import { Liveness } from '../../agent/liveness.js';
import type { Instance } from '../../agent/model.js';
import type { Clock, PingResult, Pinger } from '../../agent/ports.js';

class ScriptedPinger implements Pinger {
  readonly engine = 'scripted';
  alive = new Set<string>();
  calls: string[][] = [];
  async ping(addrs: readonly string[]): Promise<PingResult[]> {
    this.calls.push([...addrs]);
    return addrs.map((addr) => ({ addr, alive: this.alive.has(addr), rtt_ms: this.alive.has(addr) ? 0.1 : null }));
  }
}

function instance(id: string, addrs: { addr: string; type?: 'fixed' | 'floating' }[]): Instance {
  return {
    id,
    addresses: addrs.map((a) => ({ addr: a.addr, mac: 'fa:16:3e:00:00:01', version: 4, type: a.type ?? 'fixed', network: 'n' })),
  } as Instance;
}

function setup() {
  let now = 1_000_000;
  const clock: Clock = { now: () => now, sleep: async () => undefined };
  const pinger = new ScriptedPinger();
  const changes: [string, boolean][] = [];
  const live = new Liveness(pinger, clock, () => ({ interval_ms: 30_000, timeout_ms: 100, retries: 0 }), (id, alive) => changes.push([id, alive]));
  return { live, pinger, changes, advance: (ms: number) => (now += ms) };
}

describe('Liveness', () => {
  it('is alive when any fixed address answers; floating addresses are not probed', async () => {
    const { live, pinger } = setup();
    pinger.alive.add('127.0.0.2');
    const i = instance('a', [{ addr: '127.0.0.1' }, { addr: '127.0.0.2' }, { addr: '127.0.0.3', type: 'floating' }]);
    expect(await live.check(i)).toBe(true);
    expect(pinger.calls).toEqual([['127.0.0.1', '127.0.0.2']]);
    expect(await live.check(instance('b', [{ addr: '127.0.0.9' }]))).toBe(false);
    expect(await live.check(instance('c', []))).toBe(false);
  });

  it('answers from a verdict younger than the interval, probes afresh after it', async () => {
    const { live, pinger, advance } = setup();
    const i = instance('a', [{ addr: '127.0.0.1' }]);
    pinger.alive.add('127.0.0.1');
    expect(await live.check(i)).toBe(true);
    pinger.alive.clear();
    advance(29_999);
    expect(await live.check(i)).toBe(true);
    expect(pinger.calls).toHaveLength(1);
    advance(2);
    expect(await live.check(i)).toBe(false);
    expect(pinger.calls).toHaveLength(2);
  });

  it('forget() drops a verdict so the next check probes', async () => {
    const { live, pinger } = setup();
    const i = instance('a', [{ addr: '127.0.0.1' }]);
    pinger.alive.add('127.0.0.1');
    await live.check(i);
    pinger.alive.clear();
    live.forget('a');
    expect(await live.check(i)).toBe(false);
  });

  it('checkMany probes only the stale ones, in one sweep, and reports each change once', async () => {
    const { live, pinger, changes } = setup();
    pinger.alive.add('127.0.0.1');
    const a = instance('a', [{ addr: '127.0.0.1' }]);
    const b = instance('b', [{ addr: '127.0.0.2' }]);
    await live.check(a);
    const res = await live.checkMany([a, b]);
    expect(res).toEqual(new Map([['a', true], ['b', false]]));
    expect(pinger.calls).toEqual([['127.0.0.1'], ['127.0.0.2']]);
    await live.probe(a);
    expect(changes).toEqual([['a', true], ['b', false]]);
  });
});
