/**
 * Group commit (agent/store/group-commit.ts): the commits of one loop turn share one WAL sync, `durable()` waits for
 * the sync that covers every commit made before it, a failed sync fails the store for good, close syncs what is
 * pending, and the default port's descriptor is the WAL SQLite writes to, through checkpoints and truncations.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { FdWalSync } from '../../../agent/store/wal-sync.js';
import { StoreError } from '../../../agent/store/types.js';
import { node } from './fixtures.js';
import { useStoreDir } from './fixtures.js';
import { HeldWalSync } from './held-wal-sync.js';
import { MAX_SYNCS_IN_FLIGHT } from '../../../agent/store/group-commit.js';

const { dir, open } = useStoreDir();
const turn = () => new Promise<void>((r) => setImmediate(r));
/** What p did within ms (real syncs run on the pool): resolved, rejected, still pending, or none (null). */
const settled = async (p: Promise<unknown> | null, ms = 200) => {
  if (p === null) return 'none';
  let state = 'pending';
  const seen = p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await Promise.race([seen, new Promise((r) => setTimeout(r, ms))]);
  return state;
};

describe('group commit', () => {
  it('50 commits in one loop turn: one WAL sync; durable() resolves after it; nothing pending then', async () => {
    const port = new HeldWalSync();
    const s = open({ walSync: port });
    expect(s.durable()).toBeNull();
    for (let i = 0; i < 50; i++) s.setMeta(`k${i}`, String(i));
    s.transaction(() => {
      s.putNode(node({ id: 'n1' }));
      s.setMeta('in-tx', '1');
    });
    await s.durable();
    expect(port.calls).toBe(1);
    expect(port.files).toEqual([`${s.file}-wal`]);
    expect(s.durable()).toBeNull();
    // Reads commit nothing: no sync.
    s.getMeta('k1');
    await turn();
    expect(port.calls).toBe(1);
  });

  it('durable() waits for a sync started after its commit: syncs overlap (up to MAX_SYNCS_IN_FLIGHT), and a later one covers the commits before it, whichever ends first', async () => {
    const port = new HeldWalSync();
    const s = open({ walSync: port });
    port.held = true;
    s.setMeta('a', '1');
    const first = s.durable();
    await turn();
    expect(port.waiting).toBe(1);
    expect(await settled(first, 30)).toBe('pending');
    // While the first sync runs: three more commits in one turn share a second sync, started at once.
    s.setMeta('b', '1');
    const second = s.durable();
    s.setMeta('c', '1');
    s.setMeta('d', '1');
    const third = s.durable();
    await turn();
    expect(port.waiting).toBe(2);
    // A third sync; then the cap: a commit made while MAX_SYNCS_IN_FLIGHT run waits for a free one.
    s.setMeta('e', '1');
    const fourth = s.durable();
    await turn();
    expect(port.waiting).toBe(MAX_SYNCS_IN_FLIGHT);
    s.setMeta('f', '1');
    const fifth = s.durable();
    await turn();
    expect(port.waiting).toBe(MAX_SYNCS_IN_FLIGHT);
    // The newest sync ends first: it covers every commit made before it started, the first's included.
    port.releaseNewest();
    expect(await settled(first)).toBe('resolved');
    expect(await settled(second)).toBe('resolved');
    expect(await settled(third)).toBe('resolved');
    expect(await settled(fourth)).toBe('resolved');
    // The commit made at the cap got its sync when that one ended.
    expect(await settled(fifth, 30)).toBe('pending');
    expect(port.calls).toBe(4);
    port.release(true);
    expect(await settled(fifth)).toBe('resolved');
    expect(port.calls).toBe(4);
  });

  it('a failed sync fails the store: the waiters and every later durable() reject with StoreError, writes throw, reads still work; told once', async () => {
    const failures: Error[] = [];
    const port = new HeldWalSync();
    const s = open({ walSync: port, onSyncFailure: (e) => failures.push(e) });
    s.setMeta('kept', '1');
    await s.durable();
    port.held = true;
    s.setMeta('x', '1');
    const waiter = s.durable();
    await turn();
    port.failHeld(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(waiter).rejects.toThrow(StoreError);
    await expect(waiter).rejects.toThrow(/could not be synced.*EIO.*restart/);
    await expect(s.durable()).rejects.toThrow(StoreError);
    expect(() => s.setMeta('y', '1')).toThrow(StoreError);
    expect(() => s.transaction(() => s.setMeta('z', '1'))).toThrow(StoreError);
    expect(s.getMeta('kept')).toBe('1');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(StoreError);
  });

  it('close syncs what is pending (blocking) and settles its waiters', async () => {
    const port = new HeldWalSync();
    const s = open({ walSync: port });
    port.held = true;
    s.setMeta('a', '1');
    const waiter = s.durable();
    const spy = { n: 0 };
    const real = port.syncNow.bind(port);
    port.syncNow = (f) => {
      spy.n += 1;
      real(f);
    };
    s.close();
    expect(spy.n).toBe(1);
    expect(await settled(waiter)).toBe('resolved');
    port.release(true);
  });

  it("the default port's descriptor is the WAL SQLite writes, through a checkpoint that restarts it and one that truncates it", async () => {
    const port = new FdWalSync();
    const s = open({ walSync: port });
    const wal = `${s.file}-wal`;
    const other = new Database(s.file);
    try {
      for (const mode of ['RESTART', 'TRUNCATE', 'PASSIVE']) {
        for (let i = 0; i < 200; i++) s.setMeta(`${mode}${i}`, 'x'.repeat(500));
        await s.durable();
        other.pragma(`wal_checkpoint(${mode})`);
        s.setMeta(`after-${mode}`, '1');
        await s.durable();
        const mine = fs.fstatSync(port.fdOf(wal));
        const now = fs.statSync(wal);
        expect([mine.ino, mine.dev, mine.nlink > 0]).toEqual([now.ino, now.dev, true]);
        expect(now.size).toBeGreaterThan(0);
      }
    } finally {
      other.close();
    }
    expect(fs.existsSync(dir())).toBe(true);
  });
});
