import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LATEST_SCHEMA_VERSION,
  migrate,
  MIGRATIONS,
  SchemaTooNewError,
  validateMigrations,
  type Migration,
} from '../../../agent/store/migrations.js';
import { DB_FILE_NAME, openStore } from '../../../agent/store/sqlite.js';
import { StoreError } from '../../../agent/store/types.js';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metald-migrate-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const dbFile = () => path.join(dir, DB_FILE_NAME);

function tables(db: Database.Database): string[] {
  return db
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((r) => r.name);
}

describe('migrations', () => {
  it('the list is contiguous from 1 and LATEST is its last version', () => {
    expect(() => validateMigrations(MIGRATIONS)).not.toThrow();
    expect(LATEST_SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(() => validateMigrations([{ version: 2, description: 'x', up() {} }])).toThrow(/contiguous/);
  });

  it('migrates an existing empty v0 database to the latest version with all tables', () => {
    const raw = new Database(dbFile());
    expect(raw.pragma('user_version', { simple: true })).toBe(0);
    raw.close();

    const s = openStore({ dir, agentId: 'a' });
    expect(s.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
    s.close();

    const check = new Database(dbFile(), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(LATEST_SCHEMA_VERSION);
    expect(tables(check)).toEqual(
      expect.arrayContaining(['nodes', 'instances', 'actions', 'action_events', 'journal', 'journal_seq', 'meta']),
    );
    const indexes = check
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")
      .all()
      .map((r) => r.name);
    expect(indexes).toEqual(
      expect.arrayContaining(['instances_state', 'instances_node_id', 'instances_project_id', 'actions_instance_id']),
    );
    check.close();
  });

  it('reopening an up-to-date database applies nothing and keeps the data', () => {
    const s = openStore({ dir, agentId: 'a' });
    s.setMeta('k', 'v');
    s.close();
    const again = openStore({ dir, agentId: 'a' });
    expect(again.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
    expect(again.getMeta('k')).toBe('v');
    again.close();
  });

  it('refuses a database with a newer schema version, with a clear error, and leaves it untouched', () => {
    const raw = new Database(dbFile());
    raw.pragma(`user_version = ${LATEST_SCHEMA_VERSION + 7}`);
    raw.exec('CREATE TABLE future (x)');
    raw.close();

    let err: unknown;
    try {
      openStore({ dir, agentId: 'a' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(new RegExp(`schema version ${LATEST_SCHEMA_VERSION + 7} is newer`));
    expect((err as StoreError).cause).toBeInstanceOf(SchemaTooNewError);

    const check = new Database(dbFile(), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(LATEST_SCHEMA_VERSION + 7);
    expect(tables(check)).toEqual(['future']);
    check.close();
  });

  it('applies each step in its own transaction: a failing step rolls back only itself', () => {
    const db = new Database(dbFile());
    const steps: Migration[] = [
      { version: 1, description: 'a', up: (d) => d.exec('CREATE TABLE a (x)') },
      {
        version: 2,
        description: 'b fails halfway',
        up: (d) => {
          d.exec('CREATE TABLE b (x)');
          throw new Error('step 2 broken');
        },
      },
      { version: 3, description: 'c', up: (d) => d.exec('CREATE TABLE c (x)') },
    ];
    expect(() => migrate(db, steps)).toThrow('step 2 broken');
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(tables(db)).toEqual(['a']);

    // fixed step 2: continues from version 1
    steps[1] = { version: 2, description: 'b', up: (d) => d.exec('CREATE TABLE b (x)') };
    expect(migrate(db, steps)).toBe(3);
    expect(tables(db)).toEqual(['a', 'b', 'c']);
    db.close();
  });

  it('migrates an older version step by step from where it is', () => {
    const db = new Database(dbFile());
    const applied: number[] = [];
    const steps: Migration[] = [1, 2, 3].map((v) => ({
      version: v,
      description: `v${v}`,
      up: () => applied.push(v),
    }));
    db.pragma('user_version = 1');
    expect(migrate(db, steps)).toBe(3);
    expect(applied).toEqual([2, 3]);
    expect(() => migrate(db, steps.slice(0, 2))).toThrow(SchemaTooNewError);
    db.close();
  });

  it('v2 -> v3: existing actions keep everything and get plan null; a plan can then be stored', () => {
    const raw = new Database(dbFile());
    migrate(raw, MIGRATIONS.slice(0, 2));
    expect(raw.pragma('user_version', { simple: true })).toBe(2);
    raw
      .prepare(
        `INSERT INTO actions (request_id, instance_id, project_id, user_id, action, start_time, finish_time, message)
         VALUES ('req-old', 'inst-1', 'proj-1', 'user-1', 'reboot', '2024-01-03T00:00:00.000Z', NULL, NULL)`,
      )
      .run();
    raw
      .prepare(
        `INSERT INTO action_events (request_id, idx, event, start_time, finish_time, result, traceback)
         VALUES ('req-old', 0, 'compute_reboot', '2024-01-03T00:00:00.000Z', NULL, NULL, NULL)`,
      )
      .run();
    raw.close();

    const s = openStore({ dir, agentId: 'a' });
    try {
      expect(s.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
      const old = {
        request_id: 'req-old',
        instance_id: 'inst-1',
        project_id: 'proj-1',
        user_id: 'user-1',
        action: 'reboot',
        start_time: '2024-01-03T00:00:00.000Z',
        finish_time: null,
        message: null,
        events: [{ event: 'compute_reboot', start_time: '2024-01-03T00:00:00.000Z', finish_time: null, result: null, traceback: null }],
        plan: null,
      };
      expect(s.getAction('req-old')).toStrictEqual(old);
      expect(s.listUnfinishedActions()).toStrictEqual([old]);
      s.setActionPlan('req-old', { step: 1, data: { job: 'j' } });
      expect(s.getAction('req-old')).toStrictEqual({ ...old, plan: { step: 1, data: { job: 'j' } } });
    } finally {
      s.close();
    }
  });
});
