/**
 * Network installs end to end through the REST API on the Redfish driver: the real daemon with its boot server, the
 * Redfish emulator with node emulators behind its systems (test/emulators/node/node.ts), each running the real
 * reference installer under busybox against a file standing for its disk, an image server here. What is checked is
 * what the peers saw and hold: the BMC's own record (boot override, resets, boots, the node's installer run and
 * power off, the boot from disk), the disk's content read back with debugfs, and the instance's records in metald.
 * Needs root (the installer mounts the installed system through a loop device), busybox and e2fsprogs.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { IMAGE, MEMBER_TOKEN, PROJECT, SSH_KEY, nodeId } from '../../helpers/harness.js';
import { startLab, status, type Lab } from './lab.js';

const MiB = 1024 * 1024;
const HASH = '$6$saltsalt$' + 'N'.repeat(86);
const MEDIA_IMAGE = '5fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const BAD_IMAGE = '6fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const mac = (i: number) => `fa:16:3e:00:01:${String(i).padStart(2, '0')}`; // lab.ts's node MACs

function missing(): string | null {
  if (process.getuid?.() !== 0) return 'network installs need root: the reference installer mounts the installed system through a loop device (CI runs as root)';
  for (const tool of ['busybox', 'mkfs.ext4', 'debugfs']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      return `${tool} is not installed (apt-get install busybox-static e2fsprogs; .ci/run does)`;
    }
  }
  return null;
}
const why = missing();

let work = '';
let images: Server | null = null;
let lab: Lab | undefined;
let daemon: Daemon | undefined;
let linux: Buffer;
let other: Buffer;
const disk = (i: number) => join(work, `disk-${i}.img`);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

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
  const files: Record<string, Buffer> = { '/linux.img': linux, '/other.img': other };
  images = createServer((req, res) => {
    const body = files[req.url ?? ''];
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => images!.listen(0, '127.0.0.1', r));
  const imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  for (let i = 1; i <= 3; i++) writeFileSync(disk(i), Buffer.alloc(16 * MiB, 0xee));

  const bootPort = await freePort();
  const bootUrl = `http://127.0.0.1:${bootPort}`;
  const iso = join(work, 'ramdisk.iso');
  writeFileSync(iso, 'ISO');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  lab = await startLab({
    ipmi: [],
    redfish: [1, 2, 3].map((i) => ({ id: `sys-${i}`, power: 'Off' as const, profile: { node: { mac: mac(i), bootUrl, disk: disk(i) } } })),
    nodes: [1, 2, 3].map((i) => ({ kind: 'redfish' as const, system: `sys-${i}` })),
    extra: `boot: {listen: "127.0.0.1:${bootPort}", ramdisk: {iso: ${iso}}}`,
    liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
    edit: (y) =>
      y
        .replace(`url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}"`, `url: "${imageBase}/linux.img", sha256: "${sha(linux)}"`)
        .replace(`url: "http://127.0.0.1:1/ubuntu.img", sha256: "${'b'.repeat(64)}", os: linux`, `url: "${imageBase}/other.img", sha256: "${sha(other)}", os: other`)
        .replace(
          /\ninstance_types:\n/,
          `\n  - {uuid: ${MEDIA_IMAGE}, name: other-vmedia, url: "${imageBase}/other.img", sha256: "${sha(other)}", os: other, boot_method: virtual-media}\n` +
            `  - {uuid: ${BAD_IMAGE}, name: corrupt, url: "${imageBase}/other.img", sha256: "${'d'.repeat(64)}", os: other}\ninstance_types:\n`,
        ),
  });
  daemon = await startDaemon(lab.configPath);
}, 60_000);

afterAll(async () => {
  await daemon?.kill('SIGTERM');
  await lab?.stop();
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
    const s = await settled(id);
    expect(s).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    const sys = await lab!.emu.system('sys-2');
    expect(sys.commands.find((c) => c.kind === 'media-insert')?.args['Image']).toMatch(/\/v1\/ramdisk\/ramdisk\.iso$/);
    const rec = await record('sys-2');
    expect(rec).toEqual(expect.arrayContaining(['booted emulator: Cd', 'node node: installer-started', 'node node: installer-exited', 'booted emulator: Hdd']));
    expect(createHash('sha256').update(readFileSync(disk(2)).subarray(0, other.length)).digest('hex')).toBe(createHash('sha256').update(other).digest('hex'));
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

});
