/**
 * Schema migrations of the durable store. The schema version lives in `PRAGMA user_version`; each migration moves
 * the database from `version - 1` to `version` and is applied in its own IMMEDIATE transaction together with the
 * bump of user_version, so a crash mid-migration leaves the previous version intact.
 *
 * Rules: append only (never edit a released migration), versions contiguous from 1, `up` synchronous.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { backfillHeldAddresses, HELD_ADDRESSES_DDL } from './index-queries.js';

export interface Migration {
  version: number;
  description: string;
  up(db: Database.Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'nodes, instances, actions, action_events, journal, meta',
    up(db) {
      db.exec(`
        CREATE TABLE nodes (
          id                         TEXT PRIMARY KEY NOT NULL,
          name                       TEXT NOT NULL,
          type                       TEXT NOT NULL,
          boot_mode                  TEXT NOT NULL,
          macs                       TEXT NOT NULL,          -- JSON NodeMac[]
          bmc                        TEXT NOT NULL,          -- JSON BmcSettings
          maintenance                INTEGER NOT NULL,       -- 0/1
          maintenance_reason         TEXT,
          power_state                TEXT NOT NULL,
          last_error                 TEXT,                   -- JSON InstanceError | NULL
          consecutive_power_failures INTEGER NOT NULL,
          instance_id                TEXT,
          adopt                      TEXT,                   -- JSON AdoptRequest | NULL
          enforce_power              INTEGER NOT NULL,       -- 0/1
          source                     TEXT NOT NULL,
          created_at                 TEXT NOT NULL,
          updated_at                 TEXT NOT NULL
        );
        CREATE INDEX nodes_instance_id ON nodes(instance_id);

        CREATE TABLE instances (
          id                 TEXT PRIMARY KEY NOT NULL,
          project_id         TEXT NOT NULL,
          user_id            TEXT NOT NULL,
          name               TEXT NOT NULL,
          description        TEXT,
          node_id            TEXT NOT NULL,
          instance_type_uuid TEXT,
          image_uuid         TEXT,
          availability_zone  TEXT,
          networks           TEXT NOT NULL,                  -- JSON NetworkRequest[]
          addresses          TEXT NOT NULL,                  -- JSON Address[]
          metadata           TEXT NOT NULL,                  -- JSON Record<string,string>
          extra              TEXT NOT NULL,                  -- JSON InstanceExtra (holds secrets)
          state              TEXT NOT NULL,
          operation_state    TEXT,
          error              TEXT,                           -- JSON InstanceError | NULL
          power_state        TEXT NOT NULL,
          target_power_state TEXT,
          task               TEXT,
          task_request_id    TEXT,
          progress           INTEGER NOT NULL,
          failed_operation   TEXT,                           -- JSON | NULL
          created_at         TEXT NOT NULL,
          updated_at         TEXT NOT NULL,
          launched_at        TEXT,
          terminated_at      TEXT
        );
        CREATE INDEX instances_state ON instances(state, terminated_at);
        CREATE INDEX instances_node_id ON instances(node_id);
        CREATE INDEX instances_project_id ON instances(project_id);
        CREATE INDEX instances_created_at ON instances(created_at);

        CREATE TABLE actions (
          request_id  TEXT PRIMARY KEY NOT NULL,
          instance_id TEXT NOT NULL,
          project_id  TEXT NOT NULL,
          user_id     TEXT NOT NULL,
          action      TEXT NOT NULL,
          start_time  TEXT NOT NULL,
          finish_time TEXT,
          message     TEXT
        );
        CREATE INDEX actions_instance_id ON actions(instance_id, start_time);
        CREATE INDEX actions_unfinished ON actions(start_time) WHERE finish_time IS NULL;

        CREATE TABLE action_events (
          request_id  TEXT NOT NULL REFERENCES actions(request_id) ON DELETE CASCADE,
          idx         INTEGER NOT NULL,                      -- 0-based position within the action
          event       TEXT NOT NULL,
          start_time  TEXT NOT NULL,
          finish_time TEXT,
          result      TEXT,
          traceback   TEXT,
          PRIMARY KEY (request_id, idx)
        ) WITHOUT ROWID;

        -- Per-agent journal sequence counters: a seq is never reused, even after entries are trimmed.
        CREATE TABLE journal_seq (
          agent_id TEXT PRIMARY KEY NOT NULL,
          last_seq INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE journal (
          agent_id    TEXT NOT NULL,
          seq         INTEGER NOT NULL,
          at          TEXT NOT NULL,
          kind        TEXT NOT NULL,
          instance_id TEXT,
          node_id     TEXT,
          cause       TEXT NOT NULL,
          data        TEXT NOT NULL,                         -- JSON object
          PRIMARY KEY (agent_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE meta (
          key   TEXT PRIMARY KEY NOT NULL,
          value TEXT NOT NULL
        ) WITHOUT ROWID;
      `);
    },
  },
  {
    version: 2,
    description: 'nodes.target_power_state: the target of a node-level power command while it runs',
    up(db) {
      db.exec(`ALTER TABLE nodes ADD COLUMN target_power_state TEXT;`);
    },
  },
  {
    version: 3,
    description: 'actions.plan_step, actions.plan_data: where an operation\'s plan is (Action.plan), both NULL before its first step',
    up(db) {
      db.exec(`
        ALTER TABLE actions ADD COLUMN plan_step INTEGER;
        ALTER TABLE actions ADD COLUMN plan_data TEXT;       -- JSON object, set together with plan_step
      `);
    },
  },
  {
    version: 4,
    description: 'held_addresses (who holds each address, kept by the store with the rows) and the free-node indexes',
    up(db) {
      db.exec(HELD_ADDRESSES_DDL);
      backfillHeldAddresses(db);
    },
  },
  {
    version: 5,
    description: "one project's instances in created_at order: a page of them is an ordered index walk, not a sort of the project's rows",
    up(db) {
      db.exec(`CREATE INDEX instances_project_created ON instances(project_id, created_at);`);
    },
  },
  {
    version: 6,
    description: "the last journalled liveness verdict of an instance: an index walk, so a restart does not journal verdicts that did not change",
    up(db) {
      db.exec(`CREATE INDEX journal_alive ON journal(agent_id, instance_id, seq) WHERE kind = 'instance.alive';`);
    },
  },
  {
    version: 7,
    description: "upstream: the store's id (made once; a new one tells the controller the journal restarted) and each command's first result, by command_id",
    up(db) {
      db.exec(`
        CREATE TABLE command_results (
          command_id TEXT PRIMARY KEY NOT NULL,
          op         TEXT NOT NULL,
          result     TEXT NOT NULL,                        -- JSON: the command-result's fields but type, version, repeat
          created_at TEXT NOT NULL
        ) WITHOUT ROWID;
      `);
      db.prepare(`INSERT INTO meta (key, value) VALUES ('store_id', ?) ON CONFLICT(key) DO NOTHING`).run(randomUUID());
    },
  },
  {
    version: 8,
    description: "the outbox policy (./outbox.ts): journal_alive also holds the fold markers, so the last verdict of an instance whose newer entries were folded is unknown, not an older one",
    up(db) {
      db.exec(`
        DROP INDEX journal_alive;
        CREATE INDEX journal_alive ON journal(agent_id, instance_id, seq) WHERE kind IN ('instance.alive', 'outbox.folded');
      `);
    },
  },
  {
    version: 9,
    description: 'the boot server\'s installer jobs (agent/boot/, docs/boot-protocol.md): one row per job, found by id, token, instance, or the MAC of its node',
    up(db) {
      db.exec(`
        CREATE TABLE boot_jobs (
          job_id      TEXT PRIMARY KEY NOT NULL,
          token       TEXT NOT NULL UNIQUE,
          node_id     TEXT NOT NULL,
          instance_id TEXT NOT NULL,
          operation   TEXT NOT NULL,
          document    TEXT NOT NULL,                        -- JSON: the job document but its URLs and expiry (holds secrets)
          state       TEXT NOT NULL,                        -- issued | fetched | succeeded | failed | revoked | expired
          progress    INTEGER NOT NULL,
          message     TEXT,
          deadline_at INTEGER NOT NULL,                     -- ms since the epoch
          created_at  TEXT NOT NULL,
          updated_at  TEXT NOT NULL
        );
        CREATE INDEX boot_jobs_instance ON boot_jobs(instance_id) WHERE state IN ('issued', 'fetched');
        CREATE INDEX boot_jobs_node ON boot_jobs(node_id);
        CREATE TABLE boot_job_macs (
          mac    TEXT NOT NULL,                             -- lower case
          job_id TEXT NOT NULL REFERENCES boot_jobs(job_id) ON DELETE CASCADE,
          PRIMARY KEY (mac, job_id)
        ) WITHOUT ROWID;
        CREATE INDEX boot_job_macs_job ON boot_job_macs(job_id);
      `);
    },
  },
];

/** The schema version this code writes. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.length === 0 ? 0 : MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Throws unless versions are contiguous from 1 and strictly increasing. */
export function validateMigrations(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(`migration list is not contiguous: position ${i} has version ${m.version}, expected ${i + 1}`);
    }
  });
}

export class SchemaTooNewError extends Error {
  constructor(
    readonly found: number,
    readonly known: number,
  ) {
    super(
      `database schema version ${found} is newer than this metald understands (${known}); ` +
        'it was written by a newer metald — upgrade metald or restore a matching backup',
    );
    this.name = 'SchemaTooNewError';
  }
}

/**
 * Brings db up to the last version of `migrations`, each step in its own IMMEDIATE transaction that also sets
 * user_version. Refuses (SchemaTooNewError) a database newer than the list. Returns the resulting version.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  validateMigrations(migrations);
  const known = migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
  const current = () => db.pragma('user_version', { simple: true }) as number;
  const found = current();
  if (found > known) throw new SchemaTooNewError(found, known);
  for (const m of migrations) {
    if (m.version <= found) continue;
    db.transaction(() => {
      // Re-check inside the write lock: another process may have migrated meanwhile.
      if (current() >= m.version) return;
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return current();
}
