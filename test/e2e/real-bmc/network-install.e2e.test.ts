/**
 * Network installs end to end through the REST API on the Redfish driver: the real daemon with its boot server, the
 * Redfish emulator with node emulators behind its systems (test/emulators/node/node.ts), each running the real
 * reference installer under busybox against a file standing for its disk, an image server here. What is checked is
 * what the peers saw and hold: the BMC's own record (boot override, resets, boots, the node's installer run and
 * power off, the boot from disk), the disk's content read back with debugfs, and the instance's records in metald.
 * Needs root (the installer mounts the installed system through a loop device), busybox and e2fsprogs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { command, operationStateSeen, startUpstream, type Ctl } from '../../helpers/controller.js';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { freeTcpPort, missingPeers } from '../../helpers/peers.js';
import { IMAGE, IMAGE2, MEMBER_TOKEN, NETWORK, PROJECT, SSH_KEY, nodeId } from '../../helpers/harness.js';
import { finishedAction, startLab, status, type Lab } from './lab.js';

const MiB = 1024 * 1024;
const HASH = '$6$saltsalt$' + 'N'.repeat(86);
const MEDIA_IMAGE = '5fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const BAD_IMAGE = '6fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const SLOW_IMAGE = '7fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const NODES = 10;
const WIRE_NETWORK = '9fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const DEAD_NETWORK = '8fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const UPSTREAM_TOKEN = 'upstream-token-netinstall-0123456789';
const mac = (i: number) => `fa:16:3e:00:01:${String(i).padStart(2, '0')}`; // lab.ts's node MACs

const why = missingPeers('a network install (the reference installer mounts the installed system through a loop device)', ['busybox', 'mkfs.ext4', 'debugfs'], 'busybox-static e2fsprogs');

let work = '';
let images: Server | null = null;
let lab: Lab | undefined;
let ctl: Ctl | undefined;
let daemon: Daemon | undefined;
let linux: Buffer;
let other: Buffer;
let slow: Buffer;
const disk = (i: number) => join(work, `disk-${i}.img`);
const range = (n: number) => Array.from({ length: n }, (_, k) => k + 1);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let installed = '';
let media = '';


beforeAll(async () => {
  if (why) return;
  work = mkdtempSync(join(tmpdir(), 'metald-netinstall-'));
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/hostname'), 'debian\n');
  writeFileSync(join(tree, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, join(work, 'linux.img'), '8M'], { stdio: 'pipe' });
  linux = readFileSync(join(work, 'linux.img'));
  other = Buffer.concat([createHash('sha256').update('other').digest(), Buffer.alloc(2 * MiB, 3)]);
  slow = Buffer.concat([createHash('sha256').update('slow').digest(), Buffer.alloc(6 * MiB, 5)]);
  const files: Record<string, Buffer> = { '/linux.img': linux, '/other.img': other, '/slow.img': slow };
  images = createServer((req, res) => {
    const body = files[req.url ?? ''];
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length });
    if (req.method === 'HEAD') return res.end();
    if (req.url !== '/slow.img') return res.end(body);
    // About 3 s: long enough to kill metald or delete the instance while the installer writes.
    let off = 0;
    const pump = () => {
      if (res.destroyed) return;
      if (off >= body.length) return res.end();
      res.write(body.subarray(off, (off += 128 * 1024)));
      setTimeout(pump, 60);
    };
    pump();
  });
  await new Promise<void>((r) => images!.listen(0, '127.0.0.1', r));
  const imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  for (let i = 1; i <= NODES; i++) writeFileSync(disk(i), Buffer.alloc(16 * MiB, 0xee));

  const bootPort = await freeTcpPort();
  const deadPort = await freeTcpPort();
  const bootUrl = `http://127.0.0.1:${bootPort}`;
  const iso = join(work, 'ramdisk.iso');
  writeFileSync(iso, 'ISO');
  // The reference controller, for the install by an upstream command.
  const upstream = await startUpstream(work, UPSTREAM_TOKEN);
  ctl = upstream.ctl;
  lab = await startLab({
    ipmi: [],
    // Node 4's server reaches no boot server (its installer is silent).
    // Node 10's server answers ICMP from a namespace of its own once booted from disk (at the address on its disk).
    redfish: range(NODES).map((i) => ({ id: `sys-${i}`, power: 'Off' as const, profile: { node: { mac: mac(i), bootUrl: i === 4 ? `http://127.0.0.1:${deadPort}` : bootUrl, disk: disk(i), ...(i === 10 ? { icmp: true } : {}) } } })),
    nodes: range(NODES).map((i) => ({ kind: 'redfish' as const, system: `sys-${i}` })),
    extra: `boot: {listen: "127.0.0.1:${bootPort}", ramdisk: {iso: ${iso}}}\n${upstream.yaml}`,
    liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
    edit: (y) =>
      y
        .replace(`url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}"`, `url: "${imageBase}/linux.img", sha256: "${sha(linux)}"`)
        .replace(`url: "http://127.0.0.1:1/ubuntu.img", sha256: "${'b'.repeat(64)}", os: linux`, `url: "${imageBase}/other.img", sha256: "${sha(other)}", os: other`)
        // A network whose addresses nothing answers (TEST-NET-1): an install there is never confirmed by ICMP.
        .replace(/\n(\s+- \{uuid: [0-9a-f-]+, name: private,[^\n]*)\n/, `\n$1\n  - {uuid: ${DEAD_NETWORK}, name: dead, cidr: 192.0.2.0/24, gateway: 192.0.2.1, dns: [], pool: 192.0.2.10-192.0.2.20}\n  - {uuid: ${WIRE_NETWORK}, name: wire, cidr: 10.252.0.0/24, gateway: 10.252.0.1, dns: [], pool: 10.252.0.10-10.252.0.20}\n`)
        .replace(
          /\ninstance_types:\n/,
          `\n  - {uuid: ${MEDIA_IMAGE}, name: other-vmedia, url: "${imageBase}/other.img", sha256: "${sha(other)}", os: other, boot_method: virtual-media}\n` +
            `  - {uuid: ${BAD_IMAGE}, name: corrupt, url: "${imageBase}/other.img", sha256: "${'d'.repeat(64)}", os: other}\n` +
            `  - {uuid: ${SLOW_IMAGE}, name: slow, url: "${imageBase}/slow.img", sha256: "${sha(slow)}", os: other}\ninstance_types:\n`,
        ),
  });
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await lab?.stop();
  await ctl?.kill();
  await new Promise((r) => (images ? images.close(r) : r(undefined)));
  if (work) rmSync(work, { recursive: true, force: true });
});

async function create(i: number, image: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: `net-${i}`, image_uuid: image, extra: { node_id: nodeId(i), ...extra } });
  if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
  return (r.body as { uuid: string }).uuid;
}

async function settled(id: string) {
  let s = await status(daemon!, id);
  await waitFor(async () => !(s = await status(daemon!, id)).operation_state?.endsWith('-processing'), 60_000, `instance ${id} to settle`);
  return s;
}

/** The system's record as `kind by: detail` lines, from its first boot override on. */
async function record(system: string): Promise<string[]> {
  const sys = await lab!.emu.system(system);
  return sys.commands.map((c) => {
    const a = c.args as Record<string, unknown>;
    const detail = c.kind === 'node' ? String(a['what']) : c.kind === 'booted' ? String(a['device']) : c.kind === 'reset' ? String(a['ResetType']) : c.kind === 'power-settled' ? String(a['PowerState']) : c.kind === 'boot-override' ? String(a['BootSourceOverrideTarget'] ?? '') : '';
    return `${c.kind} ${c.by}: ${detail}`;
  });
}

describe('network installs through the Redfish driver and the node emulator', () => {
  it('PXE: the installer writes and configures the Linux image, the server boots its disk, the instance is running', async () => {
    if (why) expect.fail(why);
    const id = await create(1, IMAGE, { hostname: 'net-one', ssh_keys: [SSH_KEY], password_hash: HASH });
    installed = id;
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    const rec = await record('sys-1');
    const from = rec.indexOf('boot-override client: Pxe');
    expect(from).toBeGreaterThanOrEqual(0);
    expect(rec.slice(from).filter((l) => !l.startsWith('boot-override') || l.endsWith('Pxe') || l.endsWith('Hdd'))).toEqual(
      expect.arrayContaining(['reset client: On', 'booted emulator: Pxe', 'node node: installer-started', 'node node: installer-exited', 'power-settled node: Off', 'boot-override client: Hdd', 'booted emulator: Hdd', 'node node: booted-disk']),
    );
    // In this order: PXE boot, the installer, its power off, then disk.
    const order = ['booted emulator: Pxe', 'node node: installer-exited', 'power-settled node: Off', 'booted emulator: Hdd'].map((l) => rec.indexOf(l, from));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const exited = (await lab!.emu.system('sys-1')).commands.find((c) => c.kind === 'node' && (c.args as { what: string }).what === 'installer-exited');
    expect((exited!.args as { code: number }).code).toBe(0);

    const cat = (p: string) => execFileSync('debugfs', ['-R', `cat ${p}`, disk(1)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(cat('/etc/hostname')).toBe('net-one\n');
    expect(cat('/etc/shadow')).toBe(`root:${HASH}:19000:0:99999:7:::\n`);
    expect(cat('/root/.ssh/authorized_keys')).toBe(`${SSH_KEY}\n`);
    expect(cat('/etc/systemd/network/10-metald-0.network')).toContain(`MACAddress=${mac(1)}`);
  }, 90_000);

  it('virtual media: the ISO inserted, the installer finds its token by MAC, the disk holds the image byte for byte', async () => {
    if (why) expect.fail(why);
    const id = await create(2, MEDIA_IMAGE);
    media = id;
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    const sys = await lab!.emu.system('sys-2');
    expect(sys.commands.find((c) => c.kind === 'media-insert')?.args['Image']).toMatch(/\/v1\/ramdisk\/ramdisk\.iso$/);
    const rec = await record('sys-2');
    expect(rec).toEqual(expect.arrayContaining(['booted emulator: Cd', 'node node: installer-started', 'node node: installer-exited', 'booted emulator: Hdd']));
    expect(sha(readFileSync(disk(2)).subarray(0, other.length))).toBe(sha(other));
  }, 90_000);

  it('an image that does not match its checksum: install-failed with "checksum mismatch", the server off, nothing processing', async () => {
    if (why) expect.fail(why);
    const id = await create(3, BAD_IMAGE);
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'error', operation_state: 'install-failed' });
    // The operator's view (admin) carries the installer's words.
    expect(JSON.stringify((await status(daemon!, id, 'admin')).error)).toContain('checksum mismatch');
    expect((await lab!.emu.system('sys-3')).powerState).toBe('Off');
    expect(await record('sys-3')).not.toContain('booted emulator: Hdd');
  }, 90_000);


  it('the installed instance\'s OS operations through the installer: modify-ip, change-password, switch-install, uninstall, delete', async () => {
    if (why) expect.fail(why);
    expect(installed, 'the PXE install above').not.toBe('');
    const id = installed;
    const cat = (p: string) => execFileSync('debugfs', ['-R', `cat ${p}`, disk(1)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const act = async (body: Record<string, unknown>) => {
      const r = await daemon!.call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER_TOKEN, body);
      expect(r.status, `${JSON.stringify(body)}: ${r.text}`).toBe(202);
      // change-password owns no operation_state: wait for the action itself.
      const done = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 60_000);
      expect(done.message, JSON.stringify(done.events)).toBeNull();
      return status(daemon!, id);
    };
    const installs = async () => (await lab!.emu.system('sys-1')).commands.filter((c) => c.kind === 'node' && (c.args as { what: string }).what === 'installer-exited').length;

    expect(await act({ 'modify-ip': { networks: [{ uuid: NETWORK, fixed_ip: '127.0.2.150' }] } })).toMatchObject({ state: 'running', operation_state: 'modify-ip-succeed', error: null });
    expect(cat('/etc/systemd/network/10-metald-0.network')).toContain('Address=127.0.2.150/24');
    expect(cat('/etc/hostname')).toBe('net-one\n'); // the rest of the system untouched

    const HASH2 = '$6$newsalt$' + 'M'.repeat(86);
    expect(await act({ 'change-password': { password_hash: HASH2 } })).toMatchObject({ state: 'stopped', error: null });
    expect(cat('/etc/shadow')).toBe(`root:${HASH2}:19000:0:99999:7:::\n`);

    expect(await act({ 'switch-install': { image_uuid: IMAGE2 } })).toMatchObject({ state: 'running', operation_state: 'switch-install-succeed', error: null });
    expect(sha(readFileSync(disk(1)).subarray(0, other.length))).toBe(sha(other));

    expect(await act({ uninstall: {} })).toMatchObject({ operation_state: 'uninstall-succeed', error: null });
    expect(readFileSync(disk(1)).every((b) => b === 0)).toBe(true); // a 16 MiB disk is wiped whole
    const before = await installs();

    const r = await daemon!.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN);
    expect(r.status, r.text).toBeLessThan(300);
    await waitFor(async () => (await daemon!.call('GET', `/v1/${PROJECT}/instances/${id}/status`, MEMBER_TOKEN)).status === 404 || (await status(daemon!, id, 'admin').catch(() => ({ state: 'terminated' }))).state === 'terminated', 60_000, 'the delete');
    expect(await installs()).toBe(before + 1); // the delete's wipe ran the installer once more
    expect((await lab!.emu.system('sys-1')).powerState).toBe('Off');
  }, 180_000);

  it('a server that never reaches the boot server: install-failed at the deadline, saying so, the server off', async () => {
    if (why) expect.fail(why);
    const id = await create(4, IMAGE2);
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'error', operation_state: 'install-failed' });
    expect(JSON.stringify((await status(daemon!, id, 'admin')).error)).toContain('deadline');
    expect(await record('sys-4')).toContain('node node: pxe-failed');
    expect((await lab!.emu.system('sys-4')).powerState).toBe('Off');
  }, 60_000);

  it('metald SIGKILLed while the installer writes: restarted, it takes the installer\'s report once and the install succeeds', async () => {
    if (why) expect.fail(why);
    const id = await create(5, SLOW_IMAGE);
    // Killed once the installer is writing the disk (the image's first bytes are on it).
    await waitFor(() => readFileSync(disk(5)).subarray(0, 32).equals(slow.subarray(0, 32)), 30_000, 'the installer writing');
    await daemon!.kill('SIGKILL');
    daemon = await startDaemon(lab!.configPath);
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    expect(sha(readFileSync(disk(5)).subarray(0, slow.length))).toBe(sha(slow));
    const rec = await record('sys-5');
    expect(rec.filter((l) => l === 'node node: installer-started')).toHaveLength(1); // one installer run, not two
  }, 90_000);

  it('delete of a pending instance while its installer writes: the job revoked, the server powered off (installer killed), wiped, freed', async () => {
    if (why) expect.fail(why);
    const id = await create(6, SLOW_IMAGE);
    await waitFor(() => readFileSync(disk(6)).subarray(0, 32).equals(slow.subarray(0, 32)), 30_000, 'the installer writing');
    const r = await daemon!.call('DELETE', `/v1/${PROJECT}/instances/${id}`, MEMBER_TOKEN);
    expect(r.status, r.text).toBeLessThan(300);
    await waitFor(async () => (await status(daemon!, id, 'admin').catch(() => ({ state: 'terminated' }))).state === 'terminated', 60_000, 'the delete');
    const rec = await record('sys-6');
    expect(rec).toContain('node node: installer-killed');
    expect(rec.filter((l) => l === 'node node: installer-started')).toHaveLength(2); // the install, then the wipe
    expect(readFileSync(disk(6)).every((b) => b === 0)).toBe(true);
    expect((await lab!.emu.system('sys-6')).powerState).toBe('Off');
  }, 90_000);

  it('an install by an upstream command: the controller sees the steps and install-succeed as events', async () => {
    if (why) expect.fail(why);
    await ctl!.waitFor('welcome', () => true, 20_000);
    const body = { name: 'up-7', image_uuid: IMAGE2, extra: { node_id: nodeId(7) } };
    const result = await command(ctl!, 'instance.create', { project_id: PROJECT, user_id: 'f5a98f28f61e4fd19622f9016c481d48', instance: body });
    expect(result).toMatchObject({ status: 'accepted' });
    const id = String(result.instance_id);
    // What the controller received: the install's steps, then install-succeed, for that instance.
    await operationStateSeen(ctl!, id, 'install-succeed');
    const steps = ctl!.of('event').filter((l) => l.kind === 'action.event' && l.instance_id === id).map((l) => (l.data as { event?: string }).event);
    expect(steps).toEqual(expect.arrayContaining(['prepare_boot', 'set_boot_device', 'power_on', 'deploy', 'confirm_alive']));
    expect(sha(readFileSync(disk(7)).subarray(0, other.length))).toBe(sha(other));

    // Then an OS operation by command: uninstall, run once, its result and uninstall-succeed seen by the controller.
    expect(await command(ctl!, 'instance.operation', { instance_id: id, operation: { uninstall: {} } })).toMatchObject({ status: 'accepted' });
    await operationStateSeen(ctl!, id, 'uninstall-succeed');
    expect(readFileSync(disk(7)).every((b) => b === 0)).toBe(true);
  }, 90_000);

  it('reinstall of the virtual-media instance: the ISO boots again, the disk is written again, reinstall-succeed', async () => {
    if (why) expect.fail(why);
    expect(media, 'the virtual-media install above').not.toBe('');
    writeFileSync(disk(2), Buffer.alloc(16 * MiB, 0xee));
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances/${media}/actions`, MEMBER_TOKEN, { reinstall: {} });
    expect(r.status, r.text).toBe(202);
    const done = await finishedAction(daemon!, media, r.headers.get('x-compute-request-id')!, 60_000);
    expect(done.message).toBeNull();
    expect(await status(daemon!, media)).toMatchObject({ state: 'running', operation_state: 'reinstall-succeed', error: null });
    expect((await record('sys-2')).filter((l) => l === 'booted emulator: Cd')).toHaveLength(2);
    expect(sha(readFileSync(disk(2)).subarray(0, other.length))).toBe(sha(other));
  }, 90_000);

  it('a BMC that reverts the PXE boot override: install-failed with BMC_ERR_BOOT_FLAGS_IGNORED, the server off; retry once it keeps it: succeeds', async () => {
    if (why) expect.fail(why);
    await lab!.emu.setFaults({ revertBootAfterMs: 0, systems: ['sys-8'] });
    let id: string;
    try {
      id = await create(8, IMAGE2);
      const s = await settled(id);
      expect(s).toMatchObject({ state: 'error', operation_state: 'install-failed' });
      expect(JSON.stringify(s.error)).toContain('BMC_ERR_BOOT_FLAGS_IGNORED');
    } finally {
      await lab!.emu.clearFaults();
    }
    expect((await lab!.emu.system('sys-8')).powerState).toBe('Off');
    expect(await record('sys-8')).not.toContain('node node: installer-started');
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances/${id}/actions`, MEMBER_TOKEN, { retry: {} });
    expect(r.status, r.text).toBe(202);
    const done = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 60_000);
    expect(done.message).toBeNull();
    expect(await status(daemon!, id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    expect(sha(readFileSync(disk(8)).subarray(0, other.length))).toBe(sha(other));
  }, 90_000);

  it('an installed server that never answers ping: the install fails at confirm_alive saying so, nothing left processing', async () => {
    if (why) expect.fail(why);
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'net-9', image_uuid: IMAGE2, networks: [{ uuid: DEAD_NETWORK }], extra: { node_id: nodeId(9) } });
    expect(r.status, r.text).toBe(201);
    const id = (r.body as { uuid: string }).uuid;
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'error', operation_state: 'install-failed' });
    const adminView = JSON.stringify((await status(daemon!, id, 'admin')).error);
    expect(adminView).toMatch(/confirm_alive/);
    // The installer did its part: the disk holds the image, the server booted it.
    expect(sha(readFileSync(disk(9)).subarray(0, other.length))).toBe(sha(other));
    expect(await record('sys-9')).toContain('booted emulator: Hdd');
    expect((await lab!.emu.system('sys-9')).powerState).toBe('Off'); // a failure powers the node off
  }, 90_000);

  it('ICMP from the installed server itself: confirmed alive once it booted its disk (its own namespace answers), silent once powered off', async () => {
    if (why) expect.fail(why);
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'net-10', image_uuid: IMAGE, networks: [{ uuid: WIRE_NETWORK }], extra: { node_id: nodeId(10), hostname: 'net-ten' } });
    expect(r.status, r.text).toBe(201);
    const id = (r.body as { uuid: string }).uuid;
    expect(await settled(id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    const answering = (await lab!.emu.system('sys-10')).commands.find((c) => c.kind === 'node' && c.args['what'] === 'answering');
    const address = String(answering?.args['address']);
    expect(address).toMatch(/^10\.252\.0\.\d+$/);
    const fping = (a: string) => spawnSync('fping', ['-q', '-r', '0', '-t', '300', a]).status;
    expect(fping(address)).toBe(0); // the peer's view: the address answers from the host
    const alive = async () => ((await daemon!.call('GET', `/v2.1/${PROJECT}/os-fping/${id}`, MEMBER_TOKEN)).body as { server: { alive: boolean } }).server.alive;
    expect(await alive()).toBe(true);

    const off = await daemon!.call('PUT', `/v1/instances/${id}/states/power`, MEMBER_TOKEN, { target: 'off' });
    expect(off.status, off.text).toBe(202);
    await finishedAction(daemon!, id, off.headers.get('x-compute-request-id')!, 30_000);
    expect((await lab!.emu.system('sys-10')).powerState).toBe('Off');
    expect(fping(address)).not.toBe(0);
    expect(await alive()).toBe(false);
  }, 90_000);
});
