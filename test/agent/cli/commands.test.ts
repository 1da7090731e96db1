import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ACTION_ID,
  IMAGE_ID,
  INSTANCE_ID,
  NET_ID,
  NODE_ID,
  PROJECT,
  TYPE_ID,
  actionDetail,
  actionsList,
  instanceView,
  nodeView,
} from './fixtures.js';
import { TOKEN, cli, tempFiles } from './helpers.js';
import { startStub, type RecordedRequest, type Stub, type StubAnswer } from './stub-server.js';

/** Answers every endpoint of design 4.2 with seed-shaped JSON. */
function seedRoutes(req: RecordedRequest): StubAnswer | undefined {
  const p = `/v1/${PROJECT}/instances`;
  const key = `${req.method} ${req.url}`;
  const table: Record<string, StubAnswer> = {
    [`GET ${p}`]: { status: 200, body: { instances: [instanceView(), instanceView({ uuid: 'f5e6fd6d-c0a3-4f9e-aabf-d69196b6d11a', name: 'db-long-name-1', status: 'stopped', power_state: 'power off', network_info: {} })] } },
    [`POST ${p}`]: { status: 201, body: instanceView({ status: 'pending', power_state: null }), headers: { Location: `${p}/${INSTANCE_ID}` } },
    [`GET ${p}/${INSTANCE_ID}`]: { status: 200, body: instanceView() },
    [`DELETE ${p}/${INSTANCE_ID}`]: { status: 202 },
    [`GET ${p}/${INSTANCE_ID}/status`]: { status: 200, body: { state: 'stopped', operation_state: 'install-succeed', error: null } },
    [`POST ${p}/${INSTANCE_ID}/actions`]: { status: 202, body: { request_id: ACTION_ID } },
    [`GET /v1/instances/${INSTANCE_ID}/states`]: { status: 200, body: { power_state: 'power on', target_power_state: null } },
    [`PUT /v1/instances/${INSTANCE_ID}/states/power`]: { status: 202 },
    [`GET /v2/${PROJECT}/servers/${INSTANCE_ID}/os-instance-actions`]: { status: 200, body: actionsList },
    [`GET /v2/${PROJECT}/servers/${INSTANCE_ID}/os-instance-actions/${ACTION_ID}`]: { status: 200, body: actionDetail },
    [`GET /v2.1/${PROJECT}/os-fping/${INSTANCE_ID}`]: { status: 200, body: { server: { alive: false, id: INSTANCE_ID, project_id: PROJECT } } },
    [`GET /v2.1/${PROJECT}/os-fping`]: { status: 200, body: { servers: [{ alive: true, id: INSTANCE_ID, project_id: PROJECT }] } },
    [`GET /v2.1/${PROJECT}/os-fping?all_tenants=1`]: { status: 200, body: { servers: [{ alive: true, id: INSTANCE_ID, project_id: PROJECT }, { alive: false, id: 'f5e6fd6d-c0a3-4f9e-aabf-d69196b6d11a', project_id: 'openstack' }] } },
    ['GET /v1/nodes']: { status: 200, body: { nodes: [nodeView(), nodeView({ uuid: '1b8c5f0e-0000-4000-8000-000000000002', name: 'node-02', maintenance: true, maintenance_reason: 'disk', power_state: null, instance_uuid: null, last_error: { error_code: 'BMC_ERR_UNREACHABLE', error_msg: 'BMC 10.0.1.22 does not answer', error_type: 'bmc_unreachable_error' } })] } },
    [`GET /v1/nodes/${NODE_ID}`]: { status: 200, body: nodeView() },
    [`PUT /v1/nodes/${NODE_ID}/states/power`]: { status: 202 },
    [`PUT /v1/nodes/${NODE_ID}/maintenance`]: { status: 200, body: nodeView({ maintenance: true, maintenance_reason: 'fan' }) },
  };
  return table[key];
}

let stub: Stub;
beforeAll(async () => {
  stub = await startStub(seedRoutes);
});
afterAll(async () => {
  await stub.close();
});
beforeEach(() => {
  stub.requests.length = 0;
  stub.route = seedRoutes;
});

const P = ['--project', PROJECT];
const only = (): RecordedRequest => {
  expect(stub.requests).toHaveLength(1);
  return stub.requests[0] as RecordedRequest;
};

describe('metalctl instance (read)', () => {
  it('list: GET /v1/{project}/instances with the token header, aligned table', async () => {
    const r = await cli(stub.url, ['instance', 'list', ...P]);
    expect(r.code).toBe(0);
    const req = only();
    expect(req.method).toBe('GET');
    expect(req.url).toBe(`/v1/${PROJECT}/instances`);
    expect(req.headers['x-auth-token']).toBe(TOKEN);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATUS\s+POWER\s+ADDRESSES\s+CREATED$/);
    expect(lines[1]).toContain(INSTANCE_ID);
    expect(lines[1]).toContain('10.0.0.102');
    // columns aligned: NAME starts at the same offset on every line
    const col = (lines[0] as string).indexOf('NAME');
    expect((lines[1] as string).slice(col)).toMatch(/^Testvm1 /);
    expect((lines[2] as string).slice(col)).toMatch(/^db-long-name-1 /);
    expect((lines[0] as string).indexOf('STATUS')).toBe((lines[2] as string).indexOf('stopped'));
    expect(r.stderr).toBe('');
  });

  it('list --json prints the API body as is', async () => {
    const r = await cli(stub.url, ['--json', 'instance', 'list', ...P]);
    expect(r.code).toBe(0);
    const parsed = JSON.parse(r.stdout) as { instances: unknown[] };
    expect(parsed.instances).toHaveLength(2);
    expect(r.stdout.trimEnd()).toBe(JSON.stringify(seedRoutes({ method: 'GET', url: `/v1/${PROJECT}/instances`, headers: {}, text: '', body: undefined })?.body));
  });

  it('project comes from METALCTL_PROJECT too, and options may follow the command', async () => {
    const r = await cli(stub.url, ['instance', 'show', INSTANCE_ID], { METALCTL_PROJECT: PROJECT });
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v1/${PROJECT}/instances/${INSTANCE_ID}`);
    expect(r.stdout).toMatch(/^uuid\s+cbce6087/m);
    expect(r.stdout).toMatch(/^status\s+running$/m);
    expect(r.stdout).toMatch(new RegExp(`^network ${NET_ID}\\s+private port_type=normal mac=fa:16:3e:1c:d0:5b ips=10.0.0.102$`, 'm'));
  });

  it('status: key/value of state, operation_state, error', async () => {
    const r = await cli(stub.url, ['instance', 'status', INSTANCE_ID, ...P]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v1/${PROJECT}/instances/${INSTANCE_ID}/status`);
    expect(r.stdout).toBe('state            stopped\noperation_state  install-succeed\nerror            -\n');
  });

  it('status shows the error object', async () => {
    stub.route = () => ({ status: 200, body: { state: 'error', operation_state: 'install-failed', error: { error_code: 'BMC_ERR_AUTH', error_msg: 'BMC refused the credentials', error_type: 'install_error' } } });
    const r = await cli(stub.url, ['instance', 'status', INSTANCE_ID, ...P]);
    expect(r.stdout).toContain('error_type       install_error');
    expect(r.stdout).toContain('error_msg        BMC refused the credentials');
  });

  it('states: GET /v1/instances/{id}/states needs no project', async () => {
    const r = await cli(stub.url, ['instance', 'states', INSTANCE_ID]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v1/instances/${INSTANCE_ID}/states`);
    expect(r.stdout).toBe('power_state         power on\ntarget_power_state  -\n');
  });

  it('actions: list and one action with its events and traceback', async () => {
    let r = await cli(stub.url, ['instance', 'actions', INSTANCE_ID, ...P]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v2/${PROJECT}/servers/${INSTANCE_ID}/os-instance-actions`);
    expect(r.stdout).toMatch(/^REQUEST_ID\s+ACTION\s+START_TIME\s+USER\s+MESSAGE\n/);
    expect(r.stdout).toContain(`${ACTION_ID}  create`);
    stub.requests.length = 0;
    r = await cli(stub.url, ['instance', 'actions', INSTANCE_ID, ACTION_ID, ...P]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v2/${PROJECT}/servers/${INSTANCE_ID}/os-instance-actions/${ACTION_ID}`);
    expect(r.stdout).toMatch(/^action\s+create$/m);
    expect(r.stdout).toMatch(/^power_on\s+2026-06-08T10:00:02.000000\s+2026-06-08T10:00:09.000000\s+Error$/m);
    expect(r.stdout).toContain('traceback of power_on:\n  BMC_ERR_UNREACHABLE: 10.0.1.21:623\n  no answer after 3 tries\n');
  });

  it('ping and ping-all (--all-tenants)', async () => {
    let r = await cli(stub.url, ['instance', 'ping', INSTANCE_ID, ...P]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v2.1/${PROJECT}/os-fping/${INSTANCE_ID}`);
    expect(r.stdout).toMatch(new RegExp(`^${INSTANCE_ID}\\s+${PROJECT}\\s+no$`, 'm'));
    stub.requests.length = 0;
    r = await cli(stub.url, ['instance', 'ping-all', ...P]);
    expect(only().url).toBe(`/v2.1/${PROJECT}/os-fping`);
    stub.requests.length = 0;
    r = await cli(stub.url, ['instance', 'ping-all', '--all-tenants', ...P]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v2.1/${PROJECT}/os-fping?all_tenants=1`);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(3);
    expect(r.stdout).toMatch(/openstack\s+no$/m);
  });
});

describe('metalctl instance (mutating)', () => {
  it('create: POST with the flat body, secrets read from files, extensions under extra', async () => {
    const f = tempFiles({
      'id.pub': '# ops keys\nssh-ed25519 AAAAC3Nza ops@a\n\nssh-rsa AAAAB3Nza ops@b\n',
      'hash': '$6$salt$0123456789abcdef\n',
      'ud.yaml': '#cloud-config\npackages: [nginx]\n',
    });
    const r = await cli(stub.url, [
      'instance', 'create', ...P,
      '--name', 'Testvm1', '--image', IMAGE_ID, '--type', TYPE_ID,
      '--network', `${NET_ID}:normal`, '--network', 'b0b1c2d3-0000-4000-8000-00000000bbbb',
      '--node', NODE_ID, '--hostname', 'web-1',
      '--ssh-key-file', f['id.pub'] as string,
      '--password-hash-file', f.hash as string, '--user-data-file', f['ud.yaml'] as string,
      '--metadata', 'role=web', '--metadata', 'tier=a=b', '--az', 'rack-a12', '--description', 'web server',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const req = only();
    expect(req.method).toBe('POST');
    expect(req.url).toBe(`/v1/${PROJECT}/instances`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-auth-token']).toBe(TOKEN);
    expect(req.body).toEqual({
      name: 'Testvm1',
      description: 'web server',
      instance_type_uuid: TYPE_ID,
      image_uuid: IMAGE_ID,
      availability_zone: 'rack-a12',
      networks: [{ uuid: NET_ID, port_type: 'normal' }, { uuid: 'b0b1c2d3-0000-4000-8000-00000000bbbb' }],
      metadata: { role: 'web', tier: 'a=b' },
      extra: {
        node_id: NODE_ID,
        hostname: 'web-1',
        ssh_keys: ['ssh-ed25519 AAAAC3Nza ops@a', 'ssh-rsa AAAAB3Nza ops@b'],
        password_hash: '$6$salt$0123456789abcdef',
        user_data: '#cloud-config\npackages: [nginx]\n',
      },
    });
    expect(r.stdout).toMatch(/^status\s+pending$/m);
  });

  it('create: minimal body has no extra; missing --name is a usage error', async () => {
    let r = await cli(stub.url, ['instance', 'create', ...P, '--name', 'a', '--image', IMAGE_ID, '--json']);
    expect(r.code).toBe(0);
    expect(only().body).toEqual({ name: 'a', image_uuid: IMAGE_ID });
    expect(JSON.parse(r.stdout)).toMatchObject({ uuid: INSTANCE_ID, status: 'pending' });
    stub.requests.length = 0;
    r = await cli(stub.url, ['instance', 'create', ...P, '--image', IMAGE_ID]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--name <name>' not specified");
    expect(stub.requests).toHaveLength(0);
  });

  it('create: unreadable secret file and bad --metadata are usage errors, nothing sent', async () => {
    let r = await cli(stub.url, ['instance', 'create', ...P, '--name', 'a', '--image', IMAGE_ID, '--password-hash-file', '/nonexistent/hash']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: cannot read --password-hash-file '/nonexistent/hash': ENOENT\n");
    r = await cli(stub.url, ['instance', 'create', ...P, '--name', 'a', '--image', IMAGE_ID, '--metadata', 'novalue']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--metadata 'novalue': expected KEY=VALUE");
    expect(stub.requests).toHaveLength(0);
  });

  it('delete: DELETE, 202, prints the request id', async () => {
    const r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, ...P]);
    expect(r.code).toBe(0);
    const req = only();
    expect(req.method).toBe('DELETE');
    expect(req.url).toBe(`/v1/${PROJECT}/instances/${INSTANCE_ID}`);
    expect(r.stdout).toMatch(new RegExp(`^delete of ${INSTANCE_ID} accepted \\(request req-[0-9a-f-]+\\)\\n$`));
  });

  it.each([
    ['on', { target: 'power on' }],
    ['off', { target: 'power off' }],
    ['reboot', { target: 'rebooting' }],
    ['soft-off', { target: 'soft power off' }],
    ['soft-reboot', { target: 'soft rebooting' }],
  ])('power %s: PUT /v1/instances/{id}/states/power', async (word, body) => {
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, word]);
    expect(r.code).toBe(0);
    const req = only();
    expect(req.method).toBe('PUT');
    expect(req.url).toBe(`/v1/instances/${INSTANCE_ID}/states/power`);
    expect(req.body).toEqual(body);
  });

  it('power soft-off --timeout-s sends timeout; --timeout-s with a hard target or a bad word is a usage error', async () => {
    let r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'soft-off', '--timeout-s', '300']);
    expect(r.code).toBe(0);
    expect(only().body).toEqual({ target: 'soft power off', timeout: 300 });
    stub.requests.length = 0;
    r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'off', '--timeout-s', '300']);
    expect(r.code).toBe(2);
    r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'sideways']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("power target 'sideways'");
    r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'soft-off', '--timeout-s', 'soon']);
    expect(r.code).toBe(2);
    expect(stub.requests).toHaveLength(0);
  });

  it('OS operations: POST .../actions with exactly one key', async () => {
    const f = tempFiles({ hash: '$6$x$y\n', 'k.pub': 'ssh-ed25519 AAAA k\n', ud: 'echo hi\n' });
    const cases: [string[], unknown][] = [
      [['reinstall', INSTANCE_ID], { reinstall: {} }],
      [
        ['reinstall', INSTANCE_ID, '--image', IMAGE_ID, '--hostname', 'h', '--ssh-key-file', f['k.pub'] as string, '--password-hash-file', f.hash as string, '--user-data-file', f.ud as string],
        { reinstall: { image_uuid: IMAGE_ID, hostname: 'h', ssh_keys: ['ssh-ed25519 AAAA k'], password_hash: '$6$x$y', user_data: 'echo hi\n' } },
      ],
      [['switch-install', INSTANCE_ID, '--image', IMAGE_ID], { 'switch-install': { image_uuid: IMAGE_ID } }],
      [
        ['modify-ip', INSTANCE_ID, '--network', `${NET_ID}=10.0.0.150`, '--network', 'b0b1c2d3-0000-4000-8000-00000000bbbb:sriov', '--network', 'c0b1c2d3-0000-4000-8000-00000000cccc=fd00::5'],
        {
          'modify-ip': {
            networks: [
              { uuid: NET_ID, fixed_ip: '10.0.0.150' },
              { uuid: 'b0b1c2d3-0000-4000-8000-00000000bbbb', port_type: 'sriov' },
              { uuid: 'c0b1c2d3-0000-4000-8000-00000000cccc', fixed_ip: 'fd00::5' },
            ],
          },
        },
      ],
      [['uninstall', INSTANCE_ID], { uninstall: {} }],
      [['change-password', INSTANCE_ID, '--password-hash-file', f.hash as string], { 'change-password': { password_hash: '$6$x$y' } }],
      [['retry', INSTANCE_ID], { retry: {} }],
    ];
    for (const [args, body] of cases) {
      stub.requests.length = 0;
      const r = await cli(stub.url, ['instance', ...args, ...P]);
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.code).toBe(0);
      const req = only();
      expect(req.method).toBe('POST');
      expect(req.url).toBe(`/v1/${PROJECT}/instances/${INSTANCE_ID}/actions`);
      expect(req.body).toEqual(body);
      expect(r.stdout).toBe(`${args[0]} of ${INSTANCE_ID} accepted (request ${ACTION_ID})\n`);
    }
  });

  it('OS operations: required options are enforced', async () => {
    for (const args of [['switch-install', INSTANCE_ID], ['modify-ip', INSTANCE_ID], ['change-password', INSTANCE_ID]]) {
      const r = await cli(stub.url, ['instance', ...args, ...P]);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect(stub.requests).toHaveLength(0);
  });

  it('--json on an action prints the body as is', async () => {
    const r = await cli(stub.url, ['--json', 'instance', 'retry', INSTANCE_ID, ...P]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`{"request_id":"${ACTION_ID}"}\n`);
  });
});

describe('metalctl agent status', () => {
  const upstream = {
    state: 'streaming', since: '2026-12-02T10:00:00.000Z', url: 'wss://controller.example/v1/agents', attempts: 0, last_error: null,
    last_ack_seq: 1180, last_ack_at: '2026-12-02T10:05:00.000Z', sent_seq: 1187, generation: 3, welcomes: 2, last_seq: 1187,
  };
  it('shows the link: state, last ack, what the controller lacks; exit 0 when ready', async () => {
    stub.route = (req) => (req.url === '/readyz' ? { status: 200, body: { status: 'ready', reasons: [], liveness: { engine: 'raw', reason: 'configured' }, upstream } } : undefined);
    const r = await cli(stub.url, ['agent', 'status']);
    expect(r.code).toBe(0);
    expect(only().url).toBe('/readyz');
    expect(r.stdout).toMatch(/^ready\s+yes$/m);
    expect(r.stdout).toMatch(/^link state\s+streaming since 2026-12-02T10:00:00.000Z$/m);
    expect(r.stdout).toMatch(/^last ack\s+seq 1180 at 2026-12-02T10:05:00.000Z$/m);
    expect(r.stdout).toMatch(/^not acked\s+7$/m);
    expect(r.stdout).toMatch(/^generation\s+3$/m);
  });

  it('standalone says so; not ready (503) prints the reasons and exits 1', async () => {
    stub.route = (req) =>
      req.url === '/readyz' ? { status: 503, body: { status: 'not ready', reasons: ['start-up recovery and power reads not done'], upstream: { ...upstream, state: 'disabled', url: null } } } : undefined;
    const r = await cli(stub.url, ['agent', 'status']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ready\s+no: start-up recovery and power reads not done$/m);
    expect(r.stdout).toMatch(/^upstream\s+none \(standalone: no upstream.url\)$/m);
  });
});

describe('metalctl node', () => {
  it('list: admin table with power, maintenance and last error', async () => {
    const r = await cli(stub.url, ['node', 'list']);
    expect(r.code).toBe(0);
    expect(only().url).toBe('/v1/nodes');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+TYPE\s+POWER\s+MAINTENANCE\s+INSTANCE\s+LAST_ERROR$/);
    expect(lines[1]).toMatch(new RegExp(`^${NODE_ID}\\s+node-01\\s+small\\s+power on\\s+no\\s+${INSTANCE_ID}\\s+-$`));
    expect(lines[2]).toMatch(/node-02\s+small\s+-\s+yes \(disk\)\s+-\s+BMC 10.0.1.22 does not answer$/);
  });

  it('show: flattened key/value', async () => {
    const r = await cli(stub.url, ['node', 'show', NODE_ID]);
    expect(r.code).toBe(0);
    expect(only().url).toBe(`/v1/nodes/${NODE_ID}`);
    expect(r.stdout).toMatch(/^bmc\.address\s+10\.0\.1\.21$/m);
    expect(r.stdout).toMatch(/^bmc\.drivers\s+ipmi$/m);
    expect(r.stdout).toMatch(/^macs\[0\]\.mac\s+fa:16:3e:1c:d0:5a$/m);
  });

  it('power and maintenance', async () => {
    let r = await cli(stub.url, ['node', 'power', NODE_ID, 'soft-reboot', '--timeout-s', '60']);
    expect(r.code).toBe(0);
    let req = only();
    expect([req.method, req.url]).toEqual(['PUT', `/v1/nodes/${NODE_ID}/states/power`]);
    expect(req.body).toEqual({ target: 'soft rebooting', timeout: 60 });
    stub.requests.length = 0;
    r = await cli(stub.url, ['node', 'maintenance', NODE_ID, 'on', '--reason', 'fan']);
    expect(r.code).toBe(0);
    req = only();
    expect([req.method, req.url]).toEqual(['PUT', `/v1/nodes/${NODE_ID}/maintenance`]);
    expect(req.body).toEqual({ maintenance: true, reason: 'fan' });
    expect(r.stdout).toMatch(/^maintenance_reason\s+fan$/m);
    stub.requests.length = 0;
    r = await cli(stub.url, ['node', 'maintenance', NODE_ID, 'off']);
    expect(only().body).toEqual({ maintenance: false });
    r = await cli(stub.url, ['node', 'maintenance', NODE_ID, 'maybe']);
    expect(r.code).toBe(2);
    r = await cli(stub.url, ['node', 'maintenance', NODE_ID, 'off', '--reason', 'x']);
    expect(r.code).toBe(2);
  });
});
