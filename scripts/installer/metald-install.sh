#!/bin/sh
# metald's reference installer: runs in the deploy ramdisk (busybox: sh, wget, sha256sum, base64, mount) and does
# one job of metald's boot server (docs/boot-protocol.md): it fetches the job document once, streams the image to the
# disk while hashing it, configures the installed system (hostname, network, root password, ssh keys, user data),
# wipes disks for an uninstall, reports progress and the result, then powers the server off.
#
# From the kernel command line (/proc/cmdline): metald.url=BASE metald.token=TOKEN metald.mac=MAC. Without a token
# (a boot from metald's ISO) it asks BASE/v1/lookup with the MAC of each interface.
#
# Settings from the environment (the ramdisk's init may set them; the tests do):
#   METALD_CMDLINE_FILE   the command line to read (default /proc/cmdline)
#   METALD_MACS           the MACs to look the token up with (default: every interface's, /sys/class/net)
#   METALD_DISK           the disk to write, overriding the job's (default: the job's, or the first fixed disk)
#   METALD_ROOT           the installed system's root filesystem (default: partition 1 of the disk, else the disk)
#   METALD_AFTER          poweroff (default), reboot, or exit (stay running: tests)
#   METALD_RETRY_DELAY    seconds between report attempts (default 2; 5 attempts)
#   METALD_PROGRESS_EVERY seconds between progress reports while writing (default 5)
#   METALD_WIPE           head (default: the first and last 8 MiB of each disk) or full (every byte)
# (busybox 1.35's `wget -T` crashes: every download is bounded by `timeout` instead.)
# Exit status: 0 when the result was reported (success or failure), 1 when nothing could be reported.

set -u
umask 077

log() { echo "metald-install: $*" >&2; }

WORK=$(mktemp -d /tmp/metald-install.XXXXXX) || { log "cannot make a work directory"; exit 1; }
MNT="$WORK/root"
cleanup() {
	[ -n "${PROGRESS_PID:-}" ] && kill "$PROGRESS_PID" 2>/dev/null
	grep -q " $MNT " /proc/mounts 2>/dev/null && umount "$MNT" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

RETRY_DELAY=${METALD_RETRY_DELAY:-2}
PROGRESS_EVERY=${METALD_PROGRESS_EVERY:-5}

# ---- the protocol -------------------------------------------------------------------------------------------------

# A JSON string of $1: backslash, quote and control characters escaped.
json_str() {
	printf '%s' "$1" | tr '\n\r\t' '   ' | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/'
}

# POST $2 (JSON) to $1, once. Status 0 on a 2xx.
post_once() {
	timeout 20 wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "$2" "$1" 2>"$WORK/wget.err"
}

# POST with retries (metald may be restarting): the first accepted report counts, once.
post() {
	n=1
	while :; do
		if post_once "$1" "$2"; then return 0; fi
		# A 409 after an attempt whose answer was lost: metald has the result already (the first one counts).
		if [ "$n" -gt 1 ] && grep -q 'HTTP/1.[01] 409' "$WORK/wget.err" 2>/dev/null; then
			log "metald already has a result for this job"
			return 0
		fi
		# Any other 4xx is metald refusing the report (late, revoked, malformed): retrying cannot help.
		if grep -q 'HTTP/1.[01] 4' "$WORK/wget.err" 2>/dev/null; then
			log "metald refused the report: $(cat "$WORK/wget.err")"
			return 2
		fi
		[ "$n" -ge 5 ] && { log "report failed after $n attempts: $(cat "$WORK/wget.err")"; return 1; }
		n=$((n + 1))
		sleep "$RETRY_DELAY"
	done
}

progress() { # percent message
	post_once "$PROGRESS_URL" "{\"progress\": $1, \"message\": $(json_str "$2")}" || log "progress $1 not reported"
}

REPORTED=0
succeed() {
	log "success: $1"
	body="{\"result\": \"success\", \"message\": $(json_str "$1")"
	[ -n "${WROTE_SHA:-}" ] && body="$body, \"image_sha256\": \"$WROTE_SHA\""
	post "$RESULT_URL" "$body}" && REPORTED=1
	finish
}

fail() {
	log "failure: $1"
	[ -n "${RESULT_URL:-}" ] && post "$RESULT_URL" "{\"result\": \"failure\", \"message\": $(json_str "$1")}" && REPORTED=1
	finish
}

finish() {
	[ -n "${PROGRESS_PID:-}" ] && kill "$PROGRESS_PID" 2>/dev/null && PROGRESS_PID=
	sync
	status=1
	[ "$REPORTED" = 1 ] && status=0
	case "${METALD_AFTER:-poweroff}" in
	exit) exit "$status" ;;
	reboot) reboot -f ;;
	*) poweroff -f ;;
	esac
	exit "$status"
}

# ---- the job ------------------------------------------------------------------------------------------------------

URL=
TOKEN=
for w in $(cat "${METALD_CMDLINE_FILE:-/proc/cmdline}"); do
	case "$w" in
	metald.url=*) URL=${w#metald.url=} ;;
	metald.token=*) TOKEN=${w#metald.token=} ;;
	esac
done
URL=${URL%/}
[ -n "$URL" ] || { log "no metald.url= on the kernel command line: nothing to do"; exit 1; }

if [ -z "$TOKEN" ]; then
	macs=${METALD_MACS:-$(cat /sys/class/net/*/address 2>/dev/null)}
	for mac in $macs; do
		[ "$mac" = "00:00:00:00:00:00" ] && continue
		if timeout 20 wget -q -O "$WORK/lookup" "$URL/v1/lookup?mac=$mac" 2>/dev/null; then
			TOKEN=$(sed -n 's/.*"token": *"\([A-Za-z0-9_-]*\)".*/\1/p' "$WORK/lookup")
			[ -n "$TOKEN" ] && break
		fi
	done
	[ -n "$TOKEN" ] || { log "no job waits for any of this server's MACs at $URL"; exit 1; }
fi

# Retried while metald does not answer (a restart); a refusal (4xx: fetched already, revoked, unknown) is final.
n=1
until timeout 30 wget -q -O "$WORK/job" "$URL/v1/jobs/$TOKEN?format=lines" 2>"$WORK/wget.err"; do
	if grep -q 'HTTP/1.[01] 4' "$WORK/wget.err" 2>/dev/null || [ "$n" -ge 5 ]; then
		log "cannot fetch the job document: $(cat "$WORK/wget.err")"
		exit 1
	fi
	n=$((n + 1))
	sleep "$RETRY_DELAY"
done

: >"$WORK/keys"
: >"$WORK/addresses"
: >"$WORK/gateways"
: >"$WORK/dns"
: >"$WORK/wipe"
: >"$WORK/interfaces"
HOSTNAME_= IMAGE_URL= IMAGE_SHA= IMAGE_OS= DISK= PASSWORD_HASH= USER_DATA= OPERATION= JOB_ID= INSTANCE_ID=
PROGRESS_URL= RESULT_URL=
while read -r key value; do
	v=$(printf '%s' "$value" | base64 -d 2>/dev/null) || fail "the job document has a value that is not base64 ($key)"
	case "$key" in
	job_id) JOB_ID=$v ;;
	operation) OPERATION=$v ;;
	instance_id) INSTANCE_ID=$v ;;
	hostname) HOSTNAME_=$v ;;
	image_url) IMAGE_URL=$v ;;
	image_sha256) IMAGE_SHA=$v ;;
	image_os) IMAGE_OS=$v ;;
	disk) DISK=$v ;;
	wipe) printf '%s\n' "$v" >>"$WORK/wipe" ;;
	interface) printf '%s\n' "$v" >>"$WORK/interfaces" ;;
	address) printf '%s\n' "$v" >>"$WORK/addresses" ;;
	gateway) printf '%s\n' "$v" >>"$WORK/gateways" ;;
	dns) printf '%s\n' "$v" >>"$WORK/dns" ;;
	password_hash) PASSWORD_HASH=$v ;;
	ssh_key) printf '%s\n' "$v" >>"$WORK/keys" ;;
	user_data) USER_DATA=$v ;;
	progress_url) PROGRESS_URL=$v ;;
	result_url) RESULT_URL=$v ;;
	esac
done <"$WORK/job"
[ -n "$RESULT_URL" ] && [ -n "$PROGRESS_URL" ] && [ -n "$OPERATION" ] || { log "the job document misses its URLs or operation"; exit 1; }
log "job $JOB_ID: $OPERATION of instance $INSTANCE_ID"
progress 5 "job fetched"

# ---- the disk -----------------------------------------------------------------------------------------------------

# The first fixed whole disk: not removable, not a loop, RAM, optical or floppy device.
first_disk() {
	for b in /sys/block/*; do
		n=${b##*/}
		case "$n" in loop* | ram* | sr* | fd* | zram* | dm-* | md*) continue ;; esac
		[ "$(cat "$b/removable" 2>/dev/null)" = 0 ] || continue
		[ "$(cat "$b/size" 2>/dev/null || echo 0)" -gt 0 ] || continue
		echo "/dev/$n"
		return 0
	done
	return 1
}

if [ -n "${METALD_DISK:-}" ]; then
	DISK=$METALD_DISK
elif [ -z "$DISK" ] || [ "$DISK" = auto ]; then
	DISK=$(first_disk) || fail "no fixed disk found (/sys/block): nothing to write to"
fi
[ -e "$DISK" ] || fail "the disk $DISK does not exist"

size_of() { # bytes of a block device or a file
	if [ -b "$1" ]; then blockdev --getsize64 "$1"; else stat -c %s "$1"; fi
}

# ---- operations ---------------------------------------------------------------------------------------------------

write_image() {
	[ -n "$IMAGE_URL" ] && [ -n "$IMAGE_SHA" ] || fail "the job has no image URL or checksum"
	total=$(timeout 30 wget -S --spider "$IMAGE_URL" 2>&1 | sed -n 's/^ *[Cc]ontent-[Ll]ength: *\([0-9]*\).*/\1/p' | tail -n 1)
	log "writing $IMAGE_URL (${total:-unknown} bytes) to $DISK"
	progress 10 "writing the image to $DISK"
	mkfifo "$WORK/stream" || fail "cannot make a fifo in $WORK"
	sha256sum <"$WORK/stream" >"$WORK/sum" &
	sum_pid=$!
	# The image goes to the disk and to the hash in one pass; wget's own status is kept apart from the pipe's.
	( wget -q -O - "$IMAGE_URL" 2>"$WORK/image.err" || echo "$?" >"$WORK/image.failed" ) | tee "$WORK/stream" | dd of="$DISK" bs=1M conv=notrunc 2>"$WORK/dd.err" &
	dd_pid=$!
	if [ -n "$total" ] && [ "$total" -gt 0 ]; then
		(
			while sleep "$PROGRESS_EVERY"; do
				w=$(sed -n 's/^wchar: //p' "/proc/$dd_pid/io" 2>/dev/null) || break
				[ -n "$w" ] || break
				p=$((10 + 80 * w / total))
				[ "$p" -gt 90 ] && p=90
				progress "$p" "$w of $total bytes written"
			done
		) &
		PROGRESS_PID=$!
	fi
	wait "$dd_pid"
	dd_status=$?
	wait "$sum_pid"
	[ -n "${PROGRESS_PID:-}" ] && kill "$PROGRESS_PID" 2>/dev/null
	PROGRESS_PID=
	[ -f "$WORK/image.failed" ] && fail "downloading the image failed: $(cat "$WORK/image.err")"
	[ "$dd_status" = 0 ] || fail "writing $DISK failed: $(cat "$WORK/dd.err")"
	sync
	WROTE_SHA=$(cut -d' ' -f1 "$WORK/sum")
	expected=$(printf '%s' "$IMAGE_SHA" | tr 'A-F' 'a-f')
	[ "$WROTE_SHA" = "$expected" ] || fail "checksum mismatch: the image written has sha256 $WROTE_SHA, the job's is $expected"
	progress 90 "image written and verified"
}

mount_root() {
	mkdir -p "$MNT"
	if [ -n "${METALD_ROOT:-}" ]; then
		candidates=$METALD_ROOT
	else
		candidates="${DISK}1 ${DISK}p1 $DISK"
		if [ -b "$DISK" ]; then
			# The kernel reads the new partition table; its device node shows up shortly after.
			blockdev --rereadpt "$DISK" 2>/dev/null || partprobe "$DISK" 2>/dev/null
			i=0
			while [ ! -b "${DISK}1" ] && [ ! -b "${DISK}p1" ] && [ "$i" -lt 50 ]; do
				sleep 0.1
				i=$((i + 1))
			done
		fi
	fi
	: >"$WORK/mount.err"
	for c in $candidates; do
		[ -e "$c" ] || continue
		if [ -f "$c" ]; then
			mount -o loop "$c" "$MNT" 2>>"$WORK/mount.err" && return 0
		else
			mount "$c" "$MNT" 2>>"$WORK/mount.err" && return 0
		fi
	done
	fail "cannot mount the installed system's root filesystem (tried: $candidates): $(tr '\n' ' ' <"$WORK/mount.err")"
}

configure_network() {
	mkdir -p "$MNT/etc/systemd/network"
	rm -f "$MNT"/etc/systemd/network/10-metald-*.network
	i=0
	while read -r mac; do
		[ -n "$mac" ] || continue
		f="$MNT/etc/systemd/network/10-metald-$i.network"
		{
			echo "# written by metald's installer (job $JOB_ID)"
			echo "[Match]"
			echo "MACAddress=$mac"
			echo "[Network]"
			grep "^$mac " "$WORK/addresses" | while read -r _ a; do echo "Address=$a"; done
			grep "^$mac " "$WORK/gateways" | while read -r _ g; do echo "Gateway=$g"; done
			grep "^$mac " "$WORK/dns" | while read -r _ d; do echo "DNS=$d"; done
		} >"$f"
		chmod 644 "$f"
		i=$((i + 1))
	done <"$WORK/interfaces"
}

configure_password() {
	[ -n "$PASSWORD_HASH" ] || return 0
	case "$PASSWORD_HASH" in *[!A-Za-z0-9./\$=+-]*) fail "the password hash has characters crypt(3) does not use" ;; esac
	[ -f "$MNT/etc/shadow" ] || fail "the installed system has no /etc/shadow"
	grep -q '^root:' "$MNT/etc/shadow" || fail "the installed system's /etc/shadow has no root entry"
	sed -i "s|^root:[^:]*:|root:$PASSWORD_HASH:|" "$MNT/etc/shadow" || fail "cannot write /etc/shadow"
}

configure_system() {
	if [ -n "$HOSTNAME_" ]; then
		printf '%s\n' "$HOSTNAME_" >"$MNT/etc/hostname"
		chmod 644 "$MNT/etc/hostname"
	fi
	configure_network
	configure_password
	if [ -s "$WORK/keys" ]; then
		mkdir -p "$MNT/root/.ssh" && chmod 700 "$MNT/root/.ssh"
		cp "$WORK/keys" "$MNT/root/.ssh/authorized_keys" && chmod 600 "$MNT/root/.ssh/authorized_keys"
	fi
	if [ -n "$USER_DATA" ]; then
		# cloud-init's NoCloud seed: the user data and an instance id.
		mkdir -p "$MNT/var/lib/cloud/seed/nocloud"
		printf '%s\n' "$USER_DATA" >"$MNT/var/lib/cloud/seed/nocloud/user-data"
		printf 'instance-id: %s\nlocal-hostname: %s\n' "$INSTANCE_ID" "$HOSTNAME_" >"$MNT/var/lib/cloud/seed/nocloud/meta-data"
	fi
}

wipe_disks() {
	while read -r w; do
		[ -n "$w" ] || continue
		[ "$w" = auto ] && w=$DISK
		[ -e "$w" ] || fail "the disk to wipe, $w, does not exist"
		bytes=$(size_of "$w") || fail "cannot read the size of $w"
		mib=$((bytes / 1048576))
		if [ "${METALD_WIPE:-head}" = full ] || [ "$mib" -le 16 ]; then
			log "wiping all of $w ($bytes bytes)"
			dd if=/dev/zero of="$w" bs=1M count="$mib" conv=notrunc 2>/dev/null || fail "wiping $w failed"
			rest=$((bytes - mib * 1048576))
			[ "$rest" -gt 0 ] && { dd if=/dev/zero of="$w" bs=1 seek=$((mib * 1048576)) count="$rest" conv=notrunc 2>/dev/null || fail "wiping $w failed"; }
		else
			log "wiping the first and last 8 MiB of $w (partition tables, signatures)"
			dd if=/dev/zero of="$w" bs=1M count=8 conv=notrunc 2>/dev/null || fail "wiping $w failed"
			dd if=/dev/zero of="$w" bs=1M seek=$((mib - 8)) count=8 conv=notrunc 2>/dev/null || fail "wiping $w failed"
		fi
	done <"$WORK/wipe"
	sync
}

case "$OPERATION" in
install | reinstall | switch-install)
	write_image
	if [ "${IMAGE_OS:-linux}" = linux ]; then
		mount_root
		configure_system
		umount "$MNT" || fail "cannot unmount the installed system"
		succeed "installed ${IMAGE_URL##*/} on $DISK and configured it"
	fi
	succeed "wrote ${IMAGE_URL##*/} to $DISK (an image of os '$IMAGE_OS': not configured by this installer)"
	;;
modify-ip)
	mount_root
	configure_network
	umount "$MNT" || fail "cannot unmount the installed system"
	succeed "network configuration rewritten"
	;;
change-password)
	mount_root
	configure_password
	umount "$MNT" || fail "cannot unmount the installed system"
	succeed "root password set"
	;;
uninstall)
	wipe_disks
	succeed "disks wiped"
	;;
*)
	fail "this installer does not know the operation '$OPERATION'"
	;;
esac
