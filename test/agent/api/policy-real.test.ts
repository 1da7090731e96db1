/**
 * The policy table of docs/api.md against the REAL service: buildAgent (SQLite store, fake lab, real engine) and
 * fastify inject, every row and every role. Each case gets a fresh agent with one running instance of the member's
 * project (on node 1), its create action, and a free node (node 2), so that a mutation by one role cannot change what
 * another role sees.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  ADMIN_PROJECT,
  ADMIN_TOKEN,
  IMAGE,
  MEMBER_TOKEN,
  OTHER_PROJECT,
  OTHER_TOKEN,
  PROJECT,
  ctx,
  nodeId,
  settle,
  startHarness,
  type Harness,
} from '../../helpers/harness.js';
import { POLICY, ROLES, rowUrl, type Role } from './policy-table.js';

const REQ_ID_RE = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TOKENS: Record<Role, string | undefined> = { admin: ADMIN_TOKEN, owner: MEMBER_TOKEN, other: OTHER_TOKEN, none: undefined };
const PROJECTS: Record<Role, string> = { admin: ADMIN_PROJECT, owner: PROJECT, other: OTHER_PROJECT, none: PROJECT };

/** A fresh agent per mutating case; one shared agent for the read-only rows (GET changes nothing). */
let fresh: Harness | null = null;
let shared: Promise<{ h: Harness; id: string; req: string }> | null = null;
afterEach(async () => {
  if (fresh) await settle(fresh);
  await fresh?.close();
  fresh = null;
});
afterAll(async () => {
  const s = await shared;
  if (s) await settle(s.h);
  await s?.h.close();
});

/** A fresh agent with a running instance of PROJECT on node 1 and node 2 free. */
async function fixture(): Promise<{ h: Harness; id: string; req: string }> {
  const harness = await startHarness({ nodes: 2 });
  const c = ctx('member');
  const { instance } = await harness.agent.engine.createInstance(c, { name: 'policy', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
  await harness.agent.engine.idle();
  expect(harness.agent.store.getInstance(instance.id)?.state).toBe('running');
  return { h: harness, id: instance.id, req: c.request_id };
}

/** What a refused request must not have changed: instances, the instance's actions, the nodes' settings. */
function snapshot(agent: Harness['agent'], id: string): unknown {
  return {
    instances: agent.store.listInstances().map((i) => [i.id, i.state, i.task, i.target_power_state]),
    actions: agent.store.listActions(id).map((a) => a.request_id),
    nodes: agent.store.listNodes().map((n) => [n.id, n.maintenance, n.instance_id]),
    faults: agent.lab!.server(nodeId(2)).faults(),
  };
}

describe('policy table against the real service', () => {
  for (const row of POLICY) {
    for (const role of ROLES) {
      it(`${row.method} ${row.path} (${row.name}) as ${role} -> ${row.expect[role]}`, async () => {
        let f: { h: Harness; id: string; req: string };
        if (row.method === 'GET') f = await (shared ??= fixture());
        else {
          f = await fixture();
          fresh = f.h;
        }
        const h = f.h;
        const before = snapshot(h.agent, f.id);
        const token = TOKENS[role];
        const res = await h.agent.api.inject({
          method: row.method,
          url: rowUrl(row, PROJECTS[role], { id: f.id, node: nodeId(2), req: f.req }),
          headers: token ? { 'x-auth-token': token } : {},
          ...(row.body !== undefined ? { payload: row.body as object } : {}),
        });
        expect(res.statusCode, res.body).toBe(row.expect[role]);
        expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
        if (res.statusCode >= 400) {
          // Refused (by the API or by the service's ownership rule): nothing changed.
          await settle(h);
          expect(snapshot(h.agent, f.id)).toEqual(before);
        }
      });
    }
  }
});
