/**
 * The upstream link's flow control and lifecycle: back-pressure (a reader that stops reading does not make the agent
 * read the whole outbox), the back-off's delays (capped exponential, full jitter, reset by a welcome), the
 * durability barrier before events leave, and stop().
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../agent/upstream/backoff.js';
import { AGENT, INSTANCE, makeLink, rawServer, recordingClock, sleep, useLinkContext, waitUntil } from './link-helpers.js';

const ctx = useLinkContext();

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('back-pressure', () => {
  it('a controller that stops reading: the agent stops reading the journal; when it reads again, every entry arrives in order', async () => {
    const N = 20_000;
    let rows = 0;
    const store = Object.assign(Object.create(ctx.store) as typeof ctx.store, {
      readJournal: (from: number, limit: number) => {
        const r = ctx.store.readJournal(from, limit);
        rows += r.length;
        return r;
      },
    });
    let paused = false;
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => {
      c.welcome(1);
      // The controller stops reading its socket: the kernel's buffers fill, then the agent's.
      (c.ws as unknown as { _socket: net.Socket })._socket.pause();
      paused = true;
    }));
    const link = makeLink(ctx, srv.url, { store });
    const s = link.whenStreaming();
    link.start();
    await s;
    await waitUntil(() => paused);
    // ~2 KiB per entry: 40 MB in all, far beyond what loopback's socket buffers hold.
    const pad = 'p'.repeat(2048);
    ctx.store.transaction(() => {
      for (let i = 0; i < N; i++) ctx.store.appendJournal({ kind: 'action.started', instance_id: INSTANCE, node_id: null, cause: 'test', data: { request_id: `req-${i}-${pad}`, action: 'reboot' } });
    });
    // Let the agent run until it stalls: rows read stop growing.
    let last = -1;
    for (let i = 0; i < 100 && rows !== last; i++) {
      last = rows;
      await sleep(100);
    }
    console.log(`back-pressure: ${rows} of ${N} rows read while the controller did not read`);
    expect(rows).toBeGreaterThan(0);
    expect(rows).toBeLessThan(N / 2);
    const c = srv.conns[0]!;
    (c.ws as unknown as { _socket: net.Socket })._socket.resume();
    await waitUntil(() => c.of('event').length === N, 30_000, 'every entry at the controller');
    const seqs = c.of('event').map((e) => e.seq);
    expect(seqs.every((q, i) => q === i + 1)).toBe(true);
    expect(link.status().sent_seq).toBe(N);
  }, 60_000);
});

describe('durability before sending', () => {
  it('no entry leaves before store.durable() resolves', async () => {
    const { store } = ctx;
    let release!: () => void;
    let held = false;
    const gate = new Promise<void>((r) => (release = r));
    const gated = Object.assign(Object.create(store) as typeof store, {
      durable: () => (held ? gate : store.durable()),
    });
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url, { store: gated });
    const s = link.whenStreaming();
    link.start();
    await s;
    // Held from now on: the entry appended next is read by the link but not yet on disk as far as it knows.
    held = true;
    store.appendJournal({ kind: 'instance.alive', instance_id: INSTANCE, node_id: null, cause: 'test', data: { alive: true } });
    await sleep(150);
    expect(srv.conns[0]!.of('event')).toEqual([]);
    held = false;
    release();
    await waitUntil(() => srv.conns[0]!.of('event').length === 1);
  });
});

describe('back-off', () => {
  it('backoffDelay is random * min(cap, base * 2^n)', () => {
    expect([0, 1, 2, 3, 4, 10, 2000].map((n) => backoffDelay(n, 1000, 60_000, () => 0.5))).toEqual([500, 1000, 2000, 4000, 8000, 30_000, 30_000]);
    expect(backoffDelay(3, 1000, 60_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 1000, 60_000, () => 0.999)).toBe(7992);
  });

  it('the waits between refused dials follow random * min(cap, base * 2^n) and restart from base after a welcome', async () => {
    const port = await freePort();
    const clock = recordingClock();
    const big = 1e9;
    const link = makeLink(ctx, `ws://127.0.0.1:${port}/`, {
      clock, random: () => 0.5, backoffBaseMs: 1000, backoffCapMs: 8000, pingIntervalMs: big, welcomeTimeoutMs: big, handshakeTimeoutMs: big,
    });
    link.start();
    await waitUntil(() => clock.sleeps.length >= 6, 5000, 'six refused dials');
    expect(clock.sleeps.slice(0, 6)).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    expect(link.status().last_error).toMatch(/refused.*ECONNREFUSED/);
    // A controller comes up on the port, welcomes, then closes the link: the next wait starts from base again.
    const before = clock.sleeps.length;
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => {
      c.welcome(1);
      setTimeout(() => c.ws.close(1000, 'bye'), 20);
    }), { port });
    await waitUntil(() => link.status().welcomes >= 1, 5000, 'a welcome');
    await waitUntil(() => clock.sleeps.length > before + 1 && srv.conns.length >= 1);
    const after = clock.sleeps.slice(before);
    // Waits of dials still refused (at the cap), then the first after a welcome: from base again.
    const reset = after.indexOf(500);
    expect(reset).toBeGreaterThanOrEqual(0);
    expect(after.slice(0, reset).every((x) => x === 4000)).toBe(true);
    expect(link.status().last_error).toMatch(/controller closed the link \(1000 bye\)/);
  });
});

describe('stop', () => {
  it('closes with 1001, never redials, and resolves once the socket is gone', async () => {
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url, { pingIntervalMs: 50 });
    const s = link.whenStreaming();
    link.start();
    await s;
    await link.stop();
    expect(link.status().state).toBe('closed');
    const c = srv.conns[0]!;
    expect(await c.closed()).toBe(1001);
    await sleep(300);
    expect(srv.conns).toHaveLength(1);
    await expect(link.whenStreaming()).rejects.toThrow(/stopped/);
  });

  it('while backing off: the wait is cancelled at once', async () => {
    const port = await freePort();
    const link = makeLink(ctx, `ws://127.0.0.1:${port}/`, { backoffBaseMs: 60_000, backoffCapMs: 60_000, random: () => 1 });
    link.start();
    await waitUntil(() => link.status().state === 'backing-off');
    const t0 = Date.now();
    await link.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(link.status()).toMatchObject({ state: 'closed', url: `ws://127.0.0.1:${port}/` });
    expect(AGENT).toBe('rack-a12');
  });
});
