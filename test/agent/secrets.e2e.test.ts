/**
 * Secrets never leak (design 4.1, docs/api.md): the REAL daemon (a child process) is driven through create, power,
 * reinstall, change-password, failures, SIGHUP (with rotated secrets and a broken token file) and bad requests
 * carrying secrets, and then no marker -- the BMC password, the API tokens, password hashes, user data -- may appear in
 * the daemon's stdout/stderr, in any API response, in the journal / actions / action_events / nodes tables of the
 * store, or in the daemon's argv. The instance row itself may keep the password hash and user data: it is the
 * durable record the installer's job is built from.
 *
 * The harness's fixed tokens ('a' x 32, 'b' x 32, ...) are substrings of its catalogue's sha256 values, so this file
 * writes random tokens into the token files instead: a marker must be unique to be a proof.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, stateDirOf, waitFor, type Daemon } from '../helpers/daemon.js';
import { ADMIN_PROJECT, IMAGE, IMAGE2, NETWORK, PROJECT, nodeId, SSH_KEY, writeConfig } from '../helpers/harness.js';

const rnd = (n = 8): string => randomBytes(n).toString('hex');

const PASSWORD = `S3cr3t-PW-${rnd()}`;
const PASSWORD_ROTATED = `S3cr3t-PW-rotated-${rnd()}`;
const ADMIN = `admintok${rnd(16)}`;
const MEMBER = `membertok${rnd(16)}`;
const OTHER = `othertok${rnd(16)}`;
const ADMIN_ROTATED = `adminrot${rnd(16)}`;
const UNKNOWN_TOKEN = `unknowntok${rnd(16)}`;
const BROKEN_TOKEN_PART = `brokentok${rnd(16)}`;
const HASH_CREATE = `$6$mk${rnd(4)}$createhash${rnd()}`;
const HASH_REINSTALL = `$6$mk${rnd(4)}$reinstallhash${rnd()}`;
const HASH_CHANGE = `$6$mk${rnd(4)}$changehash${rnd()}`;
const HASH_FAILED = `$6$mk${rnd(4)}$failedhash${rnd()}`;
const CLEAR_PASSWORD = `clear-text-pw-${rnd()}`;
const USER_DATA_CREATE = `#cloud-config\n# ud-create-${rnd()}\nruncmd: [echo hi]\n`;
const USER_DATA_REINSTALL = `#cloud-config\n# ud-reinstall-${rnd()}\n`;

/** The part of each marker that must not appear anywhere (user data markers: the unique line). */
const MARKERS: Record<string, string> = {
  PASSWORD,
  PASSWORD_ROTATED,
  ADMIN,
  MEMBER,
  OTHER,
  ADMIN_ROTATED,
  UNKNOWN_TOKEN,
  BROKEN_TOKEN_PART,
  HASH_CREATE,
  HASH_REINSTALL,
  HASH_CHANGE,
  HASH_FAILED,
  CLEAR_PASSWORD,
  USER_DATA_CREATE: /ud-create-[0-9a-f]+/.exec(USER_DATA_CREATE)![0],
  USER_DATA_REINSTALL: /ud-reinstall-[0-9a-f]+/.exec(USER_DATA_REINSTALL)![0],
};
/** The hash-like markers without their `$`-prefix, in case something strips or escapes it. */
for (const k of ['HASH_CREATE', 'HASH_REINSTALL', 'HASH_CHANGE', 'HASH_FAILED']) {
  MARKERS[`${k}_TAIL`] = MARKERS[k]!.split('$').pop()!;
}
/** May stay in the instance row (the durable record): every hash and user data, never a password or a token. */
const INSTANCE_ROW_MAY_HOLD = new Set([
  'HASH_CREATE', 'HASH_REINSTALL', 'HASH_CHANGE', 'HASH_FAILED', 'HASH_CREATE_TAIL', 'HASH_REINSTALL_TAIL',
  'HASH_CHANGE_TAIL', 'HASH_FAILED_TAIL', 'USER_DATA_CREATE', 'USER_DATA_REINSTALL',
]);

function leaks(text: string, allowed: ReadonlySet<string> = new Set()): string[] {
  return Object.entries(MARKERS)
    .filter(([name, m]) => !allowed.has(name) && text.includes(m))
    .map(([name]) => name);
}

let daemon: Daemon;
let dir: string;
let configPath: string;
let passwordFile: string;
let cmdline = '';
let environ = '';
let logs = '';
let adminRotated = false;
/** The admin token in force (rotated by the SIGHUP step). */
const ADMIN_ROTATED_IN_USE = (): string => (adminRotated ? ADMIN_ROTATED : ADMIN);
/** Every response body (and header block) the file received. */
const answers: { what: string; text: string }[] = [];

async function call(method: string, path: string, token: string | null, body?: unknown) {
  const r = await daemon.call(method, path, token, body);
  answers.push({ what: `${method} ${path} -> ${r.status}`, text: r.text + '\n' + [...r.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n') });
  return r;
}

interface Status {
  state: string;
  operation_state: string | null;
  error: { error_code: string; error_msg: string; error_type: string } | null;
}
/** Settled: no task (seed 002 task_state null), no target power state, nothing -processing. */
async function settle(id: string): Promise<Status> {
  let s: Status | null = null;
  await waitFor(async () => {
    const server = (await call('GET', `/v2/${PROJECT}/servers/${id}`, MEMBER)).body as { server: Record<string, unknown> };
    if (server.server['OS-EXT-STS:task_state'] !== null) return false;
    const t = (await call('GET', `/v1/instances/${id}/states`, MEMBER)).body as { target_power_state: string | null };
    s = (await call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER)).body as Status;
    return !(s.operation_state ?? '').endsWith('-processing') && s.state !== 'pending' && s.state !== 'shutting-down' && t.target_power_state === null;
  }, 15_000, `instance ${id} to settle`);
  return s!;
}
/** Reads everything an instance shows, as the member and as the admin (with tracebacks). */
async function readEverything(id: string): Promise<void> {
  await call('GET', `/v1/${PROJECT}/instances/${id}`, MEMBER);
  await call('GET', `/v1/${PROJECT}/instances`, MEMBER);
  await call('GET', `/v1/${ADMIN_PROJECT}/instances`, ADMIN_ROTATED_IN_USE());
  await call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER);
  await call('GET', `/v1/instances/${id}/states`, MEMBER);
  await call('GET', `/v2/${PROJECT}/servers/${id}`, MEMBER);
  await call('GET', `/v2/${ADMIN_PROJECT}/servers/${id}`, ADMIN_ROTATED_IN_USE());
  await call('GET', `/v2.1/${PROJECT}/os-fping/${id}`, MEMBER);
  await call('GET', `/v2.1/${ADMIN_PROJECT}/os-fping?all_tenants=1`, ADMIN_ROTATED_IN_USE());
  const list = await call('GET', `/v2/${ADMIN_PROJECT}/servers/${id}/os-instance-actions`, ADMIN_ROTATED_IN_USE());
  for (const a of (list.body as { instanceActions: { request_id: string }[] }).instanceActions) {
    await call('GET', `/v2/${ADMIN_PROJECT}/servers/${id}/os-instance-actions/${a.request_id}`, ADMIN_ROTATED_IN_USE());
    await call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions/${a.request_id}`, MEMBER);
  }
  await call('GET', '/v1/nodes', ADMIN_ROTATED_IN_USE());
  await call('GET', `/v1/nodes/${nodeId(1)}`, ADMIN_ROTATED_IN_USE());
}

beforeAll(async () => {
  const cfg = writeConfig({ nodes: 2 });
  dir = cfg.dir;
  configPath = cfg.configPath;
  writeFileSync(join(dir, 'admin.token'), `${ADMIN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'member.token'), `${MEMBER}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'other.token'), `${OTHER}\n`, { mode: 0o600 });
  passwordFile = join(dir, 'node-01.password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  // node-01's BMC gets credentials (the fake driver accepts username/password_file like every driver).
  const yaml = readFileSync(configPath, 'utf8');
  const anchor = 'address: "fake://node-1", ';
  expect(yaml).toContain(anchor);
  writeFileSync(configPath, yaml.replace(anchor, `${anchor}username: admin, password_file: ${passwordFile}, `));
  daemon = await startDaemon(configPath);
  cmdline = readFileSync(`/proc/${daemon.child.pid}/cmdline`, 'utf8');
  environ = readFileSync(`/proc/${daemon.child.pid}/environ`, 'utf8');
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('secrets never leak', () => {
  it('runs create, power, reinstall, change-password, failures, SIGHUP and bad requests', async () => {
    // The node's view never names the password or where it is stored.
    const node = await call('GET', `/v1/nodes/${nodeId(1)}`, ADMIN);
    expect(node.status).toBe(200);
    expect((node.body as { bmc: Record<string, unknown> }).bmc['username']).toBe('admin');
    expect(node.text).not.toContain(passwordFile);
    expect(node.text).not.toContain('password');

    // create with a password hash and user data
    const c = await call('POST', `/v1/${PROJECT}/instances`, MEMBER, {
      name: 'secret-1',
      image_uuid: IMAGE,
      networks: [{ uuid: NETWORK }],
      extra: { node_id: nodeId(1), hostname: 'secret-1', password_hash: HASH_CREATE, user_data: USER_DATA_CREATE, ssh_keys: [SSH_KEY] },
    });
    expect(c.status).toBe(201);
    const id = (c.body as { uuid: string }).uuid;
    expect((await settle(id)).state).toBe('running');
    await readEverything(id);

    // power
    expect((await call('PUT', `/v1/instances/${id}/states/power`, MEMBER, { target: 'power off' })).status).toBe(202);
    expect((await settle(id)).state).toBe('stopped');
    expect((await call('PUT', `/v1/instances/${id}/states/power`, MEMBER, { target: 'power on' })).status).toBe(202);
    expect((await settle(id)).state).toBe('running');

    // reinstall with a new hash and user data
    const re = await call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER, {
      reinstall: { image_uuid: IMAGE2, password_hash: HASH_REINSTALL, user_data: USER_DATA_REINSTALL },
    });
    expect(re.status).toBe(202);
    expect(await settle(id)).toEqual({ state: 'running', operation_state: 'reinstall-succeed', error: null });

    // change-password (running: powered off first, ends stopped)
    const cp = await call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER, { 'change-password': { password_hash: HASH_CHANGE } });
    expect(cp.status).toBe(202);
    expect((await settle(id)).state).toBe('stopped');
    await readEverything(id);

    // failures: a failed reinstall carrying a hash (tracebacks, error messages), then retry
    expect((await call('PUT', `/v1/nodes/${nodeId(1)}/fake-faults`, ADMIN, { fail_install: 1 })).status).toBe(204);
    const bad = await call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER, { reinstall: { password_hash: HASH_FAILED } });
    expect(bad.status).toBe(202);
    const failed = await settle(id);
    expect(failed.state).toBe('error');
    expect(failed.operation_state).toBe('reinstall-failed');
    await readEverything(id);
    expect((await call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER, { retry: {} })).status).toBe(202);
    expect((await settle(id)).state).toBe('running');
    // a failed power command (BMC error text in the error and the traceback)
    expect((await call('PUT', `/v1/nodes/${nodeId(1)}/fake-faults`, ADMIN, { fail_power_off: 1 })).status).toBe(204);
    expect((await call('PUT', `/v1/instances/${id}/states/power`, MEMBER, { target: 'power off' })).status).toBe(202);
    const pf = await settle(id);
    expect(pf.error?.error_type).toBe('power_off_error');
    await readEverything(id);

    // bad requests carrying secrets: unknown fields, a clear-text "hash", malformed JSON, a wrong token, secrets in
    // the query string and the URL
    const badRequests: [string, string, string | null, unknown][] = [
      ['POST', `/v1/${PROJECT}/instances`, MEMBER, { name: 'x', image_uuid: IMAGE, token: ADMIN }],
      ['POST', `/v1/${PROJECT}/instances`, MEMBER, { name: 'x', image_uuid: IMAGE, extra: { password_hash: CLEAR_PASSWORD } }],
      ['POST', `/v1/${PROJECT}/instances`, MEMBER, { name: 'x', image_uuid: IMAGE, extra: { password: PASSWORD } }],
      ['POST', `/v1/${PROJECT}/instances`, MEMBER, { name: 'x', image_uuid: IMAGE, extra: { user_data: 42, password_hash: 7 } }],
      ['POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER, { 'change-password': { password_hash: CLEAR_PASSWORD } }],
      ['POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER, { 'change-password': { password_hash: HASH_CHANGE, password: PASSWORD } }],
      ['PUT', `/v1/instances/${id}/states/power`, MEMBER, { target: 'power on', password: PASSWORD, token: MEMBER }],
      ['PUT', `/v1/instances/${id}/states/power`, MEMBER, { target: ADMIN }],
      ['POST', `/v1/${PROJECT}/instances`, MEMBER, `{"name": "x", "image_uuid": "${IMAGE}", "token": "${ADMIN}" oops}`],
      ['POST', `/v1/${PROJECT}/instances`, MEMBER, `{"token": "${ADMIN}", "extra": {"password_hash": "${HASH_CREATE}", "user_data": "${MARKERS['USER_DATA_CREATE']}"`],
      ['POST', `/v1/${PROJECT}/instances`, UNKNOWN_TOKEN, { name: 'x', image_uuid: IMAGE }],
      ['GET', `/v2/${PROJECT}/servers/${id}`, UNKNOWN_TOKEN, undefined],
    ];
    for (const [method, path, token, body] of badRequests) {
      const r = await call(method, path, token, body);
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${path}`).toBeLessThan(500);
    }
    // A secret the caller puts in the URL itself comes back only as the caller's own input where the contract
    // quotes the URL (seed 001's project message, nova's "Instance X could not be found."); these answers are checked
    // apart: they may name that marker and no other. The daemon's log must not record them either way.
    const urlEchoes: [string, string, string, string][] = [
      [`/v2.1/${PROJECT}/os-fping?include=${ADMIN}`, MEMBER, 'ADMIN', 'query'],
      [`/v1/${PROJECT}/instances/${MEMBER}`, MEMBER, 'MEMBER', 'id'],
      [`/v1/${MEMBER}/instances`, MEMBER, 'MEMBER', 'project'],
      [`/nothing/${ADMIN}`, ADMIN, 'ADMIN', 'route'],
    ];
    for (const [path, token, marker] of urlEchoes) {
      const r = await daemon.call('GET', path, token);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.status, path).toBeLessThan(500);
      expect(leaks(r.text).filter((m) => m !== marker), path).toEqual([]);
    }

    // SIGHUP with rotated secrets: the new admin token works at once, the old one is refused
    writeFileSync(join(dir, 'admin.token'), `${ADMIN_ROTATED}\n`, { mode: 0o600 });
    writeFileSync(passwordFile, `${PASSWORD_ROTATED}\n`, { mode: 0o600 });
    const before = daemon.stdout().split('\n').filter((l) => l.includes('SIGHUP')).length;
    process.kill(daemon.child.pid!, 'SIGHUP');
    await waitFor(() => daemon.stdout().split('\n').filter((l) => l.includes('SIGHUP')).length > before, 10_000, 'SIGHUP logged');
    adminRotated = true;
    expect((await call('GET', '/v1/nodes', ADMIN_ROTATED)).status).toBe(200);
    expect((await call('GET', '/v1/nodes', ADMIN)).status).toBe(401);
    // a broken token file (two words) on SIGHUP: an error naming the file, never its content; the last good token stays
    writeFileSync(join(dir, 'member.token'), `${MEMBER} ${BROKEN_TOKEN_PART}\n`, { mode: 0o600 });
    const before2 = daemon.stdout().split('\n').filter((l) => l.includes('SIGHUP')).length;
    process.kill(daemon.child.pid!, 'SIGHUP');
    await waitFor(() => daemon.stdout().split('\n').filter((l) => l.includes('SIGHUP')).length > before2, 10_000, 'second SIGHUP logged');
    expect((await call('GET', `/v1/${PROJECT}/instances`, MEMBER)).status).toBe(200);
    writeFileSync(join(dir, 'member.token'), `${MEMBER}\n`, { mode: 0o600 });
    // operations after the reload still work (and read the rotated BMC password if the driver wants it)
    expect((await call('PUT', `/v1/instances/${id}/states/power`, MEMBER, { target: 'power off' })).status).toBe(202);
    await settle(id);
    await readEverything(id);
    await call('GET', '/metrics', null);
    await call('GET', '/openapi.json', null);

    // delete: the node is wiped and released
    expect((await call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER)).status).toBe(202);
    expect((await settle(id)).state).toBe('terminated');
    await readEverything(id);

    const code = await daemon.kill('SIGTERM');
    expect(code).toBe(0);
    logs = daemon.stdout() + '\n' + daemon.stderr();
    expect(logs).toContain(id);
    const hups = logs.split('\n').filter((l) => l.includes('SIGHUP: reloaded'));
    expect(hups).toHaveLength(2);
    // The second reload reported the broken token file by name (never by content).
    expect(hups[1]).toContain('member.token');
  }, 60_000);

  it('no secret in the daemon\'s argv or environment', () => {
    expect(cmdline).toContain('--config');
    expect(leaks(cmdline)).toEqual([]);
    expect(leaks(environ)).toEqual([]);
  });

  it('no secret in the daemon\'s stdout and stderr', () => {
    expect(logs.length).toBeGreaterThan(0);
    const found = logs.split('\n').filter((l) => leaks(l).length > 0).map((l) => `${leaks(l).join(',')}: ${l.slice(0, 300)}`);
    expect(found).toEqual([]);
  });

  it('no secret in any API response (bodies and headers), error messages included', () => {
    expect(answers.length).toBeGreaterThan(50);
    const found = answers.filter((a) => leaks(a.text).length > 0).map((a) => `${a.what}: ${leaks(a.text).join(',')}: ${a.text.slice(0, 300)}`);
    expect(found).toEqual([]);
  });

  it('no secret in the store\'s journal, actions, action_events, nodes; the instance row holds no password or token', () => {
    expect(daemon.child.exitCode).toBe(0);
    const db = new Database(join(stateDirOf(dir), 'metald.db'), { readonly: true, fileMustExist: true });
    try {
      const dump = (table: string) => (db.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[]).map((r) => JSON.stringify(r));
      const journal = dump('journal');
      expect(journal.length).toBeGreaterThan(10);
      for (const table of ['journal', 'actions', 'action_events', 'nodes', 'meta']) {
        const found = dump(table).filter((row) => leaks(row).length > 0).map((row) => `${table}: ${leaks(row).join(',')}: ${row.slice(0, 300)}`);
        expect(found, table).toEqual([]);
      }
      const instances = dump('instances');
      expect(instances.length).toBe(1);
      expect(instances.flatMap((row) => leaks(row, INSTANCE_ROW_MAY_HOLD))).toEqual([]);
    } finally {
      db.close();
    }
  });
});
