/**
 * The upstream link against a raw ws server that misbehaves: stale and newer generations, resume_from and acks ahead,
 * invalid frames, commands before welcome, no welcome, no pong, a reader that stops reading (back-pressure).
 */
import { describe, expect, it } from 'vitest';
import { openStore } from '../../../agent/store/sqlite.js';
import { readGeneration, raiseGeneration } from '../../../agent/upstream/types.js';
import { AGENT, FakeCommands, append, makeLink, rawServer, sleep, useLinkContext, waitUntil } from './link-helpers.js';

const ctx = useLinkContext();
const COMMAND = {
  type: 'command', version: 1, command_id: 'req-2a8f4e1c-7b3d-4e5f-a6b7-c8d9e0f1a2b3', generation: 1,
  command: { op: 'node.maintenance', node_id: '1b8c5f0e-0000-4000-8000-000000000002', maintenance: true },
};

describe('welcome', () => {
  it('an older generation than the stored one is refused (error, close 4000), nothing streamed, and the link redials', async () => {
    await raiseGeneration(ctx.store, 5);
    append(ctx.store, 3);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then((h) => c.welcome(h.outbox_first_seq, 3)));
    const link = makeLink(ctx, srv.url);
    link.start();
    const c = await waitUntil(() => srv.conns.length >= 1).then(() => srv.conns[0]!);
    expect(await c.closed()).toBe(4000);
    expect(c.closeReason).toBe('PROTO_ERR_STALE_GENERATION');
    expect(c.of('error')).toMatchObject([{ code: 'PROTO_ERR_STALE_GENERATION', fatal: true }]);
    expect(c.of('event')).toEqual([]);
    await waitUntil(() => srv.conns.length >= 2, 5000, 'a redial');
    expect(link.status().last_error).toMatch(/PROTO_ERR_STALE_GENERATION/);
    expect(readGeneration(ctx.store)).toBe(5);
  });

  it('a newer generation is stored durably before streaming', async () => {
    append(ctx.store, 2);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1, 9)));
    const link = makeLink(ctx, srv.url);
    const s = link.whenStreaming();
    link.start();
    await s;
    expect(readGeneration(ctx.store)).toBe(9);
    expect(link.status().generation).toBe(9);
    await waitUntil(() => srv.conns[0]!.of('event').length === 2);
    // On disk: another connection to the same file sees it.
    const other = openStore({ dir: `${ctx.dir}/agent`, agentId: AGENT });
    try {
      expect(readGeneration(other)).toBe(9);
    } finally {
      other.close();
    }
  });

  it('resume_from beyond the last seq + 1 is PROTO_ERR_AHEAD, fatal; nothing is sent', async () => {
    append(ctx.store, 4);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(6)));
    makeLink(ctx, srv.url).start();
    await waitUntil(() => srv.conns.length >= 1);
    const c = srv.conns[0]!;
    expect(await c.closed()).toBe(4000);
    expect(c.closeReason).toBe('PROTO_ERR_AHEAD');
    expect(c.of('error')).toMatchObject([{ code: 'PROTO_ERR_AHEAD', fatal: true }]);
    expect(c.of('event')).toEqual([]);
  });

  it('streams from max(resume_from, outbox_first_seq): trimmed entries are not asked for', async () => {
    append(ctx.store, 10);
    ctx.store.trimJournal(4);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(2)));
    makeLink(ctx, srv.url).start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 6);
    expect(srv.conns[0]!.of('hello')[0]!.outbox_first_seq).toBe(5);
    expect(srv.conns[0]!.of('event').map((e) => e.seq)).toEqual([5, 6, 7, 8, 9, 10]);
  });

  it('no welcome within welcomeTimeoutMs: the link is closed and redialled', async () => {
    const srv = await rawServer(ctx);
    const link = makeLink(ctx, srv.url, { welcomeTimeoutMs: 150 });
    link.start();
    await waitUntil(() => srv.conns.length >= 2, 5000, 'a redial after the welcome timeout');
    expect(srv.conns[0]!.of('hello')).toHaveLength(1);
    expect(link.status().last_error).toMatch(/no welcome within 150 ms/);
  });
});

describe('acks', () => {
  it('an ack beyond the last seq sent is PROTO_ERR_AHEAD, fatal, and nothing is trimmed; a lower ack changes nothing', async () => {
    append(ctx.store, 5);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url);
    link.start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 5);
    const c = srv.conns[0]!;
    c.send({ type: 'ack', version: 1, seq: 3 });
    await waitUntil(() => ctx.store.outboxFirstSeq() === 4, 5000, 'the trim through 3');
    c.send({ type: 'ack', version: 1, seq: 2 });
    await sleep(50);
    expect(link.status().last_ack_seq).toBe(3);
    c.send({ type: 'ack', version: 1, seq: 6 });
    expect(await c.closed()).toBe(4000);
    expect(c.closeReason).toBe('PROTO_ERR_AHEAD');
    expect(c.of('error')).toMatchObject([{ code: 'PROTO_ERR_AHEAD', fatal: true, in_reply_to: { type: 'ack' } }]);
    expect(ctx.store.outboxFirstSeq()).toBe(4);
    expect(link.status().last_ack_seq).toBe(3);
  });

  it('many acks in one turn make one trim', async () => {
    append(ctx.store, 50);
    const trims: number[] = [];
    const store = Object.assign(Object.create(ctx.store) as typeof ctx.store, {
      trimJournal: (n: number) => (trims.push(n), ctx.store.trimJournal(n)),
    });
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    makeLink(ctx, srv.url, { store }).start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 50);
    const c = srv.conns[0]!;
    for (let i = 1; i <= 50; i++) c.send({ type: 'ack', version: 1, seq: i });
    await waitUntil(() => ctx.store.outboxFirstSeq() === 51);
    expect(trims.length).toBeLessThan(10);
    expect(trims[trims.length - 1]).toBe(50);
  });
});

describe('invalid frames and the wrong state', () => {
  it('malformed JSON, an unknown type, an invalid ack: an error reply each, nothing acted on, the link stays', async () => {
    append(ctx.store, 3);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url);
    link.start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 3);
    const c = srv.conns[0]!;
    c.send('{"type": "ack", "version": 1, "seq": 3');
    c.send({ type: 'snapshot', version: 1 });
    c.send({ type: 'ack', version: 1, seq: 3, extra: true });
    c.send('{"type":"ack","version":1,"seq":1,"seq":3}');
    // An invalid error is never answered with an error.
    c.send({ type: 'error', version: 1, code: 'NOPE' });
    await waitUntil(() => c.of('error').length >= 4);
    await sleep(50);
    expect(c.of('error').map((e) => e.code)).toEqual(['PROTO_ERR_MALFORMED', 'PROTO_ERR_UNKNOWN_TYPE', 'PROTO_ERR_SCHEMA', 'PROTO_ERR_MALFORMED']);
    expect(c.of('error').every((e) => !e.fatal)).toBe(true);
    expect(ctx.store.outboxFirstSeq()).toBe(1);
    expect(c.closeCode).toBeNull();
    expect(link.status().state).toBe('streaming');
  });

  it('an unknown protocol version (a welcome of version 2) is PROTO_ERR_UNKNOWN_VERSION, fatal, with the versions it speaks; nothing streamed; redialled', async () => {
    append(ctx.store, 2);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then((h) => c.send({ type: 'welcome', version: 2, agent_id: h.agent_id, resume_from: 1, generation: 1 })));
    const link = makeLink(ctx, srv.url);
    link.start();
    await waitUntil(() => srv.conns.length >= 1);
    const c = srv.conns[0]!;
    expect(await c.closed()).toBe(4000);
    expect(c.closeReason).toBe('PROTO_ERR_UNKNOWN_VERSION');
    expect(c.of('error')).toMatchObject([{ code: 'PROTO_ERR_UNKNOWN_VERSION', fatal: true, supported_versions: [1] }]);
    expect(c.of('event')).toEqual([]);
    await waitUntil(() => srv.conns.length >= 2, 5000, 'a redial');
    expect(link.status().last_error).toMatch(/PROTO_ERR_UNKNOWN_VERSION/);
    expect(ctx.store.outboxFirstSeq()).toBe(1);
  });

  it('a frame over 1 MiB is refused by ws before it is held: closed with 1009, nothing acted on, redialled', async () => {
    append(ctx.store, 2);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url);
    link.start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 2);
    const c = srv.conns[0]!;
    c.send({ type: 'ack', version: 1, seq: 2, pad: 'x'.repeat(1024 * 1024) });
    expect(await c.closed()).toBe(1009);
    await waitUntil(() => srv.conns.length >= 2, 5000, 'a redial');
    expect(ctx.store.outboxFirstSeq()).toBe(1);
    expect(link.status().last_error).toMatch(/1 MiB|1009/);
  });

  it('a command before welcome is answered PROTO_ERR_UNEXPECTED and not run; after welcome it runs', async () => {
    const commands = new FakeCommands();
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(async () => {
      c.send(COMMAND);
      await waitUntil(() => c.of('error').length > 0);
      c.welcome(1);
      c.send(COMMAND);
    }));
    makeLink(ctx, srv.url, { commands }).start();
    await waitUntil(() => srv.conns[0]?.of('command-result').length === 1);
    const c = srv.conns[0]!;
    expect(c.of('error')).toMatchObject([{ code: 'PROTO_ERR_UNEXPECTED', fatal: false, in_reply_to: { type: 'command', command_id: COMMAND.command_id } }]);
    expect(commands.seen).toHaveLength(1);
    expect(c.of('command-result')[0]).toMatchObject({ command_id: COMMAND.command_id, status: 'done' });
  });

  it('during a resync (until the next welcome) no event is sent and commands are refused', async () => {
    append(ctx.store, 2);
    const commands = new FakeCommands();
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url, { commands });
    link.start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 2);
    const c = srv.conns[0]!;
    c.send({ type: 'resync', version: 1, reason: 'test' });
    await waitUntil(() => c.of('hello').length === 2);
    expect(link.status().state).toBe('hello-sent');
    append(ctx.store, 3);
    c.send(COMMAND);
    await waitUntil(() => c.of('error').length === 1);
    await sleep(50);
    expect(c.of('event')).toHaveLength(2);
    expect(commands.seen).toEqual([]);
    expect(c.of('hello')[1]!.snapshot.seq).toBe(2);
    c.welcome(3);
    await waitUntil(() => c.of('event').length === 5);
    expect(c.of('event').map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('commands and hellos in flight', () => {
  it('commands run concurrently: each answer is sent when its command resolves', async () => {
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((r) => (releaseSlow = r));
    const fake = new FakeCommands();
    const commands = {
      handle: async (cmd: Parameters<FakeCommands['handle']>[0]) => {
        if (cmd.command_id.endsWith('1')) await slowGate;
        return fake.handle(cmd);
      },
    };
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => {
      c.welcome(1);
      c.send({ ...COMMAND, command_id: 'req-2a8f4e1c-7b3d-4e5f-a6b7-c8d9e0f1a201' });
      c.send({ ...COMMAND, command_id: 'req-2a8f4e1c-7b3d-4e5f-a6b7-c8d9e0f1a202' });
    }));
    makeLink(ctx, srv.url, { commands }).start();
    await waitUntil(() => srv.conns[0]?.of('command-result').length === 1);
    expect(srv.conns[0]!.of('command-result')[0]!.command_id).toMatch(/02$/);
    releaseSlow();
    await waitUntil(() => srv.conns[0]!.of('command-result').length === 2);
    expect(srv.conns[0]!.of('command-result')[1]!.command_id).toMatch(/01$/);
  });

  it('a welcome answering an older hello (a resync came first) is not acted on; the last hello\'s welcome is', async () => {
    append(ctx.store, 4);
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(async () => {
      c.send({ type: 'resync', version: 1, reason: 'before the welcome' });
      await waitUntil(() => c.of('hello').length === 2);
      c.welcome(1);
      await sleep(100);
      c.welcome(3);
    }));
    const link = makeLink(ctx, srv.url);
    link.start();
    await waitUntil(() => srv.conns[0]?.of('event').length === 2);
    await sleep(50);
    expect(srv.conns[0]!.of('event').map((e) => e.seq)).toEqual([3, 4]);
    expect(srv.conns[0]!.of('error')).toEqual([]);
    expect(link.status().welcomes).toBe(1);
  });
});

describe('liveness of the link', () => {
  it('a server that stops answering pings: terminated and redialled within about 2 ping intervals', async () => {
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)), { autoPong: false });
    const link = makeLink(ctx, srv.url, { pingIntervalMs: 200 });
    const s = link.whenStreaming();
    link.start();
    await s;
    const t0 = Date.now();
    await waitUntil(() => srv.conns.length >= 2, 5000, 'the second connection');
    // Generous bound: 2 intervals plus back-off (cap 200 ms) and a loaded machine.
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(srv.conns[0]!.closeCode).toBe(1006);
    expect(link.status().last_error).toMatch(/no pong/);
  });

  it('a server that answers pings keeps the link up across many intervals', async () => {
    const srv = await rawServer(ctx, (c) => void c.next('hello').then(() => c.welcome(1)));
    const link = makeLink(ctx, srv.url, { pingIntervalMs: 50 });
    const s = link.whenStreaming();
    link.start();
    await s;
    await sleep(500);
    expect(srv.conns).toHaveLength(1);
    expect(link.status().state).toBe('streaming');
  });
});
