/**
 * The reference installer (scripts/installer/metald-install.sh) run under busybox alone (a PATH of busybox applets
 * and nothing else) against metald's real boot server, a real image server and a file standing for the disk. What
 * is checked is what the disk holds afterwards, read with e2fsprogs' debugfs (not with the installer's tools), and
 * what metald recorded. Needs root (the installer mounts the installed system with a loop device), busybox and
 * e2fsprogs (.ci/run installs them); without them each test fails saying so.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { loadConfigFile } from '../../agent/config/load.js';
import type { Pinger } from '../../agent/ports.js';
import { FakeLab } from '../../drivers/fake/lab.js';
import { waitFor } from '../helpers/daemon.js';
import { missingPeers } from '../helpers/peers.js';
import { ctx, IMAGE, IMAGE2, nodeId, SSH_KEY, SSH_KEY2, writeConfig } from '../helpers/harness.js';

const SCRIPT = resolve(import.meta.dirname, '../../scripts/installer/metald-install.sh');
const MAC = 'fa:16:3e:00:00:01';
const HASH = '$6$saltsalt$' + 'Q'.repeat(86);
const MiB = 1024 * 1024;

/** Why this machine cannot run these tests, or null. */
const why = missingPeers('the installer tests (the installer mounts the installed system through a loop device)', ['busybox', 'mkfs.ext4', 'debugfs'], 'busybox-static e2fsprogs');

let work = '';
let bin = '';
let images: Server | null = null;
let imageBase = '';
const served = new Map<string, Buffer>();

beforeAll(async () => {
  if (why) return;
  work = mkdtempSync(join(tmpdir(), 'metald-installer-'));
  // A PATH of busybox's applets only: the installer must need nothing else.
  bin = join(work, 'bin');
  mkdirSync(bin);
  const busybox = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) symlinkSync(busybox, join(bin, applet));

  // The Linux image: an ext4 filesystem (no partition table) with what an installed system has.
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/hostname'), 'debian\n');
  writeFileSync(join(tree, 'etc/shadow'), 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n');
  writeFileSync(join(tree, 'etc/os-release'), 'ID=debian\n');
  const linux = join(work, 'linux.img');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, '-L', 'root', linux, '16M'], { stdio: 'pipe' });
  served.set('/linux.img', readFileSync(linux));
  // An image of another OS (not configured, written as it is): 3 MiB and a bit of pseudo-random bytes.
  served.set('/other.img', Buffer.concat(Array.from({ length: 97 }, (_, i) => createHash('sha256').update(String(i)).digest()).concat(Buffer.alloc(3 * MiB, 7))));
  images = createServer((req, res) => {
    const body = served.get(req.url ?? '');
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return res.end();
    // Slowly enough (64 KiB per ms) that the installer reports progress while it writes.
    let off = 0;
    const pump = () => {
      if (off >= body.length) return res.end();
      res.write(body.subarray(off, (off += 256 * 1024)));
      setTimeout(pump, 4);
    };
    pump();
  });
  await new Promise<void>((r) => images!.listen(0, '127.0.0.1', r));
  imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => (images ? images.close(r) : r(undefined)));
  if (work) rmSync(work, { recursive: true, force: true });
});

let agent: Agent | null = null;
const dirs: string[] = [];
afterEach(async () => {
  await agent?.stop().catch(() => undefined);
  agent = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const alive: Pinger = { engine: 'test', ping: async (addrs) => addrs.map((addr) => ({ addr, alive: true, rtt_ms: 0 })) };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** metald with the boot server listening, its catalogue's two images served here (`other` as os: other). */
async function startMetald(opts: { linuxSha?: string } = {}) {
  const cfg = writeConfig({
    nodes: 1,
    deploy: '60s',
    extra: 'boot: {listen: "127.0.0.1:0"}',
    editConfig: (y) =>
      y
        .replace(`url: "http://127.0.0.1:1/debian-12.img", sha256: "${'a'.repeat(64)}"`, `url: "${imageBase}/linux.img", sha256: "${opts.linuxSha ?? sha(served.get('/linux.img')!)}"`)
        .replace(`url: "http://127.0.0.1:1/ubuntu.img", sha256: "${'b'.repeat(64)}", os: linux`, `url: "${imageBase}/other.img", sha256: "${sha(served.get('/other.img')!)}", os: other`),
  });
  dirs.push(cfg.dir);
  const lines: string[] = [];
  agent = await buildAgent(loadConfigFile(cfg.configPath), {
    log: pino({ level: 'info' }, { write: (s: string) => void lines.push(s) }),
    fakeLab: new FakeLab(),
    pinger: alive,
    fakeNodesBootFromNetwork: true,
  });
  const a = agent;
  await a.start({ listenBoot: async () => void (await a.boot!.listen({ host: '127.0.0.1', port: 0 })) });
  const disk = join(cfg.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(32 * MiB, 0xee));
  return { a, disk, lines, dir: cfg.dir };
}

/** Waits for the node's iPXE script (as iPXE would fetch it) and runs the installer with its kernel command line. */
async function runInstaller(a: Agent, disk: string, dir: string, env: Record<string, string> = {}): Promise<{ code: number | null; err: string }> {
  let script = '';
  await waitFor(async () => (script = (await a.boot!.inject({ url: `/v1/ipxe?mac=${MAC}` })).body).includes('kernel'), 10_000, 'the iPXE script of the job');
  const cmdline = join(dir, 'cmdline');
  writeFileSync(cmdline, /^kernel \S+ (.*)$/m.exec(script)![1]!.replace(/http:\/\/127\.0\.0\.1:0/g, `http://127.0.0.1:${(a.boot!.server.address() as AddressInfo).port}`));
  const child = spawn(join(bin, 'sh'), [SCRIPT], {
    env: { PATH: bin, METALD_CMDLINE_FILE: cmdline, METALD_DISK: disk, METALD_AFTER: 'exit', METALD_RETRY_DELAY: '0.2', METALD_PROGRESS_EVERY: '0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, err };
}

/** A file of the ext4 filesystem at the start of the disk, read by debugfs. */
function fileOnDisk(disk: string, path: string): string {
  return execFileSync('debugfs', ['-R', `cat ${path}`, disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the reference installer under busybox, against metald', () => {
  it('installs the Linux image: the disk holds the image, configured with the hostname, network, password and keys; metald records the success', async () => {
    if (why) expect.fail(why);
    const { a, disk, lines, dir } = await startMetald();
    const { instance } = await a.engine.createInstance(ctx(), {
      name: 'web-1',
      image_uuid: IMAGE,
      extra: { node_id: nodeId(1), hostname: 'web-1', ssh_keys: [SSH_KEY, SSH_KEY2], password_hash: HASH, user_data: '#cloud-config\nruncmd: [echo hi]\n' },
    });
    const run = await runInstaller(a, disk, dir);
    expect(run.code, run.err).toBe(0);
    await a.engine.idle();
    expect(a.store.getInstance(instance.id)).toMatchObject({ state: 'running', operation_state: 'install-succeed', error: null });
    const addr = a.store.getInstance(instance.id)!.addresses[0]!.addr;

    expect(fileOnDisk(disk, '/etc/hostname')).toBe('web-1\n');
    expect(fileOnDisk(disk, '/etc/shadow')).toBe(`root:${HASH}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n`);
    expect(fileOnDisk(disk, '/root/.ssh/authorized_keys')).toBe(`${SSH_KEY}\n${SSH_KEY2}\n`);
    expect(fileOnDisk(disk, '/etc/systemd/network/10-metald-0.network')).toContain(`[Match]\nMACAddress=${MAC}\n[Network]\nAddress=${addr}/24\nGateway=127.0.2.1\nDNS=127.0.2.1\n`);
    expect(fileOnDisk(disk, '/var/lib/cloud/seed/nocloud/user-data')).toBe('#cloud-config\nruncmd: [echo hi]\n');
    expect(fileOnDisk(disk, '/etc/os-release')).toBe('ID=debian\n'); // the image's own files are there
    // Past the image, the disk is as it was.
    const after = readFileSync(disk);
    expect(after.subarray(16 * MiB).every((b) => b === 0xee)).toBe(true);
    // Progress was reported while writing (the boot server's request lines), and the one result.
    const routes = lines.map((l) => JSON.parse(l) as { route?: string; status?: number }).filter((l) => l.route);
    expect(routes.filter((l) => l.route === '/v1/jobs/:token/progress' && l.status === 204).length).toBeGreaterThanOrEqual(3);
    expect(routes.filter((l) => l.route === '/v1/jobs/:token/result').map((l) => l.status)).toEqual([204]);
  }, 60_000);

  it('an image of another OS is written byte for byte and not configured', async () => {
    if (why) expect.fail(why);
    const { a, disk, dir } = await startMetald();
    const { instance } = await a.engine.createInstance(ctx(), { name: 'w', image_uuid: IMAGE2, extra: { node_id: nodeId(1) } });
    const run = await runInstaller(a, disk, dir);
    expect(run.code, run.err).toBe(0);
    await a.engine.idle();
    expect(a.store.getInstance(instance.id)).toMatchObject({ state: 'running', operation_state: 'install-succeed' });
    const src = served.get('/other.img')!;
    expect(sha(readFileSync(disk).subarray(0, src.length))).toBe(sha(src));
  }, 60_000);

  it('an image whose bytes are not the catalogue\'s checksum: the installer reports the mismatch, the install fails with it', async () => {
    if (why) expect.fail(why);
    const { a, disk, dir } = await startMetald({ linuxSha: 'c'.repeat(64) });
    const { instance } = await a.engine.createInstance(ctx(), { name: 'w', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
    const run = await runInstaller(a, disk, dir);
    expect(run.code, run.err).toBe(0); // the failure was reported
    expect(run.err).toContain('checksum mismatch');
    await a.engine.idle();
    const inst = a.store.getInstance(instance.id)!;
    expect(inst).toMatchObject({ state: 'error', operation_state: 'install-failed' });
    expect(inst.error?.error_msg).toContain('checksum mismatch');
  }, 60_000);

  it('uninstall wipes the disk\'s first and last 8 MiB; change-password rewrites only the root hash', async () => {
    if (why) expect.fail(why);
    const { a, disk, dir } = await startMetald();
    const { instance } = await a.engine.createInstance(ctx(), { name: 'w', image_uuid: IMAGE, extra: { node_id: nodeId(1), hostname: 'w' } });
    expect((await runInstaller(a, disk, dir)).code).toBe(0);
    await a.engine.idle();

    const HASH2 = '$6$othersalt$' + 'R'.repeat(86);
    await a.engine.runOperation(ctx(), instance.id, 'change-password', { password_hash: HASH2 });
    const cp = await runInstaller(a, disk, dir);
    expect(cp.code, cp.err).toBe(0);
    await a.engine.idle();
    expect(a.store.getInstance(instance.id)).toMatchObject({ state: 'stopped', task: null, error: null }) // seed 003: change-password ends stopped;
    expect(fileOnDisk(disk, '/etc/shadow')).toBe(`root:${HASH2}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n`);
    expect(fileOnDisk(disk, '/etc/hostname')).toBe('w\n');

    await a.engine.runOperation(ctx(), instance.id, 'uninstall', {});
    const un = await runInstaller(a, disk, dir);
    expect(un.code, un.err).toBe(0);
    await a.engine.idle();
    expect(a.store.getInstance(instance.id)).toMatchObject({ operation_state: 'uninstall-succeed' });
    const bytes = readFileSync(disk);
    expect(bytes.length).toBe(32 * MiB);
    expect(bytes.subarray(0, 8 * MiB).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(24 * MiB).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(16 * MiB, 24 * MiB).every((b) => b === 0xee)).toBe(true);
  }, 90_000);

  it('a token already used: the installer exits 1 without touching the disk', async () => {
    if (why) expect.fail(why);
    const { a, disk, dir } = await startMetald();
    await a.engine.createInstance(ctx(), { name: 'w', image_uuid: IMAGE, extra: { node_id: nodeId(1) } });
    let script = '';
    await waitFor(async () => (script = (await a.boot!.inject({ url: `/v1/ipxe?mac=${MAC}` })).body).includes('kernel'), 10_000, 'the job');
    const token = /metald\.token=(\S+)/.exec(script)![1]!;
    expect((await a.boot!.inject({ url: `/v1/jobs/${token}` })).statusCode).toBe(200);
    const cmdline = join(dir, 'cmdline');
    writeFileSync(cmdline, `metald.url=http://127.0.0.1:${(a.boot!.server.address() as AddressInfo).port} metald.token=${token}`);
    const child = spawn(join(bin, 'sh'), [SCRIPT], { env: { PATH: bin, METALD_CMDLINE_FILE: cmdline, METALD_DISK: disk, METALD_AFTER: 'exit' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    expect(await new Promise((r) => child.on('exit', r))).toBe(1);
    expect(err).toContain('cannot fetch the job document');
    expect(err).toContain('409');
    expect(readFileSync(disk).every((b) => b === 0xee)).toBe(true);
    expect(existsSync(SCRIPT)).toBe(true);
  }, 60_000);
});
