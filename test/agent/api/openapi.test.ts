/**
 * /openapi.json declares what every route really answers (issue 5, B13). Every route of the built app (from
 * printRoutes, HEAD included) is driven with inject() for its success and for each error it declares that a request
 * can cause (400, 401, 403, 404, 409, 413, 415, 429, 500, 503, 406 ...), over the stub service; then the policy table
 * is replayed against the real service. Each reply's status must be among the route's declared responses and its body
 * must validate (ajv) against the schema declared for that status; each declared status must have been seen.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentError } from '../../../agent/errors.js';
import { StoreError } from '../../../agent/store/types.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, IMAGE, MEMBER_TOKEN, OTHER_PROJECT, OTHER_TOKEN, PROJECT, ctx, nodeId, settle, startHarness, type Harness as RealHarness } from '../../helpers/harness.js';
import { ADMIN, M1, auth, harness, type Harness } from './helpers.js';
import { POLICY, ROLES, rowUrl, type Role } from './policy-table.js';
import { makeAction } from './stub-service.js';

interface DocResponse {
  description: string;
  content?: Record<string, { schema: object }>;
}
type Doc = { paths: Record<string, Record<string, { responses: Record<string, DocResponse> }>> };

/** `METHOD /path/{param}` of every route the app serves, from printRoutes' tree. */
function appRoutes(app: FastifyInstance): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([^)]+)\))?$/.exec(line);
    if (m === null) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(`${stack[depth - 1] ?? ''}${m[2]!}`);
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      out.push(`${method} ${stack[depth]!.replace(/:([A-Za-z_]+)/g, '{$1}')}`);
    }
  }
  return out;
}

const ajv = new Ajv({ strict: false, allErrors: true });
const validators = new Map<object, ValidateFunction>();
function validate(schema: object, body: unknown): string | null {
  let v = validators.get(schema);
  if (v === undefined) validators.set(schema, (v = ajv.compile(schema)));
  return v(body) ? null : ajv.errorsText(v.errors);
}

/** The reply checked against the operation's declaration; returns the status. */
function checkReply(doc: Doc, op: string, res: LightMyRequestResponse): number {
  const [method, path] = op.split(' ') as [string, string];
  const declared = doc.paths[path]?.[method === 'HEAD' ? 'get' : method.toLowerCase()]?.responses;
  expect(declared, `${op} is in the document`).toBeDefined();
  const r = declared![String(res.statusCode)];
  expect(r, `${op} answered ${res.statusCode} (${res.body.slice(0, 200)}), declared: ${Object.keys(declared!).join(', ')}`).toBeDefined();
  if (method === 'HEAD' || r!.content === undefined) {
    expect(res.body, `${op} ${res.statusCode} declares no body`).toBe('');
    return res.statusCode;
  }
  const [type, media] = Object.entries(r!.content)[0]!;
  expect(res.headers['content-type'], op).toContain(type);
  const body: unknown = type === 'application/json' ? res.json() : res.body;
  expect(validate(media.schema, body), `${op} ${res.statusCode} body ${res.body.slice(0, 300)}`).toBeNull();
  return res.statusCode;
}

const UNKNOWN = '0b8c5f0e-0000-4000-8000-00000000dead';
const PUBLIC = new Set(['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /openapi.json']);
/** What these routes would answer 500 to is an unexpected fault only (no service call, no input to break them). */
const NO_500 = new Set(['GET /healthz', 'GET /metrics', 'GET /openapi.json']);

/** Per operation: the success request over the stub, and the service method a fault can be injected into. */
interface OpCase {
  token?: string;
  payload?: unknown;
  query?: string;
  /** The stub method this route calls (for 409/500/503/406 injection); none: no service call to fault. */
  calls?: string;
  /** Errors the service can raise on this route, besides NOT_FOUND and STORE. */
  raises?: AgentError['code'][];
  /** Token that is refused with 403 on this route (admin-only routes), with its query. */
  forbidden?: { token: string; query?: string };
}
const CASES: Record<string, OpCase> = {
  'GET /healthz': {},
  'GET /readyz': { calls: 'ready' },
  'GET /metrics': {},
  'GET /openapi.json': {},
  'POST /v1/{project_id}/instances': {
    payload: { name: 'vm', image_uuid: IMAGE },
    calls: 'createInstance',
    raises: ['AGENT_ERR_CONFLICT', 'AGENT_ERR_NOT_READY', 'AGENT_ERR_BAD_REQUEST'],
  },
  'GET /v1/{project_id}/instances': { calls: 'listInstances' },
  'GET /v1/{project_id}/instances/{id}': { calls: 'getInstance' },
  'DELETE /v1/{project_id}/instances/{id}': { calls: 'deleteInstance', raises: ['AGENT_ERR_LOCKED', 'AGENT_ERR_NOT_READY', 'AGENT_ERR_INVALID_TRANSITION'] },
  'GET /v1/{project_id}/instances/{id}/status': { calls: 'getInstance' },
  'POST /v1/{project_id}/instances/{id}/actions': {
    payload: { uninstall: {} },
    calls: 'runOperation',
    raises: ['AGENT_ERR_LOCKED', 'AGENT_ERR_CONFLICT', 'AGENT_ERR_NOT_READY', 'AGENT_ERR_INVALID_TRANSITION'],
  },
  'GET /v1/instances/{id}/states': { calls: 'getInstance' },
  'PUT /v1/instances/{id}/states/power': {
    payload: { target: 'power off' },
    calls: 'setInstancePower',
    raises: ['AGENT_ERR_LOCKED', 'AGENT_ERR_MAINTENANCE', 'AGENT_ERR_NOT_ACCEPTABLE', 'AGENT_ERR_NOT_READY', 'AGENT_ERR_INVALID_TRANSITION'],
  },
  'GET /v1/nodes': { token: ADMIN, calls: 'listNodes', forbidden: { token: M1 } },
  'GET /v1/nodes/{id}': { token: ADMIN, calls: 'getNode', forbidden: { token: M1 } },
  'PUT /v1/nodes/{id}/states/power': {
    token: ADMIN,
    payload: { target: 'on' },
    calls: 'setNodePower',
    raises: ['AGENT_ERR_LOCKED', 'AGENT_ERR_MAINTENANCE', 'AGENT_ERR_NOT_ACCEPTABLE', 'AGENT_ERR_NOT_READY'],
    forbidden: { token: M1 },
  },
  'PUT /v1/nodes/{id}/maintenance': { token: ADMIN, payload: { maintenance: true, reason: 'disk' }, calls: 'setMaintenance', forbidden: { token: M1 } },
  'PUT /v1/nodes/{id}/fake-faults': { token: ADMIN, payload: { unreachable: true }, calls: 'getNode', forbidden: { token: M1 } },
  'GET /v2.1/{project_id}/os-fping/{id}': { calls: 'ping' },
  'GET /v2.1/{project_id}/os-fping': { calls: 'pingMany', forbidden: { token: M1, query: 'all_tenants=1' } },
  'GET /v2/{project_id}/servers/{id}': { calls: 'getInstance' },
  'GET /v2/{project_id}/servers/{id}/os-instance-actions': { calls: 'listActions' },
  'GET /v2/{project_id}/servers/{id}/os-instance-actions/{request_id}': { calls: 'getAction' },
};

describe('/openapi.json against what every route answers (stub service)', () => {
  let h: Harness;
  let doc: Doc;
  let ops: string[];
  const seen = new Map<string, Set<number>>();
  let ids: { id: string; node: string; req: string };

  beforeAll(async () => {
    h = await harness({}, true);
    const inst = h.svc.addInstance();
    const node = h.svc.addNode();
    const action = makeAction(inst);
    h.svc.actions.push(action);
    ids = { id: inst.id, node: node.id, req: action.request_id };
    doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    ops = appRoutes(h.app);
  });

  const url = (op: string, over: Partial<typeof ids> = {}, query?: string): string => {
    const p = { ...ids, ...over };
    const path = op
      .split(' ')[1]!
      .replace('{project_id}', 'p1')
      .replace('/nodes/{id}', `/nodes/${p.node}`)
      .replace('{id}', p.id)
      .replace('{request_id}', p.req);
    return query === undefined ? path : `${path}?${query}`;
  };
  /** Injects and checks the reply against the declaration; records the status as seen for this operation. */
  async function drive(
    op: string,
    o: { method?: string; token?: string | null; payload?: unknown; headers?: Record<string, string>; url?: string; app?: FastifyInstance },
  ): Promise<number> {
    const c = CASES[op]!;
    const method = o.method ?? op.split(' ')[0]!;
    const token = o.token === undefined ? (c.token ?? M1) : o.token;
    const payload = o.payload ?? c.payload;
    const res = await (o.app ?? h.app).inject({
      method: method as 'GET',
      url: o.url ?? url(op, {}, c.query),
      headers: { ...(token !== null && !PUBLIC.has(op) ? auth(token) : {}), ...(o.headers ?? {}) },
      ...(payload !== undefined && method !== 'GET' && method !== 'HEAD' ? { payload: payload as object } : {}),
    });
    const status = checkReply(doc, `${method} ${op.split(' ')[1]!}`, res);
    if (method !== 'HEAD') (seen.get(op) ?? seen.set(op, new Set()).get(op)!).add(status);
    return status;
  }

  it('every route of the app is in the document with a case here, and the document has no other', () => {
    const documented = Object.entries(doc.paths).flatMap(([p, m]) => Object.keys(m).map((x) => `${x.toUpperCase()} ${p}`));
    const served = ops.filter((o) => !o.startsWith('HEAD '));
    expect(served.length).toBeGreaterThan(20);
    expect([...documented].sort()).toEqual([...served].sort());
    expect(Object.keys(CASES).sort()).toEqual([...served].sort());
    // HEAD is served for every GET (and answers as it: checked below).
    expect(ops.filter((o) => o.startsWith('HEAD ')).map((o) => o.slice(5)).sort()).toEqual(
      served.filter((o) => o.startsWith('GET ')).map((o) => o.slice(4)).sort(),
    );
  });

  it('no operation declares only a default: each has its real 2xx and error statuses, every one described', () => {
    for (const [p, methods] of Object.entries(doc.paths)) {
      for (const [m, o] of Object.entries(methods)) {
        const codes = Object.keys(o.responses);
        expect(codes, `${m} ${p}`).not.toContain('default');
        expect(codes.filter((c) => /^2\d\d$/.test(c)).length, `${m} ${p}`).toBeGreaterThan(0);
        expect(codes.filter((c) => /^[45]\d\d$/.test(c)).length, `${m} ${p}`).toBeGreaterThan(0);
        for (const c of codes) expect(o.responses[c]!.description, `${m} ${p} ${c}`).not.toBe('Default Response');
      }
    }
    expect(Object.keys(doc.paths['/v1/{project_id}/instances']!['post']!.responses)).toContain('201');
    expect(doc.paths['/v1/{project_id}/instances']!['post']!.responses['201']).toHaveProperty(['headers', 'Location']);
  });

  it('each route: success, HEAD, 400 (unknown query parameter), 415 (Content-Encoding), 401, 403, 404, 413', async () => {
    for (const op of Object.keys(CASES)) {
      const c = CASES[op]!;
      const [method, path] = op.split(' ') as [string, string];
      const ok = await drive(op, {});
      expect(ok, op).toBeLessThan(300);
      if (method === 'GET') expect(await drive(op, { method: 'HEAD' }), `HEAD ${path}`).toBe(ok);
      expect(await drive(op, { url: url(op, {}, 'bogus=1') }), op).toBe(400);
      expect(await drive(op, { headers: { 'content-encoding': 'gzip' } }), op).toBe(415);
      if (!PUBLIC.has(op)) expect(await drive(op, { token: null }), op).toBe(401);
      if (c.forbidden) expect(await drive(op, { token: c.forbidden.token, url: url(op, {}, c.forbidden.query) }), op).toBe(403);
      if (path.includes('{id}')) expect(await drive(op, { url: url(op, { id: UNKNOWN, node: UNKNOWN }) }), op).toBe(404);
      if (path.includes('{request_id}')) expect(await drive(op, { url: url(op, { req: `req-${UNKNOWN}` }) }), op).toBe(404);
      if (method !== 'GET') {
        expect(await drive(op, { payload: { name: 'x'.repeat(17 * 1024) } }), op).toBe(413);
        expect(await drive(op, { payload: 'plain', headers: { 'content-type': 'text/plain' } }), op).toBe(415);
      }
    }
  });

  it('each route: what its service call raises (store failure 500, 409, 406, 503, 400) in the declared body', async () => {
    h.svc.readiness = { ready: false, reasons: ['power read pending'] };
    expect(await drive('GET /readyz', {}), 'readyz not ready').toBe(503);
    h.svc.readiness = { ready: true, reasons: [] };
    for (const op of Object.keys(CASES)) {
      const c = CASES[op]!;
      if (c.calls === undefined) continue;
      const faults: unknown[] = [new StoreError('disk I/O error'), ...(c.raises ?? []).map((code) => new AgentError(code, `injected ${code}`))];
      for (const f of faults) {
        h.svc.failNext(c.calls, f);
        const want = f instanceof AgentError ? f.status : 500;
        expect(await drive(op, {}), `${op} with ${String(f)}`).toBe(want);
      }
    }
  });

  it('each route: 429 beyond the rate limit', async () => {
    const limited = await harness({ rateLimit: { per_token_per_s: 0.001, burst: 1 } }, true);
    for (const t of [ADMIN, M1]) await limited.app.inject({ method: 'GET', url: '/v1/nodes', headers: auth(t) });
    for (const op of Object.keys(CASES).filter((o) => !PUBLIC.has(o))) {
      expect(await drive(op, { app: limited.app }), op).toBe(429);
    }
    await limited.app.close();
  });

  it('every status an operation declares was answered by it above', () => {
    for (const op of Object.keys(CASES)) {
      const [method, path] = op.split(' ') as [string, string];
      const declared = Object.keys(doc.paths[path]![method.toLowerCase()]!.responses).map(Number);
      const unseen = declared.filter((s) => !seen.get(op)?.has(s) && !(s === 500 && NO_500.has(op)));
      expect(unseen, `${op}: declared but never answered`).toEqual([]);
    }
  });

  it('response schemas document replies and never shape them (no field dropped, bytes as JSON.stringify)', async () => {
    // The declared schema of /openapi.json lists only `openapi`; an admin's server view has keys members lack.
    const res = await h.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(Object.keys(res.json())).toEqual(expect.arrayContaining(['openapi', 'info', 'paths', 'components']));
    const server = await h.app.inject({ method: 'GET', url: `/v2/adminproj/servers/${ids.id}`, headers: auth(ADMIN) });
    expect(server.json().server).toMatchObject({ 'OS-EXT-SRV-ATTR:host': 'rack-a12', 'OS-EXT-SRV-ATTR:hypervisor_hostname': 'node-01' });
    expect(server.body).toBe(JSON.stringify(server.json()));
  });

  it('a documented path answers another method with 405 and Allow listing the documented ones', async () => {
    for (const [path, methods] of Object.entries(doc.paths)) {
      const other = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'].find((m) => !(m.toLowerCase() in methods))!;
      const res = await h.app.inject({ method: other as 'GET', url: url(`X ${path}`), headers: auth(ADMIN) });
      expect(res.statusCode, `${other} ${path}`).toBe(405);
      const allow = Object.keys(methods).map((m) => m.toUpperCase());
      if ('get' in methods) allow.push('HEAD');
      expect(res.headers['allow'], path).toBe(allow.sort().join(', '));
    }
  });

  afterAll(async () => {
    await h.app.close();
  });
});

describe('/openapi.json against the real service (the policy table, every role)', () => {
  const TOKENS: Record<Role, string | undefined> = { admin: ADMIN_TOKEN, owner: MEMBER_TOKEN, other: OTHER_TOKEN, none: undefined };
  const PROJECTS: Record<Role, string> = { admin: ADMIN_PROJECT, owner: PROJECT, other: OTHER_PROJECT, none: PROJECT };
  let r: RealHarness | null = null;
  afterAll(async () => {
    if (r) await settle(r);
    await r?.close();
  });

  it('every reply of every row is declared, with its body', async () => {
    r = await startHarness({ nodes: 2 });
    const c = ctx('member');
    const { instance } = await r.agent.engine.createInstance(c, { name: 'oas', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
    await r.agent.engine.idle();
    const doc = (await r.agent.api.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc;
    const templates = Object.keys(doc.paths);
    for (const row of POLICY) {
      const template = templates.find((t) => t === row.path.split('?')[0]!.replace('{p}', '{project_id}').replace('{node}', '{id}').replace('{req}', '{request_id}'));
      expect(template, row.path).toBeDefined();
      for (const role of ROLES) {
        const token = TOKENS[role];
        const res = await r.agent.api.inject({
          method: row.method,
          url: rowUrl(row, PROJECTS[role], { id: instance.id, node: nodeId(2), req: c.request_id }),
          headers: token ? { 'x-auth-token': token } : {},
          ...(row.body !== undefined ? { payload: row.body as object } : {}),
        });
        checkReply(doc, `${row.method} ${template!}`, res);
        await settle(r);
      }
    }
  });
});
