# Shared set-up of the QoS integration suites (tests/integration/qos-*.sh),
# sourced after tests/lib.sh; not a suite itself.
#
# Topology, all in namespaces of our own (names start with "rtct"):
#
#   device ns $Q_DEV                          peer ns $Q_PEER
#     rtct0  10.231.0.2/24  <--- veth --->  rtct0p 10.231.0.1/24  (default gateway)
#     rtct1  10.231.1.2/24  <--- veth --->  rtct1p 10.231.1.1/24  (second path, mobility)
#
# The agent runs in the device namespace with a config file, a control
# socket and a log in a temporary directory, its sock_ops cgroup a fresh one
# under the cgroup2 mount. Its log target is "json": one JSON object per
# entry, the fields the journal would get. Everything is removed on exit.

# shellcheck disable=SC2034  # variables are for the sourcing suites
AGENT=$BUILD/rethink-agent
CTL=$BUILD/rethinkctl

[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
[ -x "$AGENT" ] || t_skip_all "rethink-agent is not built"
[ -x "$CTL" ] || t_skip_all "rethinkctl is not built"
for tool in ip jq nsenter; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

# The cgroup2 mount: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup
# on unified ones.
Q_CGROUP_ROOT=${Q_CGROUP_ROOT:-$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)}
[ -n "$Q_CGROUP_ROOT" ] || t_skip_all "no cgroup2 mount"

Q_ID=$$
Q_DEV=rtct-dev-$Q_ID
Q_PEER=rtct-peer-$Q_ID
Q_TMP=$(mktemp -d "/tmp/rtct-$T_NAME-XXXXXX")
Q_SOCK=$Q_TMP/agent.sock
Q_LOG=$Q_TMP/agent.log
Q_CONF=$Q_TMP/agent.conf
Q_CGROUP=$Q_CGROUP_ROOT/rtct-$Q_ID
Q_AGENT_PID=

t_cleanup "rm -rf '$Q_TMP'"

# q_dev CMD...: runs CMD in the device namespace. nsenter, not "ip netns
# exec": the latter remounts /sys, which hides the cgroup2 mount.
q_dev() { nsenter --net="/run/netns/$Q_DEV" "$@"; }
q_peer() { nsenter --net="/run/netns/$Q_PEER" "$@"; }

q_setup_net() {
	ip netns add "$Q_DEV" || return 1
	t_cleanup "ip netns del '$Q_DEV'"
	ip netns add "$Q_PEER" || return 1
	t_cleanup "ip netns del '$Q_PEER'"

	ip -n "$Q_DEV" link set lo up
	ip -n "$Q_PEER" link set lo up
	local i
	for i in 0 1; do
		ip -n "$Q_DEV" link add "rtct$i" type veth peer name "rtct${i}p" netns "$Q_PEER" || return 1
		ip -n "$Q_DEV" addr add "10.231.$i.2/24" dev "rtct$i" || return 1
		ip -n "$Q_PEER" addr add "10.231.$i.1/24" dev "rtct${i}p" || return 1
		ip -n "$Q_DEV" link set "rtct$i" up || return 1
		ip -n "$Q_PEER" link set "rtct${i}p" up || return 1
	done
	ip -n "$Q_DEV" route add default via 10.231.0.1 dev rtct0 || return 1
	t_wait_for 10 q_link_up rtct0 && t_wait_for 10 q_link_up rtct1
}

# q_link_up IFACE: the device-side link is operationally up (carrier).
q_link_up() { ip -n "$Q_DEV" -j link show dev "$1" | jq -e '.[0].operstate == "UP"' >/dev/null; }

q_setup_cgroup() {
	mkdir "$Q_CGROUP" || return 1
	# Processes must leave before rmdir; the agent is stopped by then.
	t_cleanup "q_cgroup_remove"
}

q_cgroup_remove() {
	local p
	if [ -f "$Q_CGROUP/cgroup.procs" ]; then
		while read -r p; do kill -9 "$p" 2>/dev/null; done <"$Q_CGROUP/cgroup.procs"
	fi
	t_wait_for 5 rmdir "$Q_CGROUP" 2>/dev/null
}

# q_write_config [EXTRA INI TEXT]: a config for tests: quick polling and
# hysteresis short enough to watch, but still more than one sample.
q_write_config() {
	cat >"$Q_CONF" <<EOF
[Agent]
ControlSocket=$Q_SOCK
LogLevel=debug

[Interfaces]
Watch=rtct*

[QoS]
RttThresholdMs=300
RetransmitThresholdPerMille=20
DegradeAfterSec=1
DegradeAfterSamples=2
RecoverAfterSec=3
RecoverAfterSamples=3
PollIntervalSec=1
SampleIntervalSec=0

[BPF]
Enable=yes
CgroupPath=$Q_CGROUP
EOF
	[ $# -eq 0 ] || printf '%s\n' "$@" >>"$Q_CONF"
}

# q_start_agent [PREFIX CMD...]: starts the agent in the device namespace
# (through PREFIX, e.g. setpriv) and waits for its control socket.
q_start_agent() {
	# Not through q_dev: $! must be the agent itself (nsenter and env
	# exec), not a subshell that would take the signals meant for it.
	nsenter --net="/run/netns/$Q_DEV" env RETHINK_LOG_TARGET=json "$@" "$AGENT" --config="$Q_CONF" \
		>"$Q_TMP/agent.out" 2>"$Q_LOG" &
	Q_AGENT_PID=$!
	t_cleanup "q_stop_agent"
	if ! t_wait_for 15 q_ctl_ok; then
		echo "# agent did not come up; its log:"
		sed 's/^/#   /' "$Q_LOG" | tail -n 30
		return 1
	fi
}

q_stop_agent() {
	[ -n "$Q_AGENT_PID" ] || return 0
	kill -TERM "$Q_AGENT_PID" 2>/dev/null
	# Hang guard only: a clean stop is quick.
	t_wait_for 10 q_agent_gone || kill -KILL "$Q_AGENT_PID" 2>/dev/null
	wait "$Q_AGENT_PID" 2>/dev/null
	Q_AGENT_RC=$?
	Q_AGENT_PID=
}

q_agent_gone() { ! kill -0 "$Q_AGENT_PID" 2>/dev/null; }

q_ctl_ok() { "$CTL" --socket="$Q_SOCK" --timeout=2 status >/dev/null 2>&1; }

# q_qos: the `qos` result as one line of JSON.
q_qos() { "$CTL" --socket="$Q_SOCK" --timeout=5 --json qos; }

# q_jq FILTER: evaluates FILTER on the current `qos` result; succeeds when
# the result is true.
q_jq() {
	local out
	out=$(q_qos) || return 1
	jq -e "$1" >/dev/null <<<"$out"
}

# q_iface_is IFACE STATE: the interface's QoS state.
q_iface_is() { q_jq ".interfaces[] | select(.name == \"$1\") | .state == \"$2\""; }
q_overall_is() { q_jq ".overall.state == \"$1\""; }
q_gate_is() { q_jq ".gates.$1.open == $2"; }

# q_log FILTER: the log entries FILTER selects (jq, on each entry), as
# compact JSON lines. Lines that are not JSON are skipped.
q_log() { jq -c -R "fromjson? | select($1)" <"$Q_LOG"; }
q_log_count() { q_log "$1" | wc -l; }
q_log_has() { [ "$(q_log_count "$1")" -gt 0 ]; }

# Message IDs, from the agent's catalog (units/rethink.catalog).
MID_LINK=4e80148f069a47fc9609e498c2a844ee
MID_OVERALL=ebe79763aa994dfda161dc0901fb3572
MID_GATE=35c7ca176a7444729af06ce0389270be
MID_MOBILITY=f8de35b4b8cd42de88a41317ea61e808
MID_BPF_UNAVAILABLE=44e45b99a3e54a8dbb8fab27c92cef07
MID_STARTED=77a2b83a1e16477a9c09a321c03db2ad
MID_RELOADED=a1825f53291e4d6f9bf43b83343e379d

# q_wait_check NAME SECONDS CMD...: t_check with a wait; on failure prints
# the state the agent reports, which says more than "not ok".
q_wait_check() {
	local name=$1 secs=$2; shift 2
	if t_wait_for "$secs" "$@"; then
		t_ok "$name"
	else
		t_fail "$name"
		echo "#   qos: $(q_qos 2>&1 | head -c 3000)"
	fi
}
