/**
 * The outbox policy (docs/protocol.md, "The outbox policy"): the journal is the outbox the upstream link sends from,
 * and this bounds it by count and bytes whether or not anything ever trims it.
 *
 * Rule: after a commit that takes the journal over `maxEvents` or `maxBytes`, fold until it is back under both
 * (synchronously, before the next write: the bound holds after every commit), then go on folding one chunk per
 * event-loop turn down to the low watermark (90% of each bound), so that a full outbox does not fold on every append.
 * Folding takes the object (an instance, else a node, else "no object") of the oldest entry that shares its object
 * with another entry, and replaces that object's oldest entries (at most FOLD_CHUNK of them) by ONE `outbox.folded`
 * marker: the row of the newest of them becomes the marker (same seq, same instance_id/node_id), its data
 * `{from_seq, count}` (agent/upstream/protocol.ts FoldedData): from_seq the oldest seq covered, count how many events
 * it stands for (an earlier marker among them counts its own count). Every seq removed is covered by exactly one
 * marker of its object; seqs are never reused nor reordered; nothing is dropped silently.
 *
 * Cost: an append that does not fold costs O(1) here (a closure run after its commit, counters in memory); a fold
 * step reads and rewrites at most FOLD_CHUNK rows through the index by object (migration 8) and is its own
 * transaction (atomic: a failure rolls all of it back and the counters are untouched). The counters (entries,
 * bytes) are read once at open (one scan) and follow appends, folds and trims after each commit; the total folded
 * is kept in `meta` (key outbox.folded_total) in the fold's own transaction.
 *
 * When every object holds one entry, folding cannot help: the outbox is then as big as the number of objects (the
 * fleet bounds it), and the policy says so once through `onStuck` and tries again only after a hundredth of the
 * count bound more appends (or a trim).
 */
import type Database from 'better-sqlite3';
import type { JournalRow } from './rows.js';

/** The envelope of an event frame around the row's columns (keys, punctuation, type, version, seq). */
export const ENTRY_OVERHEAD_BYTES = 128;

/** An entry's size, counted as SQL does it (ENTRY_BYTES_SQL): its columns' UTF-8 bytes plus the envelope. */
export function entryBytes(r: Pick<JournalRow, 'agent_id' | 'at' | 'kind' | 'instance_id' | 'node_id' | 'cause' | 'data'>): number {
  const b = (s: string | null) => (s === null ? 0 : Buffer.byteLength(s, 'utf8'));
  return ENTRY_OVERHEAD_BYTES + b(r.agent_id) + b(r.at) + b(r.kind) + b(r.instance_id) + b(r.node_id) + b(r.cause) + b(r.data);
}

const col = (c: string) => `length(CAST(${c} AS BLOB))`;
/** entryBytes in SQL (a row's bytes are never stored: they are its columns'). */
export const ENTRY_BYTES_SQL = `(${ENTRY_OVERHEAD_BYTES} + ${col('agent_id')} + ${col('at')} + ${col('kind')} + COALESCE(${col('instance_id')}, 0) + COALESCE(${col('node_id')}, 0) + ${col('cause')} + ${col('data')})`;

/** The object an entry is about, as migration 8's index journal_object keys it. */
export const OBJECT_SQL = 'COALESCE(instance_id, node_id)';

/** At most this many rows are read and rewritten by one fold step (one transaction). */
export const FOLD_CHUNK = 2000;
/** Folding goes on, a chunk per turn, down to this fraction of each bound. */
export const LOW_WATERMARK = 0.9;
/** Where the total of folded entries is kept. */
export const FOLDED_TOTAL_KEY = 'outbox.folded_total';

export interface OutboxBounds {
  maxEvents: number;
  maxBytes: number;
}

export interface OutboxDepth {
  /** Entries in the journal (markers included). */
  events: number;
  /** Their bytes (entryBytes). */
  bytes: number;
  /** Entries removed by folding so far, over the store's life. */
  folded_total: number;
}

export interface OutboxPorts {
  /** Runs fn as one write transaction of the store (its fault hook included); throws StoreError on failure. */
  write<T>(fn: () => T): T;
  /** The fold's `at`. */
  now(): Date;
  /** Runs fn on a later turn; returns its cancel. */
  schedule(fn: () => void): () => void;
  /** Told once when folding cannot meet the bounds (every object holds one entry). */
  onStuck(info: { events: number; bytes: number; bounds: OutboxBounds }): void;
  /** Told what a background fold step threw (the journal is unchanged by it). */
  onError(err: unknown): void;
}

interface ItemRow {
  seq: number;
  kind: string;
  data: string;
  bytes: number;
}

/** What one fold step did. */
interface StepResult {
  events: number;
  bytes: number;
  /** The walk reached the journal's end. */
  ended: boolean;
}

/** Defaults: docs/protocol.md, "The outbox policy" (what a 1,000-node fleet's churn fills them with). */
export const DEFAULT_OUTBOX_BOUNDS: OutboxBounds = { maxEvents: 1_000_000, maxBytes: 256 * 1024 * 1024 };

export function scheduleImmediate(fn: () => void): () => void {
  const t = setImmediate(fn);
  return () => clearImmediate(t);
}

/** The default OutboxPorts.onStuck: a process warning (the agent passes its logger). */
export function warnOutboxStuck(i: { events: number; bytes: number; bounds: OutboxBounds }): void {
  process.emitWarning(
    `the outbox holds ${i.events} entries (${i.bytes} bytes), over its bounds (${i.bounds.maxEvents} entries, ${i.bounds.maxBytes} bytes), and every object has one entry: nothing more can be folded`,
    { type: 'MetaldStoreWarning', code: 'METALD_OUTBOX_STUCK' },
  );
}

export class Outbox {
  private events = 0;
  private bytes = 0;
  private foldedTotal = 0;
  private bounds: OutboxBounds;
  /** Seq of the last entry the walk found alone with its object (the next step looks after it). */
  private cursor = 0;
  /** Entries removed in the current walk of the journal (0 at its end: nothing can be folded). */
  private passRemoved = 0;
  /** Set when a whole walk folded nothing: no fold is tried before `events` reaches it. */
  private stuckUntil: number | null = null;
  private toldStuck = false;
  private cancelBackground: (() => void) | null = null;
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly agentId: string,
    bounds: OutboxBounds,
    private readonly ports: OutboxPorts,
  ) {
    this.bounds = checkBounds(bounds);
    this.s = {
      depth: db.prepare<[string], { n: number; b: number | null }>(`SELECT COUNT(*) AS n, SUM(${ENTRY_BYTES_SQL}) AS b FROM journal WHERE agent_id = ?`),
      trimmed: db.prepare<[string, number], { n: number; b: number | null }>(
        `SELECT COUNT(*) AS n, SUM(${ENTRY_BYTES_SQL}) AS b FROM journal WHERE agent_id = ? AND seq <= ?`,
      ),
      after: db.prepare<[string, number, number], { seq: number; obj: string | null }>(
        `SELECT seq, ${OBJECT_SQL} AS obj FROM journal WHERE agent_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
      ),
      items: db.prepare<[string, string, number], ItemRow>(
        `SELECT seq, kind, data, ${ENTRY_BYTES_SQL} AS bytes FROM journal INDEXED BY journal_object
         WHERE agent_id = ? AND ${OBJECT_SQL} = ? ORDER BY seq LIMIT ?`,
      ),
      itemsNone: db.prepare<[string, number], ItemRow>(
        `SELECT seq, kind, data, ${ENTRY_BYTES_SQL} AS bytes FROM journal INDEXED BY journal_object
         WHERE agent_id = ? AND ${OBJECT_SQL} IS NULL ORDER BY seq LIMIT ?`,
      ),
      drop: db.prepare<[string, string, number, number]>(
        `DELETE FROM journal WHERE agent_id = ? AND ${OBJECT_SQL} = ? AND seq >= ? AND seq < ?`,
      ),
      dropNone: db.prepare<[string, number, number]>(`DELETE FROM journal WHERE agent_id = ? AND ${OBJECT_SQL} IS NULL AND seq >= ? AND seq < ?`),
      mark: db.prepare<[string, string, string, number], { bytes: number }>(
        `UPDATE journal SET kind = 'outbox.folded', cause = 'outbox', at = ?, data = ? WHERE agent_id = ? AND seq = ? RETURNING ${ENTRY_BYTES_SQL} AS bytes`,
      ),
      getTotal: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setTotal: db.prepare<[string, string]>(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
    };
    const d = this.s.depth.get(agentId)!;
    this.events = d.n;
    this.bytes = d.b ?? 0;
    this.foldedTotal = Number(this.s.getTotal.get(FOLDED_TOTAL_KEY)?.value ?? 0);
  }

  depth(): OutboxDepth {
    return { events: this.events, bytes: this.bytes, folded_total: this.foldedTotal };
  }

  getBounds(): OutboxBounds {
    return { ...this.bounds };
  }

  /** New bounds, live; folds now if the journal is over them. */
  setBounds(bounds: OutboxBounds): void {
    this.bounds = checkBounds(bounds);
    this.stuckUntil = null;
    this.afterChange();
  }

  /** After the commit of an append of `bytes`. */
  appended(bytes: number): void {
    this.events += 1;
    this.bytes += bytes;
    this.afterChange();
  }

  /** Inside a trim's transaction, before its DELETE: what it removes (applied by `trimmed` after the commit). */
  measureTrim(throughSeq: number): { events: number; bytes: number } {
    const r = this.s.trimmed.get(this.agentId, throughSeq)!;
    return { events: r.n, bytes: r.b ?? 0 };
  }

  /** After the commit of a trim. */
  trimmed(removed: { events: number; bytes: number }): void {
    this.events -= removed.events;
    this.bytes -= removed.bytes;
    if (removed.events > 0) this.stuckUntil = null;
  }

  close(): void {
    this.cancelBackground?.();
    this.cancelBackground = null;
  }

  private over(f: number): boolean {
    return this.events > this.bounds.maxEvents * f || this.bytes > this.bounds.maxBytes * f;
  }

  private afterChange(): void {
    if (!this.over(1)) return;
    if (this.stuckUntil !== null && this.events < this.stuckUntil) return;
    this.stuckUntil = null;
    // The hard bound: back under it before the next write.
    while (this.over(1) && this.stuckUntil === null) this.step();
    this.startBackground();
  }

  /** Down to the low watermark, one step per turn. */
  private startBackground(): void {
    if (this.cancelBackground !== null || !this.over(LOW_WATERMARK) || this.stuckUntil !== null) return;
    this.cancelBackground = this.ports.schedule(() => {
      this.cancelBackground = null;
      try {
        this.step();
      } catch (e) {
        this.ports.onError(e);
        return;
      }
      this.startBackground();
    });
  }

  /** One fold step in its own transaction; counters follow once it committed. */
  private step(): void {
    const r = this.ports.write(() => this.foldSome());
    this.events -= r.events;
    this.bytes -= r.bytes;
    this.foldedTotal += r.events;
    this.passRemoved += r.events;
    if (!r.ended) return;
    if (this.passRemoved === 0) {
      this.stuckUntil = this.events + Math.max(1, Math.ceil(this.bounds.maxEvents / 100));
      // Told once, until a fold succeeds again.
      if (!this.toldStuck) this.ports.onStuck({ events: this.events, bytes: this.bytes, bounds: this.getBounds() });
      this.toldStuck = true;
    } else {
      this.toldStuck = false;
    }
    this.passRemoved = 0;
  }

  /**
   * Walks the journal from the cursor, in seq order, and folds each entry's object when it has more than one entry,
   * until FOLD_CHUNK rows were read, the low watermark is reached, or the journal ends (the cursor then restarts).
   */
  private foldSome(): StepResult {
    const at = this.ports.now().toISOString();
    const out: StepResult = { events: 0, bytes: 0, ended: false };
    const seen = new Set<string | null>();
    let budget = FOLD_CHUNK;
    const below = () => this.events - out.events <= this.bounds.maxEvents * LOW_WATERMARK && this.bytes - out.bytes <= this.bounds.maxBytes * LOW_WATERMARK;
    while (budget > 0 && !below()) {
      const next = this.s.after.all(this.agentId, this.cursor, Math.min(budget, 256));
      if (next.length === 0) {
        out.ended = true;
        this.cursor = 0;
        break;
      }
      for (const { seq, obj } of next) {
        if (budget <= 0 || below()) break;
        budget -= 1;
        this.cursor = seq;
        if (seen.has(obj)) continue;
        seen.add(obj);
        const items = obj === null ? this.s.itemsNone.all(this.agentId, FOLD_CHUNK) : this.s.items.all(this.agentId, obj, FOLD_CHUNK);
        budget -= items.length;
        if (items.length < 2) continue;
        const folded = this.foldItems(obj, items, at);
        out.events += folded.events;
        out.bytes += folded.bytes;
      }
    }
    if (out.events > 0) this.s.setTotal.run(FOLDED_TOTAL_KEY, String(this.foldedTotal + out.events));
    return out;
  }

  /** items: an object's oldest entries, in seq order (>= 2). The newest becomes the marker; the others go. */
  private foldItems(obj: string | null, items: ItemRow[], at: string): { events: number; bytes: number } {
    let fromSeq = Number.MAX_SAFE_INTEGER;
    let count = 0;
    let bytes = 0;
    for (const it of items) {
      if (it.kind === 'outbox.folded') {
        const d = JSON.parse(it.data) as { from_seq: number; count: number };
        fromSeq = Math.min(fromSeq, d.from_seq);
        count += d.count;
      } else {
        fromSeq = Math.min(fromSeq, it.seq);
        count += 1;
      }
      bytes += it.bytes;
    }
    const first = items[0]!.seq;
    const last = items[items.length - 1]!.seq;
    const dropped = obj === null ? this.s.dropNone.run(this.agentId, first, last) : this.s.drop.run(this.agentId, obj, first, last);
    if (dropped.changes !== items.length - 1) {
      throw new Error(`outbox fold of ${obj ?? 'no object'}: deleted ${dropped.changes} entries, expected ${items.length - 1}`);
    }
    const marker = this.s.mark.get(at, JSON.stringify({ from_seq: fromSeq, count }), this.agentId, last)!;
    return { events: items.length - 1, bytes: bytes - marker.bytes };
  }
}

/** @throws RangeError unless both bounds are positive integers. */
function checkBounds(b: OutboxBounds): OutboxBounds {
  for (const [k, v] of Object.entries(b)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`outbox bound ${k} must be a positive integer, got ${String(v)}`);
  }
  return { maxEvents: b.maxEvents, maxBytes: b.maxBytes };
}
