/**
 * The status page's event streams (`GET /v1/status/events`, docs/status-page.md): every open stream is sent the
 * journal's entries as they are committed (and on disk: the store's durability barrier is awaited before a write),
 * each scoped for its caller (agent/status/view.ts), framed as server-sent events:
 *
 *   retry: 3000                      once, first
 *   event: hello                     once: {"seq": <journal head at connect>, "since": <resumed from, or null>}
 *   id: 42                           one per entry the caller may see, in seq order
 *   event: journal
 *   data: {"seq":42,"at":...,"kind":"instance.power","instance_id":...,"node_id":...,"cause":...,"data":{...}}
 *   : heartbeat                      a comment every heartbeatMs (15 s)
 *   event: reset                     the stream cannot go on from where it is: the page takes a new snapshot
 *   data: {"reason": "...", "seq": <head>}
 *
 * Costs: the journal is read once per wake for all streams (Store.watchJournal wakes at most once per event-loop
 * turn), each entry is scoped and framed once per role (admin) or project (members), and each stream does O(1) work per
 * entry: nothing grows with the fleet per event. A resume (`since`, `Last-Event-ID`) replays at most maxResume
 * entries; further back, or behind what the journal still holds (trimmed, folded), or ahead of it: `reset`.
 *
 * Bounds: at most maxStreams open streams, maxPerCaller per caller (project and user); beyond: 429 with Retry-After.
 * A client that does not read is not buffered without bound: when a frame would take the stream's unsent bytes over
 * maxBufferedBytes the stream is closed (the page reconnects and resumes from its last id, or resets).
 */
import { AgentError } from '../errors.js';
import type { JournalEntry, RequestContext } from '../model.js';
import { projectLookup, scopeEvent, type StatusEvent, type StatusStore } from './view.js';

export interface StreamLimits {
  /** Open streams at once, all callers. */
  maxStreams: number;
  /** Open streams at once per caller (project and user of the token). */
  maxPerCaller: number;
  /** Unsent bytes a stream may hold; a frame beyond closes it (a slow client). */
  maxBufferedBytes: number;
  /** A comment line this often keeps proxies and the client's watchdog content. */
  heartbeatMs: number;
  /** Most entries a resume replays; further back: `reset`. */
  maxResume: number;
}

export const STATUS_STREAM_LIMITS: Readonly<StreamLimits> = {
  maxStreams: 32,
  maxPerCaller: 4,
  maxBufferedBytes: 1024 * 1024,
  heartbeatMs: 15_000,
  maxResume: 1000,
};

/** Seconds a refused stream is told to wait (Retry-After). */
export const STREAM_RETRY_AFTER_S = 5;
/** Entries read per journal read while pumping. */
const READ_CHUNK = 500;
/** Entries one pump round takes before it yields to the event loop (the rest in the next round). */
const ROUND_MAX = 5000;

/** Where a stream's bytes go (the response body). */
export interface StreamSink {
  /** Queues text for the client. */
  write(text: string): void;
  /** Bytes queued and not yet handed to the socket. */
  buffered(): number;
  /** Ends the response (idempotent). */
  end(): void;
}

export interface StreamLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type CloseReason = 'client' | 'slow' | 'reset' | 'shutdown' | 'store';

interface Stream {
  readonly id: number;
  readonly isAdmin: boolean;
  readonly project: string;
  readonly caller: string;
  readonly sink: StreamSink;
  readonly openedAt: number;
  /** Every entry with seq <= sent was handled for this stream (sent, or not the caller's). */
  sent: number;
  events: number;
  closed: boolean;
}

export interface OpenedStream {
  /** The client went away (the response closed): releases the stream's slot. */
  close(): void;
}

/** `event: journal` frame of an entry. */
function journalFrame(e: StatusEvent): string {
  return `id: ${e.seq}\nevent: journal\ndata: ${JSON.stringify(e)}\n\n`;
}

function eventFrame(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class StatusStreams {
  private readonly streams = new Set<Stream>();
  private readonly limits: StreamLimits;
  /** The last seq read from the journal for the live streams. */
  private cursor = 0;
  private unwatch: (() => void) | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private pumping = false;
  private again = false;
  private nextId = 1;

  constructor(
    private readonly o: { store: StatusStore; log: StreamLog; limits?: Partial<StreamLimits>; now?: () => number },
  ) {
    this.limits = { ...STATUS_STREAM_LIMITS, ...o.limits };
  }

  /** Open streams now. */
  count(): number {
    return this.streams.size;
  }

  /**
   * Opens a stream for ctx from `since` (the last seq the client has; null: from now) and writes its preamble.
   * @throws AgentError RATE_LIMITED (429, Retry-After) beyond maxStreams or maxPerCaller; nothing is written then.
   */
  open(ctx: RequestContext, since: number | null, sink: StreamSink): OpenedStream {
    const caller = `${ctx.project_id}\u0000${ctx.user_id}`;
    const mine = [...this.streams].filter((s) => s.caller === caller).length;
    if (this.streams.size >= this.limits.maxStreams || mine >= this.limits.maxPerCaller) {
      const which = mine >= this.limits.maxPerCaller ? `${this.limits.maxPerCaller} for this token` : `${this.limits.maxStreams} in all`;
      throw new AgentError('AGENT_ERR_RATE_LIMITED', `Too many open status streams (at most ${which}); retry after ${STREAM_RETRY_AFTER_S} s.`, {
        retry_after_s: STREAM_RETRY_AFTER_S,
      });
    }
    const store = this.o.store;
    const head = store.lastSeq();
    if (this.streams.size === 0) this.cursor = head;
    const s: Stream = {
      id: this.nextId++,
      isAdmin: ctx.is_admin,
      project: ctx.project_id,
      caller,
      sink,
      openedAt: this.now(),
      sent: since ?? head,
      events: 0,
      closed: false,
    };
    sink.write(`retry: 3000\n\n${eventFrame('hello', { seq: head, since })}`);
    const why =
      since === null ? null
      : since > head ? 'ahead'
      : since < store.outboxFirstSeq() - 1 ? 'trimmed'
      : head - since > this.limits.maxResume ? 'too-far'
      : null;
    if (why !== null) {
      // Nothing to replay from there: the page takes a new snapshot. The slot is never taken.
      s.closed = true;
      sink.write(eventFrame('reset', { reason: why, seq: head }));
      sink.end();
      this.o.log.info({ component: 'status', stream: s.id, reason: why, since, head }, 'status stream reset at open');
      return { close: () => undefined };
    }
    this.streams.add(s);
    if (this.unwatch === null) this.unwatch = store.watchJournal(() => void this.pump());
    if (this.heartbeat === null) {
      this.heartbeat = setInterval(() => this.beat(), this.limits.heartbeatMs);
      this.heartbeat.unref();
    }
    this.o.log.info({ component: 'status', stream: s.id, admin: s.isAdmin, since, head, open: this.streams.size }, 'status stream opened');
    if (s.sent < this.cursor) void this.pump();
    return { close: () => this.closeStream(s, 'client') };
  }

  /** Ends every stream (the API is closing). */
  closeAll(): void {
    for (const s of [...this.streams]) this.closeStream(s, 'shutdown');
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private closeStream(s: Stream, reason: CloseReason): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s);
    s.sink.end();
    const log = { component: 'status', stream: s.id, reason, events: s.events, ms: this.now() - s.openedAt, open: this.streams.size };
    if (reason === 'slow') this.o.log.warn(log, 'status stream closed: the client does not read fast enough');
    else this.o.log.info(log, 'status stream closed');
    if (this.streams.size === 0) {
      this.unwatch?.();
      this.unwatch = null;
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  /** Writes text unless it would take the stream over its buffer bound: then the stream is closed as slow. */
  private send(s: Stream, text: string): boolean {
    if (s.closed) return false;
    if (s.sink.buffered() + Buffer.byteLength(text) > this.limits.maxBufferedBytes) {
      this.closeStream(s, 'slow');
      return false;
    }
    s.sink.write(text);
    return true;
  }

  private beat(): void {
    for (const s of [...this.streams]) this.send(s, ': heartbeat\n\n');
  }

  /** Reads what is new (and what just-opened streams missed), waits until it is durable, then writes it. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        const out = this.collect();
        const barrier = this.o.store.durable();
        if (barrier) await barrier;
        for (const [s, frames] of out) {
          for (const f of frames) {
            if (f.reset) {
              if (this.send(s, f.text)) this.closeStream(s, 'reset');
              break;
            }
            if (!this.send(s, f.text)) break;
            s.events += 1;
          }
        }
      } while (this.again && this.streams.size > 0);
    } catch (err) {
      // The store failed (a read, or the WAL sync): nothing more can be shown truthfully.
      this.o.log.error({ component: 'status', err }, 'status streams closed: the store failed');
      for (const s of [...this.streams]) this.closeStream(s, 'store');
    } finally {
      this.pumping = false;
    }
  }

  /** The frames due to each stream, read in one synchronous stretch; each stream's `sent` moves to the cursor. */
  private collect(): Map<Stream, { text: string; reset?: boolean }[]> {
    const store = this.o.store;
    const out = new Map<Stream, { text: string; reset?: boolean }[]>();
    const queue = (s: Stream, text: string, reset = false) => {
      let q = out.get(s);
      if (q === undefined) out.set(s, (q = []));
      q.push(reset ? { text, reset } : { text });
    };

    // Streams that opened behind the cursor (a resume): their own replay, up to the cursor.
    for (const s of this.streams) {
      if (s.sent >= this.cursor) continue;
      const entries = this.readRange(s.sent + 1, this.cursor);
      const frames = this.framesFor(entries, s.sent + 1, [s]);
      for (const f of frames.get(s) ?? []) queue(s, f.text, f.reset);
      s.sent = this.cursor;
    }

    const head = store.lastSeq();
    if (head > this.cursor) {
      const upTo = Math.min(head, this.cursor + ROUND_MAX);
      const entries = this.readRange(this.cursor + 1, upTo);
      const live = [...this.streams].filter((s) => s.sent < upTo);
      const frames = this.framesFor(entries, this.cursor + 1, live);
      for (const [s, fs] of frames) for (const f of fs) queue(s, f.text, f.reset);
      for (const s of live) s.sent = upTo;
      this.cursor = upTo;
      if (upTo < head) this.again = true;
    }
    return out;
  }

  private readRange(from: number, to: number): JournalEntry[] {
    const all: JournalEntry[] = [];
    for (let next = from; next <= to; ) {
      const chunk = this.o.store.readJournal(next, Math.min(READ_CHUNK, to - next + 1));
      for (const e of chunk) if (e.seq <= to) all.push(e);
      if (chunk.length === 0) break;
      next = chunk[chunk.length - 1]!.seq + 1;
    }
    return all;
  }

  /**
   * The frames of `entries` (read from `from`) for each of `streams`, skipping what a stream has handled. A seq that
   * is missing (trimmed or folded before it was read) or a fold marker means a stream would miss a change: it gets
   * `reset` there and nothing after it.
   */
  private framesFor(entries: JournalEntry[], from: number, streams: Stream[]): Map<Stream, { text: string; reset?: boolean }[]> {
    const out = new Map<Stream, { text: string; reset?: boolean }[]>();
    const done = new Set<Stream>();
    const projectOf = projectLookup(this.o.store);
    const head = this.o.store.lastSeq();
    let expected = from;
    for (const e of entries) {
      const lost = e.seq !== expected || (e.kind as string) === 'outbox.folded';
      expected = e.seq + 1;
      // One frame per role (admin) or project (members), shared by every stream that sees it.
      const byScope = new Map<string, string | null>();
      for (const s of streams) {
        if (done.has(s) || e.seq <= s.sent) continue;
        let q = out.get(s);
        if (q === undefined) out.set(s, (q = []));
        if (lost) {
          q.push({ text: eventFrame('reset', { reason: 'gap', seq: head }), reset: true });
          done.add(s);
          continue;
        }
        const scope = s.isAdmin ? '' : s.project;
        let frame = byScope.get(scope);
        if (frame === undefined) {
          const v = scopeEvent(e, s.isAdmin, s.project, projectOf);
          byScope.set(scope, (frame = v === null ? null : journalFrame(v)));
        }
        if (frame !== null) q.push({ text: frame });
      }
    }
    return out;
  }
}
