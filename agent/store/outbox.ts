/**
 * The outbox policy (docs/protocol.md, "The outbox policy"): the journal is the outbox the upstream link sends from,
 * and this bounds it by count and bytes whether or not anything ever trims it.
 *
 * Rule: after a commit that takes the journal over `maxEvents` or `maxBytes`, fold until it is back under both
 * (at once, before the next write, within SYNC_STEPS steps), then go on folding one step per event-loop turn down to
 * the low watermark (90% of each bound), so that a full outbox does not fold on every append.
 * A step reads the next window of the journal (FOLD_CHUNK rows in seq order, from where the last step ended; the
 * oldest first, as the controller lacks those longest) and, for each object (its instance, else its node, else "no
 * object") with more than one entry in the window, turns the newest of them into ONE `outbox.folded` marker (same
 * seq, same instance_id/node_id; data `{from_seq, count}`, agent/upstream/protocol.ts FoldedData) and deletes the
 * others. An earlier marker in the window merges (from_seq the oldest, count the sum). Every seq removed is covered by
 * exactly one marker of its object; seqs are never reused nor reordered; nothing is dropped silently. An object
 * with one entry in a window gains nothing and is left alone; a whole walk of the journal that folds nothing widens
 * the window (x4, up to 64 x FOLD_CHUNK: more objects than a window holds, round robin); when even that folds
 * nothing, every object has one entry: the outbox is then as big as the number of objects (the fleet bounds it), the
 * policy says so once (`onStuck`) and tries again after a hundredth of the count bound more appends (or a trim).
 *
 * Cost: an append that does not fold costs O(1) here (a closure run after its commit, counters in memory); a step
 * reads one window and deletes what it folds by primary key (neighbouring pages), in its own transaction (atomic:
 * a failure rolls all of it back and the counters are untouched). The counters (entries, bytes) are read once at
 * open (one scan) and follow appends, folds and trims after each commit; the total folded is kept in `meta` (key
 * outbox.folded_total) by the fold's own transaction.
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

/** The object an entry is about: its instance, else its node, else none. */
export const OBJECT_SQL = 'COALESCE(instance_id, node_id)';

/** Rows read (and at most rewritten) by one fold step, one transaction: one window of the journal. */
export const FOLD_CHUNK = 2000;
/** At most this many fold steps run at once after the append that went over a bound. */
export const SYNC_STEPS = 16;
/** Folding goes on, a chunk per turn, down to this fraction of each bound. */
export const LOW_WATERMARK = 0.9;
/** Where the total of folded entries is kept. */
export const FOLDED_TOTAL_KEY = 'outbox.folded_total';

export interface OutboxBounds {
  maxEvents: number;
  maxBytes: number;
  /** Rows per fold step (default FOLD_CHUNK); a tuning knob for tests, not in the config. */
  windowRows?: number | undefined;
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

interface WindowRow {
  seq: number;
  /** The entry's object (OBJECT_SQL). */
  obj: string | null;
  /** A marker's data (JSON FoldedData); null for any other entry. */
  marker: string | null;
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
export const DEFAULT_OUTBOX_BOUNDS: OutboxBounds = { maxEvents: 1_000_000, maxBytes: 512 * 1024 * 1024 };

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
  /** The walk's place: the next window starts after this seq. */
  private cursor = 0;
  /** Rows per window: FOLD_CHUNK, widened by a walk that folded nothing. */
  private window: number;
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
    this.window = this.bounds.windowRows ?? FOLD_CHUNK;
    this.s = {
      depth: db.prepare<[string], { n: number; b: number | null }>(`SELECT COUNT(*) AS n, SUM(${ENTRY_BYTES_SQL}) AS b FROM journal WHERE agent_id = ?`),
      trimmed: db.prepare<[string, number], { n: number; b: number | null }>(
        `SELECT COUNT(*) AS n, SUM(${ENTRY_BYTES_SQL}) AS b FROM journal WHERE agent_id = ? AND seq <= ?`,
      ),
      window: db.prepare<[string, number, number], WindowRow>(
        `SELECT seq, ${OBJECT_SQL} AS obj, CASE WHEN kind = 'outbox.folded' THEN data END AS marker, ${ENTRY_BYTES_SQL} AS bytes
         FROM journal WHERE agent_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
      ),
      drop: db.prepare<[string, number]>('DELETE FROM journal WHERE agent_id = ? AND seq = ?'),
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
    this.window = this.bounds.windowRows ?? FOLD_CHUNK;
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

  /** The widest window (64 x the first): a walk with windows this wide that folds nothing gives up (stuck). */
  private maxWindow(): number {
    return 64 * (this.bounds.windowRows ?? FOLD_CHUNK);
  }

  private over(f: number): boolean {
    return this.events > this.bounds.maxEvents * f || this.bytes > this.bounds.maxBytes * f;
  }

  private afterChange(): void {
    if (!this.over(1)) return;
    if (this.stuckUntil !== null && this.events < this.stuckUntil) return;
    this.stuckUntil = null;
    // The hard bound: back under it before the next write (within SYNC_STEPS windows; the background goes on).
    for (let i = 0; i < SYNC_STEPS && this.over(1) && this.stuckUntil === null; i++) this.step();
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
    if (this.passRemoved === 0 && this.window < this.maxWindow()) {
      this.window = Math.min(this.maxWindow(), this.window * 4);
    } else if (this.passRemoved === 0) {
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
   * Reads the next window of the journal after the cursor (seq order) and folds, in it, each object's entries when it
   * has more than one there: its newest entry in the window becomes the marker. At the journal's end the cursor goes
   * back to the start; a whole walk that folded nothing widens the window (up to MAX_WINDOW).
   */
  private foldSome(): StepResult {
    const at = this.ports.now().toISOString();
    const out: StepResult = { events: 0, bytes: 0, ended: false };
    const rows = this.s.window.all(this.agentId, this.cursor, this.window);
    if (rows.length < this.window) out.ended = true;
    const groups = new Map<string | null, WindowRow[]>();
    for (const r of rows) {
      const g = groups.get(r.obj);
      if (g) g.push(r);
      else groups.set(r.obj, [r]);
    }
    for (const items of groups.values()) {
      if (items.length < 2) continue;
      const folded = this.foldItems(items, at);
      out.events += folded.events;
      out.bytes += folded.bytes;
    }
    this.cursor = out.ended ? 0 : rows[rows.length - 1]!.seq;
    if (out.events > 0) this.s.setTotal.run(FOLDED_TOTAL_KEY, String(this.foldedTotal + out.events));
    return out;
  }

  /** items: one object's entries in a window, in seq order (>= 2). The newest becomes the marker; the others go. */
  private foldItems(items: WindowRow[], at: string): { events: number; bytes: number } {
    let fromSeq = Number.MAX_SAFE_INTEGER;
    let count = 0;
    let bytes = 0;
    for (const it of items) {
      if (it.marker !== null) {
        const d = JSON.parse(it.marker) as { from_seq: number; count: number };
        fromSeq = Math.min(fromSeq, d.from_seq);
        count += d.count;
      } else {
        fromSeq = Math.min(fromSeq, it.seq);
        count += 1;
      }
      bytes += it.bytes;
    }
    const last = items[items.length - 1]!;
    for (const it of items) if (it !== last) this.s.drop.run(this.agentId, it.seq);
    const marker = this.s.mark.get(at, JSON.stringify({ from_seq: fromSeq, count }), this.agentId, last.seq)!;
    return { events: items.length - 1, bytes: bytes - marker.bytes };
  }
}

/** @throws RangeError unless both bounds are positive integers. */
function checkBounds(b: OutboxBounds): OutboxBounds {
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined && k === 'windowRows') continue;
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new RangeError(`outbox bound ${k} must be a positive integer, got ${String(v)}`);
  }
  return { maxEvents: b.maxEvents, maxBytes: b.maxBytes, ...(b.windowRows !== undefined ? { windowRows: b.windowRows } : {}) };
}
