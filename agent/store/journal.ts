/**
 * The journal (the outbox) rows of one agent: appends with the next seq, reads from a seq, the last and the first
 * seq, trims. The bodies of SqliteStore's journal methods, run inside its read/write wrappers (./sqlite.ts).
 *
 * The last seq handed out in the transaction open now is read once per transaction under its write lock and then
 * counted on in memory; the store calls `forgetSeq` when the transaction ends and when any level of it rolls back
 * (the next append reads it again, so a rolled-back entry's seq is handed out again).
 */
import type { JournalEntry } from '../model.js';
import { entryBytes } from './outbox.js';
import { rowToJournal, type JournalRow, type Params } from './rows.js';
import type { Statements } from './statements.js';
import type { JournalInput } from './types.js';

export interface JournalHooks {
  /** Runs fn after the open transaction commits (Store.afterCommit). */
  afterCommit(fn: () => void): void;
  /** The outbox's counters (./outbox.ts), told after the commit. */
  appended(bytes: number): void;
  measureTrim(throughSeq: number): { events: number; bytes: number };
  trimmed(removed: { events: number; bytes: number }): void;
  /** The journal's watchers (Store.watchJournal). */
  wake(): void;
}

export class JournalTable {
  private txSeq: number | null = null;

  constructor(
    private readonly stmts: Statements,
    private readonly agentId: string,
    private readonly hooks: JournalHooks,
  ) {}

  forgetSeq(): void {
    this.txSeq = null;
  }

  /** `data` is entry.data as JSON, `at` the append's time (both made before the write). */
  append(entry: JournalInput, data: string, at: string): JournalEntry {
    const seq = (this.txSeq ??= this.lastSeq()) + 1;
    const row: JournalRow = {
      agent_id: this.agentId,
      seq,
      at,
      kind: entry.kind,
      instance_id: entry.instance_id ?? null,
      node_id: entry.node_id ?? null,
      cause: entry.cause,
      data,
    };
    this.stmts.insertJournal.run(row as unknown as Params);
    this.txSeq = seq;
    const bytes = entryBytes(row);
    this.hooks.afterCommit(() => this.hooks.appended(bytes));
    this.hooks.wake();
    // The entry as written, its data the caller's (not parsed back from the row just stringified).
    const { data: _json, ...fields } = row;
    return { ...fields, kind: entry.kind, data: entry.data ?? {} };
  }

  read(fromSeq: number, limit: number): JournalEntry[] {
    if (!(limit > 0)) return [];
    return this.stmts.readJournal.all(this.agentId, fromSeq, Math.floor(limit)).map(rowToJournal);
  }

  /** The last sequence number handed out for this agent (0 if none); unaffected by trims. */
  lastSeq(): number {
    return this.stmts.lastSeq.get(this.agentId, this.agentId)!.last_seq;
  }

  /** The oldest seq held, or lastSeq() + 1 when the journal is empty. */
  firstSeq(): number {
    return this.stmts.firstSeq.get(this.agentId)?.first_seq ?? this.lastSeq() + 1;
  }

  /** Deletes the entries with seq <= throughSeq; returns how many. */
  trim(throughSeq: number): number {
    // The last seq outlives the entries it numbered: kept in journal_seq before they go.
    this.stmts.saveSeq.run(this.agentId, this.lastSeq());
    const removed = this.hooks.measureTrim(throughSeq);
    this.hooks.afterCommit(() => this.hooks.trimmed(removed));
    return this.stmts.trimJournal.run(this.agentId, throughSeq).changes;
  }
}
