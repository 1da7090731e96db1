/** Bad input: a 400 that names what is wrong, and nothing called on the service. Identifiers: 400 / 404 rules. */
import { beforeEach, describe, expect, it } from 'vitest';
import { M1, REQ_ID_RE, auth, harness, type Harness } from './helpers.js';

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

  it('malformed JSON, empty body, wrong content type, oversized body: 400 and nothing called', async () => {
    const malformed = await create('{"name": "a",', { 'content-type': 'application/json' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error_msg).toMatch(/JSON/);

    const empty = await h.app.inject({ method: 'POST', url: '/v1/p1/instances', headers: { ...auth(M1), 'content-type': 'application/json' } });
    expect(empty.statusCode).toBe(400);

    const text = await create('name=a', { 'content-type': 'text/plain' });
    expect(text.statusCode).toBe(400);
    expect(text.json().error_msg).toContain('Content-Type');

    const form = await create('name=a', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.statusCode).toBe(400);

    const big = await create({ name: 'a', image_uuid: IMG, description: 'x'.repeat(20_000) });
    expect(big.statusCode).toBe(400);
    expect(big.json().error_msg).toContain('16384 bytes');

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
    const v21 = await h.app.inject({ method: 'PATCH', url: '/v2.1/p1/os-fping', headers: auth(M1) });
    expect(v21.statusCode).toBe(404);
    expect(v21.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
  });
});
