/** The store's upstream parts: store_id, command results, the outbox's first seq after trims, journal watchers. */
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../agent/store/types.js';
import { useStoreDir } from './fixtures.js';

const t = useStoreDir();
const entry = (n: number) => ({ kind: 'instance.alive' as const, instance_id: null, node_id: null, cause: 'test', data: { n } });
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe('store_id', () => {
  it('is a UUID made once: a reopen keeps it, a new store gets another', () => {
    const a = t.open();
    const id = a.storeId();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    a.close();
    expect(t.open().storeId()).toBe(id);
  });
});

describe('command results', () => {
  it('are kept by command_id across a reopen, and never replaced', () => {
    const s = t.open();
    expect(s.getCommandResult('req-1')).toBeNull();
    const r = { command_id: 'req-1', op: 'instance.power', result: { status: 'accepted', error: null }, created_at: '2026-12-02T00:00:00.000Z' };
    s.putCommandResult(r);
    expect(() => s.putCommandResult({ ...r, result: { status: 'refused' } })).toThrow(StoreError);
    expect(() => s.putCommandResult({ ...r, result: { status: 'refused' } })).toThrow(/already has a result/);
    s.close();
    expect(t.open().getCommandResult('req-1')).toEqual(r);
  });

  it('roll back with the transaction that stored them', () => {
    const s = t.open();
    expect(() =>
      s.transaction(() => {
        s.putCommandResult({ command_id: 'req-2', op: 'node.power', result: {}, created_at: 'x' });
        throw new Error('acceptance failed');
      }),
    ).toThrow('acceptance failed');
    expect(s.getCommandResult('req-2')).toBeNull();
  });
});

describe('outbox first seq', () => {
  it('is lastSeq + 1 when empty, the oldest entry otherwise, and moves with trims', () => {
    const s = t.open();
    expect(s.outboxFirstSeq()).toBe(1);
    for (let i = 0; i < 5; i++) s.appendJournal(entry(i));
    expect(s.outboxFirstSeq()).toBe(1);
    expect(s.trimJournal(3)).toBe(3);
    expect(s.outboxFirstSeq()).toBe(4);
    s.trimJournal(5);
    expect(s.outboxFirstSeq()).toBe(6);
    expect(s.lastSeq()).toBe(5);
  });
});

describe('watchJournal', () => {
  it('wakes once per turn after appends, not for other writes, and not after unsubscribing', async () => {
    const s = t.open();
    let wakes = 0;
    const off = s.watchJournal(() => (wakes += 1));
    s.setMeta('k', 'v');
    await nextTurn();
    expect(wakes).toBe(0);
    for (let i = 0; i < 10; i++) s.appendJournal(entry(i));
    s.transaction(() => s.appendJournal(entry(10)));
    expect(wakes).toBe(0);
    await nextTurn();
    expect(wakes).toBe(1);
    s.appendJournal(entry(11));
    await nextTurn();
    expect(wakes).toBe(2);
    off();
    s.appendJournal(entry(12));
    await nextTurn();
    expect(wakes).toBe(2);
  });
});
