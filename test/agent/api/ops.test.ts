/** healthz/readyz/metrics/openapi, rate limiting, secrets, and one run over a real socket. */
import { describe, expect, it } from 'vitest';
import { ADMIN, M1, M2, REQ_ID_RE, auth, harness } from './helpers.js';

describe('operational routes', () => {
  it('healthz and readyz need no token', async () => {
    const h = await harness();
    const hz = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(hz.statusCode).toBe(200);
    expect(hz.json()).toEqual({ status: 'ok' });
    expect(hz.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    expect((await h.app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ready', reasons: [] });
    h.svc.readiness = { ready: false, reasons: ['power read pending for node-01'] };
    const nr = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(nr.statusCode).toBe(503);
    expect(nr.json()).toEqual({ status: 'not ready', reasons: ['power read pending for node-01'] });
  });

  it('metrics: Prometheus text with the request counter and histogram by route template', async () => {
    const h = await harness();
    const i = h.svc.addInstance();
    await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}`, headers: auth(M1) });
    await h.app.inject({ method: 'GET', url: '/v1/p1/nothing-here', headers: auth(M1) });
    const res = await h.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toContain('# TYPE metald_http_requests_total counter');
    expect(res.body).toContain('metald_http_requests_total{method="GET",route="/v1/:project_id/instances/:id",status="200"} 1');
    expect(res.body).toContain('route="unmatched",status="404"');
    expect(res.body).toContain('# TYPE metald_http_request_duration_seconds histogram');
    expect(res.body).not.toContain(i.id);
  });

  it('a second API on the same registry reuses the metrics', async () => {
    const h = await harness();
    await expect(harness({ registry: h.registry })).resolves.toBeDefined();
  });

  it('openapi.json: an OpenAPI 3 document with our paths and the token scheme', async () => {
    const h = await harness({}, true);
    const res = await h.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toContain('metald');
    for (const p of [
      '/v1/{project_id}/instances',
      '/v1/{project_id}/instances/{id}',
      '/v1/{project_id}/instances/{id}/status',
      '/v1/{project_id}/instances/{id}/actions',
      '/v1/instances/{id}/states',
      '/v1/instances/{id}/states/power',
      '/v2.1/{project_id}/os-fping/{id}',
      '/v2.1/{project_id}/os-fping',
      '/v2/{project_id}/servers/{id}',
      '/v2/{project_id}/servers/{id}/os-instance-actions',
      '/v2/{project_id}/servers/{id}/os-instance-actions/{request_id}',
      '/v1/nodes',
      '/v1/nodes/{id}',
      '/v1/nodes/{id}/states/power',
      '/v1/nodes/{id}/maintenance',
      '/healthz',
    ]) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    // Registered (and so documented) only in test/demo builds with the fake driver.
    expect(doc.paths).toHaveProperty(['/v1/nodes/{id}/fake-faults', 'put', 'responses', '204']);
    const prod = (await (await harness()).app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(prod.paths).not.toHaveProperty(['/v1/nodes/{id}/fake-faults']);
    expect(doc.components.securitySchemes.token).toEqual({ type: 'apiKey', in: 'header', name: 'X-Auth-Token' });
    const create = doc.paths['/v1/{project_id}/instances'].post;
    expect(create.requestBody.content['application/json'].schema.required).toEqual(['name', 'image_uuid']);
  });
});

describe('rate limiting', () => {
  it('per token: burst, then 429 with Retry-After in both families; refills with time; other tokens unaffected', async () => {
    const h = await harness({ rateLimit: { per_token_per_s: 2, burst: 3 } });
    const i = h.svc.addInstance();
    for (let n = 0; n < 3; n++) {
      expect((await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(M1) })).statusCode).toBe(200);
    }
    const v1 = await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(M1) });
    expect(v1.statusCode).toBe(429);
    expect(v1.headers['retry-after']).toBe('1');
    expect(v1.json()).toEqual({ error_code: 'AGENT_ERR_RATE_LIMITED', error_msg: expect.any(String) });
    expect(v1.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    const v2 = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}`, headers: auth(M1) });
    expect(v2.statusCode).toBe(429);
    expect(v2.json()).toEqual({ overLimit: { message: expect.any(String), code: 429, retryAfter: '1' } });

    expect((await h.app.inject({ method: 'GET', url: '/v1/p2/instances', headers: auth(M2) })).statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    h.now.t += 500; // one token back at 2/s
    expect((await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(M1) })).statusCode).toBe(200);
    expect((await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(M1) })).statusCode).toBe(429);
  });

  it('after an idle period far longer than burst/rate the bucket holds burst tokens, not more', async () => {
    const h = await harness({ rateLimit: { per_token_per_s: 2, burst: 3 } });
    const get = async () => (await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(M1) })).statusCode;
    for (let n = 0; n < 3; n++) expect(await get()).toBe(200);
    expect(await get()).toBe(429);
    h.now.t += 3_600_000; // an hour idle: 7,200 tokens' worth of refill, capped at burst (3)
    const codes: number[] = [];
    for (let n = 0; n < 5; n++) codes.push(await get());
    expect(codes).toEqual([200, 200, 200, 429, 429]);
  });

  it('unauthenticated requests are limited per remote address', async () => {
    const h = await harness({ rateLimit: { per_token_per_s: 1, burst: 2 } });
    const codes: number[] = [];
    for (let n = 0; n < 3; n++) {
      codes.push((await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(`guess-${n}`) })).statusCode);
    }
    expect(codes).toEqual([401, 401, 429]);
    const other = await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth('guess'), remoteAddress: '10.9.9.9' });
    expect(other.statusCode).toBe(401);
    expect((await h.app.inject({ method: 'GET', url: '/v1/adminproj/instances', headers: auth(ADMIN) })).statusCode).toBe(200);
  });
});

describe('secrets', () => {
  it('password_hash and user_data appear in no response and no log line', async () => {
    const h = await harness({}, true);
    h.svc.addNode();
    const i = h.svc.addInstance();
    const created = await h.app.inject({
      method: 'POST',
      url: '/v1/p1/instances',
      headers: auth(M1),
      payload: { name: 'vm', image_uuid: i.image_uuid, extra: { password_hash: '$6$salt$SECRETHASH', user_data: 'SECRET-USER-DATA' } },
    });
    const bodies = [created.body];
    for (const [token, p] of [[M1, 'p1'], [ADMIN, 'adminproj']] as const) {
      for (const url of [
        `/v1/${p}/instances`,
        `/v1/${p}/instances/${i.id}`,
        `/v1/${p}/instances/${i.id}/status`,
        `/v1/instances/${i.id}/states`,
        `/v2/${p}/servers/${i.id}`,
        `/v2/${p}/servers/${i.id}/os-instance-actions`,
        `/v2.1/${p}/os-fping/${i.id}`,
        '/v1/nodes',
      ]) {
        bodies.push((await h.app.inject({ method: 'GET', url, headers: auth(token) })).body);
      }
    }
    const cp = await h.app.inject({
      method: 'POST',
      url: `/v1/p1/instances/${i.id}/actions`,
      headers: auth(M1),
      payload: { 'change-password': { password_hash: '$6$salt$SECRETHASH' } },
    });
    bodies.push(cp.body);
    for (const b of bodies) {
      expect(b).not.toContain('SECRET');
      expect(b).not.toContain('password_hash');
      expect(b).not.toContain('user_data');
    }
    const logs = h.logs.join('');
    expect(logs).toContain('request completed');
    expect(logs).not.toContain('SECRET');
    expect(logs).not.toContain('tok-member');
  });
});

describe('over a real socket', () => {
  it('listens on port 0 and answers fetch()', async () => {
    const h = await harness();
    const i = h.svc.addInstance();
    const address = await h.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${address}/v1/p1/instances/${i.id}/status`, { headers: auth(M1) });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-compute-request-id')).toMatch(REQ_ID_RE);
      expect(await res.json()).toEqual({ state: 'running', operation_state: 'install-succeed', error: null });

      const created = await fetch(`${address}/v1/p1/instances`, {
        method: 'POST',
        headers: { ...auth(M1), 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'vm', image_uuid: i.image_uuid }),
      });
      expect(created.status).toBe(201);
      expect(created.headers.get('location')).toMatch(/^http:\/\/192\.168\.150\.51:6385\/v1\/p1\/instances\//);

      const bad = await fetch(`${address}/v1/p1/instances`, {
        method: 'POST',
        headers: { ...auth(M1), 'content-type': 'application/json' },
        body: '{"name":',
      });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error_code: string }).error_code).toBe('AGENT_ERR_BAD_REQUEST');

      const unauth = await fetch(`${address}/v2/p1/servers/${i.id}`);
      expect(unauth.status).toBe(401);
      expect(await unauth.json()).toEqual({ unauthorized: { message: expect.any(String), code: 401 } });
    } finally {
      await h.app.close();
    }
  });
});
