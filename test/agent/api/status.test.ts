/**
 * The status page's routes (agent/api/routes-status.ts, docs/status-page.md) on a real agent (SQLite store, fake lab):
 * the page is public and carries no data; the snapshot and the event stream need a token and are scoped as the
 * rest of the API (admins: everything; members: their project's instances, no node); the stream is SSE-framed,
 * sends what is committed after it opened, resumes from a seq (`since`, Last-Event-ID), and is capped.
 */
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../../agent/api/server.js';
import type { ApiToken } from '../../../agent/config/types.js';
import { StatusStreams } from '../../../agent/status/streams.js';
import type { StatusSnapshot } from '../../../agent/status/view.js';
import { waitFor } from '../../helpers/daemon.js';
import {
  ADMIN_PROJECT, ADMIN_TOKEN, ADOPTED_ID, IMAGE, MEMBER_TOKEN, OTHER_PROJECT, OTHER_TOKEN, PROJECT, ctx, nodeId, settle, startHarness, type Harness,
} from '../../helpers/harness.js';
import { journalData, openSse, type SseStream } from '../../helpers/sse.js';

const tokens = new Map<string, ApiToken>([
  [ADMIN_TOKEN, { token_file: '/x/a', project_id: ADMIN_PROJECT, user_id: 'ops', roles: ['admin'] }],
  [MEMBER_TOKEN, { token_file: '/x/m', project_id: PROJECT, user_id: 'member', roles: ['member'] }],
  [OTHER_TOKEN, { token_file: '/x/o', project_id: OTHER_PROJECT, user_id: 'other', roles: ['member'] }],
]);

const LIMITS = { maxStreams: 3, maxPerCaller: 2, heartbeatMs: 100, maxResume: 50 };
let h: Harness;
let hub: StatusStreams;
let app: FastifyInstance;
let base: string;
let otherId: string;
const open: SseStream[] = [];

/** A second API over the agent's engine and store, listening on loopback, with small stream bounds. */
async function statusApi(h: Harness, hub = new StatusStreams({ store: h.agent.store, log: pino({ level: 'silent' }), limits: LIMITS })): Promise<FastifyInstance> {
  const a = await buildApi({
    service: h.agent.engine,
    tokens: () => tokens,
    rateLimit: { per_token_per_s: 1000, burst: 1000 },
    pageSize: () => ({ default: 1000, max: 1000 }),
    maxBodyBytes: 16 * 1024,
    publicUrl: () => 'http://127.0.0.1',
    agentId: 'test-agent',
    registry: new Registry(),
    log: pino({ level: 'silent' }),
    durable: () => h.agent.store.durable(),
    status: { store: h.agent.store, streams: hub },
  });
  await a.listen({ host: '127.0.0.1', port: 0 });
  return a;
}

async function sse(path: string, token: string | null, headers: Record<string, string> = {}): Promise<SseStream> {
  const s = await openSse(base + path, { ...(token ? { 'X-Auth-Token': token } : {}), ...headers });
  open.push(s);
  return s;
}

async function call(method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; json: unknown; text: string; headers: Headers }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { 'X-Auth-Token': token } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** Closes every stream this test opened and waits until the server has released them all. */
async function closeAll(): Promise<void> {
  for (const s of open.splice(0)) s.close();
  await waitFor(() => hub.count() === 0, 5000, 'the server to release the closed streams');
}

beforeAll(async () => {
  h = await startHarness({ nodes: 2, adopt: true });
  await waitFor(() => h.agent.store.getInstance(ADOPTED_ID)?.state === 'running', 10_000, 'the adopted instance');
  const { instance } = await h.agent.engine.createInstance(ctx('other'), { name: 'other-vm', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
  otherId = instance.id;
  await h.agent.engine.idle();
  expect(h.agent.store.getInstance(otherId)?.state).toBe('running');
  hub = new StatusStreams({ store: h.agent.store, log: pino({ level: 'silent' }), limits: LIMITS });
  app = await statusApi(h, hub);
  const addr = app.server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  for (const s of open.splice(0)) s.close();
  await app?.close();
  if (h) await settle(h);
  await h?.close();
});

describe('GET /status (the page)', () => {
  it('is served to anyone, holds no data, and allows only its own script and style', async () => {
    const res = await h.agent.api.inject({ method: 'GET', url: '/status' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("connect-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    // No node, instance, agent id or project in the shell; no external asset; no innerHTML.
    for (const secret of ['node-01', 'Testvm1', 'other-vm', ADOPTED_ID, 'test-agent', PROJECT]) expect(res.body).not.toContain(secret);
    expect(res.body).not.toMatch(/<(script|link|img)[^>]+(src|href)=/i);
    expect(res.body).not.toContain('innerHTML');
    expect(res.body).toContain('X-Auth-Token');
    // The same bytes whatever token comes with it.
    const withToken = await h.agent.api.inject({ method: 'GET', url: '/status', headers: { 'x-auth-token': ADMIN_TOKEN } });
    expect(withToken.body).toBe(res.body);
  });

  it('takes no query parameter', async () => {
    const res = await h.agent.api.inject({ method: 'GET', url: '/status?token=x' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error_code: 'AGENT_ERR_BAD_REQUEST' });
  });
});

describe('GET /v1/status/snapshot', () => {
  it('401 without a token or with an unknown one, and says nothing', async () => {
    for (const headers of [{}, { 'x-auth-token': 'nope' }]) {
      const res = await h.agent.api.inject({ method: 'GET', url: '/v1/status/snapshot', headers });
      expect(res.statusCode).toBe(401);
      expect(res.body).not.toContain('node-01');
    }
  });

  it('an admin sees every node and every instance, with the seq it reflects', async () => {
    const res = await h.agent.api.inject({ method: 'GET', url: '/v1/status/snapshot', headers: { 'x-auth-token': ADMIN_TOKEN } });
    expect(res.statusCode).toBe(200);
    const s = res.json() as StatusSnapshot;
    expect(s.role).toBe('admin');
    expect(s.seq).toBe(h.agent.store.lastSeq());
    expect(s.nodes.map((n) => n.name)).toEqual(['node-01', 'node-02', 'node-03']);
    expect(s.nodes[0]).toMatchObject({ power_state: 'on', instance_id: otherId, maintenance: false });
    expect(JSON.stringify(s.nodes)).not.toContain('fake://'); // no BMC address
    expect(s.instances.map((i) => i.name)).toEqual(['Testvm1', 'other-vm']);
    expect(s.instances[1]).toMatchObject({ state: 'running', operation_state: 'install-succeed', power_state: 'on', progress: 100, node_id: nodeId(1) });
    expect(s.events.length).toBeGreaterThan(0);
    expect(s.events.length).toBeLessThanOrEqual(50);
    expect(s.events.at(-1)!.seq).toBeLessThanOrEqual(s.seq);
  });

  it("a member sees its project's instances only, no node, no node id, no node event", async () => {
    const res = await h.agent.api.inject({ method: 'GET', url: '/v1/status/snapshot', headers: { 'x-auth-token': MEMBER_TOKEN } });
    expect(res.statusCode).toBe(200);
    const s = res.json() as StatusSnapshot;
    expect(s).toMatchObject({ role: 'member', project_id: PROJECT, nodes: [] });
    expect(s.instances.map((i) => i.id)).toEqual([ADOPTED_ID]);
    expect(s.instances[0]!.node_id).toBeNull();
    expect(s.events.every((e) => e.instance_id === ADOPTED_ID && e.node_id === null && !e.kind.startsWith('node.'))).toBe(true);
    expect(res.body).not.toContain(otherId);
    expect(res.body).not.toContain('node-0');
    const other = (await h.agent.api.inject({ method: 'GET', url: '/v1/status/snapshot', headers: { 'x-auth-token': OTHER_TOKEN } })).json() as StatusSnapshot;
    expect(other.instances.map((i) => i.id)).toEqual([otherId]);
  });
});

describe('GET /v1/status/events', () => {
  it('401 without a token (no stream is opened)', async () => {
    const s = await sse('/v1/status/events', null);
    expect(s.status).toBe(401);
    expect(JSON.parse(s.body)).toMatchObject({ error_code: 'AGENT_ERR_UNAUTHORIZED' });
  });

  it('validates since and Last-Event-ID, and takes no other parameter', async () => {
    for (const q of ['since=abc', 'since=-1', 'since=1.5', 'since=01', 'since=1&since=2', 'since=9999999999999999', 'token=x']) {
      const r = await call('GET', `/v1/status/events?${q}`, ADMIN_TOKEN);
      expect(r.status, q).toBe(400);
      expect(r.json).toMatchObject({ error_code: 'AGENT_ERR_BAD_REQUEST' });
    }
    const s = await sse('/v1/status/events', ADMIN_TOKEN, { 'Last-Event-ID': 'x1' });
    expect(s.status).toBe(400);
    expect(s.body).toContain('Last-Event-ID');
  });

  it('is framed as SSE and sends an event committed after it opened (a power change)', async () => {
    const s = await sse('/v1/status/events', ADMIN_TOKEN);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.headers.get('cache-control')).toBe('no-store');
    expect(s.headers.get('x-compute-request-id')).toMatch(/^req-/);
    const hello = await s.next((f) => f.event === 'hello');
    expect(s.text().startsWith('retry: 3000\n\n')).toBe(true);
    const head = h.agent.store.lastSeq();
    expect(JSON.parse(hello.data)).toEqual({ seq: head, since: null });

    expect((await call('PUT', `/v1/nodes/${nodeId(2)}/states/power`, ADMIN_TOKEN, { target: 'power on' })).status).toBe(202);
    const f = await s.next((x) => x.event === 'journal' && journalData(x).kind === 'node.power' && 'power_state' in journalData(x).data);
    const e = journalData(f);
    expect(e).toMatchObject({ kind: 'node.power', node_id: nodeId(2), data: { power_state: 'on' } });
    expect(e.seq).toBeGreaterThan(head);
    // One id line, one event line, one data line; the id is the entry's seq.
    expect(f.raw).toBe(`id: ${e.seq}\nevent: journal\ndata: ${f.data}`);
    // Every journal frame in seq order.
    const seqs = s.frames.filter((x) => x.event === 'journal').map((x) => Number(x.id));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    // Heartbeat comments (every 100 ms here).
    await s.next((x) => x.comment && x.raw === ': heartbeat');
    await settle(h);
    await closeAll();
  });

  it("a member's stream carries its project's instance events only, without node ids", async () => {
    const member = await sse('/v1/status/events', MEMBER_TOKEN);
    const admin = await sse('/v1/status/events', ADMIN_TOKEN);
    await member.next((f) => f.event === 'hello');
    await admin.next((f) => f.event === 'hello');
    // Another project's instance and a node change, then the member's own instance.
    expect((await call('PUT', `/v1/instances/${otherId}/states/power`, OTHER_TOKEN, { target: 'power off' })).status).toBe(202);
    await settle(h);
    expect((await call('PUT', `/v1/nodes/${nodeId(2)}/states/power`, ADMIN_TOKEN, { target: 'power off' })).status).toBe(202);
    await settle(h);
    expect((await call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power off' })).status).toBe(202);
    await settle(h);
    await member.next((f) => f.event === 'journal' && journalData(f).kind === 'action.finished');
    await admin.next((f) => f.event === 'journal' && journalData(f).kind === 'action.finished' && journalData(f).instance_id === ADOPTED_ID);
    const mine = member.frames.filter((f) => f.event === 'journal').map(journalData);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((e) => e.instance_id === ADOPTED_ID && e.node_id === null && !e.kind.startsWith('node.'))).toBe(true);
    expect(mine).toContainEqual(expect.objectContaining({ kind: 'instance.power', data: { power_state: 'off' } }));
    // No driver names in a member's action events (admins see which drivers were tried).
    for (const e of mine.filter((x) => x.kind === 'action.event')) expect(Object.keys(e.data)).not.toContain('tried');
    const all = admin.frames.filter((f) => f.event === 'journal').map(journalData);
    expect(all.some((e) => e.instance_id === otherId)).toBe(true);
    expect(all.some((e) => e.kind === 'node.power' && e.node_id === nodeId(2))).toBe(true);
    await closeAll();
    expect((await call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power on' })).status).toBe(202);
    expect((await call('PUT', `/v1/instances/${otherId}/states/power`, OTHER_TOKEN, { target: 'power on' })).status).toBe(202);
    await settle(h);
  });

  it('resumes after a seq: since, else Last-Event-ID; a seq ahead of the journal or too far back is a reset', async () => {
    const snap = (await call('GET', '/v1/status/snapshot', ADMIN_TOKEN)).json as StatusSnapshot;
    expect((await call('PUT', `/v1/nodes/${nodeId(2)}/states/power`, ADMIN_TOKEN, { target: 'power on' })).status).toBe(202);
    await settle(h);
    const head = h.agent.store.lastSeq();
    expect(head).toBeGreaterThan(snap.seq);
    const want = h.agent.store.readJournal(snap.seq + 1, 1000).map((e) => e.seq);

    const bySince = await sse(`/v1/status/events?since=${snap.seq}`, ADMIN_TOKEN);
    expect(JSON.parse((await bySince.next((f) => f.event === 'hello')).data)).toEqual({ seq: head, since: snap.seq });
    await bySince.next((f) => f.id === String(head));
    expect(bySince.frames.filter((f) => f.event === 'journal').map((f) => Number(f.id))).toEqual(want);

    const byHeader = await sse('/v1/status/events', ADMIN_TOKEN, { 'Last-Event-ID': String(snap.seq) });
    await byHeader.next((f) => f.id === String(head));
    expect(byHeader.frames.filter((f) => f.event === 'journal').map((f) => Number(f.id))).toEqual(want);
    await closeAll();

    for (const [since, reason] of [[head + 10, 'ahead'], [Math.max(0, head - 60), 'too-far']] as const) {
      const s = await sse(`/v1/status/events?since=${since}`, ADMIN_TOKEN);
      const reset = await s.next((f) => f.event === 'reset');
      expect(JSON.parse(reset.data)).toEqual({ reason, seq: head });
      await s.ended; // the server ends a reset stream
      expect(s.frames.some((f) => f.event === 'journal')).toBe(false);
    }
    await closeAll();
  });

  it('caps the open streams (per caller, then in all) with 429 and Retry-After; a closed stream frees its slot', async () => {
    const a1 = await sse('/v1/status/events', ADMIN_TOKEN);
    const a2 = await sse('/v1/status/events', ADMIN_TOKEN);
    await a1.next((f) => f.event === 'hello');
    await a2.next((f) => f.event === 'hello');
    const a3 = await sse('/v1/status/events', ADMIN_TOKEN);
    expect(a3.status).toBe(429);
    expect(a3.headers.get('retry-after')).toBe('5');
    expect(JSON.parse(a3.body)).toMatchObject({ error_code: 'AGENT_ERR_RATE_LIMITED' });
    const m1 = await sse('/v1/status/events', MEMBER_TOKEN);
    expect(m1.status).toBe(200);
    await m1.next((f) => f.event === 'hello');
    const o1 = await sse('/v1/status/events', OTHER_TOKEN);
    expect(o1.status).toBe(429); // 3 open in all
    expect(o1.body).toContain('3 in all');
    a1.close();
    await waitFor(async () => (await sse('/v1/status/events', OTHER_TOKEN)).status === 200, 5000, 'a slot freed by the closed stream');
    await closeAll();
  });

  it('the API closes with streams open (they are ended first)', async () => {
    const extra = await statusApi(h);
    const port = (extra.server.address() as { port: number }).port;
    const s = await openSse(`http://127.0.0.1:${port}/v1/status/events`, { 'X-Auth-Token': ADMIN_TOKEN });
    await s.next((f) => f.event === 'hello');
    const t0 = Date.now();
    await extra.close();
    await s.ended;
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
