#!/bin/sh
# The chassis_control program of the ipmi_sim BMCs of test/emulators/ipmi-sim.ts: the "server" behind the BMC.
# ipmi_sim runs it (blocking its loop) as `chassis-control.sh STATE_DIR get power|boot ...` (prints `power:0|1`,
# `boot:<dev>`) and `chassis-control.sh STATE_DIR set power 0|1 | set reset 1 | set shutdown 1 | set boot <dev>`.
# State lives in STATE_DIR/power and STATE_DIR/boot; every `set` is appended to STATE_DIR/log, one line each
# (`power 1`, `shutdown 1`, ...): the BMC's own record of what it was asked, which the tests read.
# Every `get` is appended to STATE_DIR/reads (`get power`, ...): the BMC's own count of the status reads it served.
# A shell script, not node: ipmi_sim waits for it on every status read.
dir=$1
op=$2
shift 2
case "$op" in
  get)
    printf 'get %s\n' "$*" >>"$dir/reads"
    for key in "$@"; do
      case "$key" in
        power) printf 'power:%s\n' "$(cat "$dir/power")" ;;
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
    while [ "$#" -ge 2 ]; do
      key=$1
      value=$(printf '%s' "$2" | tr -d '"')
      shift 2
      printf '%s %s\n' "$key" "$value" >>"$dir/log"
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
