/**
 * Every response carries X-Compute-Request-Id and the error shape of its path family, also those produced before
 * routing: raw bytes over a real socket (net.connect), for what Node's parser refuses, and inject for 405 / 404.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { M1, REQ_ID_RE, auth, harness, type Harness } from './helpers.js';

let h: Harness;
let port: number;
beforeAll(async () => {
  h = await harness();
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const a = h.app.server.address();
  port = typeof a === 'object' && a !== null ? a.port : 0;
});
afterAll(async () => {
  await h.app.close();
});

interface Raw {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Sends bytes, reads until the server closes (or the first full response), parses status, headers, JSON body. */
function raw(bytes: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const bodyText = rest.join('\r\n\r\n');
      let body: unknown = bodyText;
      try {
        body = JSON.parse(bodyText);
      } catch {
        // not JSON: left as text, the assertion says so
      }
      resolve({ status: Number(lines[0]?.split(' ')[1]), headers, body });
    };
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', done);
    s.on('error', reject);
    s.setTimeout(3000, () => {
      s.destroy();
      done();
    });
    s.write(bytes);
  });
}

const TOKEN = 'tok-member-p1';

describe('answers produced before routing, over a real socket', () => {
  it.each([
    ['bad request line', 'GET /v1/p1/instances HTTP/1.1 extra\r\nHost: x\r\n\r\n', 400, 'v1'],
    ['unknown method', `FROB /v2/p1/servers HTTP/1.1\r\nHost: x\r\n\r\n`, 405, 'nova'],
    ['header too large', `GET /v2.1/p1/os-fping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'nova'],
    ['bad Content-Length', `POST /v1/p1/instances HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n`, 400, 'v1'],
    ['Content-Length with chunking', `POST /v1/p1/instances HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'v1'],
    ['bad chunk size', `POST /v2/p1/servers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, 400, 'nova'],
    ['missing Host', `GET /v1/p1/instances HTTP/1.1\r\nX-Auth-Token: ${TOKEN}\r\n\r\n`, 400, 'v1'],
    ['Expect other than 100-continue', `POST /v2/p1/servers HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}`, 417, 'nova'],
  ] as const)('%s -> %i with the request id and the %s body', async (_name, bytes, status, family) => {
    const res = await raw(bytes);
    expect(res.status).toBe(status);
    expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    if (family === 'v1') expect(res.body).toEqual({ error_code: expect.stringMatching(/^AGENT_ERR_/), error_msg: expect.any(String) });
    else expect(res.body).toEqual({ [Object.keys(res.body as object)[0]!]: { message: expect.any(String), code: status } });
  });

  it('Expect: 100-continue still works', async () => {
    const res = await raw(`GET /v1/p1/instances HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKEN}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    expect([100, 200]).toContain(res.status);
  });
});

describe('a known path with a wrong method: 405 with Allow; unknown routes: 401 before 404', () => {
  it.each([
    ['PATCH', '/v2.1/p1/os-fping', 'nova', 'GET, HEAD'],
    ['DELETE', '/v2/p1/servers/{id}', 'nova', 'GET, HEAD'],
    ['POST', '/v1/p1/instances/{id}', 'v1', 'DELETE, GET, HEAD'],
    ['GET', '/v1/instances/{id}/states/power', 'v1', 'PUT'],
    ['PUT', '/healthz', 'v1', 'GET, HEAD'],
  ] as const)('%s %s -> 405 (%s) with Allow: %s', async (method, url, family, allow) => {
    const i = h.svc.addInstance();
    const res = await h.app.inject({ method, url: url.replace('{id}', i.id), headers: auth(M1) });
    expect(res.statusCode).toBe(405);
    expect(res.headers['allow']).toBe(allow);
    expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    if (family === 'nova') expect(res.json()).toEqual({ badMethod: { message: expect.stringContaining(allow), code: 405 } });
    else expect(res.json()).toEqual({ error_code: 'AGENT_ERR_METHOD_NOT_ALLOWED', error_msg: expect.stringContaining(allow) });
    expect(h.svc.mutations()).toEqual([]);
  });

  it('an unknown route without a token is 401 (the token is checked first), with one it is 404', async () => {
    for (const url of ['/v1/p1/volumes', '/v2/p1/flavors', '/nothing']) {
      const anon = await h.app.inject({ method: 'GET', url });
      expect(anon.statusCode, url).toBe(401);
      expect(anon.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
      expect((await h.app.inject({ method: 'GET', url, headers: auth(M1) })).statusCode, url).toBe(404);
    }
    const anon405 = await h.app.inject({ method: 'PATCH', url: '/v2.1/p1/os-fping' });
    expect(anon405.json()).toEqual({ unauthorized: { message: expect.any(String), code: 401 } });
  });
});
