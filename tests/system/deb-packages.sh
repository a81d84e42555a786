#!/usr/bin/env bash
# System test: the Debian packages under a real systemd.
#
# Builds the packages (make deb: a clean copy of the tree, dpkg-buildpackage,
# lintian), boots systemd as PID 1 of private namespaces on an overlay of /
# (lib/nsboot.sh), installs them there with apt, and checks the services the
# way an operator would: enable/disable, status line, reload, restart,
# restart on failure, watchdog, hardening as it really applies (users,
# capabilities, seccomp, the agent's eBPF programs attached and detached),
# the journal (structured QoS entries, catalog text, an OFFLINE transition
# when a link goes down), then remove and purge, comparing what is left with
# the overlay's upper layer before installation.
#
#   RETHINK_DEB_DIR=dir   test the packages in dir instead of building them
#
set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/lib.sh"
. "$TOP/tests/system/lib/nsboot.sh"

# `systemd-analyze security` goal per unit, exposure x 10 as --threshold=
# takes it.
declare -A SECURITY_THRESHOLD=([rethink-agent.service]=25 [rethink-domain.service]=15)

why=$(nsboot_check) || t_skip_all "$why"

BUILD=${BUILD:-$TOP/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
DEBS=${RETHINK_DEB_DIR:-$BUILD/deb}

# --- packages -------------------------------------------------------------

if [ -z "${RETHINK_DEB_DIR:-}" ]; then
	log=$BUILD/deb-build.log
	(
		cd "$TOP" && unset MAKEFLAGS MFLAGS MAKELEVEL &&
			make deb BUILD="$BUILD"
	) >"$log" 2>&1
	rc=$?
	sed -n '/^build-deb: packages in/,$p' "$log" | sed 's/^/# /'
	if [ $rc -eq 0 ]; then
		t_ok "make deb builds the packages; lintian reports no error and no warning"
	else
		tail -n 40 "$log" | sed 's/^/# /'
		t_fail "make deb builds the packages; lintian reports no error and no warning"
	fi
fi

shopt -s nullglob
debs=()
for f in "$DEBS"/*.deb; do
	case ${f##*/} in *-dbgsym_*) ;; *) debs+=("$f") ;; esac
done
shopt -u nullglob
agent_deb=
for f in "${debs[@]}"; do
	case ${f##*/} in rethink-agent_*) agent_deb=$f ;; esac
done
if [ -z "$agent_deb" ]; then
	t_fail "a rethink-agent package was built in $DEBS"
	t_done
	exit 1
fi
pkgs=()
for f in "${debs[@]}"; do pkgs+=("$(dpkg-deb -f "$f" Package)"); done
echo "# packages: ${pkgs[*]}"

# --- boot -----------------------------------------------------------------

if ! nsboot_start; then
	t_fail "systemd boots as PID 1 of its own namespaces"
	t_done
	exit 1
fi
t_check "systemd boots as PID 1 of its own namespaces" \
	test "$(ns cat /proc/1/comm)" = systemd

# Helpers on the booted system.
# A point in time to look for entries after: a time stamp, compared in
# python below (journalctl's --after-cursor together with field matches
# returned no entries at times with systemd 252).
cursor() { ns date +%s%6N; }
main_pid() { ns systemctl show -P MainPID "$1"; }
has_user() { ns getent passwd "$1" >/dev/null; }
quietly() { "$@" >/dev/null 2>&1; }
fails() { ! "$@"; }
is_active() { [ "$(ns systemctl is-active "$1")" = active ]; }
# journal_json SINCE ARGS...: the entries (journalctl ARGS) written at or
# after SINCE (microseconds since the epoch; empty: all) as JSON lines.
journal_json() {
	local c=${1:-0}; shift
	ns journalctl -o json --no-pager "$@" | python3 -c '
import json, sys
since = int(sys.argv[1])
for line in sys.stdin:
    if int(json.loads(line).get("__REALTIME_TIMESTAMP", 0)) >= since:
        sys.stdout.write(line)' "$c"
}
# jq-less field checks on JSON lines, in python3 (on the host).
json_any() {
	python3 -c '
import json, sys
cond = sys.argv[1]
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    e = json.loads(line)
    if eval(cond, {"e": e}):
        print(line)
        sys.exit(0)
sys.exit(1)' "$1"
}

# A link to watch: rt0, with a peer in a network namespace of its own, an
# address and a default route, so the agent sees it online.
ns ip netns add peer &&
	ns ip link add rt0 type veth peer name rt1 netns peer &&
	ns ip addr add 10.99.0.1/24 dev rt0 &&
	ns ip link set rt0 up &&
	ns ip netns exec peer ip link set lo up &&
	ns ip netns exec peer ip addr add 10.99.0.2/24 dev rt1 &&
	ns ip netns exec peer ip link set rt1 up &&
	ns ip route add default via 10.99.0.2
t_check "a veth link with an address and a default route inside" test $? -eq 0

# A real system has no policy-rc.d; container images do, and it would keep
# the maintainer scripts from starting and stopping services. Nor has a
# fresh machine anything of rethink that other tests may have left on the
# host (which is the overlay's lower layer).
ns rm -rf /usr/sbin/policy-rc.d /etc/rethink /var/lib/rethink /var/lib/rethink-domain

# What the overlay's upper layer holds before the packages: after purge,
# whatever they leave behind shows up against it.
# Kinds: d directory, w whiteout (a file of the host's / deleted), f other.
upper_list() {
	ns find /run/nsboot/upper -mindepth 1 \
		\( -type d -printf 'd %P\n' \) -o \( -type c -printf 'w %P\n' \) -o -printf 'f %P\n' | sort
}
upper_before=$(upper_list)

# --- install --------------------------------------------------------------

ns mkdir -p /var/cache/rethink-test
for f in "${debs[@]}"; do ns_put "$f" "/var/cache/rethink-test/${f##*/}"; done
ns chmod -R a+rX /var/cache/rethink-test
inst=()
for f in "${debs[@]}"; do inst+=("/var/cache/rethink-test/${f##*/}"); done
out=$(ns apt-get install -y --no-install-recommends "${inst[@]}" 2>&1)
rc=$?
[ $rc -eq 0 ] || echo "$out" | tail -n 30 | sed 's/^/# /'
t_check "apt-get installs the packages (${pkgs[*]})" test $rc -eq 0
for p in "${pkgs[@]}"; do
	t_check "$p is installed" \
		test "$(ns dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed
done
ns rm -rf /var/cache/rethink-test

t_check "the system user rethink exists (sysusers.d)" has_user rethink
t_check "rethink has no login shell" \
	test "$(ns getent passwd rethink | cut -d: -f7)" = /usr/sbin/nologin
if printf '%s\n' "${pkgs[@]}" | grep -qx rethink-domain; then
	t_check "the system user rethink-domain exists (sysusers.d)" has_user rethink-domain
fi

# Units shipped by the packages.
units=()
for p in "${pkgs[@]}"; do
	while read -r u; do units+=("${u##*/}"); done < <(ns dpkg -L "$p" | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.service$')
done
echo "# units: ${units[*]}"
t_check "rethink-agent ships rethink-agent.service" \
	bash -c 'printf "%s\n" "$@" | grep -qx rethink-agent.service' _ "${units[@]}"

# The journal catalog is indexed (systemd's dpkg trigger ran).
catalog=/usr/lib/systemd/catalog/rethink.catalog
catalog_ids=$(ns sed -n 's/^-- \([0-9a-f]\{32\}\)\( .*\)\?$/\1/p' "$catalog" 2>/dev/null)
t_check "the journal catalog is installed and has entries" test -n "$catalog_ids"
listed=$(ns journalctl --list-catalog 2>/dev/null | awk '{print $1}')
missing=0
for id in $catalog_ids; do grep -qx "$id" <<<"$listed" || missing=$((missing + 1)); done
t_check "journalctl knows every catalog entry after install" test $missing -eq 0

for u in "${units[@]}"; do
	thr=${SECURITY_THRESHOLD[$u]:-25}
	out=$(ns systemd-analyze security --offline=yes --threshold="$thr" --no-pager "$u" 2>&1)
	rc=$?
	echo "# $(grep -F 'Overall exposure level' <<<"$out")"
	t_check "systemd-analyze security $u: exposure at most ${thr:0:1}.${thr:1}" test $rc -eq 0

	out=$(ns systemd-analyze verify "$u" 2>&1)
	rc=$?
	[ -z "$out" ] || echo "$out" | sed 's/^/# /'
	t_check "systemd-analyze verify $u: no complaint" test "$rc/$out" = 0/

	# Every man page the unit points to is installed.
	docs=$(ns systemctl show -P Documentation "$u")
	bad=
	for d in $docs; do
		case $d in
		man:*)
			name=${d#man:}; sec=${name##*(}; sec=${sec%)}; name=${name%(*}
			ns man -w "$sec" "$name" >/dev/null 2>&1 || bad="$bad $d"
			;;
		esac
	done
	t_check "$u: its Documentation= man pages are installed${bad:+ (missing:$bad)}" test -z "$bad"
done

# --- the services -----------------------------------------------------------

# Expected per unit: its user, and its effective and bounding capability
# sets (CAP_NET_ADMIN is bit 12, CAP_BPF bit 39).
declare -A UNIT_USER=([rethink-agent.service]=rethink [rethink-domain.service]=rethink-domain)
declare -A UNIT_CAPS=([rethink-agent.service]=0000008000001000 [rethink-domain.service]=0000000000000000)
declare -A UNIT_CAPS_TEXT=([rethink-agent.service]="CAP_BPF and CAP_NET_ADMIN" [rethink-domain.service]="none")

U=rethink-agent.service
# dh_installsystemd enabled and started the agent on install.
t_check "installing enables $U" test "$(ns systemctl is-enabled $U)" = enabled
t_wait_for 20 is_active $U
t_check "installing starts $U" is_active $U
ns systemctl disable --now $U >/dev/null 2>&1
t_check "systemctl disable --now stops and disables $U" \
	test "$(ns systemctl is-active $U)/$(ns systemctl is-enabled $U)" = inactive/disabled

if [ -n "${UNIT_USER[rethink-domain.service]:-}" ] &&
	printf '%s\n' "${units[@]}" | grep -qx rethink-domain.service; then
	# The domain needs a certificate or a loopback address first.
	t_check "installing leaves rethink-domain.service disabled and stopped" \
		test "$(ns systemctl is-enabled rethink-domain.service)/$(ns systemctl is-active rethink-domain.service)" = disabled/inactive
	ns sh -c 'printf "\n[HTTP]\nListen=127.0.0.1\n" >> /etc/rethink/domain.conf'
fi

has_status() { [ -n "$(ns systemctl show -P StatusText "$1")" ]; }
for u in "${units[@]}"; do
	ns systemctl enable --now "$u" >/dev/null 2>&1
	t_check "systemctl enable --now $u: enabled" test "$(ns systemctl is-enabled "$u")" = enabled
	t_check "systemctl enable --now $u: active (it said READY=1)" is_active "$u"

	# The status line: what the daemon says with STATUS=.
	t_wait_for 20 has_status "$u"
	status_text=$(ns systemctl show -P StatusText "$u")
	echo "# $u StatusText: $status_text"
	t_check "systemctl status $u shows its STATUS= line" \
		bash -c '[ -n "$1" ] && grep -qF "Status: \"$1\"" <<<"$2"' _ "$status_text" \
		"$(ns systemctl status --no-pager -n 0 "$u")"

	pid=$(main_pid "$u")
	proc_status=$(ns cat "/proc/$pid/status" 2>/dev/null)
	field() { awk -v k="$1:" '$1 == k {print $2}' <<<"$proc_status"; }
	t_check "$u runs as the user ${UNIT_USER[$u]:-?}" \
		test "$(ns ps -o user= -p "$pid" | tr -d ' ')" = "${UNIT_USER[$u]:-?}"
	t_check "$u capabilities: ${UNIT_CAPS_TEXT[$u]:-?}" \
		test "$(field CapEff)/$(field CapBnd)" = "${UNIT_CAPS[$u]:-?}/${UNIT_CAPS[$u]:-?}"
	t_check "$u cannot gain privileges and has a seccomp filter" \
		test "$(field NoNewPrivs)/$(field Seccomp)" = 1/2

	# Reload: same process, still active.
	ns systemctl reload "$u"
	t_check "systemctl reload $u succeeds and keeps the process" \
		bash -c '[ "$1" = 0 ] && [ "$2" = "$3" ] && [ "$4" = active ]' _ "$?" \
		"$(main_pid "$u")" "$pid" "$(ns systemctl is-active "$u")"
	# Restart: a new process.
	ns systemctl restart "$u"
	t_check "systemctl restart $u: active with a new process" \
		bash -c '[ "$1" = active ] && [ "$2" != "$3" ] && [ "$2" != 0 ]' _ \
		"$(ns systemctl is-active "$u")" "$(main_pid "$u")" "$pid"
done

if printf '%s\n' "${units[@]}" | grep -qx rethink-domain.service; then
	answers() { ns nghttp -v http://127.0.0.1:8443/.well-known/runtime/none 2>/dev/null | grep -q ':status: '; }
	t_wait_for 10 answers
	t_check "rethink-domain answers HTTP/2 on 127.0.0.1:8443 (nghttp)" answers
fi

# --- the agent, in detail ---------------------------------------------------

# The hardened unit still lets it use eBPF, across stop and start (it has
# been restarted above): stopping removes its tc filters, starting attaches
# them again, tc on the link and sock_ops on its cgroup, with no warning.
tc_filters() { ns tc filter show dev rt0 ingress; ns tc filter show dev rt0 egress; }
ns systemctl stop $U
t_check "stopping the agent removes its tc filters from rt0" \
	bash -c '! grep -q "qos_tc_" <<<"$1"' _ "$(tc_filters)"
c=$(cursor)
ns systemctl start $U
pid=$(main_pid $U)
started() { journal_json "$c" -u $U | json_any "e.get('_PID') == '$pid' and ' started (' in str(e.get('MESSAGE'))" >/dev/null; }
t_wait_for 20 started
t_check "starting the agent attaches its tc program to rt0 (clsact ingress)" \
	bash -c 'grep -q "qos_tc_ingress" <<<"$1"' _ "$(ns tc filter show dev rt0 ingress)"
t_check "starting the agent attaches its tc program to rt0 (clsact egress)" \
	bash -c 'grep -q "qos_tc_egress" <<<"$1"' _ "$(ns tc filter show dev rt0 egress)"
t_check "its sock_ops program is attached to its cgroup" \
	bash -c 'grep -q "cgroup_sock_ops .*qos_sockops" <<<"$1"' _ \
	"$(ns bpftool cgroup show "/sys/fs/cgroup$(ns systemctl show -P ControlGroup $U)" 2>/dev/null)"
warnings=$(journal_json "$c" -u $U | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("_PID") == sys.argv[1] and int(e.get("PRIORITY", "6")) <= 4:
        print("# warning:", e.get("MESSAGE"))' "$pid")
[ -z "$warnings" ] || echo "$warnings"
t_check "the agent starts without a warning or an error in the journal" test -z "$warnings"
t_check "the agent runs with eBPF, not netlink alone (rethinkctl status)" \
	bash -c 'python3 -c "import json,sys; sys.exit(json.load(sys.stdin)[\"bpf\"] != \"enabled\")" <<<"$1"' \
	_ "$(ns rethinkctl status --json 2>/dev/null)"

ctl=$(ns stat -c '%a %G %F' /run/rethink/agent.sock 2>/dev/null)
t_check "its control socket is /run/rethink/agent.sock, 0660, group rethink ($ctl)" \
	test "$ctl" = "660 rethink socket"
t_check "its state directory /var/lib/rethink belongs to rethink" \
	test "$(ns stat -c '%U %a' /var/lib/rethink 2>/dev/null)" = "rethink 750"
t_check "rethinkctl qos answers over the socket" quietly ns rethinkctl qos
# Who may use it: members of the group rethink (through /run/rethink, 0750,
# and the socket, 0660), nobody else.
gid=$(ns getent group rethink | cut -d: -f3)
t_check "a member of the group rethink may use rethinkctl" \
	quietly ns setpriv --reuid=65534 --regid=65534 --groups="$gid" rethinkctl status
t_check "another unprivileged user may not" \
	fails quietly ns setpriv --reuid=65534 --regid=65534 --clear-groups rethinkctl status

# Journal: structured QoS entries, every one with the QoS issue's fields and
# a MESSAGE_ID from the catalog.
QOS_FIELDS="INTERFACE QOS_STATE QOS_PREV_STATE QOS_REASON QOS_RTT_US QOS_RETRANS_PER_MILLE QOS_RX_BPS QOS_TX_BPS"
json_qos=$(journal_json "" -u $U | python3 -c '
import json, sys
need = sys.argv[1].split() + ["MESSAGE", "MESSAGE_ID", "PRIORITY"]
ids = set(sys.argv[2].split())
n = bad = 0
for line in sys.stdin:
    e = json.loads(line)
    if "QOS_STATE" not in e or e.get("INTERFACE") in (None, ""):
        continue
    n += 1
    if any(k not in e for k in need) or e["MESSAGE_ID"] not in ids:
        bad += 1
        print("# incomplete:", {k: e.get(k) for k in need}, file=sys.stderr)
print(n, bad)' "$QOS_FIELDS" "$catalog_ids")
echo "# QoS entries with an interface, incomplete ones: $json_qos"
t_check "journalctl -u rethink-agent -o json holds QoS entries" test "${json_qos%% *}" -gt 0
t_check "each has INTERFACE, QOS_* fields, PRIORITY and a catalogued MESSAGE_ID" \
	test "${json_qos##* }" = 0
t_check "rt0 went online in the journal" bash -c \
	'grep -q . <<<"$1"' _ "$(journal_json "" -u $U | json_any 'e.get("INTERFACE") == "rt0" and e.get("QOS_STATE") == "online"')"

# A link taken down: OFFLINE, at warning, with its catalog text under -x.
c=$(cursor)
ns ip link set rt0 down
offline_entry() {
	journal_json "$c" -u $U |
		json_any 'e.get("INTERFACE") == "rt0" and e.get("QOS_STATE") == "offline" and e.get("QOS_PREV_STATE") == "online" and e.get("PRIORITY") == "4"'
}
t_wait_for 20 offline_entry >/dev/null
entry=$(offline_entry)
t_check "rt0 down: an OFFLINE entry for rt0 (was online, at warning)" test -n "$entry"
offline_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["MESSAGE_ID"])' "$entry" 2>/dev/null)
explained=$(ns journalctl -x -u $U --no-pager -o short MESSAGE_ID="$offline_id" 2>/dev/null)
subject=$(ns journalctl --list-catalog 2>/dev/null | awk -v id="$offline_id" '$1 == id {$1=""; sub(/^ /, ""); print; exit}')
# The catalog's first body line without @FIELD@ substitutions.
body_line=$(ns awk -v id="$offline_id" '
	$0 ~ "^-- " {on = ($2 == id); hdr = 1; next}
	on && hdr && /^$/ {hdr = 0; next}
	on && !hdr && NF && !/@/ {print; exit}' "$catalog")
t_check "journalctl -x shows the catalog text for it" bash -c \
	'grep -q "^░░ Subject: " <<<"$1" && grep -qF -- "$2" <<<"$1"' _ "$explained" "${body_line:-$subject}"
ns ip link set rt0 up
ns ip route replace default via 10.99.0.2

# Reload: same process, new configuration, said in the journal.
pid=$(main_pid $U)
c=$(cursor)
t_check "systemctl reload succeeds" ns systemctl reload $U
reloaded() { journal_json "$c" -u $U | json_any "e.get('_PID') == '$pid' and 'CONFIG_FILE' in e" >/dev/null; }
t_wait_for 20 reloaded
t_check "the agent reloaded its configuration (journal)" reloaded
t_check "reload kept the process" test "$(main_pid $U)" = "$pid"
t_check "reload kept the service active" is_active $U

# A broken configuration on reload: the agent says so and keeps running.
ns cp /etc/rethink/agent.conf /run/agent.conf.orig
ns sh -c 'printf "\n[QoS]\nRttThresholdMs=not-a-number\n" >> /etc/rethink/agent.conf'
c=$(cursor)
ns systemctl reload $U
reload_failed() { journal_json "$c" -u $U | json_any "e.get('_PID') == '$pid' and e.get('PRIORITY') == '3'" >/dev/null; }
t_wait_for 20 reload_failed
reload_failed || ns journalctl -u $U -n 5 --no-pager | sed 's/^/# /'
t_check "a broken configuration on reload is an error in the journal" reload_failed
t_check "... and the agent keeps running with the old one" \
	bash -c '[ "$1" = "$2" ] && [ "$3" = active ]' _ "$(main_pid $U)" "$pid" "$(ns systemctl is-active $U)"
ns cp /run/agent.conf.orig /etc/rethink/agent.conf

# Restart=on-failure: killed, it comes back by itself.
pid=$(main_pid $U)
ns systemctl kill -s SIGKILL $U
back() { is_active $U && [ "$(main_pid $U)" != "$pid" ] && [ "$(main_pid $U)" != 0 ]; }
t_wait_for 30 back
t_check "killed with SIGKILL, systemd restarts it (Restart=on-failure)" back
t_check "... and counts the restart" test "$(ns systemctl show -P NRestarts $U)" -ge 1

# Watchdog: the agent pings it; stopped, it is killed and restarted. A
# short WatchdogSec= for this check only, as a runtime drop-in.
wd=$(ns cat "/proc/$(main_pid $U)/environ" 2>/dev/null | tr '\0' '\n' | sed -n 's/^WATCHDOG_USEC=//p')
t_check "WatchdogSec= is set and handed to the agent (WATCHDOG_USEC=$wd)" test "${wd:-0}" -gt 0
ns mkdir -p /run/systemd/system/$U.d
ns sh -c "printf '[Service]\nWatchdogSec=2s\nLimitCORE=0\n' > /run/systemd/system/$U.d/watchdog-test.conf"
ns systemctl daemon-reload
ns systemctl restart $U
pid=$(main_pid $U)
c=$(cursor)
[ "${pid:-0}" -gt 1 ] && ns kill -STOP "$pid"
watchdog_fired() { journal_json "$c" -u $U | json_any '"atchdog timeout" in str(e.get("MESSAGE", ""))' >/dev/null; }
t_wait_for 30 watchdog_fired
t_check "a hung agent is killed by the watchdog" watchdog_fired
t_wait_for 30 back
t_check "... and restarted" back
ns rm -rf /run/systemd/system/$U.d
ns systemctl daemon-reload
ns systemctl restart $U

# --- remove, purge --------------------------------------------------------

out=$(ns apt-get remove -y "${pkgs[@]}" 2>&1)
rc=$?
[ $rc -eq 0 ] || echo "$out" | tail -n 20 | sed 's/^/# /'
t_check "apt-get remove succeeds" test $rc -eq 0
t_check "after remove no rethink unit is running" \
	test -z "$(ns systemctl list-units --no-legend --state=active 'rethink*')"
users=$(for u in "${units[@]}"; do echo "${UNIT_USER[$u]:-}"; done | sort -u | paste -sd, -)
t_check "after remove no process runs as $users" test -z "$(ns pgrep -u "$users")"
t_check "after remove the programs are gone" \
	test -z "$(ns ls /usr/sbin/rethink-agent /usr/sbin/rethink-domain /usr/bin/rethinkctl 2>/dev/null)"
t_check "after remove the configuration stays (conffile)" ns test -f /etc/rethink/agent.conf

out=$(ns apt-get purge -y "${pkgs[@]}" 2>&1)
rc=$?
[ $rc -eq 0 ] || echo "$out" | tail -n 20 | sed 's/^/# /'
t_check "apt-get purge succeeds" test $rc -eq 0
for p in "${pkgs[@]}"; do
	t_check "$p is gone from dpkg's database" \
		bash -c '[ -z "$1" ] || [ "$1" = not-installed ]' _ \
		"$(ns dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)"
done
t_check "after purge systemd knows no rethink unit" \
	test -z "$(ns systemctl list-unit-files --no-legend 'rethink*')"
left=
for f in /etc/rethink /var/lib/rethink /var/lib/rethink-domain /run/rethink /usr/sbin/rethink-agent \
	/usr/sbin/rethink-domain /usr/bin/rethinkctl "$catalog" /usr/lib/sysusers.d/rethink.conf \
	/usr/lib/sysusers.d/rethink-domain.conf; do
	ns test -e "$f" && left="$left $f"
done
t_check "after purge no configuration, state or program is left${left:+ (left:$left)}" test -z "$left"
listed=$(ns journalctl --list-catalog 2>/dev/null | awk '{print $1}')
still=0
for id in $catalog_ids; do grep -qx "$id" <<<"$listed" && still=$((still + 1)); done
t_check "after purge the catalog entries are gone from journalctl" test $still -eq 0

# Against the snapshot: new files in the upper layer are only the ones
# policy keeps or the system's own bookkeeping (dpkg and apt state, logs,
# the journal, the user in the passwd files); none named rethink.
added=$(comm -13 <(echo "$upper_before") <(upper_list) | while read -r kind path; do
	# A directory copied up because something below it changed is no news,
	# nor is a host file deleted (the host may have one of the same name).
	[ "$kind" = d ] && [ -d "/$path" ] && continue
	[ "$kind" = w ] && continue
	echo "/$path"
done)
# man-db's cache of rendered pages is man-db's business, not the packages'.
rethink_left=$(grep -i rethink <<<"$added" | grep -v '^/var/cache/man/' || true)
new=$(while read -r path; do
	[ -n "$path" ] || continue
	case ${path#/} in
	var/log/* | var/lib/dpkg/* | var/lib/apt/* | var/lib/PackageKit/* | var/cache/* | var/lib/systemd/catalog/* | \
		var/lib/systemd/deb-systemd-helper-* | var/lib/systemd/timers/* | \
		etc/passwd* | etc/group* | etc/shadow* | etc/gshadow* | etc/.pwd.lock | \
		etc/ld.so.cache | run/*)
		continue ;;
	esac
	echo "$path"
done <<<"$added")
[ -z "$new$rethink_left" ] || printf '%s\n' "$rethink_left" "$new" | sort -u | sed '/^$/d; s/^/# left after purge: /'
t_check "after purge no file with rethink in its name is left" test -z "$rethink_left"
t_check "after purge nothing else is left but what policy keeps" test -z "$new"
for u in ${users//,/ }; do
	t_check "after purge the system user $u is kept, as policy asks" has_user "$u"
done

if [ "$T_FAILED" -gt 0 ]; then
	echo "# the last journal entries of the units, for the failures above:"
	ns journalctl --no-pager -o short-monotonic -n 40 -u 'rethink*' | sed 's/^/#   /'
fi

nsboot_stop
t_check "systemctl poweroff ends the namespace" bash -c '! kill -0 "$1" 2>/dev/null' _ "$NSBOOT_UNSHARE_PID"

t_done
