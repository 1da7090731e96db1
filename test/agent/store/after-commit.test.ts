/**
 * Store.afterCommit (issue 6: an accepted operation is launched only once its records are durable): hooks run right
 * after the outermost COMMIT, in order; never on rollback; a rolled-back nested transaction drops its own hooks; a
 * failing hook is reported, never undoes the commit or stops the others.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../agent/store/types.js';
import { node, useStoreDir } from './fixtures.js';

const stores = useStoreDir();

describe('afterCommit', () => {
  it('runs after the commit, not before: inside the hook another connection already sees the row', () => {
    const s = stores.open();
    const other = stores.open();
    const seen: Array<string | null> = [];
    const result = s.transaction(() => {
      s.putNode(node());
      s.afterCommit(() => seen.push(other.getNode('node-1')?.id ?? null));
      expect(seen).toEqual([]);
      return 'done';
    });
    expect(result).toBe('done');
    expect(seen).toEqual(['node-1']);
  });

  it('does not run when the transaction rolls back, nor with a later commit', () => {
    const s = stores.open();
    const ran: string[] = [];
    expect(() =>
      s.transaction(() => {
        s.putNode(node());
        s.afterCommit(() => ran.push('rolled back'));
        throw new Error('caller fails');
      }),
    ).toThrow('caller fails');
    s.transaction(() => {
      s.afterCommit(() => ran.push('committed'));
    });
    expect(ran).toEqual(['committed']);
    expect(s.getNode('node-1')).toBeNull();
  });

  it('a nested transaction that threw drops only its own hooks; the outer commit runs the rest, in order', () => {
    const s = stores.open();
    const ran: string[] = [];
    s.transaction(() => {
      s.afterCommit(() => ran.push('a'));
      s.transaction(() => {
        s.afterCommit(() => ran.push('b (nested, committed with the outer)'));
      });
      expect(ran).toEqual([]);
      try {
        s.transaction(() => {
          s.afterCommit(() => ran.push('dropped'));
          s.transaction(() => {
            s.afterCommit(() => ran.push('dropped too (inside the rolled-back savepoint)'));
          });
          throw new Error('inner fails');
        });
      } catch {
        // the outer goes on
      }
      s.afterCommit(() => ran.push('c'));
    });
    expect(ran).toEqual(['a', 'b (nested, committed with the outer)', 'c']);
  });

  it('runs hooks in the order queued', () => {
    const s = stores.open();
    const ran: number[] = [];
    s.transaction(() => {
      for (let i = 0; i < 5; i++) s.afterCommit(() => ran.push(i));
    });
    expect(ran).toEqual([0, 1, 2, 3, 4]);
  });

  it('outside a transaction runs at once', () => {
    const s = stores.open();
    const ran: string[] = [];
    s.afterCommit(() => ran.push('now'));
    expect(ran).toEqual(['now']);
    s.close();
    expect(() => s.afterCommit(() => ran.push('closed'))).toThrow(StoreError);
    expect(ran).toEqual(['now']);
  });

  it('a throwing hook does not stop the others nor undo the commit; its error reaches onAfterCommitError', async () => {
    const errors: unknown[] = [];
    const s = stores.open({ onAfterCommitError: (e) => errors.push(e) });
    const other = stores.open();
    const ran: string[] = [];
    const boom = new Error('hook failed');
    const result = s.transaction(() => {
      s.putNode(node());
      s.afterCommit(() => {
        throw boom;
      });
      s.afterCommit(() => ran.push('second'));
      s.afterCommit(() => Promise.reject(new Error('async hook failed')) as unknown as void);
      return 42;
    });
    expect(result).toBe(42);
    expect(ran).toEqual(['second']);
    expect(other.getNode('node-1')).not.toBeNull();
    expect(errors).toEqual([boom]);
    await new Promise((r) => setImmediate(r));
    expect(errors.map((e) => (e as Error).message)).toEqual(['hook failed', 'async hook failed']);
  });

  it('by default a failing hook becomes a process warning', async () => {
    const s = stores.open();
    const warned = Promise.race([
      once(process, 'warning') as Promise<[Error & { code?: string }]>,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no process warning within 1 s')), 1000)),
    ]);
    s.transaction(() => {
      s.afterCommit(() => {
        throw new Error('default handler');
      });
    });
    const [w] = await warned;
    expect(w.name).toBe('MetaldStoreWarning');
    expect(w.code).toBe('METALD_AFTER_COMMIT_HOOK_FAILED');
    expect(w.message).toMatch(/after-commit hook failed.*default handler/);
  });

  it('a hook may write, in its own transaction with its own hooks', () => {
    const s = stores.open();
    const other = stores.open();
    const ran: string[] = [];
    // seen from inside the hook (an expect there would only reach onAfterCommitError)
    const inHook: { beforeInnerCommit?: string[]; afterInnerCommit?: string[]; atOnce?: string[] } = {};
    s.transaction(() => {
      s.putNode(node());
      s.afterCommit(() => {
        s.putNode(node({ id: 'node-2' }));
        s.transaction(() => {
          s.setMeta('launched', 'yes');
          s.afterCommit(() => ran.push(`inner sees ${other.getMeta('launched')}`));
          inHook.beforeInnerCommit = [...ran];
        });
        inHook.afterInnerCommit = [...ran];
        s.afterCommit(() => ran.push('at once'));
        inHook.atOnce = [...ran];
      });
      s.afterCommit(() => ran.push('next hook'));
    });
    expect(inHook).toEqual({
      beforeInnerCommit: [],
      afterInnerCommit: ['inner sees yes'],
      atOnce: ['inner sees yes', 'at once'],
    });
    expect(ran).toEqual(['inner sees yes', 'at once', 'next hook']);
    expect(other.getNode('node-2')).not.toBeNull();
  });
});
