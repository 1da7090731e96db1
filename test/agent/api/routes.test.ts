/** Every route's status, headers and body shape, compared with the seed documents' key sets. */
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { GENERIC_MESSAGES } from '../../../agent/api/errors.js';
import { AgentError } from '../../../agent/errors.js';
import type { Action } from '../../../agent/model.js';
import { StoreError } from '../../../agent/store/types.js';
import { ADMIN, BASE, M1, REQ_ID_RE, UUID_RE, auth, harness, type Harness } from './helpers.js';
import { makeAction } from './stub-service.js';

/** seed 002's sample response (Execution Example), key for key. */
const SEED002_SAMPLE_KEYS = [
  'status', 'updated', 'hostId', 'addresses', 'links', 'key_name', 'image', 'OS-EXT-STS:task_state', 'OS-EXT-STS:vm_state',
  'OS-SRV-USG:launched_at', 'flavor', 'id', 'security_groups', 'OS-SRV-USG:terminated_at', 'OS-EXT-AZ:availability_zone',
  'user_id', 'name', 'created', 'tenant_id', 'OS-DCF:diskConfig', 'os-extended-volumes:volumes_attached', 'accessIPv4',
  'accessIPv6', 'progress', 'OS-EXT-STS:power_state', 'config_drive', 'metadata',
].sort();
/** seed 002's Format adds these (nova: admin-only extended server attributes). */
const SEED002_ADMIN_KEYS = [
  ...SEED002_SAMPLE_KEYS,
  'OS-EXT-SRV-ATTR:host',
  'OS-EXT-SRV-ATTR:hypervisor_hostname',
  'OS-EXT-SRV-ATTR:instance_name',
].sort();
const SEED001_ACTION_KEYS = ['action', 'events', 'instance_uuid', 'message', 'project_id', 'request_id', 'start_time', 'user_id'];
const SEED001_EVENT_KEYS = ['event', 'finish_time', 'result', 'start_time', 'traceback'];
const SEED004_INSTANCE_KEYS = [
  'uuid', 'name', 'description', 'instance_type_uuid', 'image_uuid', 'availability_zone', 'network_info', 'links', 'status',
  'power_state', 'project_id', 'user_id', 'created_at', 'updated_at',
].sort();
const IRONIC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;
const NOVA_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;
const NOVA_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const IMG = '1fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const NET = '3b8c5f0e-0000-4000-8000-000000000003';

const keys = (o: unknown) => Object.keys(o as object).sort();

describe('v1 instances (seeds 003, 004)', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
    h.svc.addNode();
  });

  it('POST creates: 201, Location, the seed-004 shape, no secrets; the service gets the flat body', async () => {
    const body = {
      name: 'Testvm1',
      description: 'db',
      instance_type_uuid: '2b8c5f0e-0000-4000-8000-000000000002',
      image_uuid: IMG,
      availability_zone: 'rack-a',
      networks: [{ uuid: NET, port_type: 'normal' }],
      metadata: { role: 'db' },
      extra: {
        node_id: '1b8c5f0e-0000-4000-8000-000000000001',
        hostname: 'db-1',
        ssh_keys: ['ssh-ed25519 AAAA me'],
        password_hash: '$6$salt$SECRETHASH',
        user_data: '#cloud-config SECRET-USER-DATA',
      },
    };
    const res = await h.app.inject({ method: 'POST', url: '/v1/p1/instances', headers: auth(M1), payload: body });
    expect(res.statusCode).toBe(201);
    const v = res.json();
    expect(keys(v)).toEqual(SEED004_INSTANCE_KEYS);
    expect(v.uuid).toMatch(UUID_RE);
    expect(res.headers.location).toBe(`${BASE}/v1/p1/instances/${v.uuid}`);
    expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    expect(v.links).toEqual([
      { href: `${BASE}/v1/p1/instances/${v.uuid}`, rel: 'self' },
      { href: `${BASE}/p1/instances/${v.uuid}`, rel: 'bookmark' },
    ]);
    expect(v).toMatchObject({ status: 'pending', power_state: 'power off', project_id: 'p1', user_id: 'u1', name: 'Testvm1' });
    expect(v.network_info).toEqual({ [NET]: { network: null, port_type: 'normal', mac_address: null, fixed_ips: [] } });
    expect(v.created_at).toMatch(IRONIC_TIME);
    expect(res.body).not.toContain('SECRET');
    expect(h.svc.callsOf('createInstance')[0]!.args[0]).toEqual(body);
  });

  it('GET list, show, status, states', async () => {
    const i = h.svc.addInstance({ state: 'stopped', power_state: 'off', target_power_state: 'on', operation_state: 'install-succeed' });
    const list = await h.app.inject({ method: 'GET', url: '/v1/p1/instances', headers: auth(M1) });
    expect(list.statusCode).toBe(200);
    expect(keys(list.json())).toEqual(['instances']);
    expect(keys(list.json().instances[0])).toEqual(SEED004_INSTANCE_KEYS);

    const show = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}`, headers: auth(M1) });
    expect(show.json()).toMatchObject({
      uuid: i.id,
      status: 'stopped',
      power_state: 'power off',
      created_at: '2014-07-24T00:26:07.000000+00:00',
      updated_at: '2014-07-24T00:26:12.123456+00:00',
      network_info: { [NET]: { network: 'private', port_type: 'normal', mac_address: 'fa:16:3e:1c:d0:5a', fixed_ips: [{ ip_address: '10.0.0.2', version: 4 }] } },
    });

    const st = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}/status`, headers: auth(M1) });
    expect(st.json()).toEqual({ state: 'stopped', operation_state: 'install-succeed', error: null });

    const states = await h.app.inject({ method: 'GET', url: `/v1/instances/${i.id}/states`, headers: auth(M1) });
    expect(states.json()).toEqual({ power_state: 'power off', target_power_state: 'power on' });
  });

  it('status: every key always present, error with its three fields', async () => {
    const i = h.svc.addInstance({
      state: 'error',
      operation_state: null,
      error: { error_code: 'BMC_ERR_UNREACHABLE', error_msg: 'BMC did not answer', error_type: 'bmc_unreachable_error' },
    });
    const st = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}/status`, headers: auth(M1) });
    expect(st.json()).toEqual({
      state: 'error',
      operation_state: null,
      error: { error_code: 'BMC_ERR_UNREACHABLE', error_msg: 'the BMC could not be reached', error_type: 'bmc_unreachable_error' },
    });
  });

  it('unknown power reads as null (never "power off")', async () => {
    const i = h.svc.addInstance({ power_state: 'unknown' });
    const states = await h.app.inject({ method: 'GET', url: `/v1/instances/${i.id}/states`, headers: auth(M1) });
    expect(states.json()).toEqual({ power_state: null, target_power_state: null });
  });

  it('DELETE: 202, empty body', async () => {
    const i = h.svc.addInstance();
    const res = await h.app.inject({ method: 'DELETE', url: `/v1/p1/instances/${i.id}`, headers: auth(M1) });
    expect(res.statusCode).toBe(202);
    expect(res.body).toBe('');
    expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
    expect(h.svc.callsOf('deleteInstance')[0]!.args).toEqual([i.id]);
  });

  it.each([
    [{ reinstall: {} }, 'reinstall', { image_uuid: undefined, hostname: undefined, ssh_keys: undefined, password_hash: undefined, user_data: undefined }],
    [
      { 'switch-install': { image_uuid: IMG, hostname: 'h1', password_hash: '$6$a$b' } },
      'switch-install',
      { image_uuid: IMG, hostname: 'h1', ssh_keys: undefined, password_hash: '$6$a$b', user_data: undefined },
    ],
    [
      { 'modify-ip': { networks: [{ uuid: NET, fixed_ip: '10.0.0.9' }] } },
      'modify-ip',
      { networks: [{ uuid: NET, port_type: undefined, fixed_ip: '10.0.0.9' }] },
    ],
    [{ uninstall: {} }, 'uninstall', {}],
    [{ 'change-password': { password_hash: '$6$salt$hash' } }, 'change-password', { password_hash: '$6$salt$hash' }],
    [{ retry: {} }, 'retry', {}],
  ])('POST actions %j -> 202 {request_id} and runOperation(%s)', async (body, op, params) => {
    const i = h.svc.addInstance();
    const res = await h.app.inject({ method: 'POST', url: `/v1/p1/instances/${i.id}/actions`, headers: auth(M1), payload: body });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ request_id: res.headers['x-compute-request-id'] });
    const call = h.svc.callsOf('runOperation')[0]!;
    expect(call.args).toEqual([i.id, op, params]);
    expect(res.body).not.toContain('$6$');
  });

  it.each([
    ['power on', 'on'],
    ['power off', 'off'],
    ['rebooting', 'reboot'],
    ['soft power off', 'soft-off'],
    ['soft rebooting', 'soft-reboot'],
    ['on', 'on'],
    ['off', 'off'],
    ['reboot', 'reboot'],
    ['soft_off', 'soft-off'],
    ['soft_reboot', 'soft-reboot'],
  ])('PUT power %j -> 202 and target %s', async (word, target) => {
    const i = h.svc.addInstance();
    const res = await h.app.inject({ method: 'PUT', url: `/v1/instances/${i.id}/states/power`, headers: auth(M1), payload: { target: word } });
    expect(res.statusCode).toBe(202);
    expect(res.body).toBe('');
    expect(h.svc.callsOf('setInstancePower')[0]!.args).toEqual([i.id, { target, timeout_s: undefined }]);
  });

  it('PUT power: timeout only with the soft targets', async () => {
    const i = h.svc.addInstance();
    const put = (payload: object) =>
      h.app.inject({ method: 'PUT', url: `/v1/instances/${i.id}/states/power`, headers: auth(M1), payload });
    expect((await put({ target: 'soft power off', timeout: 300 })).statusCode).toBe(202);
    expect((await put({ target: 'soft_reboot', timeout: 30 })).statusCode).toBe(202);
    expect(h.svc.callsOf('setInstancePower').map((c) => c.args[1])).toEqual([
      { target: 'soft-off', timeout_s: 300 },
      { target: 'soft-reboot', timeout_s: 30 },
    ]);
    for (const bad of [{ target: 'power off', timeout: 300 }, { target: 'rebooting', timeout: 5 }, { target: 'on', timeout: 1 }]) {
      const res = await put(bad);
      expect(res.statusCode).toBe(400);
      expect(res.json().error_msg).toContain('body.timeout');
    }
    for (const bad of [{ target: 'soft power off', timeout: 0 }, { target: 'soft power off', timeout: '30' }, { target: 'POWER ON' }, { target: 'shutdown' }, {}]) {
      expect((await put(bad)).statusCode, JSON.stringify(bad)).toBe(400);
    }
    expect(h.svc.callsOf('setInstancePower')).toHaveLength(2);
  });

  it('PUT power: accepted:false (already there) is still 202', async () => {
    const i = h.svc.addInstance();
    h.svc.powerAccepted = false;
    const res = await h.app.inject({ method: 'PUT', url: `/v1/instances/${i.id}/states/power`, headers: auth(M1), payload: { target: 'on' } });
    expect(res.statusCode).toBe(202);
  });

  it.each([
    [new AgentError('AGENT_ERR_INVALID_TRANSITION', 'cannot power on in state pending'), 400],
    [new AgentError('AGENT_ERR_LOCKED', 'reinstall in progress'), 409],
    [new AgentError('AGENT_ERR_NOT_ACCEPTABLE', 'driver ipmi cannot soft-reboot'), 406],
    [new AgentError('AGENT_ERR_MAINTENANCE', 'node in maintenance'), 409],
  ])('service decides the power answer: %s -> %i with its code', async (err, status) => {
    const i = h.svc.addInstance();
    h.svc.failNext('setInstancePower', err);
    const res = await h.app.inject({ method: 'PUT', url: `/v1/instances/${i.id}/states/power`, headers: auth(M1), payload: { target: 'on' } });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error_code: err.code, error_msg: err.message });
    expect(res.headers['x-compute-request-id']).toMatch(REQ_ID_RE);
  });

  it('a store failure is 500 AGENT_ERR_STORE / computeFault with its own message; the SQL detail only in the log', async () => {
    const i = h.svc.addInstance();
    h.svc.failNext('deleteInstance', new StoreError('SQLITE_FULL: database or disk is full at /var/lib/metald'));
    const res = await h.app.inject({ method: 'DELETE', url: `/v1/p1/instances/${i.id}`, headers: auth(M1) });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error_code: 'AGENT_ERR_STORE', error_msg: GENERIC_MESSAGES.store });
    expect(res.body).not.toContain('SQLITE');
    expect(h.logs.join('')).toContain('SQLITE_FULL');

    h.svc.failNext('getInstance', new StoreError('SQLITE_IOERR: disk I/O error in table instances'));
    const v2 = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}`, headers: auth(M1) });
    expect(v2.statusCode).toBe(500);
    expect(v2.json()).toEqual({ computeFault: { message: GENERIC_MESSAGES.store, code: 500 } });
    expect(v2.body).not.toContain('disk I/O');

    h.svc.failNext('getInstance', new AgentError('AGENT_ERR_STORE', 'disk I/O error in table instances'));
    const v1 = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}`, headers: auth(M1) });
    expect(v1.json()).toEqual({ error_code: 'AGENT_ERR_STORE', error_msg: GENERIC_MESSAGES.store });
  });

  it('an unexpected error is a generic 500 AGENT_ERR_INTERNAL, detail only in the log', async () => {
    const i = h.svc.addInstance();
    h.svc.failNext('getInstance', new TypeError("Cannot read properties of undefined (reading 'node_id')"));
    const res = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}/status`, headers: auth(M1) });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error_code: 'AGENT_ERR_INTERNAL', error_msg: GENERIC_MESSAGES.internal });
    expect(GENERIC_MESSAGES.internal).not.toBe(GENERIC_MESSAGES.store);
    expect(h.logs.join('')).toContain('reading');
  });
});

describe('nova routes (seeds 000, 001, 002)', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
    h.svc.addNode();
  });

  it('GET server: seed 002 sample key set for members, plus OS-EXT-SRV-ATTR for admins; every field from its source', async () => {
    const i = h.svc.addInstance({ metadata: { role: 'db' } });
    const res = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}`, headers: auth(M1) });
    expect(res.statusCode).toBe(200);
    expect(keys(res.json())).toEqual(['server']);
    const s = res.json().server;
    expect(keys(s)).toEqual(SEED002_SAMPLE_KEYS);
    expect(s).toEqual({
      status: 'ACTIVE',
      updated: '2014-07-24T00:26:12Z',
      hostId: createHash('sha224').update('p1rack-a12').digest('hex'),
      addresses: { private: [{ 'OS-EXT-IPS-MAC:mac_addr': 'fa:16:3e:1c:d0:5a', version: 4, addr: '10.0.0.2', 'OS-EXT-IPS:type': 'fixed' }] },
      links: [
        { href: `${BASE}/v2/p1/servers/${i.id}`, rel: 'self' },
        { href: `${BASE}/p1/servers/${i.id}`, rel: 'bookmark' },
      ],
      key_name: null,
      image: { id: IMG, links: [{ href: `${BASE}/p1/images/${IMG}`, rel: 'bookmark' }] },
      'OS-EXT-STS:task_state': null,
      'OS-EXT-STS:vm_state': 'active',
      'OS-SRV-USG:launched_at': '2014-07-24T00:26:12.000000',
      flavor: {
        id: i.instance_type_uuid,
        links: [{ href: `${BASE}/p1/flavors/${i.instance_type_uuid}`, rel: 'bookmark' }],
      },
      id: i.id,
      security_groups: [],
      'OS-SRV-USG:terminated_at': null,
      'OS-EXT-AZ:availability_zone': 'nova',
      user_id: 'u1',
      name: 'Testvm1',
      created: '2014-07-24T00:26:07Z',
      tenant_id: 'p1',
      'OS-DCF:diskConfig': 'MANUAL',
      'os-extended-volumes:volumes_attached': [],
      accessIPv4: '10.0.0.2',
      accessIPv6: '',
      progress: 100,
      'OS-EXT-STS:power_state': 1,
      config_drive: '',
      metadata: { role: 'db' },
    });
    expect(res.body).not.toContain('SECRET');

    const admin = await h.app.inject({ method: 'GET', url: `/v2/adminproj/servers/${i.id}`, headers: auth(ADMIN) });
    const a = admin.json().server;
    expect(keys(a)).toEqual(SEED002_ADMIN_KEYS);
    expect(a['OS-EXT-SRV-ATTR:host']).toBe('rack-a12');
    expect(a['OS-EXT-SRV-ATTR:hypervisor_hostname']).toBe('node-01');
    expect(a['OS-EXT-SRV-ATTR:instance_name']).toBe('db-1');
    expect(a.tenant_id).toBe('p1');
    expect(admin.body).not.toContain('SECRET');
  });

  it('GET server: status triple by state and task; terminated reads DELETED; time formats', async () => {
    const cases: [Parameters<typeof h.svc.addInstance>[0], string, string, string | null, number][] = [
      [{ state: 'pending', task: 'create', power_state: 'off' }, 'BUILD', 'building', 'spawning', 4],
      [{ state: 'running', task: 'reboot' }, 'HARD_REBOOT', 'active', 'rebooting_hard', 1],
      [{ state: 'stopped', task: 'change-password', power_state: 'off' }, 'PASSWORD', 'stopped', 'updating_password', 4],
      [{ state: 'shutting-down', task: 'delete', power_state: 'on' }, 'ACTIVE', 'active', 'deleting', 1],
      [{ state: 'error', power_state: 'unknown' }, 'ERROR', 'error', null, 0],
      [{ state: 'terminated', power_state: 'off', terminated_at: '2014-07-25T10:00:00.5Z' }, 'DELETED', 'deleted', null, 4],
    ];
    for (const [over, status, vm, task, power] of cases) {
      const i = h.svc.addInstance(over);
      const s = (await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}`, headers: auth(M1) })).json().server;
      expect([s.status, s['OS-EXT-STS:vm_state'], s['OS-EXT-STS:task_state'], s['OS-EXT-STS:power_state']]).toEqual([status, vm, task, power]);
      expect(s.created).toMatch(NOVA_Z);
      if (s['OS-SRV-USG:terminated_at'] !== null) expect(s['OS-SRV-USG:terminated_at']).toBe('2014-07-25T10:00:00.500000');
    }
  });

  it('os-instance-actions: list without events, show with events; traceback for admins only', async () => {
    const i = h.svc.addInstance();
    const act = makeAction(i, { action: 'reboot', finish_time: null });
    h.svc.actions.push(act);
    const list = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}/os-instance-actions`, headers: auth(M1) });
    expect(list.statusCode).toBe(200);
    expect(keys(list.json())).toEqual(['instanceActions']);
    expect(keys(list.json().instanceActions[0])).toEqual(SEED001_ACTION_KEYS.filter((k) => k !== 'events'));

    const url = `/v2/p1/servers/${i.id}/os-instance-actions/${act.request_id}`;
    const show = await h.app.inject({ method: 'GET', url, headers: auth(M1) });
    const a = show.json().instanceAction;
    expect(keys(show.json())).toEqual(['instanceAction']);
    expect(keys(a)).toEqual(SEED001_ACTION_KEYS);
    expect(keys(a.events[0])).toEqual(SEED001_EVENT_KEYS);
    expect(a).toMatchObject({ action: 'reboot', instance_uuid: i.id, request_id: act.request_id, message: null, start_time: '2015-10-15T00:40:25.000000' });
    expect(a.events[0]).toEqual({
      event: 'power-off',
      start_time: '2015-10-15T00:40:25.000000',
      finish_time: '2015-10-15T00:40:32.000000',
      result: 'Error',
      traceback: null,
    });
    expect(show.body).not.toContain('BMC_ERR_UNREACHABLE');

    const adm = await h.app.inject({ method: 'GET', url: url.replace('/p1/', '/adminproj/'), headers: auth(ADMIN) });
    expect(adm.json().instanceAction.events[0].traceback).toBe('BMC_ERR_UNREACHABLE: 10.0.1.21 timed out');
    expect(adm.json().instanceAction.start_time).toMatch(NOVA_MICRO);
  });

  it('os-instance-actions lists newest first, as nova (the service pages them in that order)', async () => {
    const i = h.svc.addInstance();
    const at = (t: string, action: Action['action']) => makeAction(i, { action, start_time: t });
    // Store order (oldest first), with two actions started in the same second: the later-recorded is newer.
    h.svc.actions.push(
      at('2015-10-15T00:40:25Z', 'create'),
      at('2015-10-16T08:00:00Z', 'stop'),
      at('2015-10-16T08:00:00Z', 'start'),
      at('2015-10-17T09:30:00.5Z', 'reboot'),
    );
    const list = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}/os-instance-actions`, headers: auth(M1) });
    expect(list.json().instanceActions.map((a: { action: string }) => a.action)).toEqual(['reboot', 'start', 'stop', 'create']);
  });

  it('members read errors and action messages without BMC internals; admins read the detail', async () => {
    const node = '1b8c5f0e-0000-4000-8000-000000000001';
    const raw = `step 'power_off' failed: node ${node} (node-01) via ipmi at 10.0.1.21: BMC replied 'Chassis Power Control: Up/On'`;
    const i = h.svc.addInstance({
      state: 'running',
      error: { error_code: 'BMC_ERR_VERIFY_FAILED', error_msg: raw, error_type: 'power_off_error' },
    });
    h.svc.actions.push(makeAction(i, { action: 'stop', finish_time: '2015-10-15T00:41:00Z', message: raw }));
    const internals = [node, 'node-01', 'ipmi', '10.0.1.21', 'Chassis'];

    const st = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}/status`, headers: auth(M1) });
    expect(st.json().error).toEqual({
      error_code: 'BMC_ERR_VERIFY_FAILED',
      error_msg: "step 'power_off' failed: the BMC did not confirm the change",
      error_type: 'power_off_error',
    });
    const list = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}/os-instance-actions`, headers: auth(M1) });
    expect(list.json().instanceActions[0].message).toBe("step 'power_off' failed (an admin can see why)");
    const req = list.json().instanceActions[0].request_id as string;
    const show = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}/os-instance-actions/${req}`, headers: auth(M1) });
    expect(show.json().instanceAction.message).toBe("step 'power_off' failed (an admin can see why)");
    for (const body of [st.body, list.body, show.body]) for (const word of internals) expect(body).not.toContain(word);

    const adm = await h.app.inject({ method: 'GET', url: `/v1/adminproj/instances/${i.id}/status`, headers: auth(ADMIN) });
    expect(adm.json().error.error_msg).toBe(raw);
    const admShow = await h.app.inject({ method: 'GET', url: `/v2/adminproj/servers/${i.id}/os-instance-actions/${req}`, headers: auth(ADMIN) });
    expect(admShow.json().instanceAction.message).toBe(raw);
  });

  it('a member error without a step or with an unknown code falls back to the error type', async () => {
    const i = h.svc.addInstance({
      error: { error_code: 'BMC_ERR_SOMETHING_NEW', error_msg: 'the BMC of node node-01 could not be read: 10.0.1.21 refused', error_type: 'bmc_unreachable_error' },
    });
    const st = await h.app.inject({ method: 'GET', url: `/v1/p1/instances/${i.id}/status`, headers: auth(M1) });
    expect(st.json().error.error_msg).toBe("the server's power state could not be read");
  });

  it('action 404s: unknown request id and a malformed one', async () => {
    const i = h.svc.addInstance();
    const unknown = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}/os-instance-actions/req-${i.id}`, headers: auth(M1) });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ itemNotFound: { message: expect.any(String), code: 404 } });
    const bad = await h.app.inject({ method: 'GET', url: `/v2/p1/servers/${i.id}/os-instance-actions/${i.id}`, headers: auth(M1) });
    expect(bad.statusCode).toBe(404);
    expect(h.svc.callsOf('getAction')).toHaveLength(1);
  });

  it('os-fping: one, project list, all_tenants, include/exclude', async () => {
    const i = h.svc.addInstance();
    const j = h.svc.addInstance({ project_id: 'p2' });
    const one = await h.app.inject({ method: 'GET', url: `/v2.1/p1/os-fping/${i.id}`, headers: auth(M1) });
    expect(one.json()).toEqual({ server: { alive: true, id: i.id, project_id: 'p1' } });

    const list = await h.app.inject({ method: 'GET', url: '/v2.1/p1/os-fping', headers: auth(M1) });
    expect(list.json()).toEqual({ servers: [{ alive: true, id: i.id, project_id: 'p1' }] });
    expect(h.svc.callsOf('pingMany')[0]!.args[0]).toEqual({ allProjects: false });

    const all = await h.app.inject({ method: 'GET', url: '/v2.1/adminproj/os-fping?all_tenants=1', headers: auth(ADMIN) });
    expect(all.json().servers.map((s: { id: string }) => s.id).sort()).toEqual([i.id, j.id].sort());

    const inc = await h.app.inject({ method: 'GET', url: `/v2.1/adminproj/os-fping?all_tenants=1&include=${j.id}`, headers: auth(ADMIN) });
    expect(inc.json().servers).toEqual([{ alive: true, id: j.id, project_id: 'p2' }]);
    expect(h.svc.callsOf('pingMany').at(-1)!.args[0]).toEqual({ allProjects: true, include: [j.id] });

    const exc = await h.app.inject({ method: 'GET', url: `/v2.1/p1/os-fping?exclude=${i.id},${j.id}`, headers: auth(M1) });
    expect(exc.json()).toEqual({ servers: [] });

    const n = h.svc.callsOf('pingMany').length;
    const both = await h.app.inject({ method: 'GET', url: `/v2.1/p1/os-fping?include=${i.id}&exclude=${j.id}`, headers: auth(M1) });
    expect(both.statusCode).toBe(400);
    expect(both.json()).toEqual({ badRequest: { message: expect.stringContaining('include or exclude'), code: 400 } });
    const notUuid = await h.app.inject({ method: 'GET', url: '/v2.1/p1/os-fping?include=abc', headers: auth(M1) });
    expect(notUuid.statusCode).toBe(400);
    const unknownParam = await h.app.inject({ method: 'GET', url: '/v2.1/p1/os-fping?foo=1', headers: auth(M1) });
    expect(unknownParam.statusCode).toBe(400);
    const forbidden = await h.app.inject({ method: 'GET', url: '/v2.1/p1/os-fping?all_tenants=1', headers: auth(M1) });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json()).toEqual({ forbidden: { message: expect.any(String), code: 403 } });
    expect(h.svc.callsOf('pingMany')).toHaveLength(n);
  });

  it("seed 001's 400 body, letter for letter", async () => {
    const i = h.svc.addInstance();
    const res = await h.app.inject({
      method: 'GET',
      url: `/v2/ad355aa6ed3e4cf5ae0fa0df652bc290/servers/${i.id}/os-instance-actions/req-bdff6b70-dede-4292-9f8f-2e9b00adf678`,
      headers: auth(M1),
    });
    expect(res.statusCode).toBe(400);
    expect(res.body).toBe(
      `{"badRequest":{"message":"Malformed request URL: URL's project_id 'ad355aa6ed3e4cf5ae0fa0df652bc290' doesn't match Context's project_id 'p1'","code":400}}`,
    );
    const v1 = await h.app.inject({ method: 'GET', url: `/v1/p2/instances/${i.id}/status`, headers: auth(M1) });
    expect(v1.json()).toEqual({
      error_code: 'AGENT_ERR_BAD_REQUEST',
      error_msg: "Malformed request URL: URL's project_id 'p2' doesn't match Context's project_id 'p1'",
    });
  });
});

describe('nodes (admin)', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness({}, true);
  });

  it('list, show, power, maintenance, fake-faults; no BMC secrets', async () => {
    const n = h.svc.addNode();
    const list = await h.app.inject({ method: 'GET', url: '/v1/nodes', headers: auth(ADMIN) });
    expect(list.statusCode).toBe(200);
    expect(list.json().nodes).toHaveLength(1);
    const show = await h.app.inject({ method: 'GET', url: `/v1/nodes/${n.id}`, headers: auth(ADMIN) });
    expect(show.json()).toMatchObject({ uuid: n.id, name: 'node-01', power_state: 'power on', maintenance: false, driver: 'ipmi' });
    expect(show.json().updated_at).toMatch(IRONIC_TIME);
    expect(show.body).not.toContain('password_file');
    expect(show.body).not.toContain('secret');

    const p = await h.app.inject({ method: 'PUT', url: `/v1/nodes/${n.id}/states/power`, headers: auth(ADMIN), payload: { target: 'soft power off', timeout: 60 } });
    expect(p.statusCode).toBe(202);
    expect(h.svc.callsOf('setNodePower')[0]!.args).toEqual([n.id, { target: 'soft-off', timeout_s: 60 }]);

    const m = await h.app.inject({ method: 'PUT', url: `/v1/nodes/${n.id}/maintenance`, headers: auth(ADMIN), payload: { maintenance: true, reason: 'disk' } });
    expect(m.statusCode).toBe(200);
    expect(m.json()).toMatchObject({ maintenance: true, maintenance_reason: 'disk' });
    const bad = await h.app.inject({ method: 'PUT', url: `/v1/nodes/${n.id}/maintenance`, headers: auth(ADMIN), payload: { maintenance: false, reason: 'x' } });
    expect(bad.statusCode).toBe(400);
    const bad2 = await h.app.inject({ method: 'PUT', url: `/v1/nodes/${n.id}/maintenance`, headers: auth(ADMIN), payload: { maintenance: 'yes' } });
    expect(bad2.statusCode).toBe(400);
    expect(h.svc.callsOf('setMaintenance')).toHaveLength(1);

    const f = await h.app.inject({ method: 'PUT', url: `/v1/nodes/${n.id}/fake-faults`, headers: auth(ADMIN), payload: { fail_power_on: 2 } });
    expect(f.statusCode).toBe(204);
    expect(h.faults).toEqual([{ nodeId: n.id, faults: { fail_power_on: 2 } }]);

    const missing = await h.app.inject({ method: 'GET', url: `/v1/nodes/${'0'.repeat(8)}-0000-4000-8000-000000000000`, headers: auth(ADMIN) });
    expect(missing.statusCode).toBe(404);
    const notUuid = await h.app.inject({ method: 'GET', url: '/v1/nodes/node-01', headers: auth(ADMIN) });
    expect(notUuid.statusCode).toBe(404);
    expect(notUuid.json().error_code).toBe('AGENT_ERR_NOT_FOUND');
  });

  it('fake-faults exists only when the option is given', async () => {
    const plain = await harness();
    const n = plain.svc.addNode();
    const res = await plain.app.inject({ method: 'PUT', url: `/v1/nodes/${n.id}/fake-faults`, headers: auth(ADMIN), payload: {} });
    expect(res.statusCode).toBe(404);
  });
});
