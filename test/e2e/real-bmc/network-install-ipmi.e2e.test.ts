/**
 * The OS operations through the boot server on the IPMI driver: ipmi_sim BMCs whose chassis_control program runs the
 * node emulator as a process (test/emulators/chassis-control.sh node mode, test/emulators/node/cli.ts), which runs
 * the real reference installer under busybox against a disk file. Through the REST API: install, modify-ip,
 * change-password, switch-install, uninstall, delete; a refused boot override and retry. Through upstream commands
 * from the reference controller: create, power, reinstall, switch-install, modify-ip, change-password, delete, with
 * the events the controller received. What the peers saw is
 * asserted: ipmi_sim's chassis log, the node's own log, the disk read back with debugfs.
 * ipmi_sim keeps a boot device for the next boot only: the nodes say `persistent_boot: false` (docs/config.md).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { IMAGE, IMAGE2, MEMBER_TOKEN, NETWORK, PROJECT, nodeId } from '../../helpers/harness.js';
import { command, operationStateSeen, startUpstream, type Ctl } from '../../helpers/controller.js';
import { freeTcpPort, missingPeers } from '../../helpers/peers.js';
import { finishedAction, startLab, status, type Lab } from './lab.js';

const MiB = 1024 * 1024;
const HASH = '$6$ipmisalt$' + 'I'.repeat(86);
const NODE_CLI = resolve(import.meta.dirname, '../../../dist/test/emulators/node/cli.js');
const mac = (i: number) => `fa:16:3e:00:01:${String(i).padStart(2, '0')}`;
const why = missingPeers('a network install (the reference installer mounts the installed system through a loop device)', ['busybox', 'mkfs.ext4', 'debugfs'], 'busybox-static e2fsprogs');

const NODES = 3;
const UPSTREAM_TOKEN = 'upstream-token-netipmi-0123456789ab';
let work = '';
let ctl: Ctl | undefined;
let images: Server | null = null;
let lab: Lab | undefined;
let daemon: Daemon | undefined;
let other: Buffer;
const disk = (i: number) => join(work, `disk-${i}.img`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const stateDir = (i: number) => join(lab!.sims[i - 1]!.dir, 'state');
const nodeLog = (i: number): string[] => {
  const f = join(stateDir(i), 'node.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => String((JSON.parse(l) as { what: string }).what)) : [];
};
const cat = (i: number, p: string) => execFileSync('debugfs', ['-R', `cat ${p}`, disk(i)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

beforeAll(async () => {
  if (why) return;
  if (!existsSync(NODE_CLI)) throw new Error(`${NODE_CLI} is missing: run \`npm run build\` first (npm test does)`);
  work = mkdtempSync(join(tmpdir(), 'metald-netipmi-'));
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/hostname'), 'debian\n');
  writeFileSync(join(tree, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, join(work, 'linux.img'), '8M'], { stdio: 'pipe' });
  const linux = readFileSync(join(work, 'linux.img'));
  other = Buffer.concat([createHash('sha256').update('ipmi-other').digest(), Buffer.alloc(2 * MiB, 4)]);
  const files: Record<string, Buffer> = { '/linux.img': linux, '/other.img': other };
  images = createServer((req, res) => {
    const body = files[req.url ?? ''];
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => images!.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  const bootPort = await freeTcpPort();
  for (let i = 1; i <= NODES; i++) writeFileSync(disk(i), Buffer.alloc(16 * MiB, 0xee));
  // The reference controller, for the operations by upstream command (node 3).
  const upstream = await startUpstream(work, UPSTREAM_TOKEN);
  ctl = upstream.ctl;
  lab = await startLab({
    ipmi: Array.from({ length: NODES }, () => 'off' as const),
    redfish: [],
    nodes: Array.from({ length: NODES }, (_, k) => ({ kind: 'ipmi' as const, sim: k })),
    extra: `boot: {listen: "127.0.0.1:${bootPort}"}\n${upstream.yaml}`,
    liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
    edit: (y) =>
      y
        .replace(`url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}"`, `url: "${base}/linux.img", sha256: "${sha(linux)}"`)
        .replace(`url: "http://127.0.0.1:1/ubuntu.img", sha256: "${'b'.repeat(64)}", os: linux`, `url: "${base}/other.img", sha256: "${sha(other)}", os: other`)
        .replace(/retry_timeout_s: 1\}/g, 'retry_timeout_s: 1, persistent_boot: false}')
        .replace(/deploy: 5s/, 'deploy: 30s'),
  });
  for (let i = 1; i <= NODES; i++) {
    writeFileSync(join(stateDir(i), 'node.json'), JSON.stringify({ mac: mac(i), bootUrl: `http://127.0.0.1:${bootPort}`, disk: disk(i) }));
    writeFileSync(join(stateDir(i), 'node.env'), `NODE_BIN=${process.execPath}\nNODE_CLI=${NODE_CLI}\n`);
  }
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  // The node processes outlive their BMC: power them off first.
  for (let i = 1; lab && i <= NODES; i++) {
    const pidFile = join(stateDir(i), 'node.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {
        // gone
      }
    }
  }
  await daemon?.kill('SIGTERM');
  await ctl?.kill();
  await lab?.stop();
  await new Promise((r) => (images ? images.close(r) : r(undefined)));
  if (work) rmSync(work, { recursive: true, force: true });
});

async function act(id: string, body: Record<string, unknown>) {
  const r = await daemon!.call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER_TOKEN, body);
  expect(r.status, `${JSON.stringify(body)}: ${r.text}`).toBe(202);
  const done = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 60_000);
  expect(done.message, JSON.stringify(await status(daemon!, id, 'admin'))).toBeNull();
  return status(daemon!, id);
}

describe('network installs through the IPMI driver (ipmi_sim) and the node emulator', () => {
  it('install, modify-ip, change-password, switch-install, uninstall, delete: each through the installer, each as the peers saw it', async () => {
    if (why) expect.fail(why);
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'ipmi-1', image_uuid: IMAGE, extra: { node_id: nodeId(1), hostname: 'ipmi-one', password_hash: HASH } });
    expect(r.status, r.text).toBe(201);
    const id = (r.body as { uuid: string }).uuid;
    const done = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 60_000);
    expect(done.message, JSON.stringify(await status(daemon!, id, 'admin'))).toBeNull();
    expect(await status(daemon!, id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    // ipmi_sim's chassis log: the PXE override, the power on into the installer, disk (next boot only), the cycle.
    expect(await lab!.sims[0]!.log()).toEqual(['power 0', 'boot pxe', 'power 1', 'boot default', 'power 0', 'power 1']);
    // The node process booting its disk may log a moment after metald's confirmation (the address is on loopback).
    await waitFor(() => nodeLog(1).includes('booted-disk'), 10_000, 'the node to boot its disk');
    expect(nodeLog(1)).toEqual(['installer-started', 'installer-exited', 'powered-off', 'booted-disk']);
    expect(cat(1, '/etc/hostname')).toBe('ipmi-one\n');
    expect(cat(1, '/etc/shadow')).toBe(`root:${HASH}:19000:0:99999:7:::\n`);

    expect(await act(id, { 'modify-ip': { networks: [{ uuid: NETWORK, fixed_ip: '127.0.2.160' }] } })).toMatchObject({ state: 'running', operation_state: 'modify-ip-succeed' });
    expect(cat(1, '/etc/systemd/network/10-metald-0.network')).toContain('Address=127.0.2.160/24');
    const HASH2 = '$6$ipmisal2$' + 'J'.repeat(86);
    expect(await act(id, { 'change-password': { password_hash: HASH2 } })).toMatchObject({ state: 'stopped', error: null });
    expect(cat(1, '/etc/shadow')).toBe(`root:${HASH2}:19000:0:99999:7:::\n`);
    expect(await act(id, { 'switch-install': { image_uuid: IMAGE2 } })).toMatchObject({ state: 'running', operation_state: 'switch-install-succeed' });
    expect(sha(readFileSync(disk(1)).subarray(0, other.length))).toBe(sha(other));
    expect(await act(id, { uninstall: {} })).toMatchObject({ operation_state: 'uninstall-succeed' });
    expect(readFileSync(disk(1)).every((b) => b === 0)).toBe(true);

    // One wipe run: counted by its start (the delete's power off may kill the installer between its report and its exit).
    const runs = nodeLog(1).filter((w) => w === 'installer-started').length;
    const d = await daemon!.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN);
    expect(d.status, d.text).toBeLessThan(300);
    await waitFor(async () => (await status(daemon!, id, 'admin').catch(() => ({ state: 'terminated' }))).state === 'terminated', 60_000, 'the delete');
    expect(nodeLog(1).filter((w) => w === 'installer-started')).toHaveLength(runs + 1);
    expect(await lab!.sims[0]!.power()).toBe('off');
    // The delete's tail as ipmi_sim saw it: into the wipe by PXE, off, and the boot override cleared (`bootdev none`).
    expect((await lab!.sims[0]!.log()).slice(-4)).toEqual(['boot pxe', 'power 1', 'power 0', 'boot none']);
    expect(await lab!.sims[0]!.boot()).toBe('none');
  }, 240_000);

  it('ipmi_sim refusing the boot override: install-failed with the BMC\'s words, no installer run, off; retry once it takes it: succeeds', async () => {
    if (why) expect.fail(why);
    writeFileSync(join(stateDir(2), 'refuse'), 'boot pxe');
    let id: string;
    try {
      const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'ipmi-2', image_uuid: IMAGE2, extra: { node_id: nodeId(2) } });
      expect(r.status, r.text).toBe(201);
      id = (r.body as { uuid: string }).uuid;
      const done = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 60_000);
      expect(done.message).not.toBeNull();
      const s = await status(daemon!, id, 'admin');
      expect(s).toMatchObject({ state: 'error', operation_state: 'install-failed' });
      expect(JSON.stringify(s.error)).toMatch(/set_boot_device/);
    } finally {
      unlinkSync(join(stateDir(2), 'refuse'));
    }
    expect(await lab!.sims[1]!.log()).toContain('refused boot pxe');
    expect(nodeLog(2)).toEqual([]);
    expect(await lab!.sims[1]!.power()).toBe('off');
    expect(await act(id, { retry: {} })).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    await waitFor(() => nodeLog(2).includes('booted-disk'), 10_000, 'the node to boot its disk');
    expect(nodeLog(2)).toEqual(['installer-started', 'installer-exited', 'powered-off', 'booted-disk']);
    expect(sha(readFileSync(disk(2)).subarray(0, other.length))).toBe(sha(other));
  }, 120_000);

  it('by upstream command: create, power off, reinstall, switch-install, modify-ip, change-password, delete; the controller sees each end, ipmi_sim each command', async () => {
    if (why) expect.fail(why);
    await ctl!.waitFor('welcome', () => true, 20_000);
    const created = await command(ctl!, 'instance.create', { project_id: PROJECT, user_id: 'f5a98f28f61e4fd19622f9016c481d48', instance: { name: 'ipmi-3', image_uuid: IMAGE2, extra: { node_id: nodeId(3) } } });
    expect(created).toMatchObject({ status: 'accepted' });
    const id = String(created.instance_id);
    await operationStateSeen(ctl!, id, 'install-succeed');
    expect(sha(readFileSync(disk(3)).subarray(0, other.length))).toBe(sha(other));
    expect(await lab!.sims[2]!.log()).toEqual(['power 0', 'boot pxe', 'power 1', 'boot default', 'power 0', 'power 1']);

    const powered = await command(ctl!, 'instance.power', { instance_id: id, target: 'off' });
    expect(powered).toMatchObject({ status: 'accepted' });
    const finished = await ctl!.waitFor('event', (l) => l.kind === 'action.finished' && (l.data as { request_id?: string }).request_id === powered.request_id, 30_000);
    expect(finished.data).toMatchObject({ action: 'stop', result: 'Success' });
    expect((await lab!.sims[2]!.log()).at(-1)).toBe('power 0');
    expect(await lab!.sims[2]!.power()).toBe('off');

    // Each OS operation by command: accepted, and its action finished Success as the controller received it.
    const operate = async (operation: Record<string, unknown>) => {
      const r = await command(ctl!, 'instance.operation', { instance_id: id, operation });
      expect(r, JSON.stringify(operation)).toMatchObject({ status: 'accepted' });
      const f = await ctl!.waitFor('event', (l) => l.kind === 'action.finished' && (l.data as { request_id?: string }).request_id === r.request_id, 60_000);
      expect(f.data, JSON.stringify(operation)).toMatchObject({ result: 'Success', message: null });
    };
    writeFileSync(disk(3), Buffer.alloc(16 * MiB, 0xee));
    await operate({ reinstall: {} });
    await operationStateSeen(ctl!, id, 'reinstall-succeed');
    expect(sha(readFileSync(disk(3)).subarray(0, other.length))).toBe(sha(other));
    await operate({ 'switch-install': { image_uuid: IMAGE } });
    await operationStateSeen(ctl!, id, 'switch-install-succeed');
    expect(cat(3, '/etc/hostname')).toBe('ipmi-3\n');
    await operate({ 'modify-ip': { networks: [{ uuid: NETWORK, fixed_ip: '127.0.2.170' }] } });
    await operationStateSeen(ctl!, id, 'modify-ip-succeed');
    expect(cat(3, '/etc/systemd/network/10-metald-0.network')).toContain('Address=127.0.2.170/24');
    const HASH3 = '$6$ipmisal3$' + 'K'.repeat(86);
    await operate({ 'change-password': { password_hash: HASH3 } });
    expect(cat(3, '/etc/shadow')).toBe(`root:${HASH3}:19000:0:99999:7:::\n`);

    // One wipe run: counted by its start (the delete's power off may kill the installer between its report and its exit).
    const runs = nodeLog(3).filter((w) => w === 'installer-started').length;
    expect(await command(ctl!, 'instance.delete', { instance_id: id })).toMatchObject({ status: 'accepted' });
    await ctl!.waitFor('event', (l) => l.kind === 'instance.deleted' && l.instance_id === id, 60_000);
    const released = ctl!.of('event').filter((l) => l.kind === 'node.released' && (l.data as { released_instance_id?: string }).released_instance_id === id);
    expect(released, 'the controller saw the node released').toHaveLength(1);
    expect(nodeLog(3).filter((w) => w === 'installer-started')).toHaveLength(runs + 1);
    expect(readFileSync(disk(3)).every((b) => b === 0), 'the wipe zeroed the disk').toBe(true);
    expect((await lab!.sims[2]!.log()).slice(-2)).toEqual(['power 0', 'boot none']);
    expect(await lab!.sims[2]!.power()).toBe('off');
  }, 180_000);
});
