/**
 * No 201/202 before the operation's record is committed, per write: for every accepting path of the API and every
 * write its acceptance does, a store fault on exactly that write answers 5xx and leaves no half-written record (no
 * orphan action, no lock or task, no target_power_state, no journal entry, no node change); the same call succeeds
 * once healed. In-process (inject against the real service, the store built with a fault injector) for the matrix;
 * one case against the real daemon through the test-only entry point; and the production daemon ignores the
 * test-only fault variable.
 */
import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StoreWriteOp } from '../../agent/store/sqlite.js';
import type { Store } from '../../agent/store/types.js';
import { STORE_FAULT_ENV } from '../../scripts/test-store-fault-file.js';
import { startDaemon, STORE_FAULT_MAIN, waitFor, type Daemon } from '../helpers/daemon.js';
import { ADMIN_TOKEN, IMAGE, IMAGE2, MEMBER_TOKEN, NETWORK, nodeId, PROJECT, startHarness, writeConfig, type Harness } from '../helpers/harness.js';
import { AcceptanceFault } from '../helpers/store-fault.js';

/** Everything the store holds (for "nothing was written" assertions). */
function snapshot(store: Store) {
  const instances = store.listInstances();
  return {
    instances,
    nodes: store.listNodes(),
    actions: instances.map((i) => store.listActions(i.id)),
    unfinished: store.listUnfinishedActions(),
    lastSeq: store.lastSeq(),
    journal: store.readJournal(1, 1_000_000),
  };
}

describe('store failure, every write of every accepting path (in-process)', () => {
  const fault = new AcceptanceFault();
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ nodes: 3, storeFault: fault });
  });
  afterAll(async () => {
    await h?.close();
  });

  const call = (method: 'POST' | 'PUT' | 'DELETE', url: string, token: string, payload?: unknown) => () =>
    h.agent.api.inject({ method, url, headers: { 'x-auth-token': token }, ...(payload !== undefined ? { payload: payload as object } : {}) });

  /**
   * Fails write 0, 1, 2, ... of the call's acceptance in turn, each time asserting 5xx and an unchanged store, until
   * the call has no such write left: that last call is the healed one and must answer `ok`. Returns the writes failed.
   */
  async function everyWrite(label: string, send: () => Promise<LightMyRequestResponse>, ok: number): Promise<StoreWriteOp[]> {
    const failed: StoreWriteOp[] = [];
    for (let i = 0; i < 64; i++) {
      await h.agent.engine.idle();
      const before = snapshot(h.agent.store);
      fault.arm(i);
      let res: LightMyRequestResponse;
      try {
        res = await send();
      } finally {
        fault.disarm();
      }
      const op = fault.failed;
      if (op === null) {
        expect(res.statusCode, `${label}: healed (${res.body})`).toBe(ok);
        return failed;
      }
      failed.push(op);
      const what = `${label}: fault on write ${i} (${op})`;
      expect(res.statusCode, `${what}: ${res.body}`).toBeGreaterThanOrEqual(500);
      expect(res.statusCode, what).toBeLessThan(600);
      expect(res.json(), what).toMatchObject({ error_code: expect.any(String), error_msg: expect.any(String) });
      expect(res.headers['x-compute-request-id'], what).toMatch(/^req-/);
      await h.agent.engine.idle();
      expect(snapshot(h.agent.store), `${what} left a half-written record`).toEqual(before);
    }
    throw new Error(`${label}: more than 64 writes`);
  }

  const instanceId = () => h.agent.store.listInstances().find((i) => i.state !== 'terminated')!.id;
  const state = () => h.agent.store.getInstance(instanceId())!;
  async function settle(want: string): Promise<void> {
    await h.agent.engine.idle();
    expect(state().state).toBe(want);
    expect(state().task).toBeNull();
  }
  const power = (target: string) => call('PUT', `/v1/instances/${instanceId()}/states/power`, MEMBER_TOKEN, { target });
  const op = (body: unknown) => call('POST', `/v1/${PROJECT}/instances/${instanceId()}/actions`, MEMBER_TOKEN, body);
  const ACTION_WRITES: StoreWriteOp[] = ['insertAction', 'putInstance', 'appendJournal'];

  it('create', async () => {
    const ops = await everyWrite('create', call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'vm1', image_uuid: IMAGE }), 201);
    expect(ops).toEqual(expect.arrayContaining(['putInstance', 'putNode', 'insertAction', 'appendActionEvent', 'appendJournal']));
    await settle('running');
  });

  it('power off, power on, reboot, soft reboot, soft power off', async () => {
    const cases: [string, string][] = [
      ['power off', 'stopped'],
      ['power on', 'running'],
      ['rebooting', 'running'],
      ['soft rebooting', 'running'],
      ['soft power off', 'stopped'],
    ];
    for (const [target, after] of cases) {
      const ops = await everyWrite(target, power(target), 202);
      expect(ops, target).toEqual(expect.arrayContaining(ACTION_WRITES));
      await settle(after);
    }
  });

  it('each OS operation, retry included', async () => {
    const cases: [string, unknown, string][] = [
      ['reinstall', { reinstall: {} }, 'running'],
      ['switch-install', { 'switch-install': { image_uuid: IMAGE2 } }, 'running'],
      ['modify-ip', { 'modify-ip': { networks: [{ uuid: NETWORK }] } }, 'running'],
      ['change-password', { 'change-password': { password_hash: '$6$salt$hash' } }, 'stopped'],
      ['uninstall', { uninstall: {} }, 'stopped'],
    ];
    for (const [name, body, after] of cases) {
      const ops = await everyWrite(name, op(body), 202);
      expect(ops, name).toEqual(expect.arrayContaining(ACTION_WRITES));
      await settle(after);
    }
    // An install that fails leaves the instance in error with a failed operation to retry.
    h.agent.lab!.server(state().node_id).setFaults({ fail_install: 1 });
    expect((await op({ reinstall: {} })()).statusCode).toBe(202);
    await settle('error');
    const ops = await everyWrite('retry', op({ retry: {} }), 202);
    expect(ops).toEqual(expect.arrayContaining(ACTION_WRITES));
    await settle('running');
  });

  it('delete', async () => {
    const id = instanceId();
    const ops = await everyWrite('delete', call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN), 202);
    expect(ops).toEqual(expect.arrayContaining(ACTION_WRITES));
    await h.agent.engine.idle();
    expect(h.agent.store.getInstance(id)!.state).toBe('terminated');
  });

  it('node power and maintenance', async () => {
    const free = nodeId(3);
    const ops = await everyWrite('node power on', call('PUT', `/v1/nodes/${free}/states/power`, ADMIN_TOKEN, { target: 'power on' }), 202);
    expect(ops).toEqual(expect.arrayContaining(['appendJournal']));
    await waitFor(() => h.agent.store.getNode(free)!.power_state === 'on', 5000, 'node powered on');
    const m = await everyWrite('maintenance', call('PUT', `/v1/nodes/${free}/maintenance`, ADMIN_TOKEN, { maintenance: true, reason: 'disk' }), 200);
    expect(m).toEqual(expect.arrayContaining(['putNode', 'appendJournal']));
    expect(h.agent.store.getNode(free)!.maintenance).toBe(true);
  });
});

describe('store failure (real daemon)', () => {
  let daemon: Daemon | null = null;
  let dir: string | null = null;
  afterEach(async () => {
    await daemon?.kill('SIGKILL');
    daemon = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the test-only build: answers 5xx, records no action and changes nothing; healed, accepts', async () => {
    const cfg = writeConfig({ nodes: 2 });
    dir = cfg.dir;
    const faultFile = join(cfg.dir, 'store-fault');
    daemon = await startDaemon(cfg.configPath, { [STORE_FAULT_ENV]: faultFile }, STORE_FAULT_MAIN);
    const d = daemon;

    // A running instance to operate on.
    const created = await d.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'ok', image_uuid: IMAGE });
    expect(created.status).toBe(201);
    const id = (created.body as { uuid: string }).uuid;
    await waitFor(async () => ((await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).body as { state: string }).state === 'running', 10_000, 'running');
    const actionsBefore = ((await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN)).body as { instanceActions: unknown[] }).instanceActions.length;
    const listBefore = (await d.call('GET', `/v1/${PROJECT}/instances`, MEMBER_TOKEN)).body as { instances: unknown[] };

    writeFileSync(faultFile, '*');
    const attempts = [
      await d.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'refused', image_uuid: IMAGE }),
      await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'power off' }),
      await d.call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER_TOKEN, { reinstall: {} }),
      await d.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN),
    ];
    for (const r of attempts) {
      expect(r.status).toBeGreaterThanOrEqual(500);
      expect(r.body).toMatchObject({ error_code: expect.any(String), error_msg: expect.any(String) });
      expect(r.headers.get('x-compute-request-id')).toMatch(/^req-/);
    }
    unlinkSync(faultFile);

    // Nothing was accepted: no new instance, no new action, state and power request untouched.
    const listAfter = (await d.call('GET', `/v1/${PROJECT}/instances`, MEMBER_TOKEN)).body as { instances: unknown[] };
    expect(listAfter.instances.length).toBe(listBefore.instances.length);
    const actionsAfter = ((await d.call('GET', `/v2/${PROJECT}/servers/${id}/os-instance-actions`, MEMBER_TOKEN)).body as { instanceActions: unknown[] }).instanceActions.length;
    expect(actionsAfter).toBe(actionsBefore);
    expect((await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).body).toEqual({ state: 'running', operation_state: 'install-succeed', error: null });
    expect((await d.call('GET', `/v1/instances/${id}/states`, MEMBER_TOKEN)).body).toEqual({ power_state: 'power on', target_power_state: null });

    // Healed: the same request is accepted.
    const again = await d.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'power off' });
    expect(again.status).toBe(202);
    await waitFor(async () => ((await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).body as { state: string }).state === 'stopped', 10_000, 'stopped');
  }, 60_000);

  it('the production daemon ignores the test-only fault variable: writes succeed', async () => {
    const cfg = writeConfig({ nodes: 1 });
    dir = cfg.dir;
    const faultFile = join(cfg.dir, 'store-fault');
    writeFileSync(faultFile, '*');
    daemon = await startDaemon(cfg.configPath, { [STORE_FAULT_ENV]: faultFile });
    const created = await daemon.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'prod', image_uuid: IMAGE });
    expect(created.status).toBe(201);
    const id = (created.body as { uuid: string }).uuid;
    const d = daemon;
    await waitFor(async () => ((await d.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).body as { state: string }).state === 'running', 10_000, 'running');
  }, 60_000);
});
