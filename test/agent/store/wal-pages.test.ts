/**
 * What a row write costs in WAL pages (each one a frame written, two write calls): an instance or node write that
 * keeps the row's indexed columns leaves their indexes' pages alone (agent/store/statements.ts
 * updateInstanceSameKeys, updateNodeUnindexed). Read from the WAL itself: the frames after a truncating checkpoint,
 * their pages named by SQLite's dbstat.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { SqliteStore } from '../../../agent/store/sqlite.js';
import { instance, node, useStoreDir } from './fixtures.js';

const { open } = useStoreDir();

/** The b-trees (tables and indexes) whose pages `write` put in the WAL. */
async function pagesWritten(s: SqliteStore, write: () => void): Promise<string[]> {
  const other = new Database(s.file);
  try {
    other.pragma('wal_checkpoint(TRUNCATE)');
    write();
    await s.durable();
    const buf = fs.readFileSync(`${s.file}-wal`);
    const pageSize = buf.readUInt32BE(8);
    const pages = new Set<number>();
    for (let off = 32; off + 24 + pageSize <= buf.length; off += 24 + pageSize) pages.add(buf.readUInt32BE(off));
    const names = new Map(other.prepare<[], { pageno: number; name: string }>('SELECT pageno, name FROM dbstat').all().map((r) => [r.pageno, r.name]));
    return [...new Set([...pages].map((p) => names.get(p) ?? `page ${p}`))].sort();
  } finally {
    other.close();
  }
}

describe('WAL pages of a row write', () => {
  it("an instance write that keeps node, project, creation time and state touches no index; a state change only instances_state", async () => {
    const s = open();
    s.putNode(node({ id: 'n1' }));
    const inst = instance({ id: 'i1', node_id: 'n1', state: 'running' });
    s.putInstance(inst);
    expect(await pagesWritten(s, () => s.putInstance({ ...inst, power_state: 'off', task: 'power-off', updated_at: '2026-01-01T00:00:01.000Z' }))).toEqual(['instances']);
    expect(await pagesWritten(s, () => s.putInstance({ ...inst, state: 'stopped', power_state: 'off' }))).toEqual(['instances', 'instances_state']);
    // What the row reads back is what was written, whichever statement wrote it.
    expect(s.getInstance('i1')).toMatchObject({ state: 'stopped', power_state: 'off', task: inst.task });
    expect(await pagesWritten(s, () => s.putInstance({ ...inst, node_id: 'n1', project_id: 'other-project' }))).toEqual(
      expect.arrayContaining(['instances', 'instances_project_id', 'instances_project_created']),
    );
    expect(s.getInstance('i1')!.project_id).toBe('other-project');
  });

  it('a node write that keeps its instance touches no index; one that changes it touches nodes_instance_id', async () => {
    const s = open();
    const n = node({ id: 'n1', instance_id: 'i1' });
    s.putNode(n);
    expect(await pagesWritten(s, () => s.putNode({ ...n, power_state: 'off' }))).toEqual(['nodes']);
    // Freed: its instance index, and the free-node indexes it enters.
    expect(await pagesWritten(s, () => s.putNode({ ...n, instance_id: null }))).toEqual(['nodes', 'nodes_free', 'nodes_free_by_type', 'nodes_instance_id']);
    expect(s.getNode('n1')).toMatchObject({ instance_id: null, power_state: n.power_state });
  });
});
