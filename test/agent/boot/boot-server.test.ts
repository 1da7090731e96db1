/**
 * The boot server (agent/boot/, docs/boot-protocol.md) as an installer sees it: the test plays the installer of a
 * fake-driven node (fakeNodesBootFromNetwork) through the boot server's HTTP routes, and checks what the operation
 * did with each answer: the iPXE script by MAC, the one-time document, progress into the instance, the result, the
 * refusals (late, repeated, foreign, malformed), revocation by a delete, expiry at the deadline, a restart between
 * the fetch and the result, and that no token reaches the log.
 */
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../../agent/build-agent.js';
import { loadConfigFile } from '../../../agent/config/load.js';
import type { Pinger } from '../../../agent/ports.js';
import { FakeLab } from '../../../drivers/fake/lab.js';
import { waitFor } from '../../helpers/daemon.js';
import { ctx, IMAGE, nodeId, SSH_KEY, writeConfig } from '../../helpers/harness.js';

const MAC = 'fa:16:3e:00:00:01';
const SHA = 'a'.repeat(64); // the harness catalogue's debian-12 checksum
const HASH = '$6$saltsalt$' + 'h'.repeat(86);

let agents: Agent[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const alive: Pinger = { engine: 'test', ping: async (addrs) => addrs.map((addr) => ({ addr, alive: true, rtt_ms: 0 })) };

let tokens = 0;
async function start(opts: { deploy?: string; dir?: { dir: string; configPath: string }; lab?: FakeLab } = {}) {
  const cfg = opts.dir ?? writeConfig({ nodes: 2, deploy: opts.deploy ?? '30s', extra: 'boot: {listen: "127.0.0.1:0", public_url: "http://boot.test:8081"}' });
  if (!opts.dir) dirs.push(cfg.dir);
  const lines: string[] = [];
  const sink = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  const lab = opts.lab ?? new FakeLab();
  const agent = await buildAgent(loadConfigFile(cfg.configPath), {
    log: pino({ level: 'debug' }, sink),
    fakeLab: lab,
    pinger: alive,
    fakeNodesBootFromNetwork: true,
    bootToken: () => `tok${++tokens}`.padEnd(43, 'x'),
  });
  agents.push(agent);
  await agent.start();
  const boot = agent.boot!;
  const call = async (method: 'GET' | 'POST', url: string, body?: unknown) => {
    const r = await boot.inject({ method, url, ...(body !== undefined ? { payload: body as object } : {}) });
    return {
      status: r.statusCode,
      text: r.body,
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the answers are checked by toMatchObject
      json: () => JSON.parse(r.body) as Record<string, any>,
      type: String(r.headers['content-type']),
    };
  };
  return { agent, call, lines, cfg, lab };
}

/** Creates an instance on node 1 and waits until its installer job is issued (the iPXE script names a kernel). */
async function install(s: Awaited<ReturnType<typeof start>>) {
  const { instance } = await s.agent.engine.createInstance(ctx(), {
    name: 'web-1',
    image_uuid: IMAGE,
    extra: { node_id: nodeId(1), hostname: 'web-1', ssh_keys: [SSH_KEY], password_hash: HASH },
  });
  let script = '';
  await waitFor(async () => (script = (await s.call('GET', `/v1/ipxe?mac=${MAC.toUpperCase()}`)).text).includes('kernel'), 5000, 'the iPXE script of the job');
  const token = /metald\.token=(\S+)/.exec(script)![1]!;
  return { id: instance.id, token, script };
}

describe('the boot server and an install through it', () => {
  it('serves the iPXE script by MAC, the document once, takes progress and the result: the install succeeds', async () => {
    const s = await start();
    const { id, token, script } = await install(s);
    expect(script).toContain(`kernel http://boot.test:8081/v1/ramdisk/kernel initrd=initrd.img console=ttyS0,115200 metald.url=http://boot.test:8081 metald.token=${token} metald.mac=${MAC}`);
    expect(script).toContain('initrd --name initrd.img http://boot.test:8081/v1/ramdisk/initrd');
    // Prepared before the node was set to boot: the BMC's own log shows the boot override and power on after it.
    expect(s.agent.store.getInstance(id)).toMatchObject({ state: 'pending', operation_state: 'install-processing' });

    // Another node's MAC, or no job: boot from disk; not a MAC: 400.
    expect((await s.call('GET', '/v1/ipxe?mac=fa:16:3e:00:00:02')).text).toContain('exit');
    expect((await s.call('GET', '/v1/ipxe?mac=nonsense')).status).toBe(400);
    // The lookup (virtual media) finds the same token.
    expect((await s.call('GET', `/v1/lookup?mac=${MAC}`)).json()).toEqual({ token });
    // Progress before the fetch is refused and changes nothing.
    expect((await s.call('POST', `/v1/jobs/${token}/progress`, { progress: 10 })).json()).toMatchObject({ error: { code: 'JOB_NOT_FETCHED' } });

    const doc = await s.call('GET', `/v1/jobs/${token}`);
    expect(doc.status).toBe(200);
    expect(doc.json()).toMatchObject({
      version: 1,
      operation: 'install',
      instance_id: id,
      hostname: 'web-1',
      image: { url: 'http://127.0.0.1:1/debian-12.img', sha256: SHA, name: 'debian-12', os: 'linux' },
      disk: 'auto',
      wipe: [],
      network: { interfaces: [{ mac: MAC, addresses: [{ prefix: 24, version: 4 }], gateway: '127.0.2.1', dns: ['127.0.2.1'] }] },
      password_hash: HASH,
      ssh_keys: [SSH_KEY],
      progress_url: `http://boot.test:8081/v1/jobs/${token}/progress`,
      result_url: `http://boot.test:8081/v1/jobs/${token}/result`,
    });
    const addr = (doc.json().network.interfaces[0].addresses[0] as { address: string }).address;
    expect(s.agent.store.getInstance(id)!.addresses.map((a) => a.addr)).toEqual([addr]);
    // Once: a second fetch, and the iPXE script and lookup no longer hand the token out.
    expect((await s.call('GET', `/v1/jobs/${token}`)).json()).toMatchObject({ error: { code: 'JOB_ALREADY_FETCHED' } });
    expect((await s.call('GET', `/v1/ipxe?mac=${MAC}`)).text).not.toContain(token);
    expect((await s.call('GET', `/v1/lookup?mac=${MAC}`)).status).toBe(404);

    expect((await s.call('POST', `/v1/jobs/${token}/progress`, { progress: 40, message: 'writing' })).status).toBe(204);
    await waitFor(() => s.agent.store.getInstance(id)!.progress === 40, 2000, 'progress 40 on the instance');
    expect((await s.call('POST', `/v1/jobs/${token}/progress`, { progress: 20 })).status).toBe(204); // never goes back
    expect((await s.call('POST', `/v1/jobs/${token}/progress`, { progress: 140 })).json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'success' })).json()).toMatchObject({ error: { code: 'BAD_REQUEST', message: expect.stringContaining('image_sha256') } });
    expect(s.agent.store.bootJobs.byToken(token)).toMatchObject({ state: 'fetched', progress: 40 });

    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'success', image_sha256: SHA.toUpperCase() })).status).toBe(204);
    await s.agent.engine.idle();
    expect(s.agent.store.getInstance(id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', task: null, error: null });
    // A second result, progress after it: refused.
    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'failure' })).json()).toMatchObject({ error: { code: 'JOB_FINISHED' } });
    expect((await s.call('POST', `/v1/jobs/${token}/progress`, { progress: 50 })).status).toBe(409);
    // A foreign token.
    expect((await s.call('POST', `/v1/jobs/${'z'.repeat(43)}/result`, { result: 'failure' })).json()).toMatchObject({ error: { code: 'NO_JOB' } });

    // What the BMC saw: the PXE override before the power on that booted the installer, then disk.
    const boots = s.lab.commands(nodeId(1)).filter((c) => c.op === 'boot.set').map((c) => c.arg);
    expect(boots[0]).toContain('pxe');
    expect(boots.at(-1)).toContain('disk');
    // No token in any log line (each request's line names the route template and the job id).
    const log = s.lines.join('');
    expect(log).toContain('"route":"/v1/jobs/:token/result"');
    expect(log).not.toContain(token);
  });

  it('a success whose checksum is not the image\'s: the install fails with "checksum mismatch", the node powered off', async () => {
    const s = await start();
    const { id, token } = await install(s);
    await s.call('GET', `/v1/jobs/${token}`);
    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'success', image_sha256: 'b'.repeat(64) })).status).toBe(204);
    await s.agent.engine.idle();
    const inst = s.agent.store.getInstance(id)!;
    expect(inst).toMatchObject({ state: 'error', operation_state: 'install-failed', task: null });
    expect(inst.error?.error_msg).toContain('checksum mismatch');
    expect(s.lab.snapshot(nodeId(1)).power).toBe('off');
  });

  it('an installer failure ends the install with its message; its token is gone for any later report', async () => {
    const s = await start();
    const { id, token } = await install(s);
    await s.call('GET', `/v1/jobs/${token}`);
    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'failure', message: 'no disk found' })).status).toBe(204);
    await s.agent.engine.idle();
    expect(s.agent.store.getInstance(id)!.error?.error_msg).toContain('no disk found');
    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'success', image_sha256: SHA })).json()).toMatchObject({ error: { code: 'JOB_FINISHED' } });
  });

  it('a malformed body is a 400 and changes nothing', async () => {
    const s = await start();
    const { token } = await install(s);
    await s.call('GET', `/v1/jobs/${token}`);
    for (const body of [{ result: 'done' }, { result: 'success', image_sha256: 'x' }, { result: 'failure', extra: 1 }, 'not json']) {
      const r = await s.call('POST', `/v1/jobs/${token}/result`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json().error.code).toBe('BAD_REQUEST');
    }
    expect(s.agent.store.bootJobs.byToken(token)).toMatchObject({ state: 'fetched' });
  });

  it('a delete of the pending instance revokes its job: the token answers 410 JOB_GONE, the node ends off and free', async () => {
    const s = await start();
    const { id, token } = await install(s);
    await s.call('GET', `/v1/jobs/${token}`);
    await s.agent.engine.deleteInstance(ctx(), id);
    // The delete's own wipe job is prepared next; the install's token is refused from the delete's first step.
    await waitFor(async () => (await s.call('POST', `/v1/jobs/${token}/progress`, { progress: 50 })).status === 410, 5000, 'the install token revoked');
    expect(s.agent.store.bootJobs.byToken(token)).toMatchObject({ state: 'revoked' });
    // Play the delete's wipe installer.
    let wipe = '';
    await waitFor(async () => (wipe = (await s.call('GET', `/v1/ipxe?mac=${MAC}`)).text).includes('kernel'), 5000, 'the wipe job');
    const wt = /metald\.token=(\S+)/.exec(wipe)![1]!;
    expect((await s.call('GET', `/v1/jobs/${wt}`)).json()).toMatchObject({ operation: 'uninstall', image: null, wipe: ['auto'], network: null, password_hash: null });
    expect((await s.call('POST', `/v1/jobs/${wt}/result`, { result: 'success' })).status).toBe(204);
    await s.agent.engine.idle();
    expect(s.agent.store.getInstance(id)).toMatchObject({ state: 'terminated' });
    expect(s.agent.store.getNode(nodeId(1))!.instance_id).toBeNull();
    expect(s.lab.snapshot(nodeId(1)).power).toBe('off');
  });

  it('no result by timeouts.deploy: the job expires (410 from then on) and the install fails saying so', async () => {
    const s = await start({ deploy: '1500ms' });
    const { id, token } = await install(s);
    await s.call('GET', `/v1/jobs/${token}`);
    await s.agent.engine.idle();
    expect(s.agent.store.getInstance(id)!.error?.error_msg).toContain('deadline');
    expect((await s.call('POST', `/v1/jobs/${token}/result`, { result: 'success', image_sha256: SHA })).json()).toMatchObject({ error: { code: 'JOB_GONE' } });
  });

  it('metald restarted between the fetch and the result: the same token is accepted once, the resumed install succeeds', async () => {
    const cfg = writeConfig({ nodes: 2, deploy: '30s', extra: 'boot: {listen: "127.0.0.1:0", public_url: "http://boot.test:8081"}' });
    dirs.push(cfg.dir);
    const lab = new FakeLab();
    const s1 = await start({ dir: cfg, lab });
    const { id, token } = await install(s1);
    await s1.call('GET', `/v1/jobs/${token}`);
    expect((await s1.call('POST', `/v1/jobs/${token}/progress`, { progress: 70 })).status).toBe(204);
    await s1.agent.stop();
    agents = agents.filter((a) => a !== s1.agent);

    const s2 = await start({ dir: cfg, lab });
    expect((await s2.call('GET', `/v1/jobs/${token}`)).json()).toMatchObject({ error: { code: 'JOB_ALREADY_FETCHED' } });
    expect((await s2.call('POST', `/v1/jobs/${token}/result`, { result: 'success', image_sha256: SHA })).status).toBe(204);
    expect((await s2.call('POST', `/v1/jobs/${token}/result`, { result: 'success', image_sha256: SHA })).status).toBe(409);
    await s2.agent.engine.idle();
    expect(s2.agent.store.getInstance(id)).toMatchObject({ state: 'running', operation_state: 'install-succeed' });
  });

  it('serves the configured ramdisk files; a missing or unconfigured one is a 404', async () => {
    const cfg = writeConfig({ nodes: 1 });
    dirs.push(cfg.dir);
    writeFileSync(join(cfg.dir, 'vmlinuz'), 'KERNEL-BYTES');
    const yaml = `boot: {listen: "127.0.0.1:0", ramdisk: {kernel: ${join(cfg.dir, 'vmlinuz')}, initrd: ${join(cfg.dir, 'absent.img')}}}\n`;
    writeFileSync(cfg.configPath, (await import('node:fs')).readFileSync(cfg.configPath, 'utf8').replace('nodes:\n', `${yaml}nodes:\n`));
    const s = await start({ dir: cfg });
    const k = await s.call('GET', '/v1/ramdisk/kernel');
    expect(k.status).toBe(200);
    expect(createHash('sha256').update(k.text).digest('hex')).toBe(createHash('sha256').update('KERNEL-BYTES').digest('hex'));
    expect((await s.call('GET', '/v1/ramdisk/initrd')).status).toBe(404);
    expect((await s.call('GET', '/v1/ramdisk/ramdisk.iso')).status).toBe(404);
    expect((await s.call('GET', '/v1/ramdisk/etc-passwd')).status).toBe(404);
  });
});
