/**
 * No 201/202 before the operation's record is committed: with the store failing (a fault injected through the
 * test-only METALD_TEST_STORE_FAULT_FILE hook of the real daemon), every mutating call answers 5xx, records no
 * action and changes nothing; once the store heals, the same calls succeed.
 */
import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { STORE_FAULT_ENV } from '../../agent/store/sqlite.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/daemon.js';
import { IMAGE, MEMBER_TOKEN, PROJECT, writeConfig } from '../helpers/harness.js';

let daemon: Daemon | null = null;
let dir: string | null = null;
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('store failure', () => {
  it('answers 5xx, records no action and changes nothing', async () => {
    const cfg = writeConfig({ nodes: 2 });
    dir = cfg.dir;
    const faultFile = join(cfg.dir, 'store-fault');
    daemon = await startDaemon(cfg.configPath, { [STORE_FAULT_ENV]: faultFile });
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
});
