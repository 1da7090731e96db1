#!/usr/bin/env bash
# Builds metald's deploy ramdisk from Debian packages: a Debian kernel (vmlinuz) and an initramfs (initrd.img) of
# busybox-static, the kernel modules for common NICs and disks, and the reference installer as what /init runs
# after DHCP. docs/installing.md says where the files go (boot.ramdisk.kernel / .initrd).
#
#   scripts/ramdisk/build.sh OUTDIR [--kernel-deb FILE] [--init FILE] [--no-installer] [--modules "m1 m2 ..."]
#                            [--iso PUBLIC_URL]
#
#   --kernel-deb FILE  a linux-image-*-amd64 .deb (default: downloaded with apt-get download, the version that
#                      linux-image-amd64 depends on)
#   --init FILE        another /init (default: DHCP on every interface, then the installer, then power off)
#   --no-installer     leave scripts/installer/metald-install.sh out (with --init: a ramdisk for something else)
#   --modules LIST     the modules to load at boot, with their dependencies (default: virtio, e1000/e1000e, igb,
#                      ixgbe, ahci, ata_piix, nvme, sd_mod, ext4 with crc32c, its soft dependency)
#   --iso PUBLIC_URL   also OUTDIR/ramdisk.iso for virtual media (xorriso, isolinux): the same kernel and initramfs,
#                      booted with metald.url=PUBLIC_URL (boot.public_url) and no token (the installer looks it up
#                      by the server's MACs)
#
# Needs: apt-get (or --kernel-deb), dpkg-deb, a static busybox (busybox-static), cpio-capable busybox, gzip.
# Writes OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/kernel-version (and ramdisk.iso). No root needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

out=${1:-}
[ -n "$out" ] || { echo "usage: $0 OUTDIR [--kernel-deb FILE] [--init FILE] [--no-installer] [--modules LIST]" >&2; exit 2; }
shift
deb=
init=
installer=1
iso=
modules="virtio_pci virtio_blk virtio_net virtio_scsi e1000 e1000e igb ixgbe ahci ata_piix nvme sd_mod crc32c_generic ext4"
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-deb) deb=$2; shift 2 ;;
    --init) init=$2; shift 2 ;;
    --no-installer) installer=0; shift ;;
    --modules) modules=$2; shift 2 ;;
    --iso) iso=$2; shift 2 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
done

busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "$0: busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
if [ -n "$iso" ]; then
  case "$iso" in http://* | https://*) ;; *) echo "$0: --iso needs an http(s) URL (boot.public_url), got '$iso'" >&2; exit 2 ;; esac
  case "$iso" in *[[:space:]]*) echo "$0: --iso URL has a space" >&2; exit 2 ;; esac
  command -v xorriso >/dev/null || { echo "$0: xorriso is missing (apt-get install xorriso)" >&2; exit 1; }
  [ -f /usr/lib/ISOLINUX/isolinux.bin ] || { echo "$0: isolinux is missing (apt-get install isolinux syslinux-common)" >&2; exit 1; }
fi
if ldd "$busybox" >/dev/null 2>&1; then echo "$0: $busybox is not static (apt-get install busybox-static)" >&2; exit 1; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

if [ -z "$deb" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || { echo "$0: apt-cache knows no linux-image-amd64 (apt-get update?)" >&2; exit 1; }
  echo "ramdisk: downloading $pkg" >&2
  (cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || { echo "$0: apt-get download $pkg failed" >&2; exit 1; }
  deb=$(ls "$work"/linux-image-*.deb)
fi
dpkg-deb -x "$deb" "$work/k"
kver=$(ls "$work/k/lib/modules")
"$busybox" depmod -b "$work/k" "$kver"
dep="$work/k/lib/modules/$kver/modules.dep"

root="$work/root"
mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc" "$root/mnt" "$root/lib/modules/$kver"
cp "$busybox" "$root/bin/busybox"
# The kernel loads modules it needs later (a filesystem's checksum) through /sbin/modprobe.
ln -s /bin/busybox "$root/sbin/modprobe"

# The modules asked for and everything they depend on, with a modules.dep of just those.
: >"$root/lib/modules/$kver/modules.dep"
: >"$root/etc/modules"
for m in $modules; do
  line=$(grep -E "(^|/)$m\.ko(\.xz|\.zst)?:" "$dep" || true)
  [ -n "$line" ] || { echo "ramdisk: no module $m in $kver (built in, or absent): skipped" >&2; continue; }
  echo "$m" >>"$root/etc/modules"
  for f in ${line%%:*} ${line#*:}; do
    [ -e "$root/lib/modules/$kver/$f" ] && continue
    mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
    cp "$work/k/lib/modules/$kver/$f" "$root/lib/modules/$kver/$f"
    grep -E "^$f:" "$dep" >>"$root/lib/modules/$kver/modules.dep"
  done
done

if [ "$installer" = 1 ]; then
  cp "$repo/scripts/installer/metald-install.sh" "$root/metald-install.sh"
  chmod 755 "$root/metald-install.sh"
fi

cat >"$root/etc/udhcpc.script" <<'UDHCPC'
#!/bin/sh
# busybox udhcpc's hook: the lease's address, route and DNS.
case "$1" in
  bound | renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
    : >/etc/resolv.conf
    for d in ${dns:-}; do echo "nameserver $d" >>/etc/resolv.conf; done
    ;;
esac
exit 0
UDHCPC
chmod 755 "$root/etc/udhcpc.script"

if [ -n "$init" ]; then
  cp "$init" "$root/init"
else
  cat >"$root/init" <<'INIT'
#!/bin/busybox sh
# metald's deploy ramdisk: modules, DHCP on every interface, the installer, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
echo "metald-ramdisk: $(uname -r)"
for m in $(cat /etc/modules); do modprobe "$m" 2>/dev/null; done
sleep 1
ip link set lo up
for n in /sys/class/net/*; do
  i=${n##*/}
  [ "$i" = lo ] && continue
  ip link set "$i" up
  udhcpc -i "$i" -n -q -t 5 -s /etc/udhcpc.script >/dev/null 2>&1 && echo "metald-ramdisk: $i: $(ip -4 -o addr show dev "$i" | awk '{print $4}')"
done
/metald-install.sh
echo "metald-ramdisk: the installer exited with $?"
sync
poweroff -f
INIT
fi
chmod 755 "$root/init"

(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -9) >"$out/initrd.img"
cp "$work/k/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$kver" >"$out/kernel-version"
echo "ramdisk: $out/vmlinuz and $out/initrd.img ($(wc -c <"$out/initrd.img") bytes), kernel $kver" >&2

if [ -n "$iso" ]; then
  cd_root="$work/iso"
  mkdir -p "$cd_root/isolinux"
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$cd_root/isolinux/"
  cp "$out/vmlinuz" "$out/initrd.img" "$cd_root/"
  printf 'DEFAULT metald\nPROMPT 0\nTIMEOUT 0\nLABEL metald\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.img console=ttyS0,115200 metald.url=%s\n' "${iso%/}" >"$cd_root/isolinux/isolinux.cfg"
  xorriso -as mkisofs -quiet -o "$out/ramdisk.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot \
    -boot-load-size 4 -boot-info-table -V METALD_RAMDISK "$cd_root" 2>/dev/null
  echo "ramdisk: $out/ramdisk.iso (metald.url=${iso%/})" >&2
fi
