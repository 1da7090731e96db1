/** Scheduling (agent/operations/scheduler.ts): which node a new instance lands on, from the store's node rows alone. */
import { describe, expect, it } from 'vitest';
import type { Node } from '../../../agent/model.js';
import { FREE_NODE_PAGE, pickNode } from '../../../agent/operations/scheduler.js';
import { makeNode } from '../api/stub-service.js';
import { useStoreDir } from '../store/fixtures.js';

const id = (i: number) => `1b8c5f0e-0000-4000-8000-${String(i).padStart(12, '0')}`;

const stores = useStoreDir();

/** The scheduler's input over a store holding these nodes, `busy` having a node-level operation in flight. */
function input(nodes: Node[], busy: string[] = []) {
  const store = stores.open();
  for (const n of nodes) store.putNode(n);
  return { nodes: store, isNodeBusy: (nid: string) => busy.includes(nid) };
}

describe('pickNode without a named node', () => {
  it('takes the first free node by name, of the type asked for', () => {
    const nodes = [
      makeNode({ id: id(1), name: 'node-c', type: 'small' }),
      makeNode({ id: id(2), name: 'node-b', type: 'large' }),
      makeNode({ id: id(3), name: 'node-a', type: 'large' }),
      makeNode({ id: id(4), name: 'node-d', type: 'small' }),
    ];
    expect(pickNode(input(nodes), undefined, 'small').name).toBe('node-c');
    expect(pickNode(input(nodes), undefined, 'large').name).toBe('node-a');
    expect(pickNode(input(nodes), undefined, null).name).toBe('node-a');
  });

  it('passes over nodes in maintenance, with an adoption waiting, with an instance, or busy', () => {
    const nodes = [
      makeNode({ id: id(1), name: 'node-a', maintenance: true }),
      makeNode({ id: id(2), name: 'node-b', adopt: { instance_id: id(9), project_id: 'p', user_id: 'u', name: 'x', addresses: [] } }),
      makeNode({ id: id(3), name: 'node-c', instance_id: id(8) }),
      makeNode({ id: id(4), name: 'node-d' }),
      makeNode({ id: id(5), name: 'node-e' }),
    ];
    expect(pickNode(input(nodes, [id(4)]), undefined, null).name).toBe('node-e');
  });

  it('is a conflict when no node is free, naming the type asked for', () => {
    const nodes = [makeNode({ id: id(1), name: 'node-a', type: 'small' }), makeNode({ id: id(2), name: 'node-b', type: 'large', maintenance: true })];
    expect(() => pickNode(input(nodes, [id(1)]), undefined, null)).toThrow(expect.objectContaining({ code: 'AGENT_ERR_CONFLICT', message: 'no free node' }));
    expect(() => pickNode(input(nodes), undefined, 'large')).toThrow(
      expect.objectContaining({ code: 'AGENT_ERR_CONFLICT', message: "no free node of type 'large'" }),
    );
  });
});

describe('pickNode with a named node', () => {
  it('takes it when free, whatever its name’s rank', () => {
    const nodes = [makeNode({ id: id(1), name: 'node-a' }), makeNode({ id: id(2), name: 'node-b' })];
    expect(pickNode(input(nodes), id(2), 'small').id).toBe(id(2));
  });

  const refusals: [string, Partial<Node>, string[], string | undefined, string, string][] = [
    ['not a uuid', {}, [], 'node-01', 'AGENT_ERR_BAD_REQUEST', 'extra.node_id: no node node-01'],
    ['unknown', {}, [], id(7), 'AGENT_ERR_BAD_REQUEST', `extra.node_id: no node ${id(7)}`],
    ['of another type', { type: 'large' }, [], id(1), 'AGENT_ERR_CONFLICT', "node node-a is of type 'large', the instance type needs 'small'"],
    ['in maintenance', { maintenance: true }, [], id(1), 'AGENT_ERR_MAINTENANCE', 'node node-a is in maintenance'],
    ['holding an instance', { instance_id: id(8) }, [], id(1), 'AGENT_ERR_CONFLICT', 'node node-a is not free'],
    ['waiting for an adoption', { adopt: { instance_id: id(9), project_id: 'p', user_id: 'u', name: 'x', addresses: [] } }, [], id(1), 'AGENT_ERR_CONFLICT', 'node node-a is not free'],
    ['busy with a node-level operation', {}, [id(1)], id(1), 'AGENT_ERR_CONFLICT', 'node node-a is not free'],
  ];
  for (const [what, over, busy, named, code, message] of refusals) {
    it(`is refused when ${what} (${code})`, () => {
      const nodes = [makeNode({ id: id(1), name: 'node-a', ...over }), makeNode({ id: id(2), name: 'node-b' })];
      expect(() => pickNode(input(nodes, busy), named, 'small')).toThrow(expect.objectContaining({ code, message }));
    });
  }
});

describe('pickNode reads pages of free nodes, never every node', () => {
  /** A store of `count` free nodes (node-000 ...), recording the limit of each freeNodes page read. */
  function paged(count: number) {
    const store = stores.open();
    store.transaction(() => {
      for (let i = 1; i <= count; i++) store.putNode(makeNode({ id: id(i), name: `node-${String(i).padStart(3, '0')}` }));
      store.putNode(makeNode({ id: id(count + 1), name: 'node-000', instance_id: id(999) }));
    });
    const limits: number[] = [];
    const nodes = {
      getNode: (nid: string) => store.getNode(nid),
      freeNodes: (...args: Parameters<typeof store.freeNodes>) => {
        limits.push(args[1]);
        return store.freeNodes(...args);
      },
    };
    return { nodes, limits };
  }

  it('one page when the first free node is not busy, whatever the number of nodes', () => {
    const { nodes, limits } = paged(100);
    expect(pickNode({ nodes, isNodeBusy: () => false }, undefined, 'small').name).toBe('node-001');
    expect(limits).toEqual([FREE_NODE_PAGE]);
  });

  it('skips busy nodes page after page, and is a conflict when every free node is busy', () => {
    const { nodes, limits } = paged(2 * FREE_NODE_PAGE + 5);
    const busyUpTo = 2 * FREE_NODE_PAGE + 3;
    const busy = (nid: string) => Number(nid.slice(-12)) <= busyUpTo;
    expect(pickNode({ nodes, isNodeBusy: busy }, undefined, 'small').name).toBe(`node-0${busyUpTo + 1}`);
    expect(limits).toEqual([FREE_NODE_PAGE, FREE_NODE_PAGE, FREE_NODE_PAGE]);
    expect(() => pickNode({ nodes, isNodeBusy: () => true }, undefined, null)).toThrow(
      expect.objectContaining({ code: 'AGENT_ERR_CONFLICT', message: 'no free node' }),
    );
  });
});
