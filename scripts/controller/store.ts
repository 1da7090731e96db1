/**
 * The reference controller's own durable state (docs/controller.md): one SQLite file in WAL mode, so that an event it
 * acked survives a crash or a power cut (docs/protocol.md: "MUST keep an event durably before it acks it"): the
 * events' commits are synced on libuv's pool (group commit, agent/store/group-commit.ts, as metald's own store) and
 * acked after; every other write is synchronous = FULL. It holds, per agent, the place (the greatest seq H with every seq <= H held or known to be covered) for
 * the agent's current store_id, the events by (agent_id, store_id, seq), the last snapshot, and the commands it sent
 * with their results (a command is kept until its result arrives, and sent again after a reconnect).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { GroupCommit } from '../../agent/store/group-commit.js';
import { FdWalSync } from '../../agent/store/wal-sync.js';
import type { Command, CommandResult, Event, Hello } from '../../agent/upstream/protocol.js';

export interface AgentPlace {
  agent_id: string;
  store_id: string;
  place: number;
}

export interface PendingCommand {
  command_id: string;
  agent_id: string;
  message: Command;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents (
  agent_id TEXT PRIMARY KEY,
  store_id TEXT NOT NULL,
  place INTEGER NOT NULL,
  agent_generation INTEGER NOT NULL,
  outbox_first_seq INTEGER NOT NULL,
  snapshot_seq INTEGER NOT NULL,
  snapshot TEXT NOT NULL,
  hello_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  agent_id TEXT NOT NULL,
  store_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at TEXT NOT NULL,
  PRIMARY KEY (agent_id, store_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
  command_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  body TEXT NOT NULL,
  sent_at TEXT NOT NULL,
  result TEXT,
  result_at TEXT
);
`;

export class ControllerStore {
  private readonly db: Database.Database;
  private readonly walSync = new FdWalSync();
  private readonly group: GroupCommit;
  private readonly insertEvent: Database.Statement;
  private readonly setPlace: Database.Statement;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.group = new GroupCommit(this.walSync, `${path.resolve(file)}-wal`, () => undefined);
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.insertEvent = this.db.prepare('INSERT INTO events (agent_id, store_id, seq, kind, body, received_at) VALUES (?, ?, ?, ?, ?, ?)');
    this.setPlace = this.db.prepare('UPDATE agents SET place = ? WHERE agent_id = ?');
  }

  close(): void {
    this.group.flushNow();
    this.db.close();
    this.walSync.close();
  }

  /**
   * Resolves once every event commit made so far is on disk (null when none is pending); rejects when a WAL sync
   * failed (the controller's store is then failed: nothing more is acked).
   */
  durable(): Promise<void> | null {
    return this.group.durable();
  }

  /** The controller's fencing generation: the stored one, else 1 (set by --generation). */
  generation(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'generation'").get() as { value: string } | undefined;
    return row === undefined ? 1 : Number(row.value);
  }

  setGeneration(g: number): void {
    this.db.prepare("INSERT INTO meta (key, value) VALUES ('generation', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(g));
  }

  agent(agentId: string): AgentPlace | undefined {
    return this.db.prepare('SELECT agent_id, store_id, place FROM agents WHERE agent_id = ?').get(agentId) as AgentPlace | undefined;
  }

  agents(): AgentPlace[] {
    return this.db.prepare('SELECT agent_id, store_id, place FROM agents ORDER BY agent_id').all() as AgentPlace[];
  }

  /**
   * Records a hello and returns the agent's place. A new store_id starts a new place at 0 (its journal restarted at
   * seq 1); seqs below the hello's outbox_first_seq are gone from the agent and covered by its snapshot, so the place
   * is raised to outbox_first_seq - 1; `cover` (after a resync this controller asked for) raises it to snapshot.seq.
   */
  recordHello(h: Hello, cover: boolean): { place: number; newStore: boolean; coveredFrom: number | null } {
    return this.db.transaction(() => {
      const old = this.agent(h.agent_id);
      const newStore = old !== undefined && old.store_id !== h.store_id;
      let place = old === undefined || newStore ? 0 : old.place;
      const before = place;
      place = Math.max(place, h.outbox_first_seq - 1);
      if (cover) place = Math.max(place, h.snapshot.seq);
      this.db
        .prepare(
          `INSERT INTO agents (agent_id, store_id, place, agent_generation, outbox_first_seq, snapshot_seq, snapshot, hello_at)
           VALUES (@agent_id, @store_id, @place, @generation, @outbox_first_seq, @snapshot_seq, @snapshot, @at)
           ON CONFLICT (agent_id) DO UPDATE SET store_id = excluded.store_id, place = excluded.place,
             agent_generation = excluded.agent_generation, outbox_first_seq = excluded.outbox_first_seq,
             snapshot_seq = excluded.snapshot_seq, snapshot = excluded.snapshot, hello_at = excluded.hello_at`,
        )
        .run({
          agent_id: h.agent_id, store_id: h.store_id, place, generation: h.generation, outbox_first_seq: h.outbox_first_seq,
          snapshot_seq: h.snapshot.seq, snapshot: JSON.stringify(h.snapshot), at: new Date().toISOString(),
        });
      return { place, newStore, coveredFrom: place > before ? before + 1 : null };
    })();
  }

  /** Keeps events (each seq = the previous place + 1, checked by the caller) and the new place in one commit. */
  appendEvents(agentId: string, storeId: string, events: Event[]): void {
    if (events.length === 0) return;
    const at = new Date().toISOString();
    const failed = this.group.failed;
    if (failed) throw failed;
    // The events' commit does not fsync in the loop: the WAL is synced on the pool (durable()) before they are
    // acked, so frames keep being read meanwhile. Every other write stays synchronous = FULL.
    this.db.pragma('synchronous = NORMAL');
    try {
      this.db.transaction(() => {
        for (const e of events) this.insertEvent.run(agentId, storeId, e.seq, e.kind, JSON.stringify(e), at);
        this.setPlace.run(events[events.length - 1]!.seq, agentId);
      })();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
    this.group.committedOne();
  }

  /** The seqs held for an agent's current store, in order (tests and `events` on the command line). */
  seqs(agentId: string): number[] {
    return (this.db
      .prepare('SELECT e.seq FROM events e JOIN agents a ON a.agent_id = e.agent_id AND a.store_id = e.store_id WHERE e.agent_id = ? ORDER BY e.seq')
      .all(agentId) as { seq: number }[]).map((r) => r.seq);
  }

  /**
   * Moves an agent's place back so that its next welcome asks from `seq` (a controller restored from an older
   * backup): the events at and after it are forgotten, as such a controller would not have them. Returns the number
   * forgotten, or null when the agent is unknown or already before `seq`.
   */
  rewind(agentId: string, seq: number): { from: number; forgotten: number } | null {
    return this.db.transaction(() => {
      const a = this.agent(agentId);
      if (a === undefined || a.place < seq) return null;
      const r = this.db.prepare('DELETE FROM events WHERE agent_id = ? AND store_id = ? AND seq >= ?').run(agentId, a.store_id, seq);
      this.setPlace.run(seq - 1, agentId);
      return { from: a.place, forgotten: r.changes };
    })();
  }

  addCommand(agentId: string, message: Command): void {
    this.db.prepare('INSERT INTO commands (command_id, agent_id, body, sent_at) VALUES (?, ?, ?, ?)').run(
      message.command_id, agentId, JSON.stringify(message), new Date().toISOString(),
    );
  }

  /** Commands of an agent that have no result yet, oldest first. */
  pendingCommands(agentId: string): PendingCommand[] {
    return (this.db.prepare('SELECT command_id, agent_id, body FROM commands WHERE agent_id = ? AND result IS NULL ORDER BY sent_at, rowid').all(agentId) as {
      command_id: string; agent_id: string; body: string;
    }[]).map((r) => ({ command_id: r.command_id, agent_id: r.agent_id, message: JSON.parse(r.body) as Command }));
  }

  /** A command this controller sent to that agent, result or not; null when it sent none with that id. */
  sentCommand(agentId: string, commandId: string): Command | null {
    const r = this.db.prepare('SELECT body FROM commands WHERE agent_id = ? AND command_id = ?').get(agentId, commandId) as { body: string } | undefined;
    return r === undefined ? null : (JSON.parse(r.body) as Command);
  }

  /** Stores a result for a command this controller sent to that agent; false when it sent none with that id. */
  recordResult(agentId: string, r: CommandResult): boolean {
    const res = this.db
      .prepare('UPDATE commands SET result = ?, result_at = ? WHERE command_id = ? AND agent_id = ? AND result IS NULL')
      .run(JSON.stringify(r), new Date().toISOString(), r.command_id, agentId);
    if (res.changes > 0) return true;
    return this.db.prepare('SELECT 1 FROM commands WHERE command_id = ? AND agent_id = ?').get(r.command_id, agentId) !== undefined;
  }
}
