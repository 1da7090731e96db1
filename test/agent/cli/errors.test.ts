import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../../agent/cli/metalctl.js';
import { INSTANCE_ID, PROJECT, instanceView } from './fixtures.js';
import { TOKEN, cli, tempFiles } from './helpers.js';
import { Sink, startStub, type RecordedRequest, type Stub } from './stub-server.js';

let stub: Stub;
beforeAll(async () => {
  stub = await startStub(() => ({ status: 200, body: { instances: [instanceView()] } }));
});
afterAll(async () => {
  await stub.close();
});
beforeEach(() => {
  stub.requests.length = 0;
  stub.route = () => ({ status: 200, body: { instances: [instanceView()] } });
});

const P = ['--project', PROJECT];

describe('token handling', () => {
  it.each([
    [['--token', 'sekrit-value', 'instance', 'list']],
    [['instance', 'list', '--token=sekrit-value']],
    [['--auth-token', 'sekrit-value', 'node', 'list']],
    [['instance', 'change-password', INSTANCE_ID, '--password=sekrit-value']],
    [['instance', 'create', '--name', 'a', '--image', 'b', '--user-data', 'sekrit-value']],
  ])('a secret on argv is refused (exit 2), never echoed, nothing sent: %j', async (argv) => {
    const r = await cli(stub.url, [...argv, ...P]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --[a-z-]+ is refused: secrets never go on the command line/);
    expect(r.stderr + r.stdout).not.toContain('sekrit-value');
    expect(stub.requests).toHaveLength(0);
  });

  it('--token-file beats METALCTL_TOKEN_FILE beats METALCTL_TOKEN; whitespace is trimmed', async () => {
    const f = tempFiles({ a: 'token-from-flag\n', b: '  token-from-env-file\n' });
    await cli(stub.url, ['--token-file', f.a as string, 'instance', 'list', ...P], { METALCTL_TOKEN_FILE: f.b });
    await cli(stub.url, ['instance', 'list', ...P], { METALCTL_TOKEN_FILE: f.b });
    await cli(stub.url, ['instance', 'list', ...P]);
    expect(stub.requests.map((r: RecordedRequest) => r.headers['x-auth-token'])).toEqual(['token-from-flag', 'token-from-env-file', TOKEN]);
  });

  it('no token, an empty token file or an unreadable one: usage error, nothing sent', async () => {
    const f = tempFiles({ empty: '\n' });
    let r = await cli(stub.url, ['instance', 'list', ...P], { METALCTL_TOKEN: undefined });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: no API token: use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN\n');
    r = await cli(stub.url, ['--token-file', f.empty as string, 'instance', 'list', ...P]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is empty');
    r = await cli(stub.url, ['--token-file', '/nonexistent/token', 'instance', 'list', ...P]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cannot read token file '/nonexistent/token': ENOENT");
    expect(stub.requests).toHaveLength(0);
  });

  it('--help says why there is no token option', async () => {
    const r = await cli(stub.url, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--token-file <path>');
    expect(r.stdout).toContain('There is deliberately no option that takes the token itself');
    expect(r.stdout).toMatch(/visible to every user of the host \(ps/);
  });
});

describe('usage errors', () => {
  it('missing project names the option and the variable', async () => {
    const r = await cli(stub.url, ['instance', 'list'], { METALCTL_PROJECT: undefined });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: 'instance list' needs a project: give --project ID or set METALCTL_PROJECT\n");
    expect(stub.requests).toHaveLength(0);
  });

  it.each([
    [[]],
    [['instance']],
    [['frobnicate']],
    [['instance', 'show']],
    [['instance', 'list', '--bogus']],
    [['--timeout', '0', 'node', 'list']],
    [['--url', 'ftp://x', 'node', 'list']],
  ])('exit 2 for %j', async (argv) => {
    const r = await cli(stub.url, argv);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toBe('');
    expect(stub.requests).toHaveLength(0);
  });
});

describe('API errors', () => {
  it('v1 error body: error_msg, status and request id; exit 1', async () => {
    stub.route = () => ({
      status: 404,
      body: { error_code: 'AGENT_ERR_NOT_FOUND', error_msg: `Instance ${INSTANCE_ID} could not be found.` },
      headers: { 'X-Compute-Request-Id': 'req-11111111-2222-4333-8444-555555555555' },
    });
    const r = await cli(stub.url, ['instance', 'show', INSTANCE_ID, ...P]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`error: Instance ${INSTANCE_ID} could not be found. (HTTP 404, request req-11111111-2222-4333-8444-555555555555)\n`);
  });

  it('nova fault on v2 paths: the fault message', async () => {
    stub.route = () => ({
      status: 400,
      body: { badRequest: { message: "Malformed request URL: URL's project_id 'x' doesn't match Context's project_id 'y'", code: 400 } },
      headers: { 'X-Compute-Request-Id': 'req-1b8184fd-d518-45e6-a99f-8cbb22676d08' },
    });
    const r = await cli(stub.url, ['instance', 'actions', INSTANCE_ID, ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: Malformed request URL: URL's project_id 'x' doesn't match Context's project_id 'y' (HTTP 400, request req-1b8184fd-d518-45e6-a99f-8cbb22676d08)\n",
    );
  });

  it('409 on power (locked) and 401 are errors too, also with --json', async () => {
    stub.route = () => ({ status: 409, body: { error_code: 'AGENT_ERR_LOCKED', error_msg: 'instance is locked by reinstall' } });
    let r = await cli(stub.url, ['--json', 'instance', 'power', INSTANCE_ID, 'off']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: instance is locked by reinstall \(HTTP 409, request req-[0-9a-f-]+\)\n$/);
    stub.route = () => ({ status: 401, body: { error_code: 'AGENT_ERR_UNAUTHORIZED', error_msg: 'The request you have made requires authentication.' } });
    r = await cli(stub.url, ['node', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('requires authentication. (HTTP 401');
  });

  it('a non-JSON error body is shown as text; control characters are escaped', async () => {
    stub.route = () => ({ status: 502, text: 'Bad Gateway\x1b[2J' });
    const r = await cli(stub.url, ['node', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Bad Gateway\\x1b\[2J \(HTTP 502, request req-/);
  });
});

describe('connection problems', () => {
  it('connection refused names the URL, exit 1', async () => {
    const srv = createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address() as AddressInfo;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    const url = `http://127.0.0.1:${port}`;
    const r = await cli(url, ['instance', 'list', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: cannot connect to metald at ${url}: connection refused (is metald running? set --url or METALCTL_URL)\n`);
  });

  it('--timeout bounds a request that never answers', async () => {
    stub.route = () => ({ status: 200, hang: true });
    const started = Date.now();
    const r = await cli(stub.url, ['--timeout', '0.3', 'node', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: no answer from metald at ${stub.url} within 0.3 s (--timeout)\n`);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('the injected fetch is used, --url wins over METALCTL_URL', async () => {
    const seen: string[] = [];
    const stdout = new Sink();
    const stderr = new Sink();
    const code = await run(['--url', 'http://metald.example:6385/', 'node', 'list'], {
      stdout,
      stderr,
      env: { METALCTL_TOKEN: TOKEN, METALCTL_URL: 'http://ignored' },
      fetch: async (input) => {
        seen.push(input);
        return new Response(JSON.stringify({ nodes: [] }), { status: 200, headers: { 'X-Compute-Request-Id': 'req-x' } });
      },
    });
    expect(code).toBe(0);
    expect(seen).toEqual(['http://metald.example:6385/v1/nodes']);
    expect(stdout.text).toBe('ID  NAME  TYPE  POWER  MAINTENANCE  INSTANCE  LAST_ERROR\n');
  });
});
