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
}

export function parseNodeSettings(v: unknown): NodeSettings {
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new Error('node must be an object {mac, bootUrl, disk}');
  if (typeof o['mac'] !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(o['mac'])) throw new Error('node.mac must be a MAC address');
  if (typeof o['bootUrl'] !== 'string' || !/^https?:\/\/\S+$/.test(o['bootUrl'])) throw new Error('node.bootUrl must be an http URL');
  if (typeof o['disk'] !== 'string' || !o['disk'].startsWith('/')) throw new Error('node.disk must be an absolute path');
  return { mac: o['mac'].toLowerCase(), bootUrl: o['bootUrl'].replace(/\/+$/, ''), disk: o['disk'] };
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
    if (device === 'Pxe') void this.netboot(gen);
    else if (device === 'Cd' && media) this.install(gen, `metald.url=${this.settings.bootUrl}`, 'cd');
    else this.diskBoot();
  }

  /** Power went away. */
  off(): void {
    this.generation++;
    if (this.stop()) this.record({ what: 'installer-killed' });
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
