/**
 * Issue 11 point 6: one end-to-end boot on a real machine model. A QEMU guest (TCG) is the server; an ipmi_sim BMC
 * drives its power through its chassis_control program (test/emulators/chassis-control.sh in QEMU mode). metald
 * (the real daemon) installs it through the REST API: the guest's iPXE ROM netboots, chains metald's iPXE script,
 * boots the Debian kernel with the ramdisk of scripts/ramdisk/build.sh running the reference installer, which writes
 * the image to the guest's disk, configures it and reports; metald then boots the guest from that disk, and the
 * booted system's console says what it found configured ("METALD-OS-BOOTED hostname=... address=...").
 * The same through virtual media: a second guest behind the Redfish emulator (the node emulator's QEMU mode), whose
 * BMC fetches metald's ramdisk ISO (built with `--iso`), boots it; the installer finds its token by MAC.
 *
 * Needs root (the test image is built through a loop device), qemu-system-x86 and ipxe-qemu, extlinux and
 * syslinux-common, busybox-static, e2fsprogs, ipmi_sim and ipmitool, and apt-get download of a Debian kernel (or
 * METALD_TEST_KERNEL_DEB naming a linux-image .deb). .ci/run installs them; without them the test fails saying so.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type Daemon } from '../../helpers/daemon.js';
import { freeTcpPort, missingPeers } from '../../helpers/peers.js';
import { ADMIN_TOKEN, IMAGE, MEMBER_TOKEN, PROJECT, SSH_KEY, nodeId } from '../../helpers/harness.js';
import { BUILD_RAMDISK, buildOsImage } from '../../emulators/qemu/os-image.js';
import { finishedAction, startLab, status, type Lab } from '../real-bmc/lab.js';

const MAC = 'fa:16:3e:00:01:01'; // lab.ts's MAC of node 1
const MAC2 = 'fa:16:3e:00:01:02';
const MEDIA_IMAGE = '5fd5ab9b-1769-4dd5-b0bd-e075614cc866';
const MiB = 1024 * 1024;

function missing(): string | null {
  const tools = missingPeers('the QEMU boot (its test image is built through a loop device)', ['qemu-system-x86_64', 'busybox', 'mkfs.ext4', 'extlinux', 'losetup', 'ipmi_sim', 'ipmitool'], 'qemu-system-x86 ipxe-qemu extlinux syslinux-common busybox-static e2fsprogs openipmi ipmitool');
  if (tools) return tools;
  if (!existsSync('/usr/share/qemu/efi-e1000.rom') && !existsSync('/usr/lib/ipxe/qemu/efi-e1000.rom')) return "QEMU's iPXE ROMs are missing (apt-get install ipxe-qemu)";
  return null;
}
const why = missing();

let work = '';
let images: Server | null = null;
let lab: Lab | undefined;
let daemon: Daemon | undefined;
let serial = '';
let serial2 = '';
let first = '';
let osImage: Buffer;


/** The Debian kernel package: METALD_TEST_KERNEL_DEB, else downloaded once into the work folder. */
function kernelDeb(): string {
  const given = process.env['METALD_TEST_KERNEL_DEB'];
  if (given) return given;
  const pkg = execFileSync('sh', ['-c', "apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'"], { encoding: 'utf8' }).trim();
  if (!pkg) throw new Error('apt-cache knows no linux-image-amd64: run apt-get update (or set METALD_TEST_KERNEL_DEB)');
  execFileSync('apt-get', ['download', pkg], { cwd: work, stdio: 'pipe' });
  return join(work, readdirSync(work).find((f) => f.startsWith('linux-image-') && f.endsWith('.deb'))!);
}

beforeAll(async () => {
  if (why) return;
  work = mkdtempSync(join(tmpdir(), 'metald-qemu-'));
  const deb = kernelDeb();
  const bootPort = await freeTcpPort();
  execFileSync('bash', [BUILD_RAMDISK, join(work, 'ramdisk'), '--kernel-deb', deb, '--iso', `http://10.0.2.2:${bootPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  buildOsImage(join(work, 'os.img'), deb, 48);
  osImage = readFileSync(join(work, 'os.img'));
  images = createServer((req, res) => {
    if (req.url !== '/os.img') return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': osImage.length });
    res.end(req.method === 'HEAD' ? undefined : osImage);
  });
  await new Promise<void>((r) => images!.listen(0, '127.0.0.1', r));
  const imagePort = (images.address() as AddressInfo).port;
  serial = join(work, 'serial.log');
  serial2 = join(work, 'serial-2.log');
  const disk2 = join(work, 'disk-2.img');
  writeFileSync(disk2, Buffer.alloc(0));
  execFileSync('truncate', ['-s', '64M', disk2]);
  const sha = createHash('sha256').update(osImage).digest('hex');
  // The guest reaches the host's loopback as 10.0.2.2 (QEMU user networking).
  lab = await startLab({
    ipmi: ['off'],
    redfish: [{ id: 'sys-1', power: 'Off', profile: { node: { mac: MAC2, bootUrl: `http://127.0.0.1:${bootPort}`, disk: disk2, qemu: { serial: serial2, guestBootUrl: `http://10.0.2.2:${bootPort}` } } } }],
    nodes: [{ kind: 'ipmi', sim: 0 }, { kind: 'redfish', system: 'sys-1' }],
    extra: `boot: {listen: "127.0.0.1:${bootPort}", public_url: "http://10.0.2.2:${bootPort}", ramdisk: {kernel: ${join(work, 'ramdisk/vmlinuz')}, initrd: ${join(work, 'ramdisk/initrd.img')}, iso: ${join(work, 'ramdisk/ramdisk.iso')}}}`,
    liveness: '{engine: fping, interval: 30s, timeout: 200ms, retries: 0}',
    edit: (y) =>
      y
        .replace(`url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}"`, `url: "http://10.0.2.2:${imagePort}/os.img", sha256: "${sha}"`)
        .replace(/\ninstance_types:\n/, `\n  - {uuid: ${MEDIA_IMAGE}, name: os-vmedia, url: "http://10.0.2.2:${imagePort}/os.img", sha256: "${sha}", os: linux, boot_method: virtual-media}\ninstance_types:\n`)
        .replace(/deploy: 5s/, 'deploy: 120s')
        .replace(/power: 5s/, 'power: 30s')
        // ipmi_sim keeps a boot device for the next boot only (docs/config.md, persistent_boot).
        .replace(/retry_timeout_s: 1\}/, 'retry_timeout_s: 1, persistent_boot: false}'),
  });
  const state = join(lab.sims[0]!.dir, 'state');
  const disk = join(work, 'disk.img');
  writeFileSync(disk, Buffer.alloc(0));
  execFileSync('truncate', ['-s', '64M', disk]);
  writeFileSync(join(state, 'qemu.env'), `MAC=${MAC}\nDISK=${disk}\nSERIAL=${serial}\nBOOTFILE=http://10.0.2.2:${bootPort}/v1/ipxe?mac=${MAC}\n`);
  daemon = await startDaemon(lab.configPath);
}, 180_000);

afterAll(async () => {
  // A guest outlives its BMC: power it off first.
  if (lab) {
    const pidFile = join(lab.sims[0]!.dir, 'state', 'qemu.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await daemon?.kill('SIGTERM');
  await lab?.stop();
  await new Promise((r) => (images ? images.close(r) : r(undefined)));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('QEMU: a real boot, driven by ipmi_sim, installed by metald', () => {
  it('netboots the ramdisk through metald\'s iPXE script, installs the image, boots it from disk: the booted system reports its configuration', async () => {
    if (why) expect.fail(why);
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'qemu-one', image_uuid: IMAGE, extra: { node_id: nodeId(1), hostname: 'qemu-one', ssh_keys: [SSH_KEY] } });
    expect(r.status, r.text).toBe(201);
    const id = (r.body as { uuid: string }).uuid;
    first = id;
    const action = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 300_000);
    const console = () => (existsSync(serial) ? readFileSync(serial, 'latin1') : '');
    const failure = action.message === null ? '' : JSON.stringify((await status(daemon!, id, 'admin')).error);
    expect(action.message, `${failure}\n${JSON.stringify(action.events.map((e) => `${e.event} ${e.result}`))}\n${console().slice(-2000)}`).toBeNull();
    expect(await status(daemon!, id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    const ip = ((await daemon!.call('GET', `/v2/${PROJECT}/servers/${id}`, MEMBER_TOKEN)).body as { server: { accessIPv4: string } }).server.accessIPv4;
    expect(ip).toMatch(/^127\.0\.2\.\d+$/);

    // The guest's console: the ramdisk ran the installer, which reported success; then the installed system booted
    // from the disk and found what the installer wrote.
    await waitFor(() => console().includes('METALD-OS-BOOTED'), 120_000, 'the installed system to boot from disk');
    const out = console();
    expect(out).toContain('metald-ramdisk: eth0: 10.0.2.15/24');
    expect(out).toMatch(/metald-install: success: installed os\.img on \/dev\/vda and configured it/);
    expect(out).toContain(`METALD-OS-BOOTED hostname=qemu-one address=${ip}/24`);
    // What the BMC was asked (ipmi_sim's chassis log) and what the guest booted from, in order.
    const log = await lab!.sims[0]!.log();
    expect(log).toEqual(expect.arrayContaining(['boot pxe', 'power 1', 'boot default']));
    const boots = readFileSync(join(lab!.sims[0]!.dir, 'state', 'qemu.log'), 'utf8').split('\n').filter((l) => l.startsWith('qemu boot'));
    expect(boots).toEqual(['qemu boot n', 'qemu boot c']);
    expect(osImage.length).toBe(48 * MiB);
  }, 400_000);

  it('reinstall with a new hostname through ipmi_sim: netboots again, the disk booted says the new name; delete wipes it and frees the node', async () => {
    if (why) expect.fail(why);
    expect(first, 'the install above').not.toBe('');
    const consoleNow = () => readFileSync(serial, 'latin1');
    const mark = consoleNow().length;
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances/${first}/actions`, MEMBER_TOKEN, { reinstall: { hostname: 'qemu-uno' } });
    expect(r.status, r.text).toBe(202);
    const action = await finishedAction(daemon!, first, r.headers.get('x-compute-request-id')!, 300_000);
    expect(action.message, consoleNow().slice(-2000)).toBeNull();
    expect(await status(daemon!, first)).toMatchObject({ state: 'running', operation_state: 'reinstall-succeed', error: null });
    await waitFor(() => consoleNow().slice(mark).includes('METALD-OS-BOOTED'), 120_000, 'the reinstalled system to boot');
    expect(consoleNow().slice(mark)).toContain('METALD-OS-BOOTED hostname=qemu-uno');

    const d = await daemon!.call('DELETE', `/v1/${PROJECT}/instances/${first}`, MEMBER_TOKEN);
    expect(d.status, d.text).toBeLessThan(300);
    await waitFor(async () => (await status(daemon!, first, 'admin').catch(() => ({ state: 'terminated' }))).state === 'terminated', 300_000, 'the delete');
    // The wipe ran in the guest (the ramdisk's installer), and the disk's partition table and filesystem are gone.
    expect(consoleNow().slice(mark)).toContain('metald-install: success: disks wiped');
    const disk = readFileSync(join(work, 'disk.img'));
    expect(disk.subarray(0, 8 * MiB).every((b) => b === 0)).toBe(true);
    const boots = readFileSync(join(lab!.sims[0]!.dir, 'state', 'qemu.log'), 'utf8').split('\n').filter((l) => l.startsWith('qemu boot'));
    expect(boots).toEqual(['qemu boot n', 'qemu boot c', 'qemu boot n', 'qemu boot c', 'qemu boot n']);
    const node = await daemon!.call('GET', `/v1/nodes/${nodeId(1)}`, ADMIN_TOKEN);
    expect(JSON.stringify(node.body)).not.toContain(first); // the node holds no instance any more
    // The guest is off: its QEMU process is gone (the chassis_control program removes its pid file on power off).
    const pidFile = join(lab!.sims[0]!.dir, 'state', 'qemu.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : null;
    expect(pid === null || !existsSync(`/proc/${pid}`)).toBe(true);
  }, 600_000);

  it('virtual media: the Redfish BMC fetches metald\'s ramdisk ISO and boots it; the installer finds its token by MAC; the guest boots its disk', async () => {
    if (why) expect.fail(why);
    const r = await daemon!.call('POST', `/v1/${PROJECT}/instances`, MEMBER_TOKEN, { name: 'qemu-two', image_uuid: MEDIA_IMAGE, extra: { node_id: nodeId(2), hostname: 'qemu-two' } });
    expect(r.status, r.text).toBe(201);
    const id = (r.body as { uuid: string }).uuid;
    const action = await finishedAction(daemon!, id, r.headers.get('x-compute-request-id')!, 300_000);
    const console = () => (existsSync(serial2) ? readFileSync(serial2, 'latin1') : '');
    const failure = action.message === null ? '' : JSON.stringify((await status(daemon!, id, 'admin')).error);
    expect(action.message, `${failure}\n${JSON.stringify(action.events.map((e) => `${e.event} ${e.result}`))}\n${console().slice(-2000)}`).toBeNull();
    await waitFor(() => console().includes('METALD-OS-BOOTED'), 120_000, 'the installed system to boot from disk');
    const out = console();
    // Booted from the ISO: metald.url baked in, no token on the command line; the token came from the lookup.
    expect(out).toMatch(/Command line: BOOT_IMAGE=\/vmlinuz initrd=\/initrd.img console=ttyS0,115200 metald.url=http:\/\/10\.0\.2\.2:\d+\s/);
    expect(out).not.toMatch(/Command line:.*metald\.token=/);
    expect(out).toMatch(/metald-install: success: installed os\.img on \/dev\/vda and configured it/);
    expect(out).toContain('METALD-OS-BOOTED hostname=qemu-two');
    const sys = await lab!.emu.system('sys-1');
    expect(sys.commands.find((c) => c.kind === 'media-insert')?.args['Image']).toMatch(/^http:\/\/10\.0\.2\.2:\d+\/v1\/ramdisk\/ramdisk\.iso$/);
    const node = sys.commands.filter((c) => c.kind === 'node').map((c) => `${String(c.args['what'])}${c.args['boot'] ? ` ${String(c.args['boot'])}` : ''}`);
    // Between the two boots the guest went off: by itself (the installer's poweroff) or by metald's power off, which
    // may come first once the installer has reported (its writes were on the disk before it reported).
    expect(node, JSON.stringify(node)).toHaveLength(3);
    expect([node[0], node[2]]).toEqual(['qemu-started d', 'qemu-started c']);
    expect(['qemu-exited', 'installer-killed']).toContain(node[1]);
  }, 400_000);
});
