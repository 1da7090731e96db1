/**
 * The seed contract end to end: the REAL daemon (dist/agent/main.js, a child process) on a free port, every seed path
 * called over real HTTP, status codes, headers and body shapes compared with shared/seeds/000-004 (design 4.2,
 * docs/api.md), then metalctl (dist/agent/cli/metalctl.js) against the same daemon.
 *
 * Lab: node-01 installs slowly (1.5 s, so an install can be watched and a power request meets its lock), node-02 has
 * no soft power (406), node-03 takes the injected install failure, node-04 stays free for the node API, node-05 is
 * the adopted node running seed 002's instance cbce6087-... (Testvm1, 127.0.2.2) of PROJECT.
 *
 * One daemon for the whole file; the tests run in order and build on each other (A is created before it is powered).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METALCTL, startDaemon, waitFor, type Daemon } from '../helpers/daemon.js';
import {
  ADMIN_PROJECT,
  ADMIN_TOKEN,
  ADOPTED_ID,
  IMAGE,
  MEMBER_TOKEN,
  NETWORK,
  OTHER_PROJECT,
  OTHER_TOKEN,
  PROJECT,
  TYPE_SMALL,
  nodeId,
  writeConfig,
} from '../helpers/harness.js';

type J = Record<string, unknown>;
const obj = (x: unknown): J => x as J;

const AGENT_ID = 'test-agent';
/** seed 002's error example: a token of project 01efe... asking for project 5d8b... (ADMIN_PROJECT). */
const SEED002_TOKEN = 'd'.repeat(32);
const SEED002_CTX_PROJECT = '01efe5374f674b508693a5301d47aeba';

const REQ_ID_RE = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** seed 004 (Ironic) created_at/updated_at: 2016-10-17T08:28:42.554036+00:00 */
const IRONIC_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;
/** seed 002 created/updated: 2014-07-24T00:26:07Z */
const NOVA_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
/** seed 002 OS-SRV-USG:*, seed 001 times: 2015-10-15T00:40:25.000000 */
const NOVA_MICRO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;

/** design 4.2: the create response (and show/list items). */
const INSTANCE_KEYS = [
  'uuid', 'name', 'description', 'instance_type_uuid', 'image_uuid', 'availability_zone', 'network_info', 'links',
  'status', 'power_state', 'project_id', 'user_id', 'created_at', 'updated_at',
].sort();
/** seed 002's execution-example response, every key. */
const SEED002_KEYS = [
  'status', 'updated', 'hostId', 'addresses', 'links', 'key_name', 'image', 'OS-EXT-STS:task_state', 'OS-EXT-STS:vm_state',
  'OS-SRV-USG:launched_at', 'flavor', 'id', 'security_groups', 'OS-SRV-USG:terminated_at', 'OS-EXT-AZ:availability_zone',
  'user_id', 'name', 'created', 'tenant_id', 'OS-DCF:diskConfig', 'os-extended-volumes:volumes_attached', 'accessIPv4',
  'accessIPv6', 'progress', 'OS-EXT-STS:power_state', 'config_drive', 'metadata',
].sort();
/** nova's extended server attributes: admins only (docs/api.md). */
const ADMIN_EXTRA_KEYS = ['OS-EXT-SRV-ATTR:host', 'OS-EXT-SRV-ATTR:hypervisor_hostname', 'OS-EXT-SRV-ATTR:instance_name'];
const ACTION_KEYS = ['action', 'instance_uuid', 'message', 'project_id', 'request_id', 'start_time', 'user_id'].sort();
const EVENT_KEYS = ['event', 'start_time', 'finish_time', 'result', 'traceback'].sort();
const MEMBER_USER = '9789b276da0643e8b88bc7d6b85cf939';

const keys = (x: unknown): string[] => Object.keys(obj(x)).sort();
const sha224 = (s: string): string => createHash('sha224').update(s, 'utf8').digest('hex');

let daemon: Daemon;
let dir: string;

interface Seen {
  method: string;
  path: string;
  status: number;
  requestId: string | null;
}
/** Every response the file received, for the X-Compute-Request-Id check at the end. */
const seen: Seen[] = [];

async function call(method: string, path: string, token: string | null, body?: unknown) {
  const r = await daemon.call(method, path, token, body);
  seen.push({ method, path, status: r.status, requestId: r.headers.get('x-compute-request-id') });
  return r;
}

interface Status {
  state: string;
  operation_state: string | null;
  error: { error_code: string; error_msg: string; error_type: string } | null;
}
async function status(id: string): Promise<Status> {
  const r = await call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN);
  expect(r.status).toBe(200);
  return r.body as Status;
}
async function states(id: string): Promise<{ power_state: string | null; target_power_state: string | null }> {
  const r = await call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN);
  expect(r.status).toBe(200);
  return r.body as { power_state: string | null; target_power_state: string | null };
}
async function server(id: string, token = MEMBER_TOKEN, project = PROJECT): Promise<J> {
  const r = await call('GET', `/v2/${project}/servers/${id}`, token);
  expect(r.status).toBe(200);
  expect(keys(r.body)).toEqual(['server']);
  return obj(obj(r.body)['server']);
}
/** Settled: no -processing, not pending/shutting-down, no target power state. */
async function settle(id: string, timeoutMs = 15_000): Promise<Status> {
  let s = await status(id);
  await waitFor(async () => {
    // target_power_state first: it is cleared in the same transaction that moves the state, so the status read
    // after it is the final one.
    const t = await states(id);
    s = await status(id);
    return !(s.operation_state ?? '').endsWith('-processing') && s.state !== 'pending' && s.state !== 'shutting-down' && t.target_power_state === null;
  }, timeoutMs, `instance ${id} to settle`);
  return s;
}
async function actionsOf(id: string, token = MEMBER_TOKEN, project = PROJECT): Promise<J[]> {
  const r = await call('GET', `/v2/${project}/servers/${id}/os-instance-actions`, token);
  expect(r.status).toBe(200);
  expect(keys(r.body)).toEqual(['instanceActions']);
  return obj(r.body)['instanceActions'] as J[];
}
async function actionOf(id: string, requestId: string, token = MEMBER_TOKEN, project = PROJECT): Promise<J> {
  const r = await call('GET', `/v2/${project}/servers/${id}/os-instance-actions/${requestId}`, token);
  expect(r.status).toBe(200);
  expect(keys(r.body)).toEqual(['instanceAction']);
  return obj(obj(r.body)['instanceAction']);
}
async function fping(id: string): Promise<J> {
  const r = await call('GET', `/v2.1/${PROJECT}/os-fping/${id}`, MEMBER_TOKEN);
  expect(r.status).toBe(200);
  expect(keys(r.body)).toEqual(['server']);
  const s = obj(obj(r.body)['server']);
  expect(keys(s)).toEqual(['alive', 'id', 'project_id']);
  return s;
}
async function create(name: string, node: number, extra: J = {}): Promise<{ id: string; requestId: string; res: Awaited<ReturnType<typeof call>> }> {
  const res = await call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name, image_uuid: IMAGE, extra: { node_id: nodeId(node) }, ...extra });
  expect(res.status).toBe(201);
  return { id: String(obj(res.body)['uuid']), requestId: res.headers.get('x-compute-request-id') ?? '', res };
}
function expectV1Error(r: { status: number; body: unknown }, status: number, code: string): void {
  expect(r.status).toBe(status);
  expect(keys(r.body)).toEqual(['error_code', 'error_msg']);
  expect(obj(r.body)['error_code']).toBe(code);
  expect(typeof obj(r.body)['error_msg']).toBe('string');
}
function expectNovaFault(r: { status: number; body: unknown }, status: number, fault: string): void {
  expect(r.status).toBe(status);
  expect(keys(r.body)).toEqual([fault]);
  const f = obj(obj(r.body)[fault]);
  expect(keys(f)).toEqual(['code', 'message']);
  expect(f['code']).toBe(status);
  expect(typeof f['message']).toBe('string');
}
/** Checks one server view against the seed's types. */
function expectServerTypes(s: J): void {
  expect([0, 1, 4]).toContain(s['OS-EXT-STS:power_state']);
  expect(s['created']).toMatch(NOVA_TIME_RE);
  expect(s['updated']).toMatch(NOVA_TIME_RE);
  for (const k of ['OS-SRV-USG:launched_at', 'OS-SRV-USG:terminated_at']) {
    if (s[k] !== null) expect(s[k]).toMatch(NOVA_MICRO_RE);
  }
  expect(s['OS-DCF:diskConfig']).toMatch(/^(MANUAL|AUTO)$/);
  expect(typeof s['OS-EXT-AZ:availability_zone']).toBe('string');
  expect(typeof s['accessIPv4']).toBe('string');
  expect(typeof s['accessIPv6']).toBe('string');
  expect(s['config_drive']).toBe('');
  expect(s['key_name']).toBeNull();
  expect(Array.isArray(s['security_groups'])).toBe(true);
  expect(s['os-extended-volumes:volumes_attached']).toEqual([]);
  expect(Number.isInteger(s['progress'])).toBe(true);
  expect(typeof s['metadata']).toBe('object');
  expect(s['hostId']).toMatch(/^[0-9a-f]{56}$/);
  for (const k of ['image', 'flavor']) {
    const ref = obj(s[k]);
    expect(keys(ref)).toEqual(['id', 'links']);
    const links = ref['links'] as J[];
    expect(links).toHaveLength(1);
    expect(links[0]!['rel']).toBe('bookmark');
  }
  const links = s['links'] as J[];
  expect(links.map((l) => l['rel'])).toEqual(['self', 'bookmark']);
  expect(String(links[0]!['href'])).toMatch(new RegExp(`/v2/[^/]+/servers/${String(s['id'])}$`));
  expect(String(links[1]!['href'])).toMatch(new RegExp(`/[^/]+/servers/${String(s['id'])}$`));
  for (const list of Object.values(obj(s['addresses']))) {
    for (const a of list as J[]) {
      expect(keys(a)).toEqual(['OS-EXT-IPS-MAC:mac_addr', 'OS-EXT-IPS:type', 'addr', 'version'].sort());
      expect([4, 6]).toContain(a['version']);
      expect(['fixed', 'floating']).toContain(a['OS-EXT-IPS:type']);
    }
  }
}
function expectActionShape(a: J, admin: boolean): void {
  expect(keys(a)).toEqual([...ACTION_KEYS, 'events'].sort());
  expect(a['start_time']).toMatch(NOVA_MICRO_RE);
  expect(a['request_id']).toMatch(REQ_ID_RE);
  for (const e of a['events'] as J[]) {
    expect(keys(e)).toEqual(EVENT_KEYS);
    expect(e['start_time']).toMatch(NOVA_MICRO_RE);
    if (e['finish_time'] !== null) expect(e['finish_time']).toMatch(NOVA_MICRO_RE);
    if (!admin) expect(e['traceback']).toBeNull();
  }
}

interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}
function metalctl(args: string[], tokenFile = 'member.token'): Promise<CtlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [METALCTL, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        METALCTL_URL: daemon.url,
        METALCTL_TOKEN_FILE: join(dir, tokenFile),
        METALCTL_PROJECT: tokenFile === 'admin.token' ? ADMIN_PROJECT : PROJECT,
        METALCTL_TOKEN: '',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`metalctl ${args.join(' ')} did not finish in 20 s:\n${stdout}\n${stderr}`));
    }, 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  const cfg = writeConfig({
    nodes: 4,
    adopt: true,
    fakeFor: (i) =>
      i === 1 ? '{power_delay: 5ms, install: 1500ms}' : i === 2 ? '{power_delay: 5ms, install: 30ms, supports_soft: false}' : undefined,
  });
  dir = cfg.dir;
  // A fourth token, of seed 002's error example's project, so its 400 can be compared letter for letter.
  writeFileSync(join(dir, 'seed002.token'), `${SEED002_TOKEN}\n`, { mode: 0o600 });
  const yaml = readFileSync(cfg.configPath, 'utf8');
  const anchor = `    - {token_file: ${join(dir, 'other.token')}`;
  expect(yaml).toContain(anchor);
  writeFileSync(
    cfg.configPath,
    yaml.replace(anchor, `    - {token_file: ${join(dir, 'seed002.token')}, project_id: ${SEED002_CTX_PROJECT}, user_id: u002, roles: [member]}\n${anchor}`),
  );
  daemon = await startDaemon(cfg.configPath);
  // The adopted instance exists once its power was verified (start-up power read).
  await waitFor(async () => (await call('GET', `/v1/${PROJECT}/instances/${ADOPTED_ID}/status`, MEMBER_TOKEN)).status === 200, 10_000, 'adoption');
});

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Instances created along the way. */
let A = ''; // node-01, slow install
let createRequestId = '';
/** The base of links and Location, as the daemon answers it. */
let base = '';
let B = ''; // node-02, no soft power
let C = ''; // node-03, failed install

describe('operational endpoints', () => {
  it('/healthz, /readyz, /metrics, /openapi.json answer without a token', async () => {
    const h = await call('GET', '/healthz', null);
    expect(h.status).toBe(200);
    expect(h.body).toEqual({ status: 'ok' });
    const r = await call('GET', '/readyz', null);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      status: 'ready',
      reasons: [],
      liveness: { engine: 'fake', reason: 'configured: the fake lab answers (allow_fake_drivers)' },
      upstream: expect.objectContaining({ state: 'disabled', url: null }),
    });
    const m = await call('GET', '/metrics', null);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(m.text).toMatch(/^# HELP metald_http_requests_total /m);
    expect(m.text).toMatch(/^metald_http_requests_total\{[^}]*route="\/healthz"[^}]*\} \d+/m);
    const o = await call('GET', '/openapi.json', null);
    expect(o.status).toBe(200);
    const doc = obj(o.body);
    expect(String(doc['openapi'])).toMatch(/^3\./);
    const paths = keys(doc['paths']);
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
    ]) {
      expect(paths).toContain(p);
    }
    // This daemon runs the fake driver, so it serves (and documents) the test-only fake-faults route.
    expect(paths).toContain('/v1/nodes/{id}/fake-faults');
  });
});

describe('seed 002 (and 003/004/000) on the adopted instance', () => {
  it('member view: the execution example key set, with its sample values where sources allow', async () => {
    const s = await server(ADOPTED_ID);
    expect(keys(s)).toEqual(SEED002_KEYS);
    expectServerTypes(s);
    expect(s['id']).toBe(ADOPTED_ID);
    expect(s['name']).toBe('Testvm1');
    expect(s['status']).toBe('ACTIVE');
    expect(s['OS-EXT-STS:vm_state']).toBe('active');
    expect(s['OS-EXT-STS:task_state']).toBeNull();
    expect(s['OS-EXT-STS:power_state']).toBe(1);
    expect(s['user_id']).toBe('f5a98f28f61e4fd19622f9016c481d48');
    expect(s['tenant_id']).toBe(PROJECT);
    expect(s['hostId']).toBe(sha224(PROJECT + AGENT_ID));
    expect(s['addresses']).toEqual({
      private: [{ 'OS-EXT-IPS-MAC:mac_addr': 'fa:16:3e:1c:d0:5b', version: 4, addr: '127.0.2.2', 'OS-EXT-IPS:type': 'fixed' }],
    });
    expect(s['accessIPv4']).toBe('127.0.2.2');
    expect(s['accessIPv6']).toBe('');
    expect(s['OS-DCF:diskConfig']).toBe('MANUAL');
    expect(s['OS-SRV-USG:launched_at']).toMatch(NOVA_MICRO_RE);
    expect(s['OS-SRV-USG:terminated_at']).toBeNull();
    expect(s['metadata']).toEqual({});
    const links = s['links'] as J[];
    expect(links[0]!['href']).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/v2/${PROJECT}/servers/${ADOPTED_ID}$`));
    expect(links[1]!['href']).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/${PROJECT}/servers/${ADOPTED_ID}$`));
  });

  it('admin view adds OS-EXT-SRV-ATTR:* (host = agent id, hypervisor = node name); hostId stays the project\'s', async () => {
    const s = await server(ADOPTED_ID, ADMIN_TOKEN, ADMIN_PROJECT);
    expect(keys(s)).toEqual([...SEED002_KEYS, ...ADMIN_EXTRA_KEYS].sort());
    expect(s['OS-EXT-SRV-ATTR:host']).toBe(AGENT_ID);
    expect(s['OS-EXT-SRV-ATTR:hypervisor_hostname']).toBe('node-05');
    expect(s['OS-EXT-SRV-ATTR:instance_name']).toBe('Testvm1');
    expect(s['hostId']).toBe(sha224(PROJECT + AGENT_ID));
    expect(s['tenant_id']).toBe(PROJECT);
  });

  it('seed 003 status, seed 004 states and seed 000 fping of the adopted instance', async () => {
    const st = await status(ADOPTED_ID);
    expect(st).toEqual({ state: 'running', operation_state: null, error: null });
    expect(keys(st)).toEqual(['error', 'operation_state', 'state']);
    expect(await states(ADOPTED_ID)).toEqual({ power_state: 'power on', target_power_state: null });
    expect(await fping(ADOPTED_ID)).toEqual({ alive: true, id: ADOPTED_ID, project_id: PROJECT });
  });

  it('400 project mismatch with seed 002\'s exact body; 401; 404 for unknown and non-UUID ids; another project\'s instance is 404', async () => {
    const bad = await call('GET', `/v2/5d8b99310e6c49eaa5413aa659170deb/servers/${ADOPTED_ID}`, SEED002_TOKEN);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/);
    // Letter for letter (seed 002, "Error Execution Example"), key order included.
    expect(JSON.stringify(bad.body)).toBe(
      JSON.stringify({
        badRequest: {
          message:
            "Malformed request URL: URL's project_id '5d8b99310e6c49eaa5413aa659170deb' doesn't match Context's project_id '01efe5374f674b508693a5301d47aeba'",
          code: 400,
        },
      }),
    );
    expectNovaFault(await call('GET', `/v2/${PROJECT}/servers/${ADOPTED_ID}`, null), 401, 'unauthorized');
    expectNovaFault(await call('GET', `/v2/${PROJECT}/servers/${ADOPTED_ID}`, 'not-a-known-token-0123456789abcdef'), 401, 'unauthorized');
    const unknown = await call('GET', `/v2/${PROJECT}/servers/00000000-0000-4000-8000-000000000000`, MEMBER_TOKEN);
    expectNovaFault(unknown, 404, 'itemNotFound');
    expectNovaFault(await call('GET', `/v2/${PROJECT}/servers/not-a-uuid`, MEMBER_TOKEN), 404, 'itemNotFound');
    expectNovaFault(await call('GET', `/v2/${OTHER_PROJECT}/servers/${ADOPTED_ID}`, OTHER_TOKEN), 404, 'itemNotFound');
  });
});

describe('seed 004 create, seed 003 status through an install, seed 001 actions', () => {
  it('POST /v1/{project}/instances: 201, Location, exactly the create response keys', async () => {
    const body = {
      name: 'seed-a',
      description: 'seed 004 create',
      instance_type_uuid: TYPE_SMALL,
      image_uuid: IMAGE,
      availability_zone: 'nova',
      networks: [{ uuid: NETWORK, port_type: 'normal' }],
      metadata: { role: 'web' },
      extra: { node_id: nodeId(1), hostname: 'seed-a' },
    };
    const r = await call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, body);
    expect(r.status).toBe(201);
    const inst = obj(r.body);
    expect(keys(inst)).toEqual(INSTANCE_KEYS);
    A = String(inst['uuid']);
    expect(A).toMatch(UUID_RE);
    createRequestId = r.headers.get('x-compute-request-id') ?? '';
    expect(createRequestId).toMatch(REQ_ID_RE);
    const location = r.headers.get('location') ?? '';
    expect(location).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/v1/${PROJECT}/instances/${A}$`));
    base = location.slice(0, location.indexOf(`/v1/${PROJECT}/`));
    expect(inst['name']).toBe('seed-a');
    expect(inst['description']).toBe('seed 004 create');
    expect(inst['instance_type_uuid']).toBe(TYPE_SMALL);
    expect(inst['image_uuid']).toBe(IMAGE);
    expect(inst['availability_zone']).toBe('nova');
    expect(inst['status']).toBe('pending');
    expect(['power on', 'power off', null]).toContain(inst['power_state']);
    expect(inst['project_id']).toBe(PROJECT);
    expect(inst['user_id']).toBe(MEMBER_USER);
    expect(inst['created_at']).toMatch(IRONIC_TIME_RE);
    expect(inst['updated_at']).toMatch(IRONIC_TIME_RE);
    expect(inst['links']).toEqual([
      { href: `${base}/v1/${PROJECT}/instances/${A}`, rel: 'self' },
      { href: `${base}/${PROJECT}/instances/${A}`, rel: 'bookmark' },
    ]);
    expect(inst['network_info']).toEqual({
      [NETWORK]: { network: 'private', port_type: 'normal', mac_address: 'fa:16:3e:00:00:01', fixed_ips: [{ ip_address: '127.0.2.100', version: 4 }] },
    });
    // GET answers the same shape.
    const g = await call('GET', `/v1/${PROJECT}/instances/${A}`, MEMBER_TOKEN);
    expect(g.status).toBe(200);
    expect(keys(g.body)).toEqual(INSTANCE_KEYS);
    const list = await call('GET', `/v1/${PROJECT}/instances`, MEMBER_TOKEN);
    expect(list.status).toBe(200);
    const items = obj(list.body)['instances'] as J[];
    expect(items.map((i) => i['uuid'])).toEqual(expect.arrayContaining([A, ADOPTED_ID]));
    for (const i of items) expect(keys(i)).toEqual(INSTANCE_KEYS);
  });

  it('during the install: pending / install-processing, BUILD, and power requests meet the lock (409)', async () => {
    const st = await status(A);
    expect(keys(st)).toEqual(['error', 'operation_state', 'state']);
    expect(st).toEqual({ state: 'pending', operation_state: 'install-processing', error: null });
    const s = await server(A);
    expect(keys(s)).toEqual(SEED002_KEYS);
    expectServerTypes(s);
    expect(s['status']).toBe('BUILD');
    expect(s['OS-EXT-STS:vm_state']).toBe('building');
    expect(s['OS-EXT-STS:task_state']).toBe('spawning');
    expect(s['OS-SRV-USG:launched_at']).toBeNull();
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'power off' }), 409, 'AGENT_ERR_LOCKED');
    expectV1Error(await call('POST', `/v1/${PROJECT}/instances/${A}/actions`, MEMBER_TOKEN, { reinstall: {} }), 409, 'AGENT_ERR_LOCKED');
    // The create action is there already, named by the POST's X-Compute-Request-Id.
    const acts = await actionsOf(A);
    expect(acts.map((a) => [a['action'], a['request_id']])).toContainEqual(['create', createRequestId]);
  });

  it('after the install: running / install-succeed, ACTIVE, and seed 002 fields from their sources', async () => {
    const st = await settle(A);
    expect(st).toEqual({ state: 'running', operation_state: 'install-succeed', error: null });
    expect(await states(A)).toEqual({ power_state: 'power on', target_power_state: null });
    const s = await server(A);
    expect(keys(s)).toEqual(SEED002_KEYS);
    expectServerTypes(s);
    expect(s['status']).toBe('ACTIVE');
    expect(s['OS-EXT-STS:vm_state']).toBe('active');
    expect(s['OS-EXT-STS:task_state']).toBeNull();
    expect(s['OS-EXT-STS:power_state']).toBe(1);
    expect(s['OS-SRV-USG:launched_at']).toMatch(NOVA_MICRO_RE);
    expect(s['progress']).toBe(100);
    expect(s['name']).toBe('seed-a');
    expect(s['user_id']).toBe(MEMBER_USER);
    expect(s['tenant_id']).toBe(PROJECT);
    expect(s['hostId']).toBe(sha224(PROJECT + AGENT_ID));
    expect(s['metadata']).toEqual({ role: 'web' });
    expect(s['OS-EXT-AZ:availability_zone']).toBe('nova');
    expect(obj(s['flavor'])['id']).toBe(TYPE_SMALL);
    expect(obj(s['image'])['id']).toBe(IMAGE);
    expect((obj(s['image'])['links'] as J[])[0]!['href']).toBe(`${base}/${PROJECT}/images/${IMAGE}`);
    expect((obj(s['flavor'])['links'] as J[])[0]!['href']).toBe(`${base}/${PROJECT}/flavors/${TYPE_SMALL}`);
    expect(s['addresses']).toEqual({
      private: [{ 'OS-EXT-IPS-MAC:mac_addr': 'fa:16:3e:00:00:01', version: 4, addr: '127.0.2.100', 'OS-EXT-IPS:type': 'fixed' }],
    });
    expect(s['accessIPv4']).toBe('127.0.2.100');
    const admin = await server(A, ADMIN_TOKEN, ADMIN_PROJECT);
    expect(admin['OS-EXT-SRV-ATTR:host']).toBe(AGENT_ID);
    expect(admin['OS-EXT-SRV-ATTR:hypervisor_hostname']).toBe('node-01');
    expect(admin['OS-EXT-SRV-ATTR:instance_name']).toBe('seed-a');
    // seed 000: a running installed instance answers.
    expect(await fping(A)).toEqual({ alive: true, id: A, project_id: PROJECT });
  });

  it('seed 001: the create action, its request id and events, for the member and the admin', async () => {
    const list = await actionsOf(A);
    const create = list.find((a) => a['request_id'] === createRequestId);
    expect(create).toBeDefined();
    expect(keys(create)).toEqual(ACTION_KEYS);
    expect(create!['action']).toBe('create');
    expect(create!['start_time']).toMatch(NOVA_MICRO_RE);
    const a = await actionOf(A, createRequestId);
    expectActionShape(a, false);
    expect(a['action']).toBe('create');
    expect(a['instance_uuid']).toBe(A);
    expect(a['project_id']).toBe(PROJECT);
    expect(a['user_id']).toBe(MEMBER_USER);
    expect(a['request_id']).toBe(createRequestId);
    expect(a['message']).toBeNull();
    const events = a['events'] as J[];
    expect(events.length).toBeGreaterThanOrEqual(3);
    for (const e of events) {
      expect(e['result']).toBe('Success');
      expect(e['finish_time']).toMatch(NOVA_MICRO_RE);
    }
    expect(events.map((e) => e['event'])).toEqual(expect.arrayContaining(['deploy']));
    const admin = await actionOf(A, createRequestId, ADMIN_TOKEN, ADMIN_PROJECT);
    expectActionShape(admin, true);
    expect((admin['events'] as J[]).length).toBe(events.length);
    // Unknown or malformed action ids are 404 nova faults.
    expectNovaFault(await call('GET', `/v2/${PROJECT}/servers/${A}/os-instance-actions/req-00000000-0000-4000-8000-000000000000`, MEMBER_TOKEN), 404, 'itemNotFound');
    expectNovaFault(await call('GET', `/v2/${PROJECT}/servers/${A}/os-instance-actions/not-a-request-id`, MEMBER_TOKEN), 404, 'itemNotFound');
  });

  it('seed 001: the URL project differs from the token\'s: exactly the seed\'s 400 body', async () => {
    // PROJECT and OTHER_PROJECT are the seed's own ...291 and ...290.
    const r = await call('GET', `/v2/${OTHER_PROJECT}/servers/${A}/os-instance-actions/${createRequestId}`, MEMBER_TOKEN);
    expect(r.status).toBe(400);
    expect(r.text).toBe(
      '{"badRequest":{"message":"Malformed request URL: URL\'s project_id \'ad355aa6ed3e4cf5ae0fa0df652bc290\' doesn\'t match Context\'s project_id \'ad355aa6ed3e4cf5ae0fa0df652bc291\'","code":400}}',
    );
    const l = await call('GET', `/v2/${OTHER_PROJECT}/servers/${A}/os-instance-actions`, MEMBER_TOKEN);
    expect(l.text).toBe(r.text);
    expectNovaFault(await call('GET', `/v2/${PROJECT}/servers/${A}/os-instance-actions`, null), 401, 'unauthorized');
  });
});

describe('links', () => {
  // docs/config.md: api.public_url null means http://<listen>; with `listen: 127.0.0.1:0` (a free port, as here) the
  // links must name the port actually bound, or nobody can follow them.
  it('Location and links can be followed: they name the bound port', async () => {
    expect(base).toBe(daemon.url);
    const r = await fetch(`${base}/v1/${PROJECT}/instances/${A}`, { headers: { 'X-Auth-Token': MEMBER_TOKEN } });
    expect(r.status).toBe(200);
  });
});

describe('seed 004 power', () => {
  it('power off: 202 empty, target_power_state while it runs, then "power off", stopped, SHUTOFF; a stop action', async () => {
    const r = await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'power off' });
    expect(r.status).toBe(202);
    expect(r.text).toBe('');
    const rid = r.headers.get('x-compute-request-id') ?? '';
    const st = await settle(A);
    expect(st).toEqual({ state: 'stopped', operation_state: 'install-succeed', error: null });
    expect(await states(A)).toEqual({ power_state: 'power off', target_power_state: null });
    const s = await server(A);
    expect(s['status']).toBe('SHUTOFF');
    expect(s['OS-EXT-STS:vm_state']).toBe('stopped');
    expect(s['OS-EXT-STS:power_state']).toBe(4);
    const a = await actionOf(A, rid);
    expect(a['action']).toBe('stop');
    expect((a['events'] as J[]).every((e) => e['result'] === 'Success')).toBe(true);
  });

  // The fake liveness engine says alive iff the simulated server is on with an OS. A verified power off must not be
  // answered with the verdict cached before it (liveness.interval is 30 s in the harness config).
  it('seed 000: a powered-off instance is not alive', async () => {
    expect(await fping(A)).toEqual({ alive: false, id: A, project_id: PROJECT });
  });

  it('already in the target state: 202 and nothing is sent (no action); forbidden in this state: 400', async () => {
    const before = (await actionsOf(A)).length;
    const r = await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'power off' });
    expect(r.status).toBe(202);
    const soft = await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'soft power off', timeout: 300 });
    expect(soft.status).toBe(202);
    expect((await actionsOf(A)).length).toBe(before);
    expect(await states(A)).toEqual({ power_state: 'power off', target_power_state: null });
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'rebooting' }), 400, 'AGENT_ERR_INVALID_TRANSITION');
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'soft rebooting' }), 400, 'AGENT_ERR_INVALID_TRANSITION');
    // timeout only with the soft targets; unknown words and fields are 400s.
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'power on', timeout: 300 }), 400, 'AGENT_ERR_BAD_REQUEST');
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'explode' }), 400, 'AGENT_ERR_BAD_REQUEST');
    expect((await actionsOf(A)).length).toBe(before);
  });

  it('power on (alias "on"), then {"target": "soft power off", "timeout": 300} reaches "power off"', async () => {
    expect((await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'on' })).status).toBe(202);
    expect((await settle(A)).state).toBe('running');
    expect(await states(A)).toEqual({ power_state: 'power on', target_power_state: null });
    const r = await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'soft power off', timeout: 300 });
    expect(r.status).toBe(202);
    expect((await settle(A)).state).toBe('stopped');
    expect(await states(A)).toEqual({ power_state: 'power off', target_power_state: null });
    const a = await actionOf(A, r.headers.get('x-compute-request-id') ?? '');
    expect(a['action']).toBe('stop');
    // Back on for what follows; "power on" in Ironic's words.
    expect((await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'power on' })).status).toBe(202);
    expect((await settle(A)).state).toBe('running');
  });

  it('406 when the driver cannot do it (node-02: supports_soft false); hard power off still works', async () => {
    const c = await create('seed-b', 2);
    B = c.id;
    expect((await settle(B)).state).toBe('running');
    expectV1Error(await call('PUT', `/v1/instances/${B}/states/power`, MEMBER_TOKEN, { target: 'soft power off', timeout: 300 }), 406, 'AGENT_ERR_NOT_ACCEPTABLE');
    expectV1Error(await call('PUT', `/v1/instances/${B}/states/power`, MEMBER_TOKEN, { target: 'soft rebooting' }), 406, 'AGENT_ERR_NOT_ACCEPTABLE');
    expect(await states(B)).toEqual({ power_state: 'power on', target_power_state: null });
    expect((await call('PUT', `/v1/instances/${B}/states/power`, MEMBER_TOKEN, { target: 'power off' })).status).toBe(202);
    expect((await settle(B)).state).toBe('stopped');
  });

  it('policy: another project\'s member gets 404, no token 401 (v1 body)', async () => {
    expectV1Error(await call('GET', `/v1/instances/${A}/states`, OTHER_TOKEN), 404, 'AGENT_ERR_NOT_FOUND');
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, OTHER_TOKEN, { target: 'power off' }), 404, 'AGENT_ERR_NOT_FOUND');
    expectV1Error(await call('GET', `/v1/instances/${A}/states`, null), 401, 'AGENT_ERR_UNAUTHORIZED');
    expectV1Error(await call('GET', `/v1/instances/not-a-uuid/states`, MEMBER_TOKEN), 404, 'AGENT_ERR_NOT_FOUND');
    expect(await states(A)).toEqual({ power_state: 'power on', target_power_state: null });
  });
});

describe('seed 003 errors', () => {
  it('an injected install failure: error / install-failed, error {error_code, error_msg, error_type: install_error}, ERROR', async () => {
    expectV1Error(await call('PUT', `/v1/nodes/${nodeId(3)}/fake-faults`, MEMBER_TOKEN, { fail_install: 1 }), 403, 'AGENT_ERR_FORBIDDEN');
    const f = await call('PUT', `/v1/nodes/${nodeId(3)}/fake-faults`, ADMIN_TOKEN, { fail_install: 1 });
    expect(f.status).toBe(204);
    const c = await create('seed-c', 3);
    C = c.id;
    const st = await settle(C);
    expect(keys(st)).toEqual(['error', 'operation_state', 'state']);
    expect(st.state).toBe('error');
    expect(st.operation_state).toBe('install-failed');
    expect(keys(st.error)).toEqual(['error_code', 'error_msg', 'error_type']);
    expect(st.error!.error_type).toBe('install_error');
    expect(typeof st.error!.error_code).toBe('string');
    expect(st.error!.error_msg).toMatch(/deploy/);
    const s = await server(C);
    expect(s['status']).toBe('ERROR');
    expect(s['OS-EXT-STS:vm_state']).toBe('error');
    expect(s['OS-EXT-STS:task_state']).toBeNull();
    expectServerTypes(s);
    expect(s['OS-SRV-USG:launched_at']).toBeNull();
    // seed 001: the failed step's traceback is the admin's only; the action's message says what failed.
    const member = await actionOf(C, c.requestId);
    expectActionShape(member, false);
    expect(member['action']).toBe('create');
    expect(typeof member['message']).toBe('string');
    const failed = (member['events'] as J[]).filter((e) => e['result'] === 'Error');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed.every((e) => e['traceback'] === null)).toBe(true);
    const admin = await actionOf(C, c.requestId, ADMIN_TOKEN, ADMIN_PROJECT);
    expectActionShape(admin, true);
    const adminFailed = (admin['events'] as J[]).filter((e) => e['result'] === 'Error');
    expect(adminFailed.length).toBe(failed.length);
    for (const e of adminFailed) {
      expect(typeof e['traceback']).toBe('string');
      expect(String(e['traceback'])).not.toBe('');
    }
    expect(await fping(C)).toEqual({ alive: false, id: C, project_id: PROJECT });
  });

  it('401 without a token: {error_code, error_msg}', async () => {
    const r = await call('GET', `/v1/${PROJECT}/instances/${A}/status`, null);
    expectV1Error(r, 401, 'AGENT_ERR_UNAUTHORIZED');
    expect(obj(r.body)['error_msg']).toBe('The request you have made requires authentication.');
    expectV1Error(await call('GET', `/v1/${OTHER_PROJECT}/instances/${A}/status`, MEMBER_TOKEN), 400, 'AGENT_ERR_BAD_REQUEST');
    expectV1Error(await call('GET', `/v1/${PROJECT}/instances/00000000-0000-4000-8000-000000000000/status`, MEMBER_TOKEN), 404, 'AGENT_ERR_NOT_FOUND');
  });
});

describe('seed 000 os-fping lists', () => {
  it('the project\'s list; all_tenants for the admin; 403 for a member', async () => {
    const m = await call('GET', `/v2.1/${PROJECT}/os-fping`, MEMBER_TOKEN);
    expect(m.status).toBe(200);
    expect(keys(m.body)).toEqual(['servers']);
    const servers = obj(m.body)['servers'] as J[];
    for (const s of servers) {
      expect(keys(s)).toEqual(['alive', 'id', 'project_id']);
      expect(s['project_id']).toBe(PROJECT);
    }
    const byId = new Map(servers.map((s) => [s['id'], s['alive']]));
    expect(byId.get(ADOPTED_ID)).toBe(true);
    expect(byId.get(A)).toBe(true);
    expect(byId.get(C)).toBe(false);
    expectNovaFault(await call('GET', `/v2.1/${PROJECT}/os-fping?all_tenants=1`, MEMBER_TOKEN), 403, 'forbidden');
    const a = await call('GET', `/v2.1/${ADMIN_PROJECT}/os-fping?all_tenants=1`, ADMIN_TOKEN);
    expect(a.status).toBe(200);
    const all = obj(a.body)['servers'] as J[];
    expect(all.map((s) => s['id'])).toEqual(expect.arrayContaining([ADOPTED_ID, A, B, C]));
    const inc = await call('GET', `/v2.1/${PROJECT}/os-fping?include=${A}`, MEMBER_TOKEN);
    expect((obj(inc.body)['servers'] as J[]).map((s) => s['id'])).toEqual([A]);
    expectNovaFault(await call('GET', `/v2.1/${PROJECT}/os-fping?include=${A}&exclude=${B}`, MEMBER_TOKEN), 400, 'badRequest');
    expectNovaFault(await call('GET', `/v2.1/${PROJECT}/os-fping/${A}`, null), 401, 'unauthorized');
    expectNovaFault(await call('GET', `/v2.1/${OTHER_PROJECT}/os-fping/${A}`, OTHER_TOKEN), 404, 'itemNotFound');
  });
});

describe('admin node API', () => {
  it('GET /v1/nodes and /v1/nodes/{id}: admin only (403 member, 401 no token, 404 unknown)', async () => {
    const r = await call('GET', '/v1/nodes', ADMIN_TOKEN);
    expect(r.status).toBe(200);
    const nodes = obj(r.body)['nodes'] as J[];
    expect(nodes.map((n) => n['name']).sort()).toEqual(['node-01', 'node-02', 'node-03', 'node-04', 'node-05']);
    const n5 = nodes.find((n) => n['uuid'] === nodeId(5))!;
    expect(n5['instance_uuid']).toBe(ADOPTED_ID);
    expect(n5['power_state']).toBe('power on');
    expectV1Error(await call('GET', '/v1/nodes', MEMBER_TOKEN), 403, 'AGENT_ERR_FORBIDDEN');
    expectV1Error(await call('GET', '/v1/nodes', null), 401, 'AGENT_ERR_UNAUTHORIZED');
    const one = await call('GET', `/v1/nodes/${nodeId(1)}`, ADMIN_TOKEN);
    expect(one.status).toBe(200);
    const n1 = obj(one.body);
    expect(n1['uuid']).toBe(nodeId(1));
    expect(n1['name']).toBe('node-01');
    expect(n1['instance_uuid']).toBe(A);
    expect(keys(n1['bmc'])).toEqual(['address', 'drivers', 'port', 'system_id', 'username']);
    expectV1Error(await call('GET', `/v1/nodes/${nodeId(1)}`, MEMBER_TOKEN), 403, 'AGENT_ERR_FORBIDDEN');
    expectV1Error(await call('GET', '/v1/nodes/00000000-0000-4000-8000-000000000000', ADMIN_TOKEN), 404, 'AGENT_ERR_NOT_FOUND');
    expectV1Error(await call('GET', '/v1/nodes/not-a-uuid', ADMIN_TOKEN), 404, 'AGENT_ERR_NOT_FOUND');
  });

  it('PUT /v1/nodes/{id}/states/power on a free node: 202, then the power shows (member 403)', async () => {
    const node = async () => obj((await call('GET', `/v1/nodes/${nodeId(4)}`, ADMIN_TOKEN)).body);
    expect((await node())['power_state']).toBe('power off');
    expectV1Error(await call('PUT', `/v1/nodes/${nodeId(4)}/states/power`, MEMBER_TOKEN, { target: 'power on' }), 403, 'AGENT_ERR_FORBIDDEN');
    const on = await call('PUT', `/v1/nodes/${nodeId(4)}/states/power`, ADMIN_TOKEN, { target: 'power on' });
    expect(on.status).toBe(202);
    expect(on.text).toBe('');
    await waitFor(async () => (await node())['power_state'] === 'power on', 10_000, 'node-04 on');
    // The node may still be busy verifying; a 409 then is "locked", so retry until accepted.
    await waitFor(async () => (await call('PUT', `/v1/nodes/${nodeId(4)}/states/power`, ADMIN_TOKEN, { target: 'off' })).status === 202, 10_000, 'node-04 off accepted');
    await waitFor(async () => (await node())['power_state'] === 'power off', 10_000, 'node-04 off');
  });

  it('PUT maintenance: 200 with the node; an instance on a node in maintenance refuses operations (409); member 403', async () => {
    expectV1Error(await call('PUT', `/v1/nodes/${nodeId(1)}/maintenance`, MEMBER_TOKEN, { maintenance: true }), 403, 'AGENT_ERR_FORBIDDEN');
    const on = await call('PUT', `/v1/nodes/${nodeId(1)}/maintenance`, ADMIN_TOKEN, { maintenance: true, reason: 'replacing a fan' });
    expect(on.status).toBe(200);
    expect(obj(on.body)['maintenance']).toBe(true);
    expect(obj(on.body)['maintenance_reason']).toBe('replacing a fan');
    expectV1Error(await call('PUT', `/v1/instances/${A}/states/power`, MEMBER_TOKEN, { target: 'power off' }), 409, 'AGENT_ERR_MAINTENANCE');
    expectV1Error(await call('POST', `/v1/${PROJECT}/instances/${A}/actions`, MEMBER_TOKEN, { reinstall: {} }), 409, 'AGENT_ERR_MAINTENANCE');
    expectV1Error(await call('DELETE', `/v1/${PROJECT}/instances/${A}`, MEMBER_TOKEN), 409, 'AGENT_ERR_MAINTENANCE');
    expectV1Error(await call('PUT', `/v1/nodes/${nodeId(1)}/states/power`, ADMIN_TOKEN, { target: 'power off' }), 409, 'AGENT_ERR_MAINTENANCE');
    expectV1Error(await call('PUT', `/v1/nodes/${nodeId(1)}/maintenance`, ADMIN_TOKEN, { maintenance: false, reason: 'x' }), 400, 'AGENT_ERR_BAD_REQUEST');
    const off = await call('PUT', `/v1/nodes/${nodeId(1)}/maintenance`, ADMIN_TOKEN, { maintenance: false });
    expect(off.status).toBe(200);
    expect(obj(off.body)['maintenance']).toBe(false);
    expect(await status(A)).toEqual({ state: 'running', operation_state: 'install-succeed', error: null });
  });
});

describe('delete', () => {
  it('DELETE /v1/{project}/instances/{id}: 202, then terminated, DELETED, terminated_at; the node is released', async () => {
    const r = await call('DELETE', `/v1/${PROJECT}/instances/${B}`, MEMBER_TOKEN);
    expect(r.status).toBe(202);
    expect(r.text).toBe('');
    const rid = r.headers.get('x-compute-request-id') ?? '';
    const st = await settle(B);
    expect(st.state).toBe('terminated');
    expect(st.error).toBeNull();
    const s = await server(B);
    expect(keys(s)).toEqual(SEED002_KEYS);
    expect(s['status']).toBe('DELETED');
    expect(s['OS-EXT-STS:vm_state']).toBe('deleted');
    expect(s['OS-SRV-USG:terminated_at']).toMatch(NOVA_MICRO_RE);
    expect((await actionOf(B, rid))['action']).toBe('delete');
    const n2 = obj((await call('GET', `/v1/nodes/${nodeId(2)}`, ADMIN_TOKEN)).body);
    expect(n2['instance_uuid']).toBeNull();
    // Once terminated, a second delete is refused.
    expectV1Error(await call('DELETE', `/v1/${PROJECT}/instances/${B}`, MEMBER_TOKEN), 400, 'AGENT_ERR_INVALID_TRANSITION');
  });
});

describe('metalctl against the same daemon', () => {
  let ctl1 = '';

  it('instance list / show / status, with and without --json', async () => {
    const list = await metalctl(['instance', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+NAME\s+STATUS\s+POWER\s+ADDRESSES\s+CREATED/);
    expect(list.stdout).toContain(ADOPTED_ID);
    expect(list.stdout).toContain('Testvm1');
    expect(list.stdout).toContain(A);
    const listJ = await metalctl(['--json', 'instance', 'list']);
    expect(listJ.code, listJ.stderr).toBe(0);
    expect((obj(JSON.parse(listJ.stdout))['instances'] as J[]).map((i) => i['uuid'])).toEqual(expect.arrayContaining([A, ADOPTED_ID]));

    const show = await metalctl(['instance', 'show', A]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`^uuid\\s+${A}$`, 'm'));
    expect(show.stdout).toMatch(/^name\s+seed-a$/m);
    const showJ = await metalctl(['instance', 'show', A, '--json']);
    expect(showJ.code, showJ.stderr).toBe(0);
    expect(keys(JSON.parse(showJ.stdout))).toEqual(INSTANCE_KEYS);

    const st = await metalctl(['instance', 'status', C]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/^state\s+error$/m);
    expect(st.stdout).toMatch(/^operation_state\s+install-failed$/m);
    expect(st.stdout).toMatch(/^error_type\s+install_error$/m);
    const stJ = await metalctl(['--json', 'instance', 'status', A]);
    expect(stJ.code, stJ.stderr).toBe(0);
    expect(JSON.parse(stJ.stdout)).toEqual({ state: 'running', operation_state: 'install-succeed', error: null });

    const missing = await metalctl(['instance', 'show', '00000000-0000-4000-8000-000000000000']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: .*\(HTTP 404, request req-[0-9a-f-]{36}\)$/m);
  });

  it('instance create --wait (with and without --json)', async () => {
    const c = await metalctl(['--json', 'instance', 'create', '--name', 'ctl-1', '--image', IMAGE, '--node', nodeId(2), '--wait', '--poll-interval', '0.1', '--wait-timeout', '15']);
    expect(c.code, c.stderr).toBe(0);
    const body = obj(JSON.parse(c.stdout));
    expect(body['name']).toBe('ctl-1');
    ctl1 = String(body['uuid']);
    expect(c.stderr).toContain(`${ctl1}: done`);
    expect(await status(ctl1)).toEqual({ state: 'running', operation_state: 'install-succeed', error: null });

    const c2 = await metalctl(['instance', 'create', '--name', 'ctl-2', '--image', IMAGE, '--node', nodeId(4), '--wait', '--poll-interval', '0.1', '--wait-timeout', '15']);
    expect(c2.code, c2.stderr).toBe(0);
    expect(c2.stdout).toMatch(/^name\s+ctl-2$/m);
    const id2 = /^uuid\s+(\S+)$/m.exec(c2.stdout)?.[1] ?? '';
    expect(id2).toMatch(UUID_RE);
    expect((await status(id2)).state).toBe('running');
  });

  it('instance power ID off --wait, on --wait --json', async () => {
    const off = await metalctl(['instance', 'power', ctl1, 'off', '--wait', '--poll-interval', '0.1', '--wait-timeout', '15']);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toContain(ctl1);
    expect(off.stdout).toMatch(/power off of .* accepted \(request req-[0-9a-f-]{36}\)/);
    expect(await states(ctl1)).toEqual({ power_state: 'power off', target_power_state: null });
    expect((await status(ctl1)).state).toBe('stopped');
    const on = await metalctl(['--json', 'instance', 'power', ctl1, 'on', '--wait', '--poll-interval', '0.1', '--wait-timeout', '15']);
    expect(on.code, on.stderr).toBe(0);
    expect(on.stdout.trim()).toBe('');
    expect(await states(ctl1)).toEqual({ power_state: 'power on', target_power_state: null });
    // 406 through the CLI: node-02 has no soft power.
    const soft = await metalctl(['instance', 'power', ctl1, 'soft-off']);
    expect(soft.code).toBe(1);
    expect(soft.stderr).toMatch(/HTTP 406/);
  });

  it('instance actions ID (and one action), with and without --json', async () => {
    const list = await metalctl(['instance', 'actions', ctl1]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^REQUEST_ID\s+ACTION\s+START_TIME\s+USER\s+MESSAGE/);
    expect(list.stdout).toMatch(/^req-\S+\s+create\s/m);
    expect(list.stdout).toMatch(/^req-\S+\s+stop\s/m);
    const j = await metalctl(['--json', 'instance', 'actions', ctl1]);
    expect(j.code, j.stderr).toBe(0);
    const acts = obj(JSON.parse(j.stdout))['instanceActions'] as J[];
    const create = acts.find((a) => a['action'] === 'create')!;
    expect(create['instance_uuid']).toBe(ctl1);
    const one = await metalctl(['instance', 'actions', ctl1, String(create['request_id'])]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^instance_uuid\\s+${ctl1}$`, 'm'));
    expect(one.stdout).toMatch(/^EVENT\s+START_TIME\s+FINISH_TIME\s+RESULT/m);
    const oneJ = await metalctl(['--json', 'instance', 'actions', ctl1, String(create['request_id'])]);
    expect(oneJ.code, oneJ.stderr).toBe(0);
    expect(obj(obj(JSON.parse(oneJ.stdout))['instanceAction'])['request_id']).toBe(create['request_id']);
  });

  it('node list (admin), with and without --json; a member is refused', async () => {
    const l = await metalctl(['node', 'list'], 'admin.token');
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toMatch(/^ID\s+NAME\s+TYPE\s+POWER\s+MAINTENANCE\s+INSTANCE\s+LAST_ERROR/);
    for (const n of ['node-01', 'node-02', 'node-03', 'node-04', 'node-05']) expect(l.stdout).toContain(n);
    expect(l.stdout).toContain(ADOPTED_ID);
    const j = await metalctl(['--json', 'node', 'list'], 'admin.token');
    expect(j.code, j.stderr).toBe(0);
    expect((obj(JSON.parse(j.stdout))['nodes'] as J[]).length).toBe(5);
    const m = await metalctl(['node', 'list']);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/HTTP 403/);
  });
});

describe('headers', () => {
  it('every response carried X-Compute-Request-Id: req-<uuid>, each one distinct', async () => {
    // Also an unknown route and an oversized/invalid body.
    await call('GET', '/no/such/route', null);
    await call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, '{not json');
    expect(seen.length).toBeGreaterThan(100);
    const bad = seen.filter((s) => s.requestId === null || !REQ_ID_RE.test(s.requestId));
    expect(bad).toEqual([]);
    expect(new Set(seen.map((s) => s.requestId)).size).toBe(seen.length);
  });
});
