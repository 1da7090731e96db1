/**
 * The real daemon (dist/agent/main.js, a child process), SIGKILLed right after the 202 of a power request answered
 * over HTTP: on restart, the acknowledged operation is found (its action recorded, then ended by recovery). A SIGKILL
 * keeps what the process wrote to the kernel, so this proves the 202 follows the commit, not the fsync; the fsync's
 * order is test/agent/store/durable-acks.test.ts's (a held sync holds the 202 and the BMC command).
 */
import { rmSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADOPTED_ID, MEMBER_TOKEN, PROJECT, writeConfig } from '../../helpers/harness.js';

let daemon: Daemon | null = null;
let dir: string | null = null;
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

it('SIGKILL right after a 202: the operation it acknowledged is found on restart', async () => {
  const cfg = writeConfig({ nodes: 0, adopt: true, adoptFake: '{power_delay: 300ms, initial_power: "on", os_installed: debian-12}' });
  dir = cfg.dir;
  daemon = await startDaemon(cfg.configPath);
  const res = await daemon.call('PUT', `/v1/instances/${ADOPTED_ID}/states/power`, MEMBER_TOKEN, { target: 'power off' });
  expect(res.status).toBe(202);
  await daemon.kill('SIGKILL');
  const requestId = res.headers.get('x-compute-request-id')!;
  expect(requestId).toMatch(/^req-/);

  daemon = await startDaemon(cfg.configPath);
  const d = daemon;
  const action = async () => d.call('GET', `/v2/${PROJECT}/servers/${ADOPTED_ID}/os-instance-actions/${requestId}`, MEMBER_TOKEN);
  const found = await action();
  expect(found.status, found.text).toBe(200);
  expect(found.body).toMatchObject({ instanceAction: { request_id: requestId, action: 'stop' } });
  // Recovery ends it (verified or failed cleanly); the instance is unlocked either way.
  await waitFor(async () => ((await action()).body as { instanceAction: { events: { finish_time: unknown }[] } }).instanceAction.events.every((e) => e.finish_time !== null), 10_000, 'the recovered operation to end');
  const inst = await d.call('GET', `/v1/${PROJECT}/instances/${ADOPTED_ID}`, MEMBER_TOKEN);
  expect(inst.status).toBe(200);
}, 60_000);
