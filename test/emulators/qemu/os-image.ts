/**
 * The image the QEMU end-to-end test installs: a disk that boots. An MBR (syslinux's boot code and one active
 * partition at 1 MiB), an ext4 root filesystem (no 64bit feature: extlinux reads it) with extlinux, the Debian kernel
 * and a small initramfs whose /init (./os-init.sh) prints the installed system's hostname and address on the
 * console ("METALD-OS-BOOTED ..."), and the /etc files the installer configures. Built with a loop device: root.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The first of `paths` that exists (the source tree's, or its place seen from dist/). */
const firstExisting = (paths: string[]): string => paths.find((p) => existsSync(p)) ?? paths[0]!;

export const BUILD_RAMDISK = firstExisting([resolve(import.meta.dirname, '../../../scripts/ramdisk/build.sh'), resolve(import.meta.dirname, '../../../../scripts/ramdisk/build.sh')]);
const OS_INIT = firstExisting([resolve(import.meta.dirname, 'os-init.sh'), resolve(import.meta.dirname, '../../../../test/emulators/qemu/os-init.sh')]);
const MBR = firstExisting(['/usr/lib/syslinux/mbr/mbr.bin', '/usr/lib/EXTLINUX/mbr.bin']);
const MiB = 1024 * 1024;

/** Writes the bootable image to `out` (`sizeMiB` in all); `kernelDeb` as for scripts/ramdisk/build.sh. */
export function buildOsImage(out: string, kernelDeb: string | null, sizeMiB = 48): void {
  const work = mkdtempSync(join(tmpdir(), 'metald-osimg-'));
  let loop: string | null = null;
  const mnt = join(work, 'mnt');
  try {
    execFileSync('bash', [BUILD_RAMDISK, join(work, 'rd'), ...(kernelDeb ? ['--kernel-deb', kernelDeb] : []), '--init', OS_INIT, '--no-installer', '--modules', 'virtio_pci virtio_blk crc32c_generic ext4'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const mbrCode = readFileSync(MBR).subarray(0, 440);
    // The disk: boot code, one active Linux partition from sector 2048 to the end, the signature.
    const mbr = Buffer.alloc(512);
    mbrCode.copy(mbr, 0);
    const start = 2048;
    const sectors = (sizeMiB * MiB) / 512 - start;
    const e = 446;
    mbr[e] = 0x80;
    mbr.writeUIntLE(0xfffffe, e + 1, 3);
    mbr[e + 4] = 0x83;
    mbr.writeUIntLE(0xfffffe, e + 5, 3);
    mbr.writeUInt32LE(start, e + 8);
    mbr.writeUInt32LE(sectors, e + 12);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    writeFileSync(out, Buffer.alloc(0));
    execFileSync('truncate', ['-s', `${sizeMiB}M`, out]);
    const fd = openSync(out, 'r+');
    writeSync(fd, mbr, 0, 512, 0);
    closeSync(fd);
    loop = execFileSync('losetup', ['-f', '--show', '-o', String(start * 512), '--sizelimit', String(sectors * 512), out], { encoding: 'utf8' }).trim();
    execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^64bit,^metadata_csum', '-L', 'root', loop], { stdio: 'pipe' });
    mkdirSync(mnt);
    execFileSync('mount', [loop, mnt]);
    try {
      mkdirSync(join(mnt, 'boot/syslinux'), { recursive: true });
      mkdirSync(join(mnt, 'etc'), { recursive: true });
      copyFileSync(join(work, 'rd/vmlinuz'), join(mnt, 'boot/vmlinuz'));
      copyFileSync(join(work, 'rd/initrd.img'), join(mnt, 'boot/initrd.img'));
      writeFileSync(join(mnt, 'boot/syslinux/syslinux.cfg'), 'DEFAULT os\nPROMPT 0\nTIMEOUT 0\nLABEL os\n  KERNEL /boot/vmlinuz\n  APPEND initrd=/boot/initrd.img console=ttyS0 quiet\n');
      writeFileSync(join(mnt, 'etc/hostname'), 'debian\n');
      writeFileSync(join(mnt, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n');
      execFileSync('extlinux', ['--install', join(mnt, 'boot/syslinux')], { stdio: 'pipe' });
    } finally {
      execFileSync('umount', [mnt]);
    }
  } finally {
    if (loop) execFileSync('losetup', ['-d', loop]);
    rmSync(work, { recursive: true, force: true });
  }
}
