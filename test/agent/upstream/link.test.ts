/**
 * The upstream link (agent/upstream/link.ts) against the real reference controller (scripts/controller/), in-process:
 * streaming from resume_from, acks trimming the journal, a controller restart and a rewind, resync, the token, and
 * commands. The agent's store is the real one (openStore) in a temp dir.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeCommands, AGENT, TOKEN, append, makeLink, startController, useLinkContext, waitUntil, type RunningController } from './link-helpers.js';

const ctx = useLinkContext();
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const events = (c: RunningController) => c.lines.filter((l) => l.what === 'event').map((l) => l.seq as number);

describe('streaming to the reference controller', () => {
  it('sends every entry from resume_from in order, once; acks trim the journal; entries appended while streaming arrive', async () => {
    append(ctx.store, 50);
    const c = await startController(ctx);
    const link = makeLink(ctx, c.url);
    const streaming = link.whenStreaming();
    link.start();
    await streaming;
    expect(link.status().state).toBe('streaming');
    await waitUntil(() => c.store.seqs(AGENT).length === 50, 5000, 'the first 50 kept');
    append(ctx.store, 30);
    await waitUntil(() => c.store.seqs(AGENT).length === 80, 5000, 'the next 30 kept');
    expect(c.store.seqs(AGENT)).toEqual(range(1, 80));
    // Printed once the controller's commit is on disk, after the rows are visible: wait for the prints too.
    await waitUntil(() => events(c).length >= 80, 5000, 'the 80 printed');
    // Printed once each, in order: no duplicate reached the controller on one link.
    expect(events(c)).toEqual(range(1, 80));
    expect(c.lines.filter((l) => l.what === 'duplicate')).toEqual([]);
    // Acked and trimmed: the outbox is empty, its first seq is past the last.
    await waitUntil(() => ctx.store.outboxFirstSeq() === 81, 5000, 'the acked journal trimmed');
    expect(ctx.store.readJournal(1, 100)).toEqual([]);
    const s = link.status();
    expect(s).toMatchObject({ state: 'streaming', last_ack_seq: 80, sent_seq: 80, attempts: 0, welcomes: 1, last_error: null });
    expect(Date.parse(s.last_ack_at!)).toBeGreaterThan(0);
  });

  it('after a controller restart (same port, same file) it redials and the controller ends with every seq once, no gap', async () => {
    const db = join(ctx.dir, 'ctl.db');
    append(ctx.store, 20);
    const c1 = await startController(ctx, { db });
    const link = makeLink(ctx, c1.url);
    link.start();
    await waitUntil(() => c1.store.seqs(AGENT).length === 20);
    await c1.close();
    await waitUntil(() => link.status().state !== 'streaming', 5000, 'the link to notice the close');
    // Committed while the controller is away: kept in the outbox.
    append(ctx.store, 15);
    const again = link.whenStreaming();
    const c2 = await startController(ctx, { db, port: c1.port });
    await again;
    append(ctx.store, 5);
    await waitUntil(() => c2.store.seqs(AGENT).length === 40, 5000, 'all 40 kept');
    expect(c2.store.seqs(AGENT)).toEqual(range(1, 40));
    expect(c2.lines.find((l) => l.what === 'welcome')).toMatchObject({ resume_from: 21 });
    await waitUntil(() => events(c2).length >= 20, 5000, 'the 20 printed');
    expect(events(c2)).toEqual(range(21, 40));
    expect(link.status().welcomes).toBe(2);
    await waitUntil(() => ctx.store.outboxFirstSeq() === 41);
  });

  it('acked entries are kept (retainAcked): a controller restarted from an older place (rewind) gets what it lacked from the journal', async () => {
    const db = join(ctx.dir, 'ctl.db');
    append(ctx.store, 30);
    const c1 = await startController(ctx, { db });
    const link = makeLink(ctx, c1.url, { retainAcked: 25 });
    link.start();
    await waitUntil(() => c1.store.seqs(AGENT).length === 30);
    // Acked through 30, trimmed through 30 - 25 only.
    await waitUntil(() => ctx.store.outboxFirstSeq() === 6, 5000, 'the trim through 5');
    await c1.close();
    await waitUntil(() => link.status().state !== 'streaming');
    const back = new (await import('../../../scripts/controller/store.js')).ControllerStore(db);
    expect(back.rewind(AGENT, 11)).toMatchObject({ from: 30, forgotten: 20 });
    back.close();
    const again = link.whenStreaming();
    const c2 = await startController(ctx, { db, port: c1.port });
    await again;
    await waitUntil(() => c2.store.seqs(AGENT).length === 30);
    expect(c2.store.seqs(AGENT)).toEqual(range(1, 30));
    expect(c2.lines.find((l) => l.what === 'welcome')).toMatchObject({ resume_from: 11 });
    await waitUntil(() => events(c2).length >= 20, 5000, 'the 20 printed');
    expect(events(c2)).toEqual(range(11, 30));
    expect(c2.lines.filter((l) => l.what === 'covered')).toEqual([]);
    expect(ctx.store.outboxFirstSeq()).toBe(6);
  });

  it('answers resync with a fresh hello whose snapshot.seq is the current last seq, then streams from the new welcome', async () => {
    append(ctx.store, 10);
    const c = await startController(ctx);
    const link = makeLink(ctx, c.url);
    link.start();
    await waitUntil(() => c.store.seqs(AGENT).length === 10);
    append(ctx.store, 7);
    await waitUntil(() => c.store.seqs(AGENT).length === 17);
    const again = link.whenStreaming();
    expect(c.ctl.resync(AGENT, 'test wants a snapshot')).toBe(true);
    await again;
    const hellos = c.lines.filter((l) => l.what === 'hello');
    expect(hellos).toHaveLength(2);
    expect(hellos[1]).toMatchObject({ snapshot_seq: 17, outbox_first_seq: expect.any(Number) as number });
    append(ctx.store, 3);
    await waitUntil(() => c.store.seqs(AGENT).length === 20);
    expect(c.store.seqs(AGENT)).toEqual(range(1, 20));
    expect(link.status().welcomes).toBe(2);
  });

  it("hands the controller's commands to the handler while streaming and sends what it resolves", async () => {
    const c = await startController(ctx);
    const commands = new FakeCommands();
    const link = makeLink(ctx, c.url, { commands });
    const s = link.whenStreaming();
    link.start();
    await s;
    const r = c.ctl.command(AGENT, { op: 'node.maintenance', node_id: '1b8c5f0e-0000-4000-8000-000000000002', maintenance: true, reason: 'DIMM' });
    expect(r.ok).toBe(true);
    await waitUntil(() => c.lines.some((l) => l.what === 'command-result'));
    expect(commands.seen.map((x) => x.command.op)).toEqual(['node.maintenance']);
    expect(c.lines.find((l) => l.what === 'command-result')).toMatchObject({ status: 'done', known: true, command_id: (r as { command_id: string }).command_id });
  });
});

describe('the token', () => {
  it('a wrong one: last_error says 401 and the link keeps retrying; the right one read at a later dial streams; the token is never logged nor shown', async () => {
    const c = await startController(ctx);
    const WRONG = 'wrong-token-0c1d2e3f4a5b6c7d8e9f';
    let token = WRONG;
    const link = makeLink(ctx, c.url, { token: () => token });
    append(ctx.store, 3);
    link.start();
    await waitUntil(() => c.lines.filter((l) => l.what === 'refused').length >= 3 && link.status().attempts >= 3, 5000, 'three refused dials');
    const s = link.status();
    expect(s.last_error).toMatch(/401/);
    expect(s.last_error).toMatch(/token/);
    expect(s.attempts).toBeGreaterThanOrEqual(3);
    expect(c.store.seqs(AGENT)).toEqual([]);
    // Logged once for the reason, not once per retry.
    expect(ctx.logs.filter((l) => l.includes('401')).length).toBe(1);
    const streaming = link.whenStreaming();
    token = TOKEN;
    await streaming;
    await waitUntil(() => c.store.seqs(AGENT).length === 3);
    expect(link.status().attempts).toBe(0);
    const all = ctx.logs.join('\n') + JSON.stringify(link.status());
    expect(all).not.toContain(WRONG);
    expect(all).not.toContain(TOKEN);
    expect(ctx.logs.length).toBeGreaterThan(1);
  });

  it('a token that cannot be a header value (a newline from a badly written file) fails the dial, not the agent', async () => {
    const c = await startController(ctx);
    const BAD = 'tok-with\nnewline-5a6b7c';
    let token = BAD;
    const link = makeLink(ctx, c.url, { token: () => token });
    link.start();
    await waitUntil(() => link.status().attempts >= 2, 5000, 'two failed dials');
    expect(link.status().last_error).toMatch(/^cannot dial: /);
    expect(link.status().last_error).not.toContain('newline-5a6b7c');
    const s = link.whenStreaming();
    token = TOKEN;
    await s;
    expect(ctx.logs.join('\n')).not.toContain('newline-5a6b7c');
  });
});
