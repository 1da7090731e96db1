#!/usr/bin/env bash
# Installs (or upgrades) metald on a Debian 12 host from a built checkout (`npm ci && npm run build` first).
# Idempotent: a second run changes nothing but the code under /opt/metald; the configuration and secrets it finds
# are never touched. docs/operations.md explains each step.
#
#   sudo systemd/install.sh            install or upgrade, then `systemctl daemon-reload` (when systemd runs)
#   DESTDIR=/tmp/root systemd/install.sh   the files only, under another root (no user, no apt, no systemctl)
#
# What it does:
#   - apt: ipmitool and fping (the IPMI driver's and the second ICMP engine's binaries), unless METALD_NO_APT=1;
#   - the system user and group `metald` (no shell, no home);
#   - /opt/metald: dist/, the production node_modules, package.json, docs/ (the previous one kept as /opt/metald.prev);
#   - /etc/metald/metald.yaml from examples/metald.yaml when absent (root:metald 0640);
#   - /etc/metald/credentials (root 0700): the secret files, loaded by the unit with LoadCredential=;
#   - /etc/systemd/system/metald.service, then `systemctl daemon-reload` where systemd is PID 1 (not started here).
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${DESTDIR:-}"
PREFIX="$ROOT/opt/metald"
ETC="$ROOT/etc/metald"
UNIT_DIR="$ROOT/etc/systemd/system"
say() { echo "install.sh: $*"; }

[ -f "$SRC/dist/agent/main.js" ] || { say "$SRC/dist/agent/main.js is missing: run 'npm ci && npm run build' first"; exit 1; }
[ -d "$SRC/node_modules/better-sqlite3" ] || { say "$SRC/node_modules is missing: run 'npm ci' first"; exit 1; }
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then say "needs root (or DESTDIR=...)"; exit 1; fi

# Debian packages the drivers run.
if [ -z "$ROOT" ] && [ "${METALD_NO_APT:-0}" != 1 ]; then
  missing=()
  for p in ipmitool fping; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

# The service's user: a system account without a login shell or a home.
if [ -z "$ROOT" ]; then
  if ! getent group metald >/dev/null; then groupadd --system metald; say "group metald created"; fi
  if ! getent passwd metald >/dev/null; then
    useradd --system --gid metald --no-create-home --home-dir /var/lib/metald --shell /usr/sbin/nologin --comment "metald agent" metald
    say "user metald created"
  fi
fi

# The code: staged next to the running copy, then swapped in (the running daemon keeps its open files until restarted).
stage="$PREFIX.new"
rm -rf "$stage"
mkdir -p "$stage"
cp -a "$SRC/dist" "$SRC/package.json" "$SRC/package-lock.json" "$SRC/node_modules" "$stage/"
mkdir -p "$stage/docs" && cp -a "$SRC/docs/operations.md" "$SRC/docs/config.md" "$stage/docs/"
(cd "$stage" && npm prune --omit=dev --offline --no-audit --no-fund >/dev/null 2>&1) || say "npm prune failed: the dev dependencies stay in $PREFIX (harmless)"
chown -R root:root "$stage" 2>/dev/null || true
chmod -R go-w "$stage"
if [ -d "$PREFIX" ]; then rm -rf "$PREFIX.prev"; mv "$PREFIX" "$PREFIX.prev"; fi
mv "$stage" "$PREFIX"
say "code installed in $PREFIX$([ -d "$PREFIX.prev" ] && echo " (previous: $PREFIX.prev)")"

# Configuration and the credentials directory: created when absent, never overwritten.
install -d -m 0750 "$ETC"
install -d -m 0700 "$ETC/credentials"
if [ ! -e "$ETC/metald.yaml" ]; then
  install -m 0640 "$SRC/examples/metald.yaml" "$ETC/metald.yaml"
  say "$ETC/metald.yaml written from examples/metald.yaml: edit it (nodes, tokens) before starting"
else
  say "$ETC/metald.yaml kept as it is"
fi
if [ -z "$ROOT" ]; then
  chown root:metald "$ETC" "$ETC/metald.yaml"
  chown root:root "$ETC/credentials"
fi
chmod 0700 "$ETC/credentials"

# The unit.
install -d -m 0755 "$UNIT_DIR"
if ! cmp -s "$SRC/systemd/metald.service" "$UNIT_DIR/metald.service"; then
  install -m 0644 "$SRC/systemd/metald.service" "$UNIT_DIR/metald.service"
  say "unit installed: $UNIT_DIR/metald.service"
else
  say "unit unchanged"
fi

if [ -n "$ROOT" ]; then
  say "DESTDIR given: no systemctl"
elif [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  systemctl daemon-reload
  say "systemd reloaded. First install: put the secrets in $ETC/credentials, then 'systemctl enable --now metald'."
  say "Upgrade: 'systemctl restart metald' (operations in flight resume)."
else
  say "systemd is not PID 1 on this machine: the unit is installed but not loaded (no daemon-reload)"
fi
