/** InstanceListRenderer (agent/api/rendered.ts): kept JSON per frozen record and view environment, never stale. */
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../agent/model.js';
import { InstanceListRenderer } from '../../../agent/api/rendered.js';
import { instanceView, type ViewEnv } from '../../../agent/api/views.js';
import { instance } from '../store/fixtures.js';

const env = (over: Partial<ViewEnv> = {}): ViewEnv => ({
  base: 'http://127.0.0.1:6385',
  agentId: 'agent-1',
  urlProject: 'proj-1',
  isAdmin: false,
  nodeName: () => null,
  ...over,
});
const expected = (list: readonly Instance[], e: ViewEnv) => JSON.stringify({ instances: list.map((i) => instanceView(i, e)) });
const frozen = (list: Instance[]) => Object.freeze(list.map((i) => Object.freeze(i)));

describe('InstanceListRenderer', () => {
  it('one frozen page under two view environments: each body is its own (links under its URL project and base)', () => {
    const r = new InstanceListRenderer();
    const list = frozen([instance({ id: 'inst-1' }), instance({ id: 'inst-2', name: 'two' })]);
    const a = env();
    const b = env({ urlProject: 'proj-2' });
    const c = env({ base: 'https://metald.example' });
    for (const e of [a, b, c, a, b, c]) expect(r.body(list, e).toString('utf8')).toBe(expected(list, e));
    // A new page holding the same records reuses their JSON and is still exact.
    const again = Object.freeze([list[1]!]);
    expect(r.body(again, b).toString('utf8')).toBe(expected(again, b));
  });

  it('a record that is not frozen is rendered every time (a change shows)', () => {
    const r = new InstanceListRenderer();
    const inst = instance({ id: 'inst-1', name: 'before' });
    const list = [inst];
    expect(r.body(list, env()).toString('utf8')).toBe(expected(list, env()));
    inst.name = 'after';
    expect(r.body(list, env()).toString('utf8')).toContain('"name":"after"');
  });
});
