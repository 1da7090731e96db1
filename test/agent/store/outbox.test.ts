/**
 * The outbox policy (agent/store/outbox.ts): the journal bounded by count and bytes, older entries of one object
 * folded into one `outbox.folded` marker, counters that follow appends, folds, trims and reopens.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createOutboxMetrics } from '../../../agent/api/metrics.js';
import type { JournalKind } from '../../../agent/model.js';
import { ENTRY_BYTES_SQL, entryBytes, type OutboxBounds } from '../../../agent/store/outbox.js';
import { DB_FILE_NAME, type SqliteStore, type StoreFaultInjector, type StoreWriteOp } from '../../../agent/store/sqlite.js';
import { StoreError, type JournalInput } from '../../../agent/store/types.js';
import type { JournalRow } from '../../../agent/store/rows.js';
import { parseMessage } from '../../../agent/upstream/parse.js';
import { useStoreDir } from './fixtures.js';

const t = useStoreDir();
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

const uuid = (prefix: string, i: number) => `${prefix}${i.toString(16).padStart(12, '0')}`;
const INSTANCE = (i: number) => uuid('cbce6087-6156-453c-a512-', i);
const NODE = (i: number) => uuid('1b8c5f0e-0000-4000-8000-', i);

/** Object i of n: the even ones are instances (on node i), the odd ones nodes. */
function entryOf(obj: number, n: number, pad = 0): JournalInput {
  if (obj % 2 === 0) {
    return { kind: 'instance.alive', instance_id: INSTANCE(obj), node_id: NODE(obj), cause: 'monitor', data: { alive: n % 2 === 0, ...(pad ? { pad: 'x'.repeat(pad) } : {}) } };
  }
  return { kind: 'node.power', instance_id: null, node_id: NODE(obj), cause: 'poll', data: { power_state: n % 2 === 0 ? 'on' : 'off', ...(pad ? { pad: 'x'.repeat(pad) } : {}) } };
}
const keyOf = (e: { instance_id: string | null; node_id: string | null }) => e.instance_id ?? e.node_id;

/** What the test appended, by seq: the entry's object and data. */
type Appended = Map<number, { key: string | null; kind: JournalKind; data: Record<string, unknown> }>;

function append(s: SqliteStore, log: Appended, e: JournalInput): void {
  const j = s.appendJournal(e);
  log.set(j.seq, { key: keyOf(j), kind: e.kind, data: e.data });
}

function rows(s: SqliteStore): JournalRow[] {
  const db = new Database(path.join(s.file), { readonly: true });
  try {
    return db.prepare<[], JournalRow>('SELECT * FROM journal ORDER BY seq').all();
  } finally {
    db.close();
  }
}

function freshDepth(s: SqliteStore): { events: number; bytes: number; jsBytes: number } {
  const db = new Database(s.file, { readonly: true });
  try {
    const r = db.prepare<[], { n: number; b: number | null }>(`SELECT COUNT(*) AS n, SUM(${ENTRY_BYTES_SQL}) AS b FROM journal`).get()!;
    const jsBytes = db.prepare<[], JournalRow>('SELECT * FROM journal').all().reduce((a, row) => a + entryBytes(row), 0);
    return { events: r.n, bytes: r.b ?? 0, jsBytes };
  } finally {
    db.close();
  }
}

/**
 * Every seq in [from, lastSeq] is present with what was appended, or covered by exactly one marker of its object;
 * each marker's count is what it covers; markers are valid events; counters match a fresh count.
 */
function checkJournal(s: SqliteStore, log: Appended, from = 1): { markers: JournalRow[] } {
  const all = rows(s);
  const bySeq = new Map(all.map((r) => [r.seq, r]));
  const seqs = all.map((r) => r.seq);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  const markers = all.filter((r) => r.kind === 'outbox.folded');
  for (const m of markers) {
    const msg = { type: 'event', version: 1, ...m, data: JSON.parse(m.data) as unknown };
    const parsed = parseMessage(JSON.stringify(msg), { from: 'agent' });
    expect(parsed, `marker ${m.seq}`).toMatchObject({ ok: true });
    expect(m.cause).toBe('outbox');
    const d = JSON.parse(m.data) as { from_seq: number; count: number };
    // Its own seq was its object's; the seqs it covers are its object's and gone.
    expect(log.get(m.seq)?.key).toBe(keyOf(m));
    let covered = 0;
    for (let q = d.from_seq; q < m.seq; q++) {
      if (log.get(q)?.key !== keyOf(m)) continue;
      expect(bySeq.has(q), `seq ${q} inside marker ${m.seq} is still there`).toBe(false);
      covered += 1;
    }
    expect(d.count, `marker ${m.seq} count`).toBe(covered + 1);
    expect(log.get(d.from_seq)?.key).toBe(keyOf(m));
  }
  const last = s.lastSeq();
  for (let q = from; q <= last; q++) {
    const r = bySeq.get(q);
    if (r && r.kind !== 'outbox.folded') {
      expect(JSON.parse(r.data)).toEqual(log.get(q)!.data);
      continue;
    }
    const key = log.get(q)!.key;
    const cover = markers.filter((m) => keyOf(m) === key && (JSON.parse(m.data) as { from_seq: number }).from_seq <= q && q <= m.seq);
    expect(cover.length, `seq ${q} is covered by ${cover.length} markers`).toBe(1);
  }
  const fresh = freshDepth(s);
  const depth = s.outboxDepth();
  expect({ events: depth.events, bytes: depth.bytes }).toEqual({ events: fresh.events, bytes: fresh.bytes });
  expect(fresh.jsBytes).toBe(fresh.bytes);
  return { markers };
}

const bounds = (maxEvents: number, maxBytes = 2 ** 40): { outbox: OutboxBounds } => ({ outbox: { maxEvents, maxBytes } });

describe('the count bound', () => {
  it('1,000 entries over 20 objects stay within 50 entries; every seq is there or covered once; markers merge', () => {
    const s = t.open(bounds(50));
    const log: Appended = new Map();
    for (let n = 0; n < 1000; n++) {
      append(s, log, entryOf((n * 7) % 20, n));
      expect(s.outboxDepth().events).toBeLessThanOrEqual(50);
    }
    const { markers } = checkJournal(s, log);
    expect(markers.length).toBeGreaterThan(0);
    // Folded again and merged: one marker per object at most, its from_seq the object's first seq ever.
    const perObject = new Map<string | null, number>();
    for (const m of markers) perObject.set(keyOf(m), (perObject.get(keyOf(m)) ?? 0) + 1);
    expect(Math.max(...perObject.values())).toBe(1);
    const firstSeq = (key: string | null) => [...log].find(([, v]) => v.key === key)![0];
    for (const m of markers) expect((JSON.parse(m.data) as { from_seq: number }).from_seq).toBe(firstSeq(keyOf(m)));
    expect(s.outboxDepth().folded_total).toBe(1000 - s.outboxDepth().events);
  });

  it('folds the object whose entries are oldest, not one with a single entry', () => {
    const s = t.open(bounds(10));
    const log: Appended = new Map();
    append(s, log, entryOf(1, 0)); // a node alone: nothing to gain
    append(s, log, entryOf(2, 0));
    append(s, log, entryOf(2, 1));
    for (let i = 0; i < 8; i++) append(s, log, entryOf(10 + i * 2, 0));
    const { markers } = checkJournal(s, log);
    expect(markers.map((m) => [keyOf(m), m.seq, JSON.parse(m.data)])).toEqual([[INSTANCE(2), 3, { from_seq: 2, count: 2 }]]);
    expect(rows(s)[0]).toMatchObject({ seq: 1, kind: 'node.power' });
  });

  it('a folded instance.alive is no verdict any more (lastAliveVerdict null, never an older one); a newer one counts', () => {
    const s = t.open(bounds(10));
    const log: Appended = new Map();
    append(s, log, entryOf(2, 1)); // alive false
    append(s, log, entryOf(2, 0)); // alive true
    expect(s.lastAliveVerdict(INSTANCE(2))).toBe(true);
    for (let i = 0; i < 9; i++) append(s, log, entryOf(11 + i * 2, 0));
    expect(checkJournal(s, log).markers).toHaveLength(1);
    expect(s.lastAliveVerdict(INSTANCE(2))).toBeNull();
    s.setOutboxBounds({ maxEvents: 100, maxBytes: 2 ** 40 });
    append(s, log, entryOf(2, 1));
    expect(s.lastAliveVerdict(INSTANCE(2))).toBe(false);
  });

  it('an older verdict left before a folded newer one is not returned: the verdict is unknown (null)', () => {
    const s = t.open({ outbox: { maxEvents: 25, maxBytes: 2 ** 40, windowRows: 10 } });
    const log: Appended = new Map();
    append(s, log, entryOf(2, 0)); // alive true, alone in the first window
    for (let i = 0; i < 9; i++) append(s, log, entryOf(101 + 2 * i, 0));
    append(s, log, entryOf(2, 1)); // alive false, twice in the second window: folded
    append(s, log, entryOf(2, 1));
    expect(s.lastAliveVerdict(INSTANCE(2))).toBe(false);
    for (let i = 0; i < 14; i++) append(s, log, entryOf(201 + 2 * i, 0));
    const { markers } = checkJournal(s, log);
    expect(markers.map((m) => m.seq)).toEqual([12]);
    expect(rows(s)[0]).toMatchObject({ seq: 1, kind: 'instance.alive' });
    expect(s.lastAliveVerdict(INSTANCE(2))).toBeNull();
  });

  it('more objects than a window holds, round robin: the window widens and folding goes on', () => {
    const stuck: unknown[] = [];
    const s = t.open({ outbox: { maxEvents: 40, maxBytes: 2 ** 40, windowRows: 10 }, onOutboxStuck: (i) => stuck.push(i) });
    const log: Appended = new Map();
    for (let n = 0; n < 200; n++) {
      append(s, log, entryOf(n % 15, n));
      expect(s.outboxDepth().events).toBeLessThanOrEqual(40);
    }
    expect(stuck).toEqual([]);
    expect(checkJournal(s, log).markers.length).toBeGreaterThan(0);
  });

  it('when every object holds one entry, nothing is folded and the store says so once', () => {
    const stuck: number[] = [];
    const s = t.open({ ...bounds(10), onOutboxStuck: (i) => stuck.push(i.events) });
    const log: Appended = new Map();
    for (let i = 0; i < 15; i++) append(s, log, entryOf(i, 0));
    expect(stuck).toEqual([11]);
    expect(s.outboxDepth()).toMatchObject({ events: 15, folded_total: 0 });
    checkJournal(s, log);
    // A second entry of an object: foldable again.
    append(s, log, entryOf(3, 1));
    expect(s.outboxDepth().events).toBeLessThanOrEqual(15);
    expect(checkJournal(s, log).markers).toHaveLength(1);
  });

  it('entries of no object fold together into a marker that names none', () => {
    const s = t.open(bounds(10));
    const log: Appended = new Map();
    for (let i = 0; i < 11; i++) append(s, log, { kind: 'node.enrolled', instance_id: null, node_id: null, cause: 'config', data: { i } });
    const { markers } = checkJournal(s, log);
    expect(markers).toHaveLength(1);
    expect(markers[0]).toMatchObject({ instance_id: null, node_id: null, seq: 11 });
    expect(JSON.parse(markers[0]!.data)).toEqual({ from_seq: 1, count: 11 });
  });

  it('past one window, folding goes on in later turns down to 90% of the bound', async () => {
    // Windows of 20 rows holding 10 pairs each: one step removes 10 entries.
    const s = t.open({ outbox: { maxEvents: 100, maxBytes: 2 ** 40, windowRows: 20 } });
    const log: Appended = new Map();
    for (let n = 0; n < 101; n++) append(s, log, entryOf(Math.floor(n / 2), n));
    // The append over the bound folded one window at once: under the bound, over 90% of it.
    expect(s.outboxDepth().events).toBe(91);
    await nextTurn();
    await nextTurn();
    expect(s.outboxDepth().events).toBe(81);
    await nextTurn();
    expect(s.outboxDepth().events).toBe(81);
    checkJournal(s, log);
  });
});

describe('the bytes bound', () => {
  it('big entries stay within max_bytes, folded the same way', () => {
    const maxBytes = 64 * 1024;
    const s = t.open({ outbox: { maxEvents: 1_000_000, maxBytes } });
    const log: Appended = new Map();
    for (let n = 0; n < 300; n++) {
      append(s, log, entryOf(n % 6, n, 2000 + (n % 5) * 300));
      expect(s.outboxDepth().bytes).toBeLessThanOrEqual(maxBytes);
    }
    expect(checkJournal(s, log).markers.length).toBeGreaterThan(0);
    expect(s.outboxDepth().events).toBeLessThan(300);
  });
});

describe('counters', () => {
  it('follow trims and a reopen; an append rolled back is not counted', () => {
    const s = t.open(bounds(50));
    const log: Appended = new Map();
    for (let n = 0; n < 200; n++) append(s, log, entryOf(n % 8, n));
    checkJournal(s, log);
    const trimTo = rows(s)[10]!.seq;
    s.trimJournal(trimTo);
    checkJournal(s, log, trimTo + 1);
    expect(() =>
      s.transaction(() => {
        s.appendJournal(entryOf(1, 0));
        throw new Error('the caller failed');
      }),
    ).toThrow('the caller failed');
    s.transaction(() => {
      try {
        s.transaction(() => {
          s.appendJournal(entryOf(1, 0));
          s.trimJournal(s.lastSeq());
          throw new Error('inner');
        });
      } catch {
        // the savepoint rolled back; the outer transaction goes on
      }
      append(s, log, entryOf(3, 0));
    });
    checkJournal(s, log, trimTo + 1);
    const before = s.outboxDepth();
    s.close();
    const again = t.open(bounds(50));
    expect(again.outboxDepth()).toEqual(before);
    checkJournal(again, log, trimTo + 1);
  });

  it('a transaction over the bound folds once it committed, and not at all when it rolls back', () => {
    const s = t.open(bounds(50));
    const log: Appended = new Map();
    expect(() =>
      s.transaction(() => {
        for (let n = 0; n < 80; n++) s.appendJournal(entryOf(n % 4, n));
        throw new Error('rolled back');
      }),
    ).toThrow('rolled back');
    expect(s.outboxDepth()).toEqual({ events: 0, bytes: 0, folded_total: 0 });
    s.transaction(() => {
      for (let n = 0; n < 80; n++) append(s, log, entryOf(n % 4, n));
    });
    expect(s.outboxDepth().events).toBeLessThanOrEqual(50);
    expect(s.outboxDepth().folded_total).toBeGreaterThan(0);
    checkJournal(s, log);
  });

  it('new bounds apply live: lower ones fold at once', () => {
    const s = t.open(bounds(1000));
    const log: Appended = new Map();
    for (let n = 0; n < 300; n++) append(s, log, entryOf(n % 10, n));
    expect(s.outboxDepth().events).toBe(300);
    s.setOutboxBounds({ maxEvents: 100, maxBytes: 2 ** 30 });
    expect(s.outboxDepth().events).toBeLessThanOrEqual(100);
    checkJournal(s, log);
    expect(() => s.setOutboxBounds({ maxEvents: 0, maxBytes: 10 })).toThrow(/maxEvents must be a positive integer/);
  });
});

describe('a fold that fails', () => {
  it('rolls back whole: the journal and the counters are as before it, and the next append folds', () => {
    // Armed: the next appendJournal write (the append) passes, the one after it (the fold it starts) fails.
    let armed: number | null = null;
    const fault: StoreFaultInjector = {
      beforeWrite(op: StoreWriteOp) {
        if (armed === null || op !== 'appendJournal') return;
        if (armed-- > 0) return;
        armed = null;
        throw new StoreError('injected fault in the fold');
      },
    };
    const reported: unknown[] = [];
    const s = t.open({ ...bounds(50), fault, onAfterCommitError: (e) => reported.push(e) });
    const log: Appended = new Map();
    for (let n = 0; n < 50; n++) append(s, log, entryOf(n % 5, n));
    expect(reported).toHaveLength(0);
    armed = 1;
    append(s, log, entryOf(2, 100));
    expect(String(reported[0])).toMatch(/injected fault in the fold/);
    expect(s.outboxDepth()).toMatchObject({ events: 51, folded_total: 0 });
    checkJournal(s, log);
    append(s, log, entryOf(2, 101));
    expect(s.outboxDepth().events).toBeLessThanOrEqual(50);
    checkJournal(s, log);
  });

  it('fails inside its transaction (after deleting) and leaves nothing half done', () => {
    const reported: unknown[] = [];
    const s = t.open({ ...bounds(20), onAfterCommitError: (e) => reported.push(e) });
    const log: Appended = new Map();
    for (let n = 0; n < 20; n++) append(s, log, entryOf(n % 4, n));
    const raw = new Database(path.join(t.dir(), DB_FILE_NAME));
    raw.exec(`CREATE TRIGGER no_markers BEFORE UPDATE ON journal WHEN NEW.kind = 'outbox.folded' BEGIN SELECT RAISE(ABORT, 'markers refused'); END;`);
    raw.close();
    append(s, log, entryOf(0, 50));
    expect(String(reported[0])).toMatch(/markers refused/);
    expect(s.outboxDepth().events).toBe(21);
    expect(checkJournal(s, log).markers).toHaveLength(0);
  });
});

describe('/metrics', () => {
  it('metald_outbox_events, _bytes and _folded_total follow the store at each scrape', async () => {
    const s = t.open(bounds(50));
    const log: Appended = new Map();
    const registry = new Registry();
    createOutboxMetrics(registry, () => s.outboxDepth());
    const scrape = async () => {
      const text = await registry.metrics();
      const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
      return { events: value('metald_outbox_events'), bytes: value('metald_outbox_bytes'), folded_total: value('metald_outbox_folded_total') };
    };
    expect(await scrape()).toEqual({ events: 0, bytes: 0, folded_total: 0 });
    for (let n = 0; n < 120; n++) append(s, log, entryOf(n % 6, n));
    const d = s.outboxDepth();
    expect(d.folded_total).toBeGreaterThan(0);
    expect(await scrape()).toEqual(d);
    // A second registration replaces the first (a rebuilt agent in one process).
    createOutboxMetrics(registry, () => ({ events: 1, bytes: 2, folded_total: 3 }));
    expect(await scrape()).toEqual({ events: 1, bytes: 2, folded_total: 3 });
  });
});
