/**
 * The node emulator: the server behind an emulated BMC (the Redfish emulator's systems with a `node` setting). It
 * follows the boot protocol (docs/boot-protocol.md) as a real server does, with the real reference installer:
 * - booted from the network (Pxe), it fetches metald's iPXE script for its MAC; a script with a `kernel` line is
 *   "booted": the reference installer (scripts/installer/metald-install.sh, under busybox alone) runs with that
 *   kernel command line against a file standing for its disk; a script without one boots the disk;
 * - booted from virtual media (Cd) with metald's ISO inserted, the installer runs with `metald.url` only and finds
 *   its token by MAC (the lookup), as the ISO's boot does;
 * - when the installer ends it powers the server off (its `poweroff -f`);
 * - booted from disk, it records what the disk holds (a hash of its first MiB) and stays on;
 * - powered off, it goes silent: a running installer is killed.
 * Everything it does is recorded by the caller (`record`) as the system's own commands, by `node`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readSync, closeSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';

export interface NodeSettings {
  /** The provisioning MAC (what the iPXE script and the lookup are asked with). */
  mac: string;
  /** metald's boot server (boot.public_url). */
  bootUrl: string;
  /** The file standing for the disk (it exists, at its full size). */
  disk: string;
  /**
   * A QEMU guest (TCG) is the server instead: it boots from the network with its iPXE ROM (the DHCP boot file is
   * metald's iPXE script for its MAC, reached as `guestBootUrl`), from the virtual CD (the BMC fetches the inserted
   * medium's URL, with `guestBootUrl` read as `bootUrl`: the BMC's route to the boot server), or from the disk; its
   * console goes to `serial`, appended.
   */
  qemu?: { serial: string; guestBootUrl: string; memoryMiB?: number };
  /**
   * Booted from disk, the server answers ICMP at the address the installer wrote on its disk (its first
   * systemd-networkd file, read with debugfs), from a network namespace of its own linked to the host by a veth pair
   * (10.253.N.0/30, N the MAC's last byte) with a host route to that address; powered off, the namespace goes and the
   * address is silent. Needs root and iproute2.
   */
  icmp?: boolean;
  /**
   * A slow boot: the installer starts this many ms after the server booted into it (firmware, kernel, initrd), so that
   * a test can interrupt metald while it waits for an installer that does little (a wipe of a small disk file).
   */
  bootDelayMs?: number;
}

export function parseNodeSettings(v: unknown): NodeSettings {
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new Error('node must be an object {mac, bootUrl, disk}');
  if (typeof o['mac'] !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(o['mac'])) throw new Error('node.mac must be a MAC address');
  if (typeof o['bootUrl'] !== 'string' || !/^https?:\/\/\S+$/.test(o['bootUrl'])) throw new Error('node.bootUrl must be an http URL');
  if (typeof o['disk'] !== 'string' || !o['disk'].startsWith('/')) throw new Error('node.disk must be an absolute path');
  const out: NodeSettings = { mac: o['mac'].toLowerCase(), bootUrl: o['bootUrl'].replace(/\/+$/, ''), disk: o['disk'] };
  if (o['icmp'] !== undefined) {
    if (typeof o['icmp'] !== 'boolean') throw new Error('node.icmp must be a boolean');
    out.icmp = o['icmp'];
  }
  if (o['bootDelayMs'] !== undefined) {
    const d = o['bootDelayMs'];
    if (!(typeof d === 'number' && Number.isInteger(d) && d >= 0 && d <= 60_000)) throw new Error('node.bootDelayMs must be an integer from 0 to 60000');
    out.bootDelayMs = d;
  }
  if (o['qemu'] !== undefined) {
    const q = o['qemu'] as Record<string, unknown>;
    if (typeof q !== 'object' || q === null || typeof q['serial'] !== 'string' || !q['serial'].startsWith('/')) throw new Error('node.qemu.serial must be an absolute path');
    if (typeof q['guestBootUrl'] !== 'string' || !/^https?:\/\/\S+$/.test(q['guestBootUrl'])) throw new Error('node.qemu.guestBootUrl must be an http URL');
    if (q['memoryMiB'] !== undefined && !(Number.isInteger(q['memoryMiB']) && (q['memoryMiB'] as number) >= 64)) throw new Error('node.qemu.memoryMiB must be an integer >= 64');
    out.qemu = { serial: q['serial'], guestBootUrl: q['guestBootUrl'].replace(/\/+$/, ''), ...(q['memoryMiB'] !== undefined ? { memoryMiB: q['memoryMiB'] as number } : {}) };
  }
  return out;
}

const INSTALLER = [
  resolve(import.meta.dirname, '../../../scripts/installer/metald-install.sh'),
  resolve(import.meta.dirname, '../../../../scripts/installer/metald-install.sh'),
].find((p) => existsSync(p));

export type NodeEvent = { what: string; [k: string]: unknown };

export class EmulatedNode {
  private child: ChildProcess | null = null;
  private generation = 0;
  private readonly work: string;

  constructor(
    readonly settings: NodeSettings,
    private readonly record: (e: NodeEvent) => void,
    /** The installer powered the server off. */
    private readonly powerOff: () => void,
  ) {
    this.work = join(dirname(settings.disk), `node-${settings.mac.replace(/:/g, '')}`);
  }

  /** The server came on (or restarted) and boots from `device`; `media`: the inserted virtual CD's URL. */
  boot(device: string, media: string | null): void {
    this.stop();
    const gen = ++this.generation;
    if (this.settings.qemu) {
      void this.qemuBoot(gen, device, media);
      return;
    }
    if (device === 'Pxe') void this.netboot(gen);
    else if (device === 'Cd' && media) this.install(gen, `metald.url=${this.settings.bootUrl}`, 'cd');
    else this.diskBoot();
  }

  /** Power went away. */
  off(): void {
    this.generation++;
    if (this.stop()) this.record({ what: 'installer-killed' });
    this.silence();
  }

  private netns: { name: string; address: string } | null = null;

  /** The booted system's address answers ICMP from its namespace (settings.icmp). */
  private answer(address: string): void {
    this.silence();
    const n = parseInt(this.settings.mac.slice(-2), 16);
    const name = `mnode-${process.pid}-${n}`;
    const host = `mnh${process.pid % 10000}x${n}`.slice(0, 15);
    const peer = `mnn${process.pid % 10000}x${n}`.slice(0, 15);
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
    const inNs = (...a: string[]) => ip('netns', 'exec', name, 'ip', ...a);
    try {
      ip('netns', 'add', name);
      this.netns = { name, address };
      ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
      ip('link', 'set', peer, 'netns', name);
      ip('addr', 'add', `10.253.${n}.1/30`, 'dev', host);
      ip('link', 'set', host, 'up');
      inNs('link', 'set', 'lo', 'up');
      inNs('addr', 'add', `10.253.${n}.2/30`, 'dev', peer);
      inNs('addr', 'add', `${address}/32`, 'dev', peer);
      inNs('link', 'set', peer, 'up');
      inNs('route', 'add', 'default', 'via', `10.253.${n}.1`);
      ip('route', 'replace', `${address}/32`, 'via', `10.253.${n}.2`);
      this.record({ what: 'answering', address });
    } catch (e) {
      this.record({ what: 'answer-failed', address, error: (e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e) });
    }
  }

  /** The namespace (and with it the veth pair and the host route) goes: the address is silent. */
  private silence(): void {
    if (!this.netns) return;
    const { name, address } = this.netns;
    this.netns = null;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
    } catch {
      // already gone
    }
    try {
      execFileSync('ip', ['route', 'del', `${address}/32`], { stdio: 'pipe' });
    } catch {
      // went with the veth pair
    }
  }

  private stop(): boolean {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return false;
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      c.kill('SIGKILL');
    }
    return true;
  }

  /** The QEMU guest: started for this boot; its own exit (the installer's poweroff) powers the server off. */
  private async qemuBoot(gen: number, device: string, media: string | null): Promise<void> {
    const q = this.settings.qemu!;
    mkdirSync(this.work, { recursive: true });
    const args = ['-accel', 'tcg', '-m', String(q.memoryMiB ?? 256), '-nodefaults', '-display', 'none', '-no-reboot'];
    args.push('-chardev', `file,id=ser,path=${q.serial},append=on`, '-serial', 'chardev:ser');
    args.push('-netdev', `user,id=n0,bootfile=${q.guestBootUrl}/v1/ipxe?mac=${this.settings.mac}`, '-device', `e1000,netdev=n0,mac=${this.settings.mac}`);
    args.push('-drive', `file=${this.settings.disk},format=raw,if=virtio`);
    let order = 'c';
    if (device === 'Pxe') order = 'n';
    else if (device === 'Cd' && media) {
      // The BMC fetches the medium (its route to the boot server is bootUrl's).
      const url = media.replace(q.guestBootUrl, this.settings.bootUrl);
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(30_000) });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        writeFileSync(join(this.work, 'media.iso'), Buffer.from(await r.arrayBuffer()));
      } catch (e) {
        this.record({ what: 'media-fetch-failed', url, error: (e as Error).message });
        return;
      }
      if (gen !== this.generation) return;
      args.push('-cdrom', join(this.work, 'media.iso'));
      order = 'd';
    }
    args.push('-boot', order);
    this.record({ what: 'qemu-started', boot: order });
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.child = child;
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('exit', (code) => {
      if (gen !== this.generation || this.child !== child) return;
      this.child = null;
      this.record({ what: 'qemu-exited', code, ...(err ? { stderr: err.trim() } : {}) });
      this.powerOff();
    });
  }

  private async netboot(gen: number): Promise<void> {
    let script = '';
    try {
      const r = await fetch(`${this.settings.bootUrl}/v1/ipxe?mac=${this.settings.mac}`, { signal: AbortSignal.timeout(10_000) });
      script = await r.text();
    } catch (e) {
      this.record({ what: 'pxe-failed', error: (e as Error).message });
      return;
    }
    if (gen !== this.generation) return;
    const kernel = /^kernel \S+ (.*)$/m.exec(script);
    if (!kernel) {
      this.record({ what: 'pxe-exit' });
      return this.diskBoot();
    }
    this.install(gen, kernel[1]!, 'pxe');
  }

  private install(gen: number, cmdline: string, via: string): void {
    const delay = this.settings.bootDelayMs ?? 0;
    if (delay === 0) return this.runInstaller(gen, cmdline, via);
    // Powered off (or booted again) meanwhile: this boot never reaches its installer.
    setTimeout(() => gen === this.generation && this.runInstaller(gen, cmdline, via), delay).unref();
  }

  private runInstaller(gen: number, cmdline: string, via: string): void {
    if (!INSTALLER) throw new Error('scripts/installer/metald-install.sh is missing');
    const bin = this.busyboxPath();
    const cmdFile = join(this.work, 'cmdline');
    writeFileSync(cmdFile, cmdline);
    this.record({ what: 'installer-started', via });
    const child = spawn(join(bin, 'sh'), [INSTALLER], {
      env: { PATH: bin, METALD_CMDLINE_FILE: cmdFile, METALD_DISK: this.settings.disk, METALD_MACS: this.settings.mac, METALD_AFTER: 'exit', METALD_RETRY_DELAY: '1', METALD_PROGRESS_EVERY: '0.2' },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    this.child = child;
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('exit', (code) => {
      if (gen !== this.generation || this.child !== child) return;
      this.child = null;
      this.record({ what: 'installer-exited', code, log: err.trim().split('\n').slice(-3).join(' | ') });
      // The installer's `poweroff -f`.
      this.powerOff();
    });
  }

  private diskBoot(): void {
    const fd = openSync(this.settings.disk, 'r');
    const head = Buffer.alloc(1024 * 1024);
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    this.record({ what: 'booted-disk', head_sha256: createHash('sha256').update(head).digest('hex') });
    if (!this.settings.icmp) return;
    let network = '';
    try {
      network = execFileSync('debugfs', ['-R', 'cat /etc/systemd/network/10-metald-0.network', this.settings.disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      // not an ext filesystem: no address
    }
    const address = /^Address=([0-9.]+)\/\d+$/m.exec(network)?.[1];
    if (address) this.answer(address);
    else this.record({ what: 'no-address' });
  }

  /** A folder of busybox's applets only: the installer runs with nothing else on its PATH. */
  private busyboxPath(): string {
    const bin = join(this.work, 'bin');
    if (existsSync(join(bin, 'sh'))) return bin;
    mkdirSync(bin, { recursive: true });
    const busybox = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
    const have = new Set(readdirSync(bin));
    for (const a of execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) if (!have.has(a)) symlinkSync(busybox, join(bin, a));
    return bin;
  }
}
