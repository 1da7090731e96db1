/** The paged list queries (agent/store/list-queries.ts): scope, order, keyset paging by marker, limit, plans. */
import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../agent/model.js';
import { DB_FILE_NAME, type SqliteStore } from '../../../agent/store/sqlite.js';
import { SqliteListQueries, instancePageSql, type InstancePageQuery } from '../../../agent/store/list-queries.js';
import { action, instance, node, useStoreDir } from './fixtures.js';

const { dir, open } = useStoreDir();

/** Walks every page of a query; fails on a marker the store does not find. */
function walk<T>(page: (marker: string | undefined) => T[] | null, idOf: (t: T) => string): T[][] {
  const pages: T[][] = [];
  let marker: string | undefined;
  for (let i = 0; i < 100; i++) {
    const p = page(marker);
    if (p === null) throw new Error(`marker ${marker} not found`);
    if (p.length === 0) return pages;
    pages.push(p);
    marker = idOf(p[p.length - 1]!);
  }
  throw new Error('paging does not end');
}

/** 25 instances of proj-1 created one second apart (two share a created_at), 5 of proj-2, two terminated in proj-1. */
function seed(s: SqliteStore): Instance[] {
  const all: Instance[] = [];
  for (let i = 0; i < 30; i++) {
    const at = new Date(Date.UTC(2024, 0, 1, 0, 0, i === 11 ? 10 : i)).toISOString();
    const inst = instance({
      id: `inst-${String(i).padStart(2, '0')}`,
      project_id: i % 6 === 5 ? 'proj-2' : 'proj-1',
      created_at: at,
      state: i === 3 || i === 20 ? 'terminated' : 'running',
    });
    s.putInstance(inst);
    all.push(inst);
  }
  return all;
}

const page = (s: SqliteStore, q: Omit<InstancePageQuery, 'marker'>) => (marker: string | undefined) => s.instancePage({ ...q, marker });

describe('instancePage', () => {
  it('walks one project with limit 10: every instance exactly once, oldest first, ties in insertion order', () => {
    const s = open();
    const all = seed(s);
    const pages = walk(page(s, { projectId: 'proj-1', includeTerminated: true, order: 'oldest-first', limit: 10 }), (i) => i.id);
    const want = all.filter((i) => i.project_id === 'proj-1').map((i) => i.id);
    expect(want).toHaveLength(25);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat().map((i) => i.id)).toEqual(want); // inst-10 and inst-11 share created_at: recorded order
  });

  it('newest first, terminated left out, another project never seen', () => {
    const s = open();
    const all = seed(s);
    const pages = walk(page(s, { projectId: 'proj-1', includeTerminated: false, order: 'newest-first', limit: 10 }), (i) => i.id);
    const want = all.filter((i) => i.project_id === 'proj-1' && i.state !== 'terminated').map((i) => i.id).reverse();
    expect(pages.flat().map((i) => i.id)).toEqual(want);
    expect(pages.flat().some((i) => i.project_id === 'proj-2')).toBe(false);
  });

  it('every project (projectId null) sees all 30', () => {
    const s = open();
    const all = seed(s);
    const got = walk(page(s, { projectId: null, includeTerminated: true, order: 'oldest-first', limit: 7 }), (i) => i.id).flat();
    expect(got.map((i) => i.id)).toEqual(all.map((i) => i.id));
  });

  it('answers every field of every instance as getInstance does (the columns a page reads, in their order)', () => {
    const s = open();
    const all = seed(s);
    const full = instance({
      id: 'inst-full',
      project_id: 'proj-1',
      description: 'd',
      availability_zone: 'az-1',
      networks: [{ uuid: 'net-1', port_type: 'normal' }],
      metadata: { k: 'v' },
      operation_state: 'reinstall-failed',
      error: { error_code: 'E', error_msg: 'm', error_type: 'install_error' },
      target_power_state: 'on',
      task: 'reinstall',
      task_request_id: 'req-1',
      progress: 42,
      failed_operation: { kind: 'reinstall', networks: [{ uuid: 'net-1' }] },
      launched_at: '2024-01-02T00:00:00.000Z',
      terminated_at: '2024-01-03T00:00:00.000Z',
    });
    s.putInstance(full);
    const got = s.instancePage({ projectId: null, includeTerminated: true, order: 'oldest-first', limit: 100 })!;
    expect(got).toHaveLength(all.length + 1);
    for (const i of got) expect(i).toEqual(s.getInstance(i.id));
    expect(got.find((i) => i.id === 'inst-full')).toEqual(full);
  });

  it('include and exclude filter in SQL, before the limit', () => {
    const s = open();
    seed(s);
    const q = { projectId: 'proj-1', includeTerminated: false, order: 'oldest-first' as const, limit: 2 };
    expect(s.instancePage({ ...q, include: ['inst-00', 'inst-05', 'inst-07', 'inst-09'] })!.map((i) => i.id)).toEqual(['inst-00', 'inst-07']);
    expect(s.instancePage({ ...q, exclude: ['inst-00', 'inst-01', 'inst-02'] })!.map((i) => i.id)).toEqual(['inst-04', 'inst-06']);
  });

  it('a marker unknown or of another project is null; a marker of a terminated instance still pages', () => {
    const s = open();
    seed(s);
    const q = { projectId: 'proj-1', includeTerminated: false, order: 'oldest-first' as const, limit: 2 };
    expect(s.instancePage({ ...q, marker: 'nope' })).toBeNull();
    expect(s.instancePage({ ...q, marker: 'inst-05' })).toBeNull(); // proj-2's
    expect(s.instancePage({ ...q, projectId: null, marker: 'inst-05' })!.map((i) => i.id)).toEqual(['inst-06', 'inst-07']);
    expect(s.instancePage({ ...q, marker: 'inst-03' })!.map((i) => i.id)).toEqual(['inst-04', 'inst-06']);
  });

  it('every project, after a marker: an ordered walk of instances_created_at, no sort of every row', () => {
    for (const order of ['oldest-first', 'newest-first'] as const) {
      const text = instancePlan(false, order, true, { project: null });
      expect(text).toMatch(/SEARCH instances USING INDEX instances_created_at \(created_at[<>]\?\)/);
      expect(text).not.toMatch(/TEMP B-TREE/);
    }
  });
});

describe('instancePage answered again while the database is unchanged', () => {
  const q: InstancePageQuery = { projectId: 'proj-1', includeTerminated: true, order: 'oldest-first', limit: 5 };

  it('the same deeply frozen page until a write; the write shows in the next page', () => {
    const s = open();
    const all = seed(s);
    const first = s.instancePage(q)!;
    expect(s.instancePage({ ...q })).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first[0]) && Object.isFrozen(first[0]!.addresses[0])).toBe(true);
    expect(() => {
      (first[0] as { name: string }).name = 'x';
    }).toThrow(TypeError);
    s.putInstance({ ...all[0]!, name: 'renamed', state: 'stopped', updated_at: all[0]!.updated_at });
    const next = s.instancePage(q)!;
    expect(next).not.toBe(first);
    expect(next[0]).toMatchObject({ name: 'renamed', state: 'stopped' });
    expect(next[0]).toEqual(s.getInstance(all[0]!.id));
  });

  it('after a write the rows that did not change are the same frozen objects; the changed row is new', () => {
    const s = open();
    const all = seed(s);
    const first = s.instancePage(q)!;
    s.putInstance({ ...all[2]!, power_state: 'off' });
    const next = s.instancePage(q)!;
    expect(next).not.toBe(first);
    expect(next[2]).not.toBe(first[2]);
    expect(next[2]).toEqual(s.getInstance(all[2]!.id));
    expect(next[2]!.power_state).toBe('off');
    for (const i of [0, 1, 3, 4]) expect(next[i]).toBe(first[i]);
    expect(Object.isFrozen(next[2]!.addresses)).toBe(true);
  });

  it("another connection's commit shows in the next page", () => {
    const s = open();
    const all = seed(s);
    expect(s.instancePage(q)![1]!.name).toBe(all[1]!.name);
    open().putInstance({ ...all[1]!, name: 'written elsewhere' });
    expect(s.instancePage(q)![1]!.name).toBe('written elsewhere');
  });

  it('a page read inside a transaction that rolls back is not answered afterwards', () => {
    const s = open();
    const all = seed(s);
    s.instancePage(q);
    expect(() =>
      s.transaction(() => {
        s.putInstance({ ...all[0]!, name: 'rolled back' });
        expect(s.instancePage(q)![0]!.name).toBe('rolled back');
        throw new Error('abort');
      }),
    ).toThrow('abort');
    expect(s.instancePage(q)![0]!.name).toBe(all[0]!.name);
  });

  it('keeps at most its row bound: the oldest page leaves first, a larger page is never kept', () => {
    const s = open();
    seed(s);
    s.close();
    const db = new Database(path.join(dir(), DB_FILE_NAME));
    try {
      const lists = new SqliteListQueries(db, () => {
        throw new Error('no actions here');
      }, 5);
      const a = { ...q, limit: 3 };
      const b = { ...q, limit: 3, marker: 'inst-02' };
      const pageA = lists.instancePage(a)!;
      expect(lists.instancePage(a)).toBe(pageA);
      const pageB = lists.instancePage(b)!;
      expect(lists.instancePage(b)).toBe(pageB);
      expect(lists.instancePage(a)).not.toBe(pageA); // 3 + 3 > 5: A left when B came
      const big = { ...q, limit: 6 };
      expect(lists.instancePage(big)).not.toBe(lists.instancePage(big));
    } finally {
      db.close();
    }
  });
});

describe('instancePage of one project', () => {
  it('after a marker: an ordered walk of instances_project_created, no sort of the project\'s rows', () => {
    for (const order of ['oldest-first', 'newest-first'] as const) {
      for (const after of [false, true]) {
        const text = instancePlan(true, order, after, { project: 'proj-1' });
        expect(text).toMatch(/SEARCH instances USING INDEX instances_project_created \(project_id=\?/);
        expect(text).not.toMatch(/TEMP B-TREE/);
      }
    }
  });
});

/** SQLite's query plan of an instance page over the seeded store, as one line. */
function instancePlan(oneProject: boolean, order: 'oldest-first' | 'newest-first', after: boolean, scope: { project: string | null }): string {
  const s = open();
  seed(s);
  s.close();
  const db = new Database(path.join(dir(), DB_FILE_NAME), { readonly: true });
  try {
    const params = { ...(scope.project !== null ? scope : {}), limit: 10, ...(after ? { key: 'x', rid: 1 } : {}) };
    const filters = { excludeTerminated: true, include: false, exclude: false };
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${instancePageSql(oneProject, order, after, filters)}`).all(params) as { detail: string }[];
    return plan.map((r) => r.detail).join('; ');
  } finally {
    db.close();
  }
}

describe('actionPage', () => {
  it('newest first, paged by request id; another instance never seen; an unknown or foreign marker is null', () => {
    const s = open();
    s.putInstance(instance({ id: 'inst-1' }));
    s.putInstance(instance({ id: 'inst-2' }));
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const a = action({ request_id: `req-${i}`, instance_id: 'inst-1', start_time: `2024-01-01T00:00:${String(i === 5 ? 4 : i).padStart(2, '0')}.000Z`, events: [] });
      s.insertAction(a);
      ids.push(a.request_id);
    }
    s.insertAction(action({ request_id: 'req-other', instance_id: 'inst-2', events: [] }));
    const pages = walk((marker) => s.actionPage({ instanceId: 'inst-1', limit: 5, marker }), (a) => a.request_id);
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(pages.flat().map((a) => a.request_id)).toEqual([...ids].reverse()); // req-5 shares req-4's time: later first
    expect(s.actionPage({ instanceId: 'inst-1', limit: 5, marker: 'req-other' })).toBeNull();
    expect(s.actionPage({ instanceId: 'inst-1', limit: 5, marker: 'req-none' })).toBeNull();
  });
});

describe('nodePage', () => {
  it('by name, paged by id; an unknown marker is null', () => {
    const s = open();
    const names = ['n-07', 'n-01', 'n-12', 'n-03', 'n-10', 'n-02', 'n-11'];
    names.forEach((name, i) => s.putNode(node({ id: `node-${i}`, name })));
    const pages = walk((marker) => s.nodePage({ limit: 3, marker }), (n) => n.id);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat().map((n) => n.name)).toEqual([...names].sort());
    expect(s.nodePage({ limit: 3, marker: 'node-x' })).toBeNull();
  });
});
