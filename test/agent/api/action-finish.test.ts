/**
 * `GET /v2/{p}/servers/{id}/os-instance-actions/{request_id}` tells a waiting client that the action is over with
 * the header `X-Metald-Action-Finished: <ISO finish_time>` (docs/api.md, docs/decisions.md): seed 001's body has no
 * action-level finish time and keeps its keys letter for letter, so the finish goes in a header. metalctl --wait
 * follows it (agent/cli/wait.ts).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ADMIN, M1, auth, harness, type Harness } from './helpers.js';
import { makeAction } from './stub-service.js';

const SEED001_ACTION_KEYS = ['action', 'events', 'instance_uuid', 'message', 'project_id', 'request_id', 'start_time', 'user_id'];
const HEADER = 'x-metald-action-finished';

let h: Harness;
beforeEach(async () => {
  h = await harness();
});

function actionUrl(project: string, instanceId: string, requestId: string): string {
  return `/v2/${project}/servers/${instanceId}/os-instance-actions/${requestId}`;
}

describe('X-Metald-Action-Finished', () => {
  it('is absent while the action is in flight; the body keeps seed 001 keys', async () => {
    const i = h.svc.addInstance();
    const act = makeAction(i, { finish_time: null });
    h.svc.actions.push(act);
    const res = await h.app.inject({ method: 'GET', url: actionUrl('p1', i.id, act.request_id), headers: auth(M1) });
    expect(res.statusCode).toBe(200);
    expect(res.headers[HEADER]).toBeUndefined();
    expect(Object.keys(res.json().instanceAction).sort()).toEqual(SEED001_ACTION_KEYS);
  });

  it('carries the ISO finish time of a finished action; message null stays null', async () => {
    const i = h.svc.addInstance();
    const act = makeAction(i, { finish_time: '2015-10-15T00:40:40Z', message: null });
    h.svc.actions.push(act);
    const res = await h.app.inject({ method: 'GET', url: actionUrl('p1', i.id, act.request_id), headers: auth(M1) });
    expect(res.statusCode).toBe(200);
    expect(res.headers[HEADER]).toBe('2015-10-15T00:40:40.000Z');
    const a = res.json().instanceAction;
    expect(Object.keys(a).sort()).toEqual(SEED001_ACTION_KEYS);
    expect(a.message).toBeNull();
  });

  it('a failed action: the header is there and the body is unchanged (message as the caller may read it)', async () => {
    const i = h.svc.addInstance();
    const raw = "step 'power_off' failed: BMC_ERR_UNREACHABLE: 10.0.1.21 timed out";
    const act = makeAction(i, { finish_time: '2015-10-15T00:41:02.250Z', message: raw });
    h.svc.actions.push(act);
    const member = await h.app.inject({ method: 'GET', url: actionUrl('p1', i.id, act.request_id), headers: auth(M1) });
    expect(member.headers[HEADER]).toBe('2015-10-15T00:41:02.250Z');
    expect(member.json().instanceAction.message).toBe("step 'power_off' failed (an admin can see why)");
    const admin = await h.app.inject({ method: 'GET', url: actionUrl('adminproj', i.id, act.request_id), headers: auth(ADMIN) });
    expect(admin.headers[HEADER]).toBe('2015-10-15T00:41:02.250Z');
    expect(admin.json().instanceAction.message).toBe(raw);
    expect(Object.keys(admin.json().instanceAction).sort()).toEqual(SEED001_ACTION_KEYS);
  });

  it('a 404 (unknown request id) carries no finish header', async () => {
    const i = h.svc.addInstance();
    const res = await h.app.inject({ method: 'GET', url: actionUrl('p1', i.id, `req-${i.id}`), headers: auth(M1) });
    expect(res.statusCode).toBe(404);
    expect(res.headers[HEADER]).toBeUndefined();
  });
});
