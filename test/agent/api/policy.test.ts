/**
 * The policy table of docs/api.md, row by row: path x role -> status. Roles: admin (own project `adminproj`),
 * member-owner (p1, the instance's project), member-other-project (p2, through its own project's URL), no token.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ADMIN, M1, M2, REQ_ID_RE, auth, harness, type Harness } from './helpers.js';
import { POLICY, ROLES, rowUrl, type Role } from './policy-table.js';
import { makeAction } from './stub-service.js';

const TOKENS: Record<Role, string | undefined> = { admin: ADMIN, owner: M1, other: M2, none: undefined };
const PROJECT: Record<Role, string> = { admin: 'adminproj', owner: 'p1', other: 'p2', none: 'p1' };

describe('policy table', () => {
  let h: Harness;
  let instanceId: string;
  let nodeId: string;
  let reqId: string;

  beforeEach(async () => {
    h = await harness({}, true);
    const inst = h.svc.addInstance({ project_id: 'p1' });
    instanceId = inst.id;
    nodeId = h.svc.addNode().id;
    const a = makeAction(inst);
    h.svc.actions.push(a);
    reqId = a.request_id;
  });

  for (const row of POLICY) {
    for (const role of ROLES) {
      it(`${row.method} ${row.path} (${row.name}) as ${role} -> ${row.expect[role]}`, async () => {
        const url = rowUrl(row, PROJECT[role], { id: instanceId, node: nodeId, req: reqId });
        const token = TOKENS[role];
        const res = await h.app.inject({
          method: row.method,
          url,
          headers: token ? auth(token) : {},
          ...(row.body !== undefined ? { payload: row.body as object } : {}),
        });
        expect(res.statusCode, res.body).toBe(row.expect[role]);
        expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
        if ([400, 401, 403].includes(res.statusCode)) {
          // Refused by the API itself: nothing that changes state was called (404s are the service's ownership rule).
          expect(h.svc.mutations()).toEqual([]);
        }
      });
    }
  }

  it("a URL project other than the token's is 400 for every role with a token, admin included", async () => {
    for (const token of [ADMIN, M1, M2]) {
      for (const url of [`/v1/p9/instances`, `/v1/p9/instances/${instanceId}/status`, `/v2/p9/servers/${instanceId}`, `/v2.1/p9/os-fping`]) {
        const res = await h.app.inject({ method: 'GET', url, headers: auth(token) });
        expect(res.statusCode, url).toBe(400);
      }
    }
  });

  it('an unknown token is 401 in the family of the path', async () => {
    const v1 = await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth('nope') });
    expect(v1.statusCode).toBe(401);
    expect(v1.json()).toEqual({ error_code: 'AGENT_ERR_UNAUTHORIZED', error_msg: expect.any(String) });
    const v2 = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${instanceId}`, headers: auth('nope') });
    expect(v2.statusCode).toBe(401);
    expect(v2.json()).toEqual({ unauthorized: { message: expect.any(String), code: 401 } });
  });

  it('admins reach any project\'s instance through their own project URL and the unscoped paths', async () => {
    const show = await h.app.inject({ method: 'GET', url: `/v1/adminproj/instances/${instanceId}`, headers: auth(ADMIN) });
    expect(show.json()).toMatchObject({ uuid: instanceId, project_id: 'p1' });
    const list = await h.app.inject({ method: 'GET', url: '/v1/adminproj/instances', headers: auth(ADMIN) });
    expect(list.json().instances.map((i: { uuid: string }) => i.uuid)).toContain(instanceId);
    expect(h.svc.callsOf('listInstances').at(-1)?.args[0]).toEqual({ allProjects: true });
  });

  it('members list only their project', async () => {
    const list = await h.app.inject({ method: 'GET', url: '/v1/p2/instances', headers: auth(M2) });
    expect(list.json()).toEqual({ instances: [] });
    expect(h.svc.callsOf('listInstances').at(-1)?.args[0]).toEqual({ allProjects: false });
  });

  it('the RequestContext carries the response X-Compute-Request-Id and the token grant', async () => {
    const res = await h.app.inject({ method: 'POST', url: `/v1/p1/instances/${instanceId}/actions`, headers: auth(M1), payload: { retry: {} } });
    const call = h.svc.callsOf('runOperation')[0]!;
    expect(call.ctx).toEqual({
      request_id: res.headers['x-compute-request-id'],
      project_id: 'p1',
      user_id: 'u1',
      roles: ['member'],
      is_admin: false,
    });
    expect(res.json()).toEqual({ request_id: res.headers['x-compute-request-id'] });
  });
});
