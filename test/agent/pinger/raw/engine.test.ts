/**
 * The raw engine over a fake socket and the manual clock: what counts as a reply, the counters, fping's scheduling
 * (packet interval, back-off, count mode), ICMP errors, abort, and the process-wide socket shared by engines.
 */
import { describe, expect, it } from 'vitest';
import { RawPinger } from '../../../../agent/pinger/raw/engine.js';
import { IcmpHub } from '../../../../agent/pinger/raw/socket.js';
import type { PingOptions, ProbeEvent } from '../../../../agent/ports.js';
import { flush, ManualClock, untilSettled } from '../../../helpers/manual-clock.js';
import { FakeSockets, icmpErrorV4, icmpErrorV6 } from './fake-socket.js';

function setup(ids: number[] = [0x1111]) {
  const clock = new ManualClock(0);
  const sockets = new FakeSockets(clock);
  let i = 0;
  const hub = new IcmpHub(sockets, () => ids[i++ % ids.length]!);
  const engine = new RawPinger({ hub, clock });
  return { clock, sockets, hub, engine };
}

const QUICK: PingOptions = { timeoutMs: 100, retries: 0, packetIntervalMs: 0 };

describe('RawPinger: what counts as a reply', () => {
  it('a reply matching source, identifier, sequence and nonce makes the target alive, RTT from the hrtime stamps', async () => {
    const { clock, sockets, engine } = setup();
    const p = engine.ping(['10.0.0.9'], QUICK);
    await flush();
    const [s] = sockets.sent;
    expect(s).toMatchObject({ family: 4, addr: '10.0.0.9', id: 0x1111 });
    sockets.deliver(4, FakeSockets.replyTo(s!), '10.0.0.9', sockets.nowNs + 250_400n);
    const [r] = await untilSettled(clock, p);
    expect(r).toEqual({ addr: '10.0.0.9', alive: true, rtt_ms: 0.25, sent: 1, received: 1, rtts_ms: [0.25], icmp_error: null });
    expect(engine.stats()).toMatchObject({ sent: 1, received: 1, bad: 0, late: 0 });
  });

  it('counts as sent only what sendto took: a refused send is a send error, and its probe times out', async () => {
    const { clock, sockets, engine } = setup();
    sockets.sendError = new Error('Network is unreachable');
    const [r] = await untilSettled(clock, engine.ping(['10.0.0.9'], { ...QUICK, retries: 1, backoff: 1 }));
    expect(r).toMatchObject({ alive: false, sent: 2, received: 0 });
    expect(engine.stats()).toMatchObject({ sent: 0, send_errors: 2 });
    sockets.sendError = null;
    const p = engine.ping(['10.0.0.9'], QUICK);
    await flush();
    sockets.deliver(4, FakeSockets.replyTo(sockets.sent[2]!), '10.0.0.9');
    expect((await untilSettled(clock, p))[0]!.alive).toBe(true);
    expect(engine.stats()).toMatchObject({ sent: 1, send_errors: 2, received: 1 });
  });

  it('ignores replies with the wrong nonce, wrong source, bad checksum, truncated, or another identifier, and counts them', async () => {
    const { clock, sockets, engine } = setup();
    const p = engine.ping(['10.0.0.9'], QUICK);
    await flush();
    const s = sockets.sent[0]!;
    sockets.deliver(4, FakeSockets.replyTo(s, (icmp) => (icmp[8] = (icmp[8] ?? 0) ^ 1)), '10.0.0.9'); // nonce
    sockets.deliver(4, FakeSockets.replyTo(s), '10.0.0.8'); // source
    const corrupt = FakeSockets.replyTo(s);
    corrupt[50] = (corrupt[50] ?? 0) ^ 0xff;
    sockets.deliver(4, corrupt, '10.0.0.9'); // checksum
    sockets.deliver(4, FakeSockets.replyTo(s).subarray(0, 36), '10.0.0.9'); // truncated
    sockets.deliver(4, FakeSockets.replyTo(s, (icmp) => icmp.writeUInt16BE(0x2222, 4)), '10.0.0.9'); // identifier
    sockets.deliver(4, FakeSockets.replyTo(s, (icmp) => icmp.writeUInt16BE((s.seq + 1) & 0xffff, 6)), '10.0.0.9'); // unknown seq
    const [r] = await untilSettled(clock, p);
    expect(r).toMatchObject({ alive: false, rtt_ms: null, sent: 1, received: 0 });
    expect(engine.stats()).toMatchObject({ received: 0, bad: 2, undecodable: 2, foreign: 1, late: 1 });
  });

  it('counts a duplicated reply once, and a reply after the timeout as late (not alive)', async () => {
    const { clock, sockets, engine } = setup();
    const p = engine.ping(['10.0.0.9', '10.0.0.10'], QUICK);
    await flush();
    const [a, b] = sockets.sent;
    sockets.deliver(4, FakeSockets.replyTo(a!), '10.0.0.9');
    sockets.deliver(4, FakeSockets.replyTo(a!), '10.0.0.9');
    clock.next(); // 100 ms: b times out
    await flush();
    sockets.deliver(4, FakeSockets.replyTo(b!), '10.0.0.10');
    const res = await untilSettled(clock, p);
    expect(res.map((r) => r.alive)).toEqual([true, false]);
    expect(engine.stats()).toMatchObject({ received: 1, duplicate: 1, late: 1 });
  });

  it('refuses targets that are not IP literals and bad options, naming them', async () => {
    const { engine } = setup();
    await expect(engine.ping(['localhost'], QUICK)).rejects.toThrow('not an IP address: "localhost"');
    await expect(engine.ping(['fe80::1%eth0'], QUICK)).rejects.toThrow(/not an IP address/);
    await expect(engine.ping(['10.0.0.1'], { ...QUICK, retries: 1.5 })).rejects.toThrow(/retries must be an integer/);
    await expect(engine.ping(['10.0.0.1'], { ...QUICK, backoff: 0.5 })).rejects.toThrow(/backoff/);
    expect(await engine.ping([], QUICK)).toEqual([]);
  });
});

describe('RawPinger: fping scheduling', () => {
  it('keeps packetIntervalMs between any two packets and sends every first probe before waiting for replies', async () => {
    const { clock, sockets, engine } = setup();
    const p = engine.ping(['10.0.0.1', '10.0.0.2', '10.0.0.3'], { timeoutMs: 500, retries: 0, packetIntervalMs: 10 });
    await untilSettled(clock, p);
    expect(sockets.sent.map((s) => [s.addr, s.at])).toEqual([
      ['10.0.0.1', 0],
      ['10.0.0.2', 10],
      ['10.0.0.3', 20],
    ]);
  });

  it('retries after each timeout, every timeout the previous one times backoff (fping -B), then unreachable', async () => {
    const { clock, sockets, engine } = setup();
    const events: ProbeEvent[] = [];
    const p = engine.ping(['10.0.0.1'], { timeoutMs: 100, retries: 2, backoff: 2, packetIntervalMs: 0, onEvent: (e) => events.push(e) });
    const [r] = await untilSettled(clock, p);
    expect(sockets.sent.map((s) => s.at)).toEqual([0, 100, 300]);
    expect(clock.now()).toBe(700);
    expect(new Set(sockets.sent.map((s) => s.seq)).size).toBe(3);
    expect(r).toMatchObject({ alive: false, sent: 3, received: 0 });
    expect(events).toEqual([0, 1, 2].map((seq) => ({ kind: 'timeout', addr: '10.0.0.1', seq })));
  });

  it('count mode: count probes periodMs apart, no retries, every reply counted in order', async () => {
    const { clock, sockets, engine } = setup();
    const p = engine.ping(['10.0.0.1'], { timeoutMs: 40, retries: 5, count: 3, periodMs: 50, packetIntervalMs: 0 });
    for (let k = 0; k < 3; k++) {
      await flush();
      const s = sockets.sent[k]!;
      sockets.deliver(4, FakeSockets.replyTo(s), '10.0.0.1', sockets.nowNs + BigInt(100_000 * (k + 1)));
      if (k < 2) clock.next();
    }
    const [r] = await untilSettled(clock, p);
    expect(sockets.sent.map((s) => s.at)).toEqual([0, 50, 100]);
    expect(r).toMatchObject({ alive: true, sent: 3, received: 3, rtts_ms: [0.1, 0.2, 0.3], rtt_ms: 0.1 });
  });

  it('an ICMP error is reported, is not alive, and the probe still runs to its timeout as fping does', async () => {
    const { clock, sockets, engine } = setup();
    const events: ProbeEvent[] = [];
    const p = engine.ping(['10.0.0.5'], { timeoutMs: 100, retries: 1, backoff: 1, packetIntervalMs: 0, onEvent: (e) => events.push(e) });
    await flush();
    sockets.deliver(4, icmpErrorV4(sockets.sent[0]!, 3, 1, '10.0.0.254'), '10.0.0.254');
    await flush();
    expect(sockets.sent).toHaveLength(1);
    const [r] = await untilSettled(clock, p);
    expect(sockets.sent.map((s) => s.at)).toEqual([0, 100]);
    expect(r).toMatchObject({ alive: false, icmp_error: { kind: 'host-unreachable', from: '10.0.0.254' } });
    expect(events[0]).toEqual({ kind: 'icmp-error', addr: '10.0.0.5', seq: 0, error: { kind: 'host-unreachable', from: '10.0.0.254' } });
    expect(engine.stats().icmp_errors).toBe(1);
  });

  it('matches an ICMPv6 error through the quoted destination; an error quoting another destination is bad', async () => {
    const { clock, sockets, engine } = setup();
    const p = engine.ping(['FD77::15'], QUICK);
    await flush();
    const s = sockets.sent[0]!;
    expect(s).toMatchObject({ family: 6, addr: 'fd77::15' });
    sockets.deliver(6, icmpErrorV6(s, 1, 3, Buffer.from('fd770000000000000000000000000016', 'hex')), 'fd77::1');
    sockets.deliver(6, icmpErrorV6(s, 1, 3, Buffer.from('fd770000000000000000000000000015', 'hex')), 'fd77::1');
    const [r] = await untilSettled(clock, p);
    expect(r).toMatchObject({ addr: 'FD77::15', alive: false, icmp_error: { kind: 'host-unreachable', from: 'fd77::1' } });
    expect(engine.stats()).toMatchObject({ bad: 1, icmp_errors: 1 });
  });

  it('an abort rejects with the signal reason; a reply after it counts late', async () => {
    const { clock, sockets, engine } = setup();
    const ac = new AbortController();
    const p = engine.ping(['10.0.0.1'], { ...QUICK, signal: ac.signal });
    await flush();
    ac.abort(new Error('stop now'));
    await expect(p).rejects.toThrow('stop now');
    sockets.deliver(4, FakeSockets.replyTo(sockets.sent[0]!), '10.0.0.1');
    expect(engine.stats()).toMatchObject({ received: 0, late: 1 });
    expect(clock.waiting).toBe(0);
  });
});

describe('IcmpHub: one socket per family for every engine of the process', () => {
  it('gives engines distinct identifiers, routes replies by identifier, and closes the socket with the last engine', async () => {
    const { clock, sockets, hub, engine: a } = setup([0x1111, 0x1111, 0x2222]);
    const b = new RawPinger({ hub, clock });
    expect([a.identifier, b.identifier]).toEqual([0x1111, 0x1112]);
    expect(() => new RawPinger({ hub, clock, identifier: 0x1111 })).toThrow(/already used/);
    const pa = a.ping(['10.0.0.1'], QUICK);
    const pb = b.ping(['10.0.0.1'], QUICK);
    await flush();
    expect(sockets.opened).toBe(1);
    const [sa, sb] = sockets.sent;
    expect([sa!.id, sb!.id]).toEqual([0x1111, 0x1112]);
    // b's sequence and nonce delivered with a's identifier: a must not take it, b must not see it
    sockets.deliver(4, FakeSockets.replyTo(sb!, (icmp) => icmp.writeUInt16BE(0x1111, 4)), '10.0.0.1');
    sockets.deliver(4, FakeSockets.replyTo(sa!), '10.0.0.1');
    const [[ra], [rb]] = await untilSettled(clock, Promise.all([pa, pb]));
    expect([ra!.alive, rb!.alive]).toEqual([true, false]);
    await a.close();
    expect(sockets.closed).toBe(0);
    await b.close();
    expect(sockets.closed).toBe(1);
    expect(hub.usage).toEqual({ members: 0, sockets: 0 });
  });

  it('says CAP_NET_RAW when the kernel refuses the socket', async () => {
    const { sockets, engine } = setup();
    sockets.refuse = 'Operation not permitted';
    expect(() => engine.open(4)).toThrow(/EPERM: needs CAP_NET_RAW.*Operation not permitted/);
  });
});
