#!/usr/bin/env bash
# Installs everything metald's demo and tests need on a fresh Debian 12 machine, then the npm dependencies.
# Idempotent. Debian packages: fping (the liveness engine and its peer), nftables (a silent host for the liveness
# tests), iproute2; openipmi (ipmi_sim BMCs) and ipmitool (the IPMI driver's binary); python3-sushy and redfishtool
# (the clients that check the Redfish emulator); openssl (the test CA); busybox-static and e2fsprogs (the reference
# installer runs under busybox alone; its tests make and read ext4 images); qemu-system-x86, ipxe-qemu, extlinux and
# syslinux-common (the end-to-end boot of a QEMU guest, test/e2e/qemu/); xorriso and isolinux (the ramdisk ISO);
# systemd (systemd-analyze verify/security and systemd-notify for test/systemd/) and python3 (an abstract notify
# socket there); chromium (headless, driven over the DevTools protocol: the status page test and
# scripts/status-screenshot.ts). Needs root (or sudo) for apt; skips apt when every package is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(fping nftables iproute2 openipmi ipmitool python3-sushy redfishtool openssl busybox-static e2fsprogs qemu-system-x86 ipxe-qemu extlinux syslinux-common xorriso isolinux systemd python3 chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]} with apt-get"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# better-sqlite3 builds against the system's Node headers here.
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
npm ci --no-audit --no-fund
