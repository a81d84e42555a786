#!/usr/bin/env bash
# System test: components as transient systemd units (daemon/launcher.c).
#
# Boots systemd as PID 1 of private namespaces on an overlay of /
# (lib/nsboot.sh) and runs the real launcher there (tests/helpers/launcher-run,
# as a service, the way the agent runs) with a probe component installed in
# a directory closed to other users, as the agent's state directory is. It
# checks, as an operator would with systemctl and journalctl: the unit names,
# `systemctl status`, the sandbox properties (DynamicUser=, PrivateNetwork=
# for a hyperty and not for a protostub), the bus token as a credential and
# not in the environment, no network for a hyperty, the bus socket reachable,
# a killed main process restarted with a new PID and a fresh token, a unit
# left over from an earlier run stopped before the new one starts, and no
# unit left after the stop. Then the same as the agent's user with the
# shipped polkit rule (units), as another user (refused: auto falls back to
# fork/exec), and the real rethink-agent with Launcher=systemd: a component
# installed, accepted and activated runs as its unit, rethinkctl shows it,
# deactivation removes it.
set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/lib.sh"
. "$TOP/tests/system/lib/nsboot.sh"

why=$(nsboot_check) || t_skip_all "$why"

BUILD=${BUILD:-$TOP/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
RUNNER=$BUILD/tests/helpers/launcher-run
if [ ! -x "$RUNNER" ]; then
	(cd "$TOP" && make -s BUILD="$BUILD" "$RUNNER") >/dev/null 2>&1 ||
		{ t_fail "tests/helpers/launcher-run builds"; t_done; exit 1; }
fi

if ! nsboot_start; then
	t_fail "systemd boots as PID 1 of its own namespaces"
	t_done
	exit 1
fi
t_check "systemd boots as PID 1 of its own namespaces" test "$(ns cat /proc/1/comm)" = systemd
# systemd makes / shared at boot, except in a container (which it believes
# this is); credentials are set up in a child mount namespace and reach the
# unit's only through propagation, as on a real host.
ns mount --make-rshared /

# The probe: says who it is, what it sees and whether it reaches the bus,
# then stays.
STATE=/var/lib/rethink-lx
ns mkdir -p -m 0700 "$STATE"
ns mkdir -p -m 0755 "$STATE/installed/probe"
ns mkdir -p -m 0700 /run/rethink-lx
ns sh -c 'cat > "$1" && chmod 0755 "$1"' sh "$STATE/installed/probe/probe" <<'EOF'
#!/bin/sh
echo "uid=$(id -u)"
echo "token=$(cat "$CREDENTIALS_DIRECTORY/rethink-bus-token" 2>&1)"
echo "envtoken=${RETHINK_BUS_TOKEN:-none}"
echo "bus=$RETHINK_BUS pwd=$(pwd)"
python3 -c 'import socket; socket.socket(socket.AF_INET)' 2>/dev/null && echo inet=yes || echo inet=no
echo "links=$(ls /sys/class/net | tr '\n' ' ')"
python3 -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["RETHINK_BUS"])
s.sendall(("hello " + sys.argv[1] + "\n").encode())' "$(id -u)" && echo bus=ok
exec sleep 1000
EOF
ns_put "$RUNNER" /usr/local/bin/rethink-launcher-run
ns chmod 0755 /usr/local/bin/rethink-launcher-run

id=$(printf %s main | sha256sum | cut -c1-8)
HU=rethink-hyperty-probe-$id.service
PU=rethink-protostub-probe-$id.service
DRIVER=rethink-lx-driver.service

# A unit of that name from an "earlier run", not sandboxed.
ns systemd-run --quiet --unit="$HU" sleep 1000
t_check "a leftover $HU runs before the launcher starts" test "$(ns systemctl is-active "$HU")" = active

ns systemd-run --quiet --unit="$DRIVER" /usr/local/bin/rethink-launcher-run --mode=systemd \
	--bus=/run/rethink-lx/bus.sock --restart-initial-ms=500 \
	"hyperty:probe:main:$STATE/installed/probe/probe" "protostub:probe:main:$STATE/installed/probe/probe"

driver_log() { ns journalctl -u "$DRIVER" -o cat --no-pager; }
unit_log() { ns journalctl -u "$1" -o cat --no-pager; }
main_pid() { ns systemctl show -P MainPID "$1"; }
prop() { ns systemctl show -P "$2" "$1"; }
said() { unit_log "$1" | grep -qx -- "$2"; }
both_up() {
	[ "$(ns systemctl is-active "$HU")" = active ] && [ "$(ns systemctl is-active "$PU")" = active ] &&
		[ "$(prop "$HU" DynamicUser)" = yes ] && said "$HU" bus=ok && said "$PU" bus=ok
}
t_wait_for 30 both_up
t_check "the launcher runs in systemd mode" bash -c 'grep -qx "mode systemd" <<<"$1"' _ "$(driver_log)"
t_check "the leftover was stopped first (the log says so)" \
	bash -c 'grep -q "Stopping $2, left over" <<<"$1"' _ "$(driver_log)" "$HU"
t_check "$HU is active, now sandboxed" both_up
t_check "$PU is active" test "$(ns systemctl is-active "$PU")" = active

status=$(ns systemctl status --no-pager -n 0 "$HU")
echo "$status" | sed -n '1,5p' | sed 's/^/# /'
t_check "systemctl status shows it running, in rethink-components.slice" \
	bash -c 'grep -q "Active: active (running)" <<<"$1" && grep -q "rethink-components.slice/$2" <<<"$1"' _ \
	"$status" "$HU"
t_check "systemctl status shows its description" \
	bash -c 'grep -q "rethink hyperty probe (main)" <<<"$1"' _ "$status"

for u in "$HU" "$PU"; do
	t_check "$u: DynamicUser=yes, NoNewPrivileges=yes, ProtectSystem=strict" \
		test "$(prop "$u" DynamicUser)/$(prop "$u" NoNewPrivileges)/$(prop "$u" ProtectSystem)" = yes/yes/strict
	t_check "$u: Restart=no (the launcher restarts), CollectMode=inactive-or-failed" \
		test "$(prop "$u" Restart)/$(prop "$u" CollectMode)" = no/inactive-or-failed
	t_check "$u: the token is not in its Environment=" \
		bash -c '! grep -q tok- <<<"$1"' _ "$(prop "$u" Environment)"
	uid=$(unit_log "$u" | sed -n 's/^uid=//p' | head -n1)
	t_check "$u: runs as a dynamic user (uid $uid)" test "${uid:-0}" -ge 61184
	t_check "$u: reads the bus token from its credential" \
		bash -c 'grep -qx "token=tok-probe-[0-9]*" <<<"$1"' _ "$(unit_log "$u")"
	t_check "$u: has no RETHINK_BUS_TOKEN in its environment" said "$u" envtoken=none
	t_check "$u: sees its directory and the bus at the fixed sandbox paths" \
		said "$u" "bus=/run/rethink-component/bus.sock pwd=/run/rethink-component/exec"
	t_check "$u: the bus socket answered (its directory is closed to it otherwise)" said "$u" bus=ok
done
hpath=/org/freedesktop/systemd1/unit/$(echo "${HU%.service}" | sed 's/-/_2d/g')_2eservice
leak=$(ns setpriv --reuid=65534 --regid=65534 --clear-groups busctl --system get-property org.freedesktop.systemd1 \
	"$hpath" org.freedesktop.systemd1.Service SetCredential 2>&1)
echo "# SetCredential over D-Bus, as nobody: ${leak:0:200}"
t_check "another user cannot read the token over D-Bus" bash -c '! grep -q "tok-\|74 6f 6b 2d\|116 111 107 45" <<<"$1"' _ "$leak"
t_check "it is a LoadCredential= (SetCredential= is readable by anybody over D-Bus)" \
	bash -c 'grep -q "rethink-bus-token\" \"/run/rethink/credentials/" <<<"$1"' _ \
	"$(ns busctl --system get-property org.freedesktop.systemd1 "$hpath" org.freedesktop.systemd1.Service LoadCredential)"
t_check "the credential file is removed once the unit runs" test -z "$(ns ls -A /run/rethink/credentials)"
t_check "hyperty: PrivateNetwork=yes, RestrictAddressFamilies=AF_UNIX" \
	test "$(prop "$HU" PrivateNetwork)/$(prop "$HU" RestrictAddressFamilies)" = yes/AF_UNIX
t_check "protostub: PrivateNetwork=no, AF_UNIX AF_INET AF_INET6" \
	bash -c '[ "$1" = no ] && [ "$(tr " " "\n" <<<"$2" | sort | paste -sd" ")" = "AF_INET AF_INET6 AF_UNIX" ]' _ \
	"$(prop "$PU" PrivateNetwork)" "$(prop "$PU" RestrictAddressFamilies)"
t_check "hyperty: cannot open an AF_INET socket, only lo" \
	bash -c 'grep -qx inet=no <<<"$1" && grep -qx "links=lo *" <<<"$1"' _ "$(unit_log "$HU")"
t_check "protostub: can open an AF_INET socket" said "$PU" inet=yes
t_check "the probe cannot be reached at its real path by other users" \
	ns setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "! test -x $STATE/installed/probe/probe"

# Kill the main process: restarted by the launcher, with a new PID and a
# new token.
old=$(main_pid "$HU")
ns kill -KILL "$old"
restarted() {
	local p
	p=$(main_pid "$HU")
	[ "$p" != "$old" ] && [ "${p:-0}" != 0 ] && [ "$(ns systemctl is-active "$HU")" = active ]
}
t_wait_for 30 restarted
t_check "killed (SIGKILL to PID $old), the hyperty runs again with a new PID ($(main_pid "$HU"))" restarted
t_check "the launcher said it would restart it (killed, signal 9)" \
	bash -c 'grep -q "^exited $2 2 9 restart=1 gave_up=0 stopped=0" <<<"$1"' _ "$(driver_log)" "$HU"
tokens() { unit_log "$HU" | sed -n 's/^token=//p' | sort -u | wc -l; }
t_wait_for 10 test "$(tokens)" -ge 2
t_check "the new process got a fresh token" test "$(tokens)" -ge 2
t_check "the protostub kept running" test "$(ns systemctl is-active "$PU")" = active

# Stop: each unit stops (not restarted) and is gone.
ns systemctl stop "$DRIVER"
gone() { [ "$(prop "$HU" LoadState)" = not-found ] && [ "$(prop "$PU" LoadState)" = not-found ]; }
t_wait_for 20 gone
t_check "stopped: both units are gone" gone
t_check "the launcher stopped them on purpose" \
	bash -c '[ "$(grep -c "stopped=1" <<<"$1")" = 2 ] && ! grep -q "restart=1 gave_up=0 stopped=1" <<<"$1"' _ \
	"$(driver_log)"
t_check "no rethink component unit is left" \
	test -z "$(ns systemctl list-units --all --no-legend 'rethink-hyperty-*' 'rethink-protostub-*')"

# As the agent runs: an unprivileged user, which systemd lets start units
# only through polkit. The user rethink with the shipped rule: units; any
# other user: refused, and auto falls back to fork/exec.
ns useradd --system --no-create-home --shell /usr/sbin/nologin rethink 2>/dev/null
ns install -m 0644 /dev/stdin /etc/polkit-1/rules.d/50-rethink-agent.rules <"$TOP/units/polkit/50-rethink-agent.rules"
AS_AGENT=rethink-lx-agent.service
AS_OTHER=rethink-lx-other.service
ns systemd-run --quiet --unit="$AS_AGENT" -p User=rethink -p RuntimeDirectory=rethink-lx-a \
	/usr/local/bin/rethink-launcher-run --mode=auto --bus=/run/rethink-lx-a/bus.sock \
	"hyperty:probe:main:$STATE/installed/probe/probe"
ns systemd-run --quiet --unit="$AS_OTHER" -p User=nobody -p RuntimeDirectory=rethink-lx-o \
	/usr/local/bin/rethink-launcher-run --mode=auto --bus=/run/rethink-lx-o/bus.sock \
	"protostub:other:main:/usr/bin/sleep"
agent_unit_up() { [ "$(ns systemctl is-active "$HU")" = active ] && said "$HU" bus=ok; }
t_wait_for 30 agent_unit_up
t_check "as the user rethink, with the shipped polkit rule: $HU runs as a unit" agent_unit_up
t_check "... in systemd mode" bash -c 'grep -qx "mode systemd" <<<"$1"' _ "$(unit_log "$AS_AGENT")"
fell_back() {
	unit_log "$AS_OTHER" | grep -q "components run with fork/exec from now on" &&
		unit_log "$AS_OTHER" | grep -q "^started rethink-protostub-other-$id.service [1-9]"
}
t_wait_for 30 fell_back
t_check "as another user: systemd refuses, auto falls back to fork/exec and the component runs" fell_back
fell_back || unit_log "$AS_OTHER" | tail -n 10 | sed 's/^/#   /'
t_check "... and no unit was made for it" \
	test "$(prop "rethink-protostub-other-$id.service" LoadState)" = not-found
ns systemctl stop "$AS_AGENT" "$AS_OTHER"
t_wait_for 20 test "$(prop "$HU" LoadState)" = not-found
t_check "stopping the user's launcher stops its unit" test "$(prop "$HU" LoadState)" = not-found

# --- the agent itself: an active component is a unit ---------------------

AGENT=$BUILD/rethink-agent
CTL=$BUILD/rethinkctl
SERVER=$BUILD/tests/helpers/swm-pkg-server
if [ -x "$AGENT" ] && [ -x "$CTL" ] && [ -x "$SERVER" ]; then
	# The build tree may be where the namespace has a fresh /tmp.
	for b in "$AGENT" "$CTL" "$SERVER"; do
		ns_put "$b" "/usr/local/bin/lx-$(basename "$b")"
		ns chmod 0755 "/usr/local/bin/lx-$(basename "$b")"
	done
	AGENT=/usr/local/bin/lx-rethink-agent
	CTL=/usr/local/bin/lx-rethinkctl
	SERVER=/usr/local/bin/lx-swm-pkg-server
	P=/run/rethink-lx-pkg
	ASOCK=/run/rethink-lx-agent.sock
	ns mkdir -p "$P/srv"
	ns sh -c 'printf "#!/bin/sh\nexec sleep 1000\n" > "$1"' sh "$P/pkg"
	ns systemd-run --quiet --unit=rethink-lx-pkgsrv "$SERVER" --file="$P/pkg" --name=lxprobe --out="$P/srv"
	port() { unit_log rethink-lx-pkgsrv.service | sed -n 's/^PORT=//p' | head -n1; }
	t_wait_for 20 test -n "$(port)"
	# A link for the QoS side to call online (the downloads gate), with a
	# peer in a network namespace of its own and a default route.
	ns ip netns add lxpeer
	ns ip link add lx0 type veth peer name lx1 netns lxpeer
	ns ip addr add 10.98.0.1/24 dev lx0
	ns ip link set lx0 up
	ns ip netns exec lxpeer ip link set lx1 up
	ns ip netns exec lxpeer ip addr add 10.98.0.2/24 dev lx1
	ns ip route add default via 10.98.0.2
	ns systemd-run --quiet --unit=rethink-lx-agent2 -p RuntimeDirectory=rethink "$AGENT" --bpf=no --watch=lx0 \
		--launcher=systemd --control-socket="$ASOCK" --state-directory=/var/lib/rethink-lx-agent \
		--trusted-publishers="$P/srv/publishers" --domain-url="http://127.0.0.1:$(port)"
	t_wait_for 20 ns test -S "$ASOCK"
	actl() { ns "$CTL" --socket="$ASOCK" "$@"; }
	comp() { actl --json components | jq -c '.components[0] // {}'; }
	field() {
		comp | jq -r --arg k "$1" 'if .[$k] == null then "" else .[$k] |
			if type == "boolean" then (if . then "True" else "False" end) else tostring end end'
	}
	actl install "$P/srv/descriptor.json" >/dev/null
	t_wait_for 30 test "$(field state)" = DELIVERED
	actl accept lxprobe >/dev/null
	actl activate lxprobe >/dev/null
	AU=rethink-hyperty-lxprobe-$id.service
	agent_comp_up() { [ "$(ns systemctl is-active "$AU")" = active ] && [ "$(field pid)" = "$(main_pid "$AU")" ]; }
	t_wait_for 30 agent_comp_up
	t_check "the agent (Launcher=systemd) runs an activated component as $AU" agent_comp_up
	agent_comp_up || { comp | sed 's/^/# /'; unit_log rethink-lx-agent2.service | tail -n 10 | sed 's/^/#   /'; }
	t_check "... with a dynamic user" test "$(prop "$AU" DynamicUser)" = yes
	t_check "rethinkctl components --json shows its unit, PID and the launcher" \
		test "$(field unit) $(field launcher) $(field process)" = "$AU systemd running"
	t_check "rethinkctl components shows it running with its PID" \
		bash -c 'grep -Eq "^lxprobe .* running $2 " <<<"$1"' _ "$(actl components)" "$(main_pid "$AU")"
	actl deactivate lxprobe >/dev/null
	t_wait_for 20 test "$(prop "$AU" LoadState)" = not-found
	t_check "deactivated: the unit is gone and nothing runs" \
		test "$(prop "$AU" LoadState) $(field pid) $(field active)" = "not-found 0 False"
	ns systemctl stop rethink-lx-agent2 rethink-lx-pkgsrv
else
	echo "# rethink-agent, rethinkctl or swm-pkg-server not built: the agent is not checked"
fi

if [ "$T_FAILED" -gt 0 ]; then
	echo "# the launcher's log:"
	driver_log | tail -n 30 | sed 's/^/#   /'
fi

nsboot_stop
t_check "systemctl poweroff ends the namespace" bash -c '! kill -0 "$1" 2>/dev/null' _ "$NSBOOT_UNSHARE_PID"

t_done
