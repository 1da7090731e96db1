#!/bin/busybox sh
# The /init of the "installed OS" on the QEMU test image (test/emulators/qemu/os-image.ts): it mounts the root
# partition the installer configured and prints what it finds there on the console, as a booted system's first
# service would, then stays up (as a running server does) until it is powered off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for m in $(cat /etc/modules); do modprobe "$m" 2>/dev/null; done
i=0
while [ ! -b /dev/vda1 ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mount -o ro /dev/vda1 /mnt || echo "METALD-OS-BOOTED error=no-root"
addr=$(sed -n 's/^Address=//p' /mnt/etc/systemd/network/10-metald-0.network 2>/dev/null | head -n 1)
echo "METALD-OS-BOOTED hostname=$(cat /mnt/etc/hostname 2>/dev/null) address=${addr:-none}"
while :; do sleep 3600; done
