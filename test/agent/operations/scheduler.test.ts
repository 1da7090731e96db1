/** Scheduling (agent/operations/scheduler.ts): which node a new instance lands on, from the store's node rows alone. */
import { describe, expect, it } from 'vitest';
import type { Node } from '../../../agent/model.js';
import { pickNode } from '../../../agent/operations/scheduler.js';
import { makeNode } from '../api/stub-service.js';

const id = (i: number) => `1b8c5f0e-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** The scheduler's input over these nodes, `busy` having a node-level operation in flight. */
function input(nodes: Node[], busy: string[] = []) {
  return {
    nodes: { getNode: (nid: string) => nodes.find((n) => n.id === nid) ?? null, listNodes: () => nodes },
    isNodeBusy: (nid: string) => busy.includes(nid),
  };
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
