import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { action, event, instance, node } from './fixtures.js';
import {
  DB_FILE_NAME,
  openStore,
  STORE_WRITE_OPS,
  type SqliteStore,
  type StoreFaultInjector,
} from '../../../agent/store/sqlite.js';
import { LATEST_SCHEMA_VERSION } from '../../../agent/store/migrations.js';
import { faultFromFile, STORE_FAULT_ENV } from '../../../scripts/test-store-fault-file.js';
import { DuplicateActionError, StoreError, type BootJob, type Store } from '../../../agent/store/types.js';

let dir: string;
const opened: SqliteStore[] = [];

function open(extra: { fault?: StoreFaultInjector; agentId?: string; now?: () => Date } = {}): SqliteStore {
  const s = openStore({ dir, agentId: extra.agentId ?? 'agent-1', fault: extra.fault, now: extra.now });
  opened.push(s);
  return s;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metald-store-'));
});

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Everything observable through the Store interface (for "nothing changed" assertions). */
function snapshot(s: Store) {
  const instances = s.listInstances();
  return {
    nodes: s.listNodes(),
    instances,
    actions: instances.map((i) => s.listActions(i.id)),
    unfinished: s.listUnfinishedActions(),
    journal: s.readJournal(0, 1_000_000),
    lastSeq: s.lastSeq(),
    commandResult: s.getCommandResult('req-c'),
  };
}

describe('open', () => {
  it('creates the directory 0700 and metald.db 0600, with WAL, synchronous=NORMAL (group commit syncs the WAL), foreign keys, busy timeout', () => {
    const sub = path.join(dir, 'state', 'deep');
    const s = openStore({ dir: sub, agentId: 'a' });
    opened.push(s);
    expect(fs.statSync(sub).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(sub, DB_FILE_NAME)).mode & 0o777).toBe(0o600);
    expect(s.pragmas()).toEqual({ journal_mode: 'wal', synchronous: 1, foreign_keys: 1, busy_timeout: 5000 });
  });

  it('sets user_version to the latest schema version', () => {
    const s = open();
    expect(LATEST_SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
    expect(s.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
  });

  it('requires an agent id', () => {
    expect(() => openStore({ dir, agentId: '' })).toThrow(StoreError);
  });

  it('fails with StoreError on an unusable directory', () => {
    const file = path.join(dir, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    expect(() => openStore({ dir: file, agentId: 'a' })).toThrow(StoreError);
  });

  it('close is idempotent and later use throws StoreError', () => {
    const s = open();
    s.close();
    s.close();
    expect(() => s.getNode('x')).toThrow(StoreError);
    expect(() => s.putNode(node())).toThrow(StoreError);
    expect(() => s.transaction(() => 1)).toThrow(StoreError);
  });
});

describe('round trips', () => {
  it('nodes: put, get, list, replace, delete', () => {
    const s = open();
    const a = node();
    const b = node({
      id: 'node-0',
      boot_mode: 'legacy',
      maintenance: true,
      maintenance_reason: 'disk swap',
      power_state: 'unknown',
      last_error: { error_code: 'E1', error_msg: 'BMC timeout', error_type: 'bmc_unreachable_error' },
      consecutive_power_failures: 3,
      instance_id: 'inst-9',
      adopt: {
        instance_id: 'inst-9',
        project_id: 'p',
        user_id: 'u',
        name: 'adopted',
        addresses: [{ addr: '192.0.2.1', mac: 'aa:bb:cc:dd:ee:03', version: 4, type: 'floating', network: 'n' }],
        metadata: { k: 'v' },
      },
      enforce_power: true,
      source: 'controller',
      created_at: '2023-12-31T00:00:00.000Z',
    });
    s.putNode(a);
    s.putNode(b);
    expect(s.getNode('node-1')).toStrictEqual(JSON.parse(JSON.stringify(a)));
    expect(s.getNode('node-0')).toEqual(b);
    expect(s.getNode('missing')).toBeNull();
    expect(s.listNodes()).toEqual([b, a]); // ordered by created_at

    const a2 = { ...a, power_state: 'off' as const, updated_at: '2024-02-01T00:00:00.000Z' };
    s.putNode(a2);
    expect(s.getNode('node-1')).toEqual(a2);
    expect(s.listNodes()).toHaveLength(2);

    s.deleteNode('node-1');
    expect(s.getNode('node-1')).toBeNull();
    s.deleteNode('node-1'); // deleting a missing node is fine
    expect(s.listNodes()).toEqual([b]);
  });

  it('instances: every field, nulls and JSON fields; list ordered by created_at', () => {
    const s = open();
    const full = instance();
    const other = instance({
      id: 'inst-0',
      description: null,
      instance_type_uuid: null,
      image_uuid: null,
      availability_zone: null,
      networks: [],
      addresses: [],
      metadata: {},
      extra: {},
      state: 'error',
      operation_state: 'install-failed',
      error: { error_code: 'INSTALL', error_msg: 'installer timed out', error_type: 'install_error' },
      power_state: 'unknown',
      target_power_state: 'off',
      task: 'power-off',
      task_request_id: 'req-7',
      progress: 42,
      failed_operation: { kind: 'install' },
      created_at: '2024-01-01T12:00:00.000Z',
      launched_at: null,
      terminated_at: null,
    });
    s.putInstance(full);
    s.putInstance(other);
    expect(s.getInstance('inst-1')).toStrictEqual(full);
    expect(s.getInstance('inst-0')).toStrictEqual(other);
    expect(s.getInstance('nope')).toBeNull();
    expect(s.listInstances()).toEqual([other, full]);

    const updated = { ...full, state: 'stopped' as const, power_state: 'off' as const, metadata: { role: 'db' } };
    s.putInstance(updated);
    expect(s.getInstance('inst-1')).toStrictEqual(updated);
  });

  it('instances: arbitrary strings and metadata survive (property)', () => {
    const s = open();
    let n = 0;
    fc.assert(
      fc.property(
        fc.string(),
        fc.option(fc.string(), { nil: null }),
        fc.dictionary(fc.string(), fc.string()),
        fc.integer({ min: 0, max: 100 }),
        (name, description, metadata, progress) => {
          const i = instance({ id: `p-${n++}`, name, description, metadata, progress });
          s.putInstance(i);
          expect(s.getInstance(i.id)).toEqual(i);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('actions: header and events; put replaces events; append returns index; update replaces one', () => {
    const s = open();
    const a = action({ events: [event(), event({ event: 'second', result: 'Error', traceback: 'boom\n at x' })] });
    s.putAction(a);
    expect(s.getAction('req-1')).toStrictEqual(a);
    expect(s.getAction('nope')).toBeNull();

    const idx = s.appendActionEvent('req-1', event({ event: 'third' }));
    expect(idx).toBe(2);
    expect(s.appendActionEvent('req-1', event({ event: 'fourth' }))).toBe(3);
    expect(s.getAction('req-1')!.events.map((e) => e.event)).toEqual(['compute_power_on', 'second', 'third', 'fourth']);

    const done = event({ event: 'third', finish_time: '2024-01-03T00:01:00.000Z', result: 'Success' });
    s.updateActionEvent('req-1', 2, done);
    expect(s.getAction('req-1')!.events[2]).toStrictEqual(done);

    // put replaces the events with the ones given
    const finished = { ...a, finish_time: '2024-01-03T00:02:00.000Z', message: 'ok', events: [done] };
    s.putAction(finished);
    expect(s.getAction('req-1')).toStrictEqual(finished);
    expect(s.appendActionEvent('req-1', event({ event: 'after' }))).toBe(1);

    // an action with no events; first appended event has index 0
    s.putAction(action({ request_id: 'req-2', events: [] }));
    expect(s.getAction('req-2')!.events).toEqual([]);
    expect(s.appendActionEvent('req-2', event())).toBe(0);
  });

  it('actions are unique by request id: a repeat never replaces an action, closing the same action still works', () => {
    const s = open();
    const first = action({ events: [event({ finish_time: '2024-01-03T00:00:01.000Z', result: 'Success' })] });
    s.insertAction(first);
    // insert-only: the same request id again, even for the very same action, is refused
    expect(() => s.insertAction(first)).toThrow(DuplicateActionError);
    expect(() => s.insertAction(action({ action: 'stop', events: [] }))).toThrow(DuplicateActionError);
    // put of a different action (name, instance, user, project or start) under that request id is refused
    for (const other of [
      action({ action: 'stop', events: [] }),
      action({ instance_id: 'inst-2', events: [] }),
      action({ user_id: 'user-2', events: [] }),
      action({ project_id: 'proj-2', events: [] }),
      action({ start_time: '2024-01-04T00:00:00.000Z', events: [] }),
    ]) {
      expect(() => s.putAction(other)).toThrow(DuplicateActionError);
    }
    expect(s.getAction('req-1')).toStrictEqual(first);
    // closing the same action is the update path
    const closed = { ...first, finish_time: '2024-01-03T00:05:00.000Z', message: 'done' };
    s.putAction(closed);
    expect(s.getAction('req-1')).toStrictEqual(closed);
    expect(s.listActions('inst-1')).toHaveLength(1);
  });

  it('actions: append/update on missing action or index throw StoreError', () => {
    const s = open();
    expect(() => s.appendActionEvent('missing', event())).toThrow(StoreError);
    s.putAction(action());
    expect(() => s.updateActionEvent('req-1', 5, event())).toThrow(StoreError);
    expect(() => s.updateActionEvent('missing', 0, event())).toThrow(StoreError);
    expect(s.getAction('req-1')).toStrictEqual(action());
  });

  it('actions: listActions ordered by start_time; listUnfinishedActions = finish_time null', () => {
    const s = open();
    const late = action({ request_id: 'r-late', start_time: '2024-01-05T00:00:00.000Z' });
    const early = action({
      request_id: 'r-early',
      start_time: '2024-01-04T00:00:00.000Z',
      finish_time: '2024-01-04T00:05:00.000Z',
    });
    const elsewhere = action({ request_id: 'r-other', instance_id: 'inst-2', start_time: '2024-01-01T00:00:00.000Z' });
    s.putAction(late);
    s.putAction(early);
    s.putAction(elsewhere);
    expect(s.listActions('inst-1')).toEqual([early, late]);
    expect(s.listActions('inst-2')).toEqual([elsewhere]);
    expect(s.listActions('none')).toEqual([]);
    expect(s.listUnfinishedActions()).toEqual([elsewhere, late]);
  });

  it('purgeTerminated removes terminated instances older than the cutoff and their actions', () => {
    const s = open();
    const old = instance({ id: 'old', state: 'terminated', terminated_at: '2024-01-01T00:00:00.000Z' });
    const recent = instance({ id: 'recent', state: 'terminated', terminated_at: '2024-03-01T00:00:00.000Z' });
    const live = instance({ id: 'live' });
    for (const i of [old, recent, live]) s.putInstance(i);
    s.putAction(action({ request_id: 'r-old', instance_id: 'old' }));
    s.putAction(action({ request_id: 'r-live', instance_id: 'live' }));
    expect(s.purgeTerminated('2024-02-01T00:00:00.000Z')).toBe(1);
    expect(s.getInstance('old')).toBeNull();
    expect(s.getAction('r-old')).toBeNull();
    expect(s.listInstances().map((i) => i.id).sort()).toEqual(['live', 'recent']);
    expect(s.getAction('r-live')).not.toBeNull();
    expect(s.purgeTerminated('2024-02-01T00:00:00.000Z')).toBe(0);
  });

  it('meta: get, set, overwrite', () => {
    const s = open();
    expect(s.getMeta('cmd:1')).toBeNull();
    s.setMeta('cmd:1', '{"status":"done"}');
    expect(s.getMeta('cmd:1')).toBe('{"status":"done"}');
    s.setMeta('cmd:1', 'v2');
    expect(s.getMeta('cmd:1')).toBe('v2');
  });
});

describe('journal', () => {
  it('appends with monotonic seq, at = now, agent id; reads from a seq with a limit', () => {
    const clock = new Date('2024-05-05T05:05:05.005Z');
    const s = open({ now: () => clock });
    expect(s.lastSeq()).toBe(0);
    const e1 = s.appendJournal({ kind: 'instance.state', instance_id: 'inst-1', cause: 'operation', data: { state: 'running' } });
    expect(e1).toEqual({
      seq: 1,
      agent_id: 'agent-1',
      at: '2024-05-05T05:05:05.005Z',
      kind: 'instance.state',
      instance_id: 'inst-1',
      node_id: null,
      cause: 'operation',
      data: { state: 'running' },
    });
    const e2 = s.appendJournal({ kind: 'node.power', node_id: 'node-1', cause: 'poll', data: { power: 'off', n: [1, 2] } });
    const e3 = s.appendJournal({ kind: 'node.enrolled', node_id: 'node-2', instance_id: null, cause: 'config', data: {} });
    expect([e2.seq, e3.seq]).toEqual([2, 3]);
    expect(s.lastSeq()).toBe(3);
    expect(s.readJournal(0, 100)).toEqual([e1, e2, e3]);
    expect(s.readJournal(2, 100)).toEqual([e2, e3]);
    expect(s.readJournal(1, 2)).toEqual([e1, e2]);
    expect(s.readJournal(4, 10)).toEqual([]);
    expect(s.readJournal(1, 0)).toEqual([]);
  });

  it('seq is monotonic across reopen and never reused after trimming', () => {
    let s = open();
    for (let i = 0; i < 5; i++) s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: { i } });
    s.close();
    s = open();
    expect(s.lastSeq()).toBe(5);
    expect(s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} }).seq).toBe(6);
    expect(s.trimJournal(6)).toBe(6);
    expect(s.readJournal(0, 100)).toEqual([]);
    expect(s.lastSeq()).toBe(6);
    s.close();
    s = open();
    expect(s.lastSeq()).toBe(6);
    expect(s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} }).seq).toBe(7);
  });

  it('a savepoint rolled back inside a transaction gives its seqs back: the entries committed are gap-free', () => {
    const s = open();
    s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} });
    const seqs = s.transaction(() => {
      const first = s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: { n: 1 } }).seq;
      try {
        s.transaction(() => {
          s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: { n: 2 } });
          s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: { n: 3 } });
          throw new Error('inner');
        });
      } catch {
        // the inner savepoint is rolled back; the outer goes on
      }
      return [first, s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: { n: 4 } }).seq];
    });
    expect(seqs).toEqual([2, 3]);
    expect(s.readJournal(0, 10).map((e) => [e.seq, e.data])).toEqual([[1, {}], [2, { n: 1 }], [3, { n: 4 }]]);
    expect(s.lastSeq()).toBe(3);
  });

  it('two connections on one file hand out one sequence: each transaction reads the last seq under its write lock', () => {
    const a = open();
    const b = open();
    const seqs = [a, b, a, a, b].map((s) => s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} }).seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(b.transaction(() => [b, b].map((s) => s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} }).seq))).toEqual([6, 7]);
    expect(a.lastSeq()).toBe(7);
  });

  it('sequences are per agent', () => {
    const a = open({ agentId: 'agent-a' });
    a.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} });
    a.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} });
    a.close();
    const b = open({ agentId: 'agent-b' });
    expect(b.lastSeq()).toBe(0);
    const e = b.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} });
    expect(e).toMatchObject({ seq: 1, agent_id: 'agent-b' });
    expect(b.readJournal(0, 10)).toEqual([e]);
  });
});

describe('transactions', () => {
  it('commits a group of writes and returns the function result', () => {
    const s = open();
    const r = s.transaction(() => {
      s.putNode(node());
      s.putInstance(instance());
      s.putAction(action());
      return s.appendJournal({ kind: 'action.started', instance_id: 'inst-1', cause: 'operation', data: {} }).seq;
    });
    expect(r).toBe(1);
    expect(s.getNode('node-1')).not.toBeNull();
    expect(s.getInstance('inst-1')).not.toBeNull();
    expect(s.getAction('req-1')).not.toBeNull();
  });

  it('rolls everything back when the function throws, rethrowing the caller error unchanged', () => {
    const s = open();
    s.putNode(node());
    const before = snapshot(s);
    class Boom extends Error {}
    const boom = new Boom('boom');
    expect(() =>
      s.transaction(() => {
        s.putNode(node({ power_state: 'off' }));
        s.putInstance(instance());
        s.putAction(action());
        s.appendActionEvent('req-1', event());
        s.appendJournal({ kind: 'instance.created', instance_id: 'inst-1', cause: 'operation', data: {} });
        s.setMeta('k', 'v');
        throw boom;
      }),
    ).toThrow(boom);
    expect(snapshot(s)).toEqual(before);
    expect(s.getMeta('k')).toBeNull();
    // the consumed seq was rolled back too: the next one follows the last committed
    expect(s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} }).seq).toBe(1);
  });

  it('nested transactions join the outer one: commit together, roll back together', () => {
    const s = open();
    s.transaction(() => {
      s.putNode(node());
      s.transaction(() => s.putInstance(instance()));
    });
    expect(s.getInstance('inst-1')).not.toBeNull();

    expect(() =>
      s.transaction(() => {
        s.transaction(() => s.putNode(node({ id: 'node-2' })));
        throw new Error('outer fails after inner completed');
      }),
    ).toThrow('outer fails');
    expect(s.getNode('node-2')).toBeNull();
  });

  it('an inner throw caught by the outer undoes only the inner work', () => {
    const s = open();
    s.transaction(() => {
      s.putNode(node({ id: 'kept' }));
      try {
        s.transaction(() => {
          s.putNode(node({ id: 'undone' }));
          throw new Error('inner');
        });
      } catch {
        // handled
      }
    });
    expect(s.getNode('kept')).not.toBeNull();
    expect(s.getNode('undone')).toBeNull();
  });

  it('refuses an async function and rolls back its synchronous part', async () => {
    const s = open();
    expect(() =>
      s.transaction(async () => {
        s.putNode(node());
        await Promise.resolve();
      }),
    ).toThrow(StoreError);
    await new Promise((r) => setTimeout(r, 0));
    expect(s.getNode('node-1')).toBeNull();
  });

  it('a second connection sees nothing of an uncommitted transaction', () => {
    const s = open();
    const other = open();
    s.transaction(() => {
      s.putNode(node());
      expect(other.getNode('node-1')).toBeNull();
    });
    expect(other.getNode('node-1')).not.toBeNull();
  });
});

describe('fault injection', () => {
  it('an injector makes every write throw StoreError and leaves data unchanged', () => {
    let failing: string | null = null;
    const seen: string[] = [];
    const s = open({
      fault: {
        beforeWrite(op) {
          seen.push(op);
          if (failing === '*' || failing === op) throw new Error(`fault in ${op}`);
        },
      },
    });
    s.putNode(node());
    s.putInstance(instance({ state: 'terminated', terminated_at: '2000-01-01T00:00:00.000Z' }));
    s.putAction(action());
    s.appendJournal({ kind: 'instance.created', cause: 'operation', data: {} });
    s.setMeta('k', 'v');
    const before = snapshot(s);

    const writes: Array<[string, () => unknown]> = [
      ['putNode', () => s.putNode(node({ power_state: 'off' }))],
      ['deleteNode', () => s.deleteNode('node-1')],
      ['putInstance', () => s.putInstance(instance({ name: 'changed' }))],
      ['purgeTerminated', () => s.purgeTerminated('2100-01-01T00:00:00.000Z')],
      ['insertAction', () => s.insertAction(action({ request_id: 'req-new' }))],
      ['putAction', () => s.putAction(action({ events: [] }))],
      ['appendActionEvent', () => s.appendActionEvent('req-1', event())],
      ['updateActionEvent', () => s.updateActionEvent('req-1', 0, event({ result: 'Error' }))],
      ['setActionPlan', () => s.setActionPlan('req-1', { step: 3, data: { job: 'j-1' } })],
      ['appendJournal', () => s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} })],
      ['trimJournal', () => s.trimJournal(100)],
      ['setMeta', () => s.setMeta('k', 'changed')],
      ['putCommandResult', () => s.putCommandResult({ command_id: 'req-c', op: 'node.power', result: {}, created_at: 'x' })],
      ['putBootJob', () => s.bootJobs.put(bootJob())],
    ];
    expect(writes.map(([op]) => op).sort()).toEqual([...STORE_WRITE_OPS].sort());
    for (const [op, write] of writes) {
      failing = op;
      seen.length = 0;
      let err: unknown;
      try {
        write();
      } catch (e) {
        err = e;
      }
      expect(err, op).toBeInstanceOf(StoreError);
      expect((err as StoreError).cause, op).toBeInstanceOf(Error);
      expect(seen).toEqual([op]);
    }
    failing = null;
    expect(snapshot(s)).toEqual(before);
    expect(s.getMeta('k')).toBe('v');
  });

  it('an installer job (migration 9): found by id, token, MAC and instance; a node keeps its open jobs and its newest finished ones', () => {
    const s = open();
    s.bootJobs.put(bootJob({ job_id: 'j1', token: 'a'.repeat(43), created_at: '2026-01-01T00:00:01Z' }));
    expect(s.bootJobs.get('j1')).toMatchObject({ token: 'a'.repeat(43), macs: ['aa:bb:cc:dd:ee:ff'], state: 'issued', document: { version: 1 } });
    expect(s.bootJobs.byToken('a'.repeat(43))?.job_id).toBe('j1');
    expect(s.bootJobs.issuedForMac('aa:bb:cc:dd:ee:ff')?.job_id).toBe('j1');
    expect(s.bootJobs.openOfInstance('inst-1').map((j) => j.job_id)).toEqual(['j1']);
    s.bootJobs.put({ ...s.bootJobs.get('j1')!, state: 'fetched' });
    expect(s.bootJobs.issuedForMac('aa:bb:cc:dd:ee:ff')).toBeNull();
    s.bootJobs.put({ ...s.bootJobs.get('j1')!, state: 'succeeded' });
    expect(s.bootJobs.openOfInstance('inst-1')).toEqual([]);
    // Six more finished jobs of the same node: the table keeps the newest KEEP_PER_NODE.
    for (let i = 2; i <= 7; i++) {
      s.bootJobs.put(bootJob({ job_id: `j${i}`, token: String(i).repeat(43), state: 'failed', created_at: `2026-01-01T00:00:0${i}Z` }));
    }
    expect(s.bootJobs.get('j1')).toBeNull();
    expect(s.bootJobs.get('j3')).toBeNull();
    expect(['j4', 'j5', 'j6', 'j7'].map((id) => s.bootJobs.get(id)?.job_id)).toEqual(['j4', 'j5', 'j6', 'j7']);
    s.close();
  });

  it('a fault in the middle of a transaction rolls back the earlier writes', () => {
    let failing = false;
    const s = open({
      fault: {
        beforeWrite(op) {
          if (failing && op === 'appendJournal') throw new StoreError('injected fault');
        },
      },
    });
    failing = true;
    expect(() =>
      s.transaction(() => {
        s.putInstance(instance());
        s.putAction(action());
        s.appendJournal({ kind: 'instance.created', cause: 'operation', data: {} });
      }),
    ).toThrow('injected fault');
    expect(s.getInstance('inst-1')).toBeNull();
    expect(s.getAction('req-1')).toBeNull();
    expect(s.lastSeq()).toBe(0);
  });

  describe('the fault file injector (test-only entry point)', () => {
    const saved = process.env[STORE_FAULT_ENV];
    afterEach(() => {
      if (saved === undefined) delete process.env[STORE_FAULT_ENV];
      else process.env[STORE_FAULT_ENV] = saved;
    });

    it('openStore never reads the fault variable: only the construction option injects faults', () => {
      const faultFile = path.join(dir, 'fault');
      fs.writeFileSync(faultFile, '*');
      process.env[STORE_FAULT_ENV] = faultFile;
      const s = open();
      s.putNode(node());
      s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} });
      expect(s.getNode('node-1')).not.toBeNull();
      expect(s.lastSeq()).toBe(1);
    });

    it('faults the listed ops (or *) while the file exists, read on every write', () => {
      const faultFile = path.join(dir, 'fault');
      const s = open({ fault: faultFromFile(faultFile) });
      s.putNode(node()); // no file yet

      fs.writeFileSync(faultFile, 'putInstance, appendJournal\n');
      expect(() => s.putInstance(instance())).toThrow(/injected fault/);
      expect(() => s.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} })).toThrow(StoreError);
      s.setMeta('ok', '1'); // not listed

      fs.writeFileSync(faultFile, '*');
      expect(() => s.setMeta('ok', '2')).toThrow(StoreError);
      expect(() => s.deleteNode('node-1')).toThrow(StoreError);

      fs.rmSync(faultFile);
      s.putInstance(instance());
      expect(s.getInstance('inst-1')).not.toBeNull();
      expect(s.getMeta('ok')).toBe('1');
      expect(s.getNode('node-1')).not.toBeNull();
      expect(s.lastSeq()).toBe(0);
    });
  });
});

describe('durability', () => {
  it('everything written is there after close and reopen', () => {
    let s = open();
    const n = node();
    const i = instance();
    const a = action({ events: [event(), event({ event: 'b' })] });
    s.putNode(n);
    s.putInstance(i);
    s.putAction(a);
    s.appendActionEvent('req-1', event({ event: 'c' }));
    const j = s.appendJournal({ kind: 'action.started', instance_id: 'inst-1', cause: 'operation', data: { x: 1 } });
    s.setMeta('k', 'v');
    s.close();

    s = open();
    expect(s.getNode('node-1')).toEqual(n);
    expect(s.getInstance('inst-1')).toStrictEqual(i);
    expect(s.getAction('req-1')).toStrictEqual({ ...a, events: [...a.events, event({ event: 'c' })] });
    expect(s.readJournal(1, 10)).toEqual([j]);
    expect(s.getMeta('k')).toBe('v');
    expect(s.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
  });

  it('SQLite failures are StoreError with the cause (corrupt JSON column)', async () => {
    const s = open();
    s.putNode(node());
    s.close();
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(path.join(dir, DB_FILE_NAME));
    raw.prepare("UPDATE nodes SET bmc = '{not json' WHERE id = 'node-1'").run();
    raw.close();
    const s2 = open();
    let err: unknown;
    try {
      s2.getNode('node-1');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).cause).toBeInstanceOf(SyntaxError);
  });

  it('a locked database surfaces as StoreError, with nothing written', async () => {
    const s = openStore({ dir, agentId: 'agent-1', busyTimeoutMs: 50 });
    opened.push(s);
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(path.join(dir, DB_FILE_NAME), { timeout: 0 });
    raw.pragma('busy_timeout = 0');
    // Hold the write lock from another connection.
    raw.prepare('BEGIN IMMEDIATE').run();
    try {
      let err: unknown;
      try {
        s.putNode(node());
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StoreError);
      expect(String((err as StoreError).cause)).toMatch(/locked|busy/i);
    } finally {
      raw.prepare('ROLLBACK').run();
      raw.close();
    }
    expect(s.getNode('node-1')).toBeNull();
  });
});

function bootJob(over: Partial<BootJob> = {}): BootJob {
  return {
    job_id: 'j-1',
    token: 't'.repeat(43),
    node_id: 'node-1',
    instance_id: 'inst-1',
    operation: 'install',
    macs: ['AA:BB:CC:DD:EE:FF'],
    document: { version: 1 },
    state: 'issued',
    progress: 0,
    message: null,
    deadline_at: 0,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...over,
  };
}
