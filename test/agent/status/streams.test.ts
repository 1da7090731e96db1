/**
 * The status streams' hub (agent/status/streams.ts) over an in-memory journal: a client that does not read is
 * closed rather than buffered without bound; a seq the journal lost (trimmed, folded) is a reset; each entry is read
 * and scoped once for all the streams that share a scope.
 */
import { describe, expect, it } from 'vitest';
import type { Instance, JournalEntry, RequestContext } from '../../../agent/model.js';
import { StatusStreams, type StreamSink } from '../../../agent/status/streams.js';
import type { StatusStore } from '../../../agent/status/view.js';

const admin: RequestContext = { request_id: 'r', project_id: 'ops', user_id: 'ops', roles: ['admin'], is_admin: true };
const member = (user: string): RequestContext => ({ request_id: 'r', project_id: 'p1', user_id: user, roles: ['member'], is_admin: false });

class MemJournal {
  entries: JournalEntry[] = [];
  last = 0;
  watchers = new Set<() => void>();
  reads = 0;
  lookups = 0;
  store(): StatusStore {
    return {
      lastSeq: () => this.last,
      outboxFirstSeq: () => this.entries[0]?.seq ?? this.last + 1,
      readJournal: (from, limit) => {
        this.reads += 1;
        return this.entries.filter((e) => e.seq >= from).slice(0, limit);
      },
      watchJournal: (fn) => {
        this.watchers.add(fn);
        return () => this.watchers.delete(fn);
      },
      getInstance: (id) => {
        this.lookups += 1;
        return { id, project_id: id.startsWith('p1') ? 'p1' : 'p2' } as Instance;
      },
      durable: () => null,
      listNodes: () => [],
      listInstances: () => [],
      lastAliveVerdict: () => null,
    };
  }
  append(kind: string, instanceId: string | null, data: Record<string, unknown> = {}, nodeId: string | null = null): JournalEntry {
    const e = { seq: ++this.last, agent_id: 'a', at: new Date(0).toISOString(), kind, instance_id: instanceId, node_id: nodeId, cause: 'test', data } as JournalEntry;
    this.entries.push(e);
    return e;
  }
  wake(): void {
    for (const w of [...this.watchers]) w();
  }
}

/** A sink that never drains (a client that stopped reading), or one that drains at once. */
function sink(drains: boolean): StreamSink & { text: string; ended: boolean } {
  const s = {
    text: '',
    ended: false,
    write(t: string) {
      s.text += t;
    },
    buffered: () => (drains ? 0 : Buffer.byteLength(s.text)),
    end() {
      s.ended = true;
    },
  };
  return s;
}

const tick = () => new Promise((r) => setImmediate(r));
const logs: { level: string; obj: object; msg: string }[] = [];
const log = {
  info: (obj: object, msg: string) => void logs.push({ level: 'info', obj, msg }),
  warn: (obj: object, msg: string) => void logs.push({ level: 'warn', obj, msg }),
  error: (obj: object, msg: string) => void logs.push({ level: 'error', obj, msg }),
};

describe('StatusStreams', () => {
  it('closes a client that does not read once its unsent bytes would pass the bound; a reading one goes on', async () => {
    const j = new MemJournal();
    const hub = new StatusStreams({ store: j.store(), log, limits: { maxBufferedBytes: 4096 } });
    const slow = sink(false);
    const fast = sink(true);
    hub.open(admin, null, slow);
    hub.open(admin, null, fast);
    for (let round = 0; round < 40; round++) {
      for (let k = 0; k < 5; k++) j.append('instance.power', 'p1-i', { power_state: round % 2 ? 'on' : 'off' });
      j.wake();
      await tick();
    }
    expect(slow.ended).toBe(true);
    expect(Buffer.byteLength(slow.text)).toBeLessThanOrEqual(4096);
    expect(fast.ended).toBe(false);
    expect((fast.text.match(/^event: journal$/gm) ?? []).length).toBe(200);
    expect(hub.count()).toBe(1);
    expect(logs.some((l) => l.level === 'warn' && (l.obj as { reason?: string }).reason === 'slow')).toBe(true);
    hub.closeAll();
    expect(fast.ended).toBe(true);
    expect(hub.count()).toBe(0);
  });

  it('a seq the journal no longer holds, or a fold marker, resets the stream (the page takes a new snapshot)', async () => {
    const j = new MemJournal();
    const hub = new StatusStreams({ store: j.store(), log });
    const a = sink(true);
    hub.open(admin, null, a);
    j.append('instance.power', 'p1-i', { power_state: 'on' });
    const lost = j.append('instance.power', 'p1-i', { power_state: 'off' });
    j.append('instance.power', 'p1-i', { power_state: 'on' });
    j.entries = j.entries.filter((e) => e !== lost); // folded away before the hub read it
    j.wake();
    await tick();
    expect(a.text).toMatch(/id: 1\nevent: journal\n/);
    expect(a.text).toMatch(/event: reset\ndata: \{"reason":"gap","seq":3\}\n\n$/);
    expect(a.text).not.toMatch(/id: 3\n/);
    expect(a.ended).toBe(true);
    expect(hub.count()).toBe(0);

    const b = sink(true);
    hub.open(admin, null, b);
    j.append('outbox.folded', 'p1-i', { from_seq: 1, count: 2 });
    j.wake();
    await tick();
    expect(b.text).toMatch(/event: reset\ndata: \{"reason":"gap","seq":4\}\n\n$/);
    expect(b.ended).toBe(true);
  });

  it("reads each entry once for every stream, and scopes it once per project: the cost per event does not grow with the streams' number", async () => {
    const j = new MemJournal();
    const hub = new StatusStreams({ store: j.store(), log, limits: { maxStreams: 10, maxPerCaller: 10 } });
    const members = Array.from({ length: 6 }, (_, k) => {
      const s = sink(true);
      hub.open(member(`u${k}`), null, s);
      return s;
    });
    const a = sink(true);
    hub.open(admin, null, a);
    for (let k = 0; k < 10; k++) j.append('instance.alive', k % 2 ? 'p1-i' : 'p2-i', { alive: true });
    j.append('node.power', null, { power_state: 'on' }, 'node-1');
    const before = { reads: j.reads, lookups: j.lookups };
    j.wake();
    await tick();
    expect(j.reads - before.reads).toBe(1);
    // One project lookup per distinct instance of the batch (cached), not per stream.
    expect(j.lookups - before.lookups).toBe(2);
    for (const m of members) {
      const seqs = [...m.text.matchAll(/^id: (\d+)$/gm)].map((x) => Number(x[1]));
      expect(seqs).toEqual([2, 4, 6, 8, 10]); // p1's entries only; no node entry
      expect(m.text).not.toContain('node-1');
    }
    expect((a.text.match(/^event: journal$/gm) ?? []).length).toBe(11);
    hub.closeAll();
  });

  it('sends a heartbeat comment on every open stream', async () => {
    const j = new MemJournal();
    const hub = new StatusStreams({ store: j.store(), log, limits: { heartbeatMs: 20 } });
    const a = sink(true);
    hub.open(admin, null, a);
    await new Promise((r) => setTimeout(r, 70));
    expect((a.text.match(/^: heartbeat\n\n/gm) ?? []).length).toBeGreaterThanOrEqual(2);
    hub.closeAll();
    const after = a.text;
    await new Promise((r) => setTimeout(r, 50));
    expect(a.text).toBe(after); // the timer stopped with the last stream
  });
});
