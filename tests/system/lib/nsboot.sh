# Boots a real systemd as PID 1 of private namespaces, on an overlay of /.
#
# Sourced after tests/lib.sh. systemd runs in new pid, mount, uts, ipc, net
# and cgroup namespaces, with an overlayfs as its root whose lower layer is
# the host's / and whose upper layer is a tmpfs only that mount namespace
# sees (see lib/nsinit; inside, the layers are at /run/nsboot, read-only).
# Its cgroup tree is a fresh cgroup2 mount rooted at nsboot-*/payload, a
# sub-cgroup of the host's cgroup2 hierarchy (unshare waits in
# nsboot-*/supervisor), so it can be killed as a whole. Nothing it writes
# reaches the host; everything is torn down on every exit path of the
# calling test.
#
#   nsboot_check          prints why booting is impossible here, returns 1
#   nsboot_start          boots; waits until the boot is finished
#   ns CMD...             runs CMD inside (all its namespaces and its root)
#   ns_put SRC DST        copies a host file into it
#   nsboot_stop           systemctl poweroff, then kills what is left
#
# NSBOOT_PID is the host pid of its PID 1; NSBOOT_DIR holds console.log.

NSBOOT_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Killed or interrupted, the test still tears everything down: the EXIT trap
# of tests/lib.sh runs only if the shell exits, so make these signals exit.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
NSBOOT_PID=
NSBOOT_UNSHARE_PID=
NSBOOT_DIR=
NSBOOT_CG=
NSBOOT_BOOT_TIMEOUT=${NSBOOT_BOOT_TIMEOUT:-120}

# Host units a test boot does not need; masked inside only.
NSBOOT_MASK="console-getty.service getty@tty1.service getty.target
	systemd-timesyncd.service systemd-pstore.service postgresql.service
	mosquitto.service e2scrub_reap.service apt-daily.timer
	apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer
	fstrim.timer man-db.timer systemd-tmpfiles-clean.timer
	systemd-networkd-wait-online.service"

# The host's cgroup2 hierarchy: /sys/fs/cgroup itself when it is unified,
# else the hybrid layout's /sys/fs/cgroup/unified.
nsboot_cgroup2_root() {
	local d
	for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
		if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ]; then
			echo "$d"; return 0
		fi
	done
	return 1
}

nsboot_check() {
	local cg
	[ "$(id -u)" -eq 0 ] || { echo "needs root"; return 1; }
	[ -x /lib/systemd/systemd ] || { echo "systemd is not installed"; return 1; }
	local t
	for t in unshare nsenter setpriv pivot_root; do
		command -v "$t" >/dev/null || { echo "$t is missing"; return 1; }
	done
	if ! grep -qw overlay /proc/filesystems; then
		modprobe overlay 2>/dev/null || true
		grep -qw overlay /proc/filesystems || { echo "the kernel has no overlayfs"; return 1; }
	fi
	grep -qw cgroup2 /proc/filesystems || { echo "the kernel has no cgroup2"; return 1; }
	cg=$(nsboot_cgroup2_root) || { echo "no cgroup2 hierarchy is mounted"; return 1; }
	# cgroup.kill (5.14) is how teardown kills everything at once.
	[ -n "$(find /proc/self/ns/cgroup 2>/dev/null)" ] || { echo "the kernel has no cgroup namespaces"; return 1; }
	local probe=$cg/nsboot-probe-$$ ok=0
	mkdir "$probe" 2>/dev/null || { echo "cannot create a cgroup under $cg"; return 1; }
	[ -e "$probe/cgroup.kill" ] && ok=1
	rmdir "$probe"
	[ $ok -eq 1 ] || { echo "cgroup2 has no cgroup.kill (kernel < 5.14)"; return 1; }
	return 0
}

# Capabilities the booted system never gets: loading kernel modules, setting
# the clock and clearing the kernel log would all reach the host.
NSBOOT_DROP_CAPS=-sys_module,-sys_time,-syslog,-wake_alarm,-mac_admin,-mac_override

nsboot_start() {
	local cgroot
	cgroot=$(nsboot_cgroup2_root) || return 1
	NSBOOT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/nsboot.XXXXXX")
	NSBOOT_CG=$cgroot/nsboot-$$-$RANDOM
	t_cleanup nsboot_teardown
	mkdir "$NSBOOT_DIR/mnt"
	: >"$NSBOOT_DIR/console.log"
	mkdir "$NSBOOT_CG" "$NSBOOT_CG/supervisor" "$NSBOOT_CG/payload"

	(
		echo "$BASHPID" >"$NSBOOT_CG/supervisor/cgroup.procs"
		exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			NSBOOT_MNT="$NSBOOT_DIR/mnt" \
			NSBOOT_CGROUP="$NSBOOT_CG/payload" \
			NSBOOT_CONSOLE="$NSBOOT_DIR/console.log" \
			NSBOOT_HOST_MNTNS="$(readlink /proc/self/ns/mnt)" \
			NSBOOT_HOSTNAME=rethink-nsboot \
			NSBOOT_MASK="$(echo $NSBOOT_MASK)" \
			setpriv --bounding-set "$NSBOOT_DROP_CAPS" \
			unshare --pid --fork --mount --uts --ipc --net \
				--propagation private --kill-child \
				bash "$NSBOOT_LIB/nsinit"
	) </dev/null >"$NSBOOT_DIR/nsinit.log" 2>&1 &
	NSBOOT_UNSHARE_PID=$!

	# Its PID 1 is unshare's only child; it is ready to be entered once it
	# is systemd (before that it is still setting up its root).
	local deadline=$((SECONDS + 30))
	while :; do
		NSBOOT_PID=$(cat "/proc/$NSBOOT_UNSHARE_PID/task/$NSBOOT_UNSHARE_PID/children" 2>/dev/null | awk '{print $1}')
		if [ -n "$NSBOOT_PID" ] && [ "$(cat "/proc/$NSBOOT_PID/comm" 2>/dev/null)" = systemd ]; then
			break
		fi
		if ! kill -0 "$NSBOOT_UNSHARE_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "nsboot: the namespace did not come up" >&2
			cat "$NSBOOT_DIR/nsinit.log" >&2
			return 1
		fi
		sleep 0.1
	done

	# systemctl needs PID 1's private bus socket.
	deadline=$((SECONDS + NSBOOT_BOOT_TIMEOUT))
	until nsenter -t "$NSBOOT_PID" -a -r test -S /run/systemd/private 2>/dev/null; do
		if ! nsboot_alive || [ $SECONDS -ge $deadline ]; then
			echo "nsboot: systemd did not come up" >&2
			tail -n 50 "$NSBOOT_DIR/console.log" >&2
			return 1
		fi
		sleep 0.1
	done

	local state
	state=$(timeout "$NSBOOT_BOOT_TIMEOUT" nsenter -t "$NSBOOT_PID" -a -r \
		systemctl is-system-running --wait 2>/dev/null) || true
	case $state in
	running) return 0 ;;
	degraded)
		echo "nsboot: booted degraded; failed units:" >&2
		ns systemctl --failed --no-legend >&2 || true
		return 0 ;;
	*)
		echo "nsboot: boot did not finish (state '$state')" >&2
		tail -n 50 "$NSBOOT_DIR/console.log" >&2
		return 1 ;;
	esac
}

# ns CMD...: runs CMD in every namespace of the booted system, in its root.
ns() {
	nsenter -t "$NSBOOT_PID" -a -r -w env -i \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb \
		SYSTEMD_PAGER= SYSTEMD_COLORS=0 DEBIAN_FRONTEND=noninteractive "$@"
}

# ns_put SRC DST: copies a host file to DST inside.
ns_put() {
	ns sh -c 'cat > "$1"' sh "$2" <"$1"
}

nsboot_alive() {
	[ -n "$NSBOOT_UNSHARE_PID" ] && kill -0 "$NSBOOT_UNSHARE_PID" 2>/dev/null
}

# A clean shutdown: systemd stops every unit and its PID 1 exits.
nsboot_stop() {
	nsboot_alive || return 0
	timeout 10 nsenter -t "$NSBOOT_PID" -a -r systemctl poweroff --no-block >/dev/null 2>&1 || true
	local deadline=$((SECONDS + 60))
	while nsboot_alive && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
	! nsboot_alive
}

nsboot_teardown() {
	nsboot_stop || true
	# Whatever is left, also when the test died halfway: kill the whole
	# cgroup subtree (the pid namespace dies with its PID 1).
	if [ -n "$NSBOOT_CG" ] && [ -d "$NSBOOT_CG" ]; then
		echo 1 >"$NSBOOT_CG/cgroup.kill" 2>/dev/null || true
	fi
	[ -n "$NSBOOT_PID" ] && kill -KILL "$NSBOOT_PID" 2>/dev/null || true
	[ -n "$NSBOOT_UNSHARE_PID" ] && wait "$NSBOOT_UNSHARE_PID" 2>/dev/null || true
	if [ -n "$NSBOOT_CG" ] && [ -d "$NSBOOT_CG" ]; then
		local i
		for i in $(seq 50); do
			find "$NSBOOT_CG" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[ -d "$NSBOOT_CG" ] || break
			sleep 0.1
		done
	fi
	# The mounts lived in the dead mount namespace; only empty dirs and
	# logs are left on the host.
	if [ -n "$NSBOOT_DIR" ] && [ -d "$NSBOOT_DIR" ] && ! mountpoint -q "$NSBOOT_DIR/mnt"; then
		rm -rf "$NSBOOT_DIR"
	fi
	NSBOOT_PID= NSBOOT_UNSHARE_PID=
}
