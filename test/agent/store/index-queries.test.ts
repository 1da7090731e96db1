/**
 * The store's indexed lookups (agent/store/index-queries.ts): free nodes by page, the first free address of IPv4 and
 * IPv6 pools, and the proof that each query reads an index, never the whole table, and never sorts.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { Address } from '../../../agent/model.js';
import { prepareIndexQueries } from '../../../agent/store/index-queries.js';
import { DB_FILE_NAME } from '../../../agent/store/sqlite.js';
import { instance, node, useStoreDir } from './fixtures.js';

const store = useStoreDir();
const address = (a: string): Address => ({ addr: a, mac: 'aa:bb:cc:dd:ee:01', version: a.includes(':') ? 6 : 4, type: 'fixed', network: 'private' });
const adopt = { instance_id: 'i-adopt', project_id: 'p', user_id: 'u', name: 'x', addresses: [] };

describe('freeNodes', () => {
  it('pages through the free nodes of a type (or of any type) in (name, id) order, each once', () => {
    const s = store.open();
    const nodes = [
      node({ id: 'n1', name: 'b-2', type: 'small' }),
      node({ id: 'n2', name: 'a-1', type: 'large' }),
      node({ id: 'n3', name: 'c-3', type: 'small', maintenance: true }),
      node({ id: 'n4', name: 'a-2', type: 'small', instance_id: 'i1' }),
      node({ id: 'n5', name: 'a-3', type: 'small', adopt }),
      node({ id: 'n6', name: 'd-4', type: 'small' }),
      node({ id: 'n8', name: 'b-2', type: 'small' }),
      node({ id: 'n7', name: 'b-2', type: 'small' }),
      node({ id: 'n9', name: 'a-0', type: 'small' }),
    ];
    for (const n of nodes) s.putNode(n);
    const all = (type: string | null, limit: number) => {
      const seen: string[] = [];
      for (let page = s.freeNodes(type, limit); page.length > 0; ) {
        expect(page.length).toBeLessThanOrEqual(limit);
        seen.push(...page.map((n) => n.id));
        const last = page[page.length - 1]!;
        page = s.freeNodes(type, limit, { name: last.name, id: last.id });
      }
      return seen;
    };
    for (const limit of [1, 2, 10]) {
      expect(all('small', limit)).toEqual(['n9', 'n1', 'n7', 'n8', 'n6']);
      expect(all(null, limit)).toEqual(['n9', 'n2', 'n1', 'n7', 'n8', 'n6']);
    }
    expect(s.freeNodes('none', 5)).toEqual([]);
    expect(s.freeNodes('small', 1)).toEqual([nodes[8]]);
    // Taking a node (an instance on it) takes it out at once.
    s.putNode({ ...nodes[8]!, instance_id: 'i2' });
    expect(s.freeNodes('small', 1).map((n) => n.id)).toEqual(['n1']);
  });
});

describe('firstFreeAddress', () => {
  it('finds the gap after a held run in an IPv6 pool across a group boundary, the asker’s own addresses free for it', () => {
    const s = store.open();
    s.putInstance(instance({ id: 'i1', addresses: [address('fd00::ffff:fffe'), address('FD00:0:0:0:0:0:FFFF:FFFF')] }));
    s.putInstance(instance({ id: 'i2', addresses: [address('fd00::1:0:0')] }));
    expect(s.firstFreeAddress('fd00::ffff:fffe', 'fd00::1:0:5')).toBe('fd00::1:0:1');
    expect(s.firstFreeAddress('fd00::ffff:fffe', 'fd00::1:0:0')).toBeNull();
    expect(s.firstFreeAddress('fd00::ffff:fffe', 'fd00::1:0:5', 'i1')).toBe('fd00::ffff:fffe');
    expect(s.firstFreeAddress('fd00::ffff:ffff', 'fd00::1:0:5', 'i2')).toBe('fd00::1:0:0');
  });

  it('a pool filled from its start is one run of held addresses; a freed address in it splits the run and is the answer', () => {
    const s = store.open();
    const ip = (k: number) => `10.0.${k >> 8}.${k & 255}`;
    s.transaction(() => {
      for (let k = 10; k < 310; k++) s.putInstance(instance({ id: `i${k}`, addresses: [address(ip(k))] }));
    });
    const runs = () => {
      const db = new Database(path.join(store.dir(), DB_FILE_NAME), { readonly: true });
      try {
        return db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM held_runs').get()!.n;
      } finally {
        db.close();
      }
    };
    expect(runs()).toBe(1);
    expect(s.firstFreeAddress(ip(10), ip(1000))).toBe(ip(310));
    expect(s.firstFreeAddress(ip(10), ip(309))).toBeNull();
    s.putInstance({ ...s.getInstance('i150')!, state: 'terminated', terminated_at: '2024-01-05T00:00:00.000Z' });
    expect(runs()).toBe(2);
    expect(s.firstFreeAddress(ip(10), ip(1000))).toBe(ip(150));
    expect(s.firstFreeAddress(ip(151), ip(1000))).toBe(ip(310));
  });

  it('keeps families apart and answers null for an invalid range', () => {
    const s = store.open();
    // 10.0.0.1 and ::a00:1 have the same numeric value: one never holds the other.
    s.putInstance(instance({ id: 'i1', addresses: [address('10.0.0.1')] }));
    expect(s.firstFreeAddress('::a00:1', '::a00:2')).toBe('::a00:1');
    expect(s.firstFreeAddress('10.0.0.1', '10.0.0.2')).toBe('10.0.0.2');
    expect(s.firstFreeAddress('10.0.0.255', '255.255.255.255')).toBe('10.0.0.255');
    for (const [f, l] of [['10.0.0.5', '10.0.0.4'], ['10.0.0.1', 'fd00::1'], ['nope', '10.0.0.4']]) {
      expect(s.firstFreeAddress(f!, l!), `${f}-${l}`).toBeNull();
    }
  });
});

describe('query plans', () => {
  it('every lookup searches an index, none scans a table or sorts', () => {
    store.open().close(); // creates and migrates the database
    const db = new Database(path.join(store.dir(), DB_FILE_NAME), { readonly: true });
    try {
      const stmts = prepareIndexQueries(db);
      const lookups = {
        holder: ['10.0.0.1'],
        isHeld: [{ addr: '10.0.0.1', except: 'i1' }],
        keyHeld: [{ key: '4', except: null }],
        ownKeys: [{ except: 'i1', first: '4', upto: '5' }],
        freeNodes: [{ name: '', id: '', limit: 10 }],
        freeNodesOfType: [{ type: 'small', name: '', id: '', limit: 10 }],
        clearInstance: ['i1'],
        clearNode: ['n1'],
      } as const;
      // insertHeld writes one row; heldAll is the documented whole-index read (diagnostics, not the request path).
      expect(Object.keys(lookups).sort()).toEqual(Object.keys(stmts).filter((k) => k !== 'insertHeld' && k !== 'heldAll').sort());
      for (const [name, args] of Object.entries(lookups)) {
        const plan = db
          .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${stmts[name as keyof typeof stmts].source}`)
          .all(...args)
          .map((r) => r.detail);
        for (const step of plan) {
          expect(step, `${name}: ${plan.join(' | ')}`).not.toMatch(/TEMP B-TREE|^SCAN \w+$|^SCAN \w+ AS \w+$/);
          if (/^(SCAN|SEARCH) /.test(step)) expect(step, name).toMatch(/USING (COVERING )?INDEX|USING PRIMARY KEY/);
        }
      }
    } finally {
      db.close();
    }
  });
});
