#!/bin/sh
# The chassis_control program of the ipmi_sim BMCs of test/emulators/ipmi-sim.ts: the "server" behind the BMC.
# ipmi_sim runs it (blocking its loop) as `chassis-control.sh STATE_DIR get power|boot ...` (prints `power:0|1`,
# `boot:<dev>`) and `chassis-control.sh STATE_DIR set power 0|1 | set reset 1 | set shutdown 1 | set boot <dev>`.
# State lives in STATE_DIR/power and STATE_DIR/boot; every `set` is appended to STATE_DIR/log, one line each
# (`power 1`, `shutdown 1`, ...): the BMC's own record of what it was asked, which the tests read.
# Every `get` is appended to STATE_DIR/reads (`get power`, ...): the BMC's own count of the status reads it served.
# A shell script, not node: ipmi_sim waits for it on every status read.
#
# With STATE_DIR/qemu.env (QEMU mode: test/emulators/qemu/), the server is a QEMU guest (TCG): `set power 1` and
# `set reset 1` start it (from the network with `boot pxe`, the CD with `boot cdrom`, else its disk), `set power 0`
# and `set shutdown 1` kill it, and `get power` is whether it runs (a guest that powered itself off is off).
# qemu.env sets MAC, DISK (raw image), SERIAL (the console, appended to), BOOTFILE (the DHCP boot file: iPXE fetches
# an http URL itself) and optionally MEMORY (MiB, default 256).
#
# With STATE_DIR/node.env (node mode: NODE_BIN, the node binary, and NODE_CLI, dist/test/emulators/node/cli.js), the
# server is the node emulator as a process: `set power 1`/`set reset 1` start it booting from ipmi_sim's boot device
# (settings in STATE_DIR/node.json), `set power 0`/`set shutdown 1` stop it (SIGTERM: a power off); it powers itself
# off (STATE_DIR/power to 0) when its installer exits.
dir=$1
op=$2
shift 2

node_stop() {
  if [ -f "$dir/node.pid" ]; then
    pid=$(cat "$dir/node.pid")
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ -r "/proc/$pid/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    rm -f "$dir/node.pid"
  fi
}
node_start() {
  node_stop
  # shellcheck disable=SC1091
  . "$dir/node.env"
  setsid "$NODE_BIN" "$NODE_CLI" "$dir" "$(cat "$dir/boot")" </dev/null >>"$dir/node.out" 2>&1 &
  echo "$!" >"$dir/node.pid"
}

# Alive and not a zombie (a killed guest may wait a while to be reaped: it holds nothing any more).
alive() {
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
qemu_running() {
  [ -f "$dir/qemu.pid" ] && alive "$(cat "$dir/qemu.pid")"
}
qemu_stop() {
  if qemu_running; then
    pid=$(cat "$dir/qemu.pid")
    kill -KILL "$pid" 2>/dev/null
    i=0
    while alive "$pid" && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  rm -f "$dir/qemu.pid"
}
qemu_start() {
  qemu_stop
  # shellcheck disable=SC1091
  . "$dir/qemu.env"
  case "$(cat "$dir/boot")" in
    pxe) order=n ;;
    cdrom) order=d ;;
    *) order=c ;;
  esac
  printf 'qemu boot %s\n' "$order" >>"$dir/qemu.log"
  qemu-system-x86_64 -accel tcg -m "${MEMORY:-256}" -nodefaults -display none -no-reboot \
    -chardev "file,id=ser,path=$SERIAL,append=on" -serial chardev:ser \
    -netdev "user,id=n0,bootfile=$BOOTFILE" -device "e1000,netdev=n0,mac=$MAC" \
    -drive "file=$DISK,format=raw,if=virtio" -boot "$order" \
    -pidfile "$dir/qemu.pid" -daemonize >>"$dir/qemu.log" 2>&1
}
case "$op" in
  get)
    printf 'get %s\n' "$*" >>"$dir/reads"
    for key in "$@"; do
      case "$key" in
        power)
          if [ -f "$dir/qemu.env" ]; then
            if qemu_running; then echo 'power:1'; else echo 'power:0'; fi
          else
            printf 'power:%s\n' "$(cat "$dir/power")"
          fi
          ;;
        boot) printf 'boot:%s\n' "$(cat "$dir/boot")" ;;
        *) exit 1 ;;
      esac
    done
    ;;
  set)
    # Test knob: while STATE_DIR/refuse exists, every `set` is refused (exit 1: ipmi_sim answers an IPMI error), or
    # only the one it names (`power 1`, ...) when it is not empty, and logged as `refused <key> <value>`.
    asked="$1 $(printf '%s' "$2" | tr -d '"')"
    if [ -e "$dir/refuse" ] && { [ ! -s "$dir/refuse" ] || [ "$(cat "$dir/refuse")" = "$asked" ]; }; then
      printf 'refused %s\n' "$asked" >>"$dir/log"
      exit 1
    fi
    # Test knob: with STATE_DIR/slow (seconds, e.g. 0.8), a `set` takes that long before it is carried out, ipmi_sim
    # blocked meanwhile (so ipmitool is still waiting for its answer); STATE_DIR/busy exists during the wait.
    if [ -s "$dir/slow" ]; then
      : >"$dir/busy"
      sleep "$(cat "$dir/slow")"
      rm -f "$dir/busy"
    fi
    while [ "$#" -ge 2 ]; do
      key=$1
      value=$(printf '%s' "$2" | tr -d '"')
      shift 2
      printf '%s %s\n' "$key" "$value" >>"$dir/log"
      if [ -f "$dir/node.env" ]; then
        case "$key $value" in
          'power 1' | 'reset 1') node_start ;;
          'power 0' | 'shutdown 1') node_stop ;;
        esac
      fi
      if [ -f "$dir/qemu.env" ]; then
        case "$key $value" in
          'power 1' | 'reset 1') qemu_start ;;
          'power 0' | 'shutdown 1') qemu_stop ;;
        esac
      fi
      case "$key" in
        power) printf '%s\n' "$value" >"$dir/power" ;;
        shutdown) printf '0\n' >"$dir/power" ;;
        reset) printf '1\n' >"$dir/power" ;;
        boot) printf '%s\n' "$value" >"$dir/boot" ;;
        *) exit 1 ;;
      esac
    done
    ;;
  *) exit 1 ;;
esac
exit 0
