/** Bad input: a 400 that names what is wrong, and nothing called on the service. Identifiers: 400 / 404 rules. */
import { beforeEach, describe, expect, it } from 'vitest';
import { ADMIN, M1, REQ_ID_RE, auth, harness, type Harness } from './helpers.js';

const IMG = '1fd5ab9b-1769-4dd5-b0bd-e075614cc866';

describe('input validation', () => {
  let h: Harness;
  let id: string;
  beforeEach(async () => {
    h = await harness();
    id = h.svc.addInstance().id;
  });

  const create = (payload: unknown, headers: Record<string, string> = {}) =>
    h.app.inject({ method: 'POST', url: '/v1/p1/instances', headers: { ...auth(M1), ...headers }, payload: payload as string });

  it.each([
    [{ name: 'a', image_uuid: IMG, flavor: 'x' }, "body: unknown field 'flavor'"],
    [{ name: 'a', image_uuid: IMG, extra: { password: 'x' } }, "body.extra: unknown field 'password'"],
    [{ name: 'a', image_uuid: IMG, networks: [{ uuid: IMG, vlan: 3 }] }, "body.networks[0]: unknown field 'vlan'"],
    [{ image_uuid: IMG }, "missing required field 'name'"],
    [{ name: '', image_uuid: IMG }, 'body.name'],
    [{ name: 'x'.repeat(256), image_uuid: IMG }, 'body.name'],
    [{ name: 'a', image_uuid: 'not-a-uuid' }, 'body.image_uuid'],
    [{ name: 1, image_uuid: IMG }, 'body.name: must be string'],
    [{ name: 'a', image_uuid: IMG, metadata: { k: 1 } }, 'body.metadata.k'],
    [{ name: 'a', image_uuid: IMG, metadata: { k: '' } }, 'body.metadata.k'],
    [{ name: 'a', image_uuid: IMG, metadata: { ['k'.repeat(256)]: 'v' } }, 'body.metadata'],
    [{ name: 'a', image_uuid: IMG, networks: {} }, 'body.networks'],
    [{ name: 'a', image_uuid: IMG, extra: { ssh_keys: 'ssh-rsa AAA' } }, 'body.extra.ssh_keys'],
    [{ name: 'a', image_uuid: IMG, extra: { password_hash: 'plaintext' } }, 'body.extra.password_hash'],
    [{ name: 'a', image_uuid: IMG, extra: { hostname: 'bad host' } }, 'body.extra.hostname'],
    [[], 'body: must be object'],
  ])('create %j -> 400 naming %s', async (payload, needle) => {
    const res = await create(payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().error_code).toBe('AGENT_ERR_BAD_REQUEST');
    expect(res.json().error_msg).toContain(needle);
    expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    expect(h.svc.calls).toEqual([]);
    // A rejected secret is not echoed back.
    expect(res.body).not.toContain('plaintext');
  });

  it('malformed JSON, empty body: 400; wrong content type: 415; oversized body: 413; nothing called', async () => {
    const malformed = await create('{"name": "a",', { 'content-type': 'application/json' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error_msg).toMatch(/JSON/);

    const empty = await h.app.inject({ method: 'POST', url: '/v1/p1/instances', headers: { ...auth(M1), 'content-type': 'application/json' } });
    expect(empty.statusCode).toBe(400);

    const text = await create('name=a', { 'content-type': 'text/plain' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toEqual({ error_code: 'AGENT_ERR_UNSUPPORTED_MEDIA_TYPE', error_msg: expect.stringContaining('application/json') });

    const form = await create('name=a', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.statusCode).toBe(415);

    const big = await create({ name: 'a', image_uuid: IMG, description: 'x'.repeat(20_000) });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({ error_code: 'AGENT_ERR_PAYLOAD_TOO_LARGE', error_msg: expect.stringContaining('16384 bytes') });

    const proto = await create('{"name":"a","image_uuid":"' + IMG + '","__proto__":{"x":1}}', { 'content-type': 'application/json' });
    expect(proto.statusCode).toBe(400);

    expect(h.svc.calls).toEqual([]);
  });

  it('v2 paths answer nova badRequest for bad input', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/v2.1/p1/os-fping?include=1&include=2', headers: auth(M1) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ badRequest: { message: expect.stringContaining('querystring.include'), code: 400 } });
  });

  it.each([
    [{}, 'exactly one'],
    [{ retry: {}, uninstall: {} }, 'exactly one'],
    [{ reboot: {} }, "unknown field 'reboot'"],
    [{ 'switch-install': {} }, "body.switch-install: missing required field 'image_uuid'"],
    [{ 'change-password': {} }, "missing required field 'password_hash'"],
    [{ 'modify-ip': { networks: [] } }, 'body.modify-ip.networks'],
    [{ 'modify-ip': {} }, "missing required field 'networks'"],
    [{ retry: { force: true } }, "body.retry: unknown field 'force'"],
    [{ reinstall: { image_uuid: IMG, user: 'x' } }, "body.reinstall: unknown field 'user'"],
  ])('actions %j -> 400 naming %s', async (payload, needle) => {
    const res = await h.app.inject({ method: 'POST', url: `/v1/p1/instances/${id}/actions`, headers: auth(M1), payload });
    expect(res.statusCode).toBe(400);
    expect(res.json().error_msg).toContain(needle);
    expect(h.svc.calls).toEqual([]);
  });

  it.each([
    ['/v1/p1/instances/1234', 'GET'],
    ['/v1/p1/instances/1234/status', 'GET'],
    ['/v1/p1/instances/abc', 'DELETE'],
    ['/v1/instances/abc/states', 'GET'],
    ['/v2/p1/servers/abc', 'GET'],
    ['/v2/p1/servers/abc/os-instance-actions', 'GET'],
    ['/v2.1/p1/os-fping/abc', 'GET'],
  ] as const)('non-UUID id %s -> 404 without calling the service', async (url, method) => {
    const res = await h.app.inject({ method, url, headers: auth(M1) });
    expect(res.statusCode).toBe(404);
    const body = res.json();
    if (url.startsWith('/v2')) expect(body).toEqual({ itemNotFound: { message: expect.any(String), code: 404 } });
    else expect(body.error_code).toBe('AGENT_ERR_NOT_FOUND');
    expect(h.svc.calls).toEqual([]);
  });

  it('project_id outside ^[A-Za-z0-9_-]{1,64}$ -> 400', async () => {
    for (const p of ['a.b', 'x'.repeat(65), 'p%201']) {
      const res = await h.app.inject({ method: 'GET', url: `/v1/${p}/instances`, headers: auth(M1) });
      expect(res.statusCode, p).toBe(400);
      expect(res.json().error_msg).toContain('project_id');
    }
    expect(h.svc.calls).toEqual([]);
  });

  it('a URL that does not decode: 400 in the family of the path, with the request id', async () => {
    for (const [url, family] of [['/v1/p1/instances/%zz', 'v1'], ['/v2/p1/servers/%E0%A4%A', 'nova']] as const) {
      const res = await h.app.inject({ method: 'GET', url, headers: auth(M1) });
      expect(res.statusCode).toBe(400);
      expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
      if (family === 'v1') expect(res.json().error_code).toBe('AGENT_ERR_BAD_REQUEST');
      else expect(res.json()).toEqual({ badRequest: { message: expect.any(String), code: 400 } });
    }
  });

  it('unknown routes: 404 in the family of the path', async () => {
    const v1 = await h.app.inject({ method: 'GET', url: '/v1/p1/volumes', headers: auth(M1) });
    expect(v1.statusCode).toBe(404);
    expect(v1.json()).toEqual({ error_code: 'AGENT_ERR_NOT_FOUND', error_msg: expect.any(String) });
    const v2 = await h.app.inject({ method: 'GET', url: '/v2/p1/flavors', headers: auth(M1) });
    expect(v2.json()).toEqual({ itemNotFound: { message: 'The resource could not be found.', code: 404 } });
    const v21 = await h.app.inject({ method: 'GET', url: '/v2.1/p1/os-hypervisors', headers: auth(M1) });
    expect(v21.statusCode).toBe(404);
    expect(v21.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
  });

  // ---- the same rules on every path (B6) ----------------------------------------------------------------------

  const json = { 'content-type': 'application/json' };

  it.each([
    ['create', 'POST', '/v1/p1/instances', `{"name":"a","image_uuid":"${IMG}","name":"b"}`, "body: duplicate key 'name'"],
    ['create, nested', 'POST', '/v1/p1/instances', `{"name":"a","image_uuid":"${IMG}","extra":{"hostname":"h","hostname":"i"}}`, "body.extra: duplicate key 'hostname'"],
    ['create, escaped', 'POST', '/v1/p1/instances', `{"name":"a","image_uuid":"${IMG}","n\\u0061me":"b"}`, "body: duplicate key 'name'"],
    ['power', 'PUT', '/v1/instances/{id}/states/power', '{"target":"on","target":"off"}', "body: duplicate key 'target'"],
    ['action', 'POST', '/v1/p1/instances/{id}/actions', '{"modify-ip":{"networks":[{"uuid":"' + IMG + '","uuid":"' + IMG + '"}]}}', "body.modify-ip.networks[0]: duplicate key 'uuid'"],
  ])('duplicate JSON keys (%s) -> 400 naming the key; nothing called', async (_n, method, url, payload, needle) => {
    const res = await h.app.inject({ method: method as 'PUT', url: url.replace('{id}', id), headers: { ...auth(M1), ...json }, payload });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toEqual({ error_code: 'AGENT_ERR_BAD_REQUEST', error_msg: `Invalid input: ${needle}` });
    expect(h.svc.mutations()).toEqual([]);
  });

  it('the same key in different objects is not a duplicate', async () => {
    const res = await create(`{"name":"a","image_uuid":"${IMG}","networks":[{"uuid":"${IMG}"},{"uuid":"${IMG}"}],"metadata":{"name":"x"}}`, json);
    expect(res.statusCode, res.body).toBe(201);
  });

  it.each([
    ['   ', 'body.name'],
    ['\t\n', 'body.name'],
    ['a\u0007b', 'body.name'],
    ['vm\u0000', 'body.name'],
    ['vm\u009b', 'body.name'],
  ])('a name empty after trimming or holding control characters (%j) -> 400', async (name, needle) => {
    const res = await create({ name, image_uuid: IMG });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error_msg).toContain(needle);
    expect(h.svc.calls).toEqual([]);
  });

  it('other names and free text follow the same rule; names with inner spaces and non-ASCII letters pass', async () => {
    const az = await create({ name: 'a', image_uuid: IMG, availability_zone: ' ' });
    expect(az.json().error_msg).toContain('body.availability_zone');
    const desc = await create({ name: 'a', image_uuid: IMG, description: 'bell \u0007' });
    expect(desc.json().error_msg).toContain('body.description');
    const node = h.svc.addNode();
    const reason = await h.app.inject({ method: 'PUT', url: `/v1/nodes/${node.id}/maintenance`, headers: auth(ADMIN), payload: { maintenance: true, reason: '  ' } });
    expect(reason.statusCode).toBe(400);
    expect(reason.json().error_msg).toContain('body.reason');
    expect(h.svc.mutations()).toEqual([]);
    const ok = await create({ name: 'Café db 1', image_uuid: IMG, description: 'line one\nline two' });
    expect(ok.statusCode, ok.body).toBe(201);
  });

  it.each([
    ['v1', 'POST', '/v1/p1/instances'],
    ['v1', 'PUT', '/v1/instances/{id}/states/power'],
    ['nova', 'GET', '/v2/p1/servers/{id}'],
    ['nova', 'GET', '/v2.1/p1/os-fping'],
  ] as const)('a charset other than UTF-8 or a Content-Encoding -> 415 in the %s family (%s %s)', async (family, method, url) => {
    for (const headers of [
      { 'content-type': 'application/json; charset=iso-8859-1' },
      { 'content-type': 'application/json; charset="UTF-16"' },
      { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      { 'content-type': 'application/json', 'content-encoding': 'br' },
    ]) {
      const res = await h.app.inject({ method, url: url.replace('{id}', id), headers: { ...auth(M1), ...headers }, payload: '{"target":"on"}' });
      expect(res.statusCode, JSON.stringify(headers)).toBe(415);
      if (family === 'v1') expect(res.json()).toEqual({ error_code: 'AGENT_ERR_UNSUPPORTED_MEDIA_TYPE', error_msg: expect.any(String) });
      else expect(res.json()).toEqual({ badMediaType: { message: expect.any(String), code: 415 } });
    }
    expect(h.svc.mutations()).toEqual([]);
    for (const headers of [{ 'content-type': 'application/json; charset=utf-8' }, { 'content-type': 'application/json; charset=UTF-8', 'content-encoding': 'identity' }]) {
      const res = await h.app.inject({ method: 'PUT', url: `/v1/instances/${id}/states/power`, headers: { ...auth(M1), ...headers }, payload: '{"target":"on"}' });
      expect(res.statusCode).toBe(202);
    }
  });

  it.each([
    ['/v1/p1/instances?foo=1', 'v1'],
    ['/v1/p1/instances/{id}/status?verbose', 'v1'],
    ['/v1/nodes?x=2', 'v1'],
    ['/healthz?probe=1', 'v1'],
    ['/v2/p1/servers/{id}?fields=name', 'nova'],
    ['/v2/p1/servers/{id}/os-instance-actions?x=1', 'nova'],
    ['/v2.1/p1/os-fping?all_tenants=0&tenant=p2', 'nova'],
  ] as const)('an unknown query parameter (%s) -> 400 naming it, in the %s family', async (url, family) => {
    const res = await h.app.inject({ method: 'GET', url: url.replace('{id}', id), headers: auth(url.startsWith('/v1/nodes') ? ADMIN : M1) });
    expect(res.statusCode, res.body).toBe(400);
    const msg = family === 'v1' ? res.json().error_msg : res.json().badRequest.message;
    expect(msg).toMatch(/querystring: unknown parameter '(foo|verbose|x|probe|fields|tenant)'/);
    if (family === 'nova') expect(res.json().badRequest.code).toBe(400);
  });

  it.each([
    ['/v1/p1/instances/{long}', 'v1', 'Instance'],
    ['/v1/instances/{long}/states', 'v1', 'Instance'],
    ['/v1/nodes/{long}', 'v1', 'Node'],
    ['/v2/p1/servers/{long}', 'nova', 'Instance'],
    ['/v2.1/p1/os-fping/{long}', 'nova', 'Instance'],
    ['/v2/p1/servers/{id}/os-instance-actions/req-{long}', 'nova', 'Action'],
    ['/v2/p1/servers/{id}/os-instance-actions/{id}', 'nova', 'Action'],
  ] as const)('a malformed or overlong id (%s) -> 404, quoting at most 64 characters', async (url, family, what) => {
    const long = `${id}${'f'.repeat(300)}`;
    const res = await h.app.inject({ method: 'GET', url: url.replace('{long}', long).replaceAll('{id}', id), headers: auth(url.startsWith('/v1/nodes') ? ADMIN : M1) });
    expect(res.statusCode).toBe(404);
    const msg: string = family === 'v1' ? res.json().error_msg : res.json().itemNotFound.message;
    expect(msg).toContain(what);
    expect(msg).not.toContain('f'.repeat(65));
    expect(h.svc.calls.filter((c) => c.method !== 'getInstance')).toEqual([]);
    // Auth still comes first (docs/api.md policy order).
    const anon = await h.app.inject({ method: 'GET', url: url.replace('{long}', long).replaceAll('{id}', id) });
    expect(anon.statusCode).toBe(401);
  });

  it('no error message quotes more than 64 characters of caller input (cut with an ellipsis)', async () => {
    const long = 'q'.repeat(500);
    const cases = [
      await create({ name: 'a', image_uuid: IMG, [long]: 1 }),
      await create(`{"name":"a","image_uuid":"${IMG}","${long}":1,"${long}":2}`, json),
      await create(`{"name": ${long}}`, json),
      await h.app.inject({ method: 'GET', url: `/v1/p1/instances?${long}=1`, headers: auth(M1) }),
      await h.app.inject({ method: 'GET', url: `/v2.1/p1/os-fping?include=${long}`, headers: auth(M1) }),
      await h.app.inject({ method: 'GET', url: `/v1/${long}/instances`, headers: auth(M1) }),
      await h.app.inject({ method: 'GET', url: `/v1/p1/${long}`, headers: auth(M1) }),
      await h.app.inject({ method: 'GET', url: `/v2/p1/${long}`, headers: auth(M1) }),
      await h.app.inject({ method: 'PUT', url: `/v1/instances/${id}/states/power`, headers: { ...auth(M1), 'content-type': `application/json; charset=${long}` }, payload: '{}' }),
      await h.app.inject({ method: 'PUT', url: `/v1/instances/${id}/states/power`, headers: { ...auth(M1), 'content-type': 'application/json', 'content-encoding': long }, payload: '{}' }),
    ];
    for (const res of cases) {
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.body, res.body).not.toContain('q'.repeat(65));
    }
    expect(cases[0]!.json().error_msg).toContain(`'${'q'.repeat(64)}…'`);
  });
});
