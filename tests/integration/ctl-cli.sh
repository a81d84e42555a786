#!/usr/bin/env bash
# rethinkctl as people and scripts use it: help, usage errors (exit 2),
# agent missing or forbidden (exit 1, a clear message), error replies
# (exit 1, the agent's description), timeouts, human output and --json.
# The agent is a stand-in with fixed answers (tests/helpers/ctl-fake-agent)
# serving the real control socket code.
set -u
. "$(dirname "$0")/../lib.sh"

CTL=$BUILD/rethinkctl
FAKE=$BUILD/tests/helpers/ctl-fake-agent
[ -x "$CTL" ] || t_skip_all "rethinkctl is not built"
[ -x "$FAKE" ] || t_skip_all "ctl-fake-agent is not built"
command -v jq >/dev/null || t_skip_all "jq is missing"

TMP=$(mktemp -d /tmp/rtct-ctl-XXXXXX)
t_cleanup "rm -rf '$TMP'"
chmod 0755 "$TMP"

# jq_file FILTER FILE: succeeds when FILTER is true on FILE.
jq_file() { jq -e "$1" "$2" >/dev/null; }

# run ARGS...: runs rethinkctl; sets OUT, ERR and RC.
run() {
	"$CTL" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	RC=$?
	OUT=$(cat "$TMP/out")
	ERR=$(cat "$TMP/err")
}

# expect NAME RC [STDERR-SUBSTRING]: checks the last run.
expect() {
	local name=$1 rc=$2 err=${3:-}
	if [ "$RC" -eq "$rc" ] && { [ -z "$err" ] || [[ $ERR == *"$err"* ]]; }; then
		t_ok "$name"
	else
		t_fail "$name"
		echo "#   rc=$RC (wanted $rc) stderr: $ERR"
	fi
}

FAKE_PID=
start_fake() {
	"$FAKE" "$1" "$2" 2>>"$TMP/fake.log" &
	FAKE_PID=$!
	t_wait_for 10 test -S "$1"
}
stop_fake() {
	[ -n "$FAKE_PID" ] || return 0
	kill -TERM "$FAKE_PID" 2>/dev/null
	wait "$FAKE_PID" 2>/dev/null
	FAKE_PID=
}
t_cleanup "stop_fake"

# --- help, version, usage -------------------------------------------------------
run --help
expect "--help exits 0" 0
t_check "--help lists status and qos and the exit codes" \
	sh -c 'printf "%s" "$0" | grep -q "^  status" && printf "%s" "$0" | grep -q "^  qos" && printf "%s" "$0" | grep -q "2 wrong usage"' "$OUT"
run --version
expect "--version exits 0" 0
t_check "--version prints the version" test "$OUT" = "rethinkctl 0.1.0"

run
expect "no command: exit 2" 2 "No command given"
run frobnicate
expect "unknown command: exit 2" 2 'Unknown command "frobnicate"'
run --bogus status
expect "unknown option: exit 2" 2 "Unknown option --bogus"
run --json=yaml status
expect "bad --json mode: exit 2" 2 'Unknown --json= mode "yaml"'
run --timeout=0 status
expect "bad --timeout: exit 2" 2 "Invalid --timeout="
run --timeout=abc status
expect "non-numeric --timeout: exit 2" 2 "Invalid --timeout="
run --socket=relative.sock status
expect "relative --socket: exit 2" 2 "absolute path"
run status extra
expect "extra argument: exit 2" 2 'Command "status" takes 0 arguments'

# --- no agent ---------------------------------------------------------------------
run --socket="$TMP/none.sock" qos
expect "no agent: exit 1 with the hint" 1 \
	"Failed to connect to $TMP/none.sock: No such file or directory. Is rethink-agent running?"
t_check "no agent: nothing on stdout" test -z "$OUT"
RETHINK_AGENT_SOCKET=$TMP/env.sock run status
expect "\$RETHINK_AGENT_SOCKET is used" 1 "Failed to connect to $TMP/env.sock"

# --- the stand-in agent, answering ----------------------------------------------------
SOCK=$TMP/agent.sock
start_fake "$SOCK" ok || t_fail "stand-in agent starts"
t_check "socket mode is 0660" test "$(stat -c %a "$SOCK")" = 660

run --socket="$SOCK" qos
expect "qos: exit 0" 0
t_check "qos: overall state with since and relative time" \
	grep -Eq '^ +State: degraded since .+; 3min [56]s ago$' "$TMP/out"
t_check "qos: gates shown with reasons" \
	sh -c 'grep -Eq "^ +Downloads: closed \(degraded\)$" "$0" && grep -Eq "^ +Registration: open \(degraded\)$" "$0"' "$TMP/out"
t_check "qos: primary shown" grep -Eq '^ +Primary: eth0 \(10\.0\.0\.2/24\)$' "$TMP/out"
t_check "qos: table header" grep -Eq '^INTERFACE +STATE +SINCE +LINK +RTT +RETRANS +RX +TX +ADDRESSES +REASON$' "$TMP/out"
t_check "qos: eth0 row with human units" \
	grep -Eq '^eth0 +degraded +3min [56]s ago +up, default +1\.2ms +1\.5% +12\.0 Mbit/s +800 bit/s +10\.0\.0\.2/24 fe80::1/64 +retransmits$' "$TMP/out"
t_check "qos: wlan0 row" grep -Eq '^wlan0 +offline +.* +down, no carrier, metered +- +0\.0% +0 bit/s +0 bit/s +- +link-down$' "$TMP/out"
columns_aligned() {
	# Every row's STATE column starts where the header's does.
	local col
	col=$(awk 'NR == 1 { print index($0, "STATE") }' <(grep '^INTERFACE' "$TMP/out"))
	[ -n "$col" ] && [ "$col" -gt 1 ] &&
		awk -v c="$col" '/^(eth0|wlan0) / { if (substr($0, c - 2, 2) != "  " || substr($0, c, 1) == " ") bad = 1 } END { exit bad }' "$TMP/out"
}
t_check "qos: columns aligned" columns_aligned
t_check "qos: no colour codes when not a terminal" sh -c '! grep -q "$(printf "\033")" "$0"' "$TMP/out"

# On a terminal (script(1) provides one) states are coloured, unless
# $NO_COLOR says otherwise.
if command -v script >/dev/null; then
	TERM=xterm script -qec "'$CTL' --socket='$SOCK' qos" /dev/null >"$TMP/tty" 2>&1 </dev/null
	t_check "on a terminal: degraded in yellow, offline in red" \
		sh -c 'grep -q "$(printf "\033\\[0;1;33mdegraded")" "$0" && grep -q "$(printf "\033\\[0;1;31moffline")" "$0"' "$TMP/tty"
	NO_COLOR=1 TERM=xterm script -qec "'$CTL' --socket='$SOCK' qos" /dev/null >"$TMP/tty" 2>&1 </dev/null
	t_check "on a terminal with \$NO_COLOR: no colour" \
		sh -c 'grep -q degraded "$0" && ! grep -q "$(printf "\033")" "$0"' "$TMP/tty"
fi

run --socket="$SOCK" status
expect "status: exit 0" 0
t_check "status: fields" \
	sh -c 'grep -Eq "^ +QoS: degraded$" "$0" && grep -Eq "^ +BPF: netlink-only \(not permitted\)$" "$0" && grep -Eq "^ +Uptime: 1h 2min$" "$0" && grep -Eq "^ +PID: 4242$" "$0"' "$TMP/out"

run --socket="$SOCK" --json qos
expect "--json qos: exit 0" 0
t_check "--json: one line" test "$(wc -l <"$TMP/out")" -eq 1
t_check "--json: the result object as is" \
	jq_file '.overall.state == "degraded" and .interfaces[0].rx_bps == 1500000 and .interfaces[1].addresses == [] and .primary.interface == "eth0"' "$TMP/out"
cp "$TMP/out" "$TMP/short.json"
run --socket="$SOCK" --json=pretty qos
expect "--json=pretty qos: exit 0" 0
t_check "--json=pretty: indented, several lines" sh -c '[ "$(wc -l <"$0")" -gt 10 ] && grep -q "^  \"overall\": {" "$0"' "$TMP/out"
t_check "--json=pretty: same object as --json (but for the clock)" \
	bash -c 'diff <(jq -S "del(.overall.since_usec, .interfaces[].since_usec)" "$0") <(jq -S "del(.overall.since_usec, .interfaces[].since_usec)" "$1") >/dev/null' \
	"$TMP/short.json" "$TMP/out"
run --socket="$SOCK" --json status
t_check "--json status" jq_file '.bpf == "netlink-only" and .pid == 4242' "$TMP/out"
run qos --json --socket="$SOCK"
expect "options after the command work too" 0

# Permission: someone outside root's group may not connect.
if command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" --socket="$SOCK" status >"$TMP/out" 2>"$TMP/err"
	RC=$?; ERR=$(cat "$TMP/err")
	expect "not permitted: exit 1 with the hint" 1 \
		"Failed to connect to $SOCK: Permission denied. Are you root or in group \"rethink\"?"
fi
stop_fake
t_check "stand-in removed its socket on exit" test ! -e "$SOCK"

# --- group "rethink" --------------------------------------------------------------------
# With the group present the socket belongs to it and its members may use
# it. The group comes from a private /etc/group in a mount namespace of the
# stand-in's own, so the host's is never touched.
if command -v unshare >/dev/null && command -v setpriv >/dev/null && ! getent group rethink >/dev/null; then
	RGID=4321
	cp /etc/group "$TMP/group" && echo "rethink:x:$RGID:" >>"$TMP/group"
	unshare --mount sh -c 'mount --bind "$1" /etc/group && exec "$2" "$3" ok' sh "$TMP/group" "$FAKE" "$SOCK" \
		2>>"$TMP/fake.log" &
	FAKE_PID=$!
	if t_wait_for 10 test -S "$SOCK"; then
		t_check "group rethink: the socket is the group's, mode 0660" \
			test "$(stat -c '%g %a' "$SOCK")" = "$RGID 660"
		setpriv --reuid=65534 --regid=$RGID --clear-groups "$CTL" --socket="$SOCK" --json status >"$TMP/out" 2>"$TMP/err"
		RC=$?; ERR=$(cat "$TMP/err")
		expect "group rethink: a member may use the socket" 0
		setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" --socket="$SOCK" --json status >"$TMP/out" 2>"$TMP/err"
		RC=$?; ERR=$(cat "$TMP/err")
		expect "group rethink: others may not" 1 "Permission denied"
	else
		t_fail "stand-in agent with group rethink starts"
	fi
	stop_fake
fi

# --- error replies ------------------------------------------------------------------------
start_fake "$SOCK" error || t_fail "stand-in agent (errors) starts"
run --socket="$SOCK" qos
expect "error reply: exit 1 with its description and code" 1 'Command "qos" failed: Agent is starting (error 503)'
t_check "error reply: nothing on stdout" test -z "$OUT"
run --socket="$SOCK" --json status
expect "error reply with --json: exit 1 too" 1 "Agent is starting"
stop_fake

# --- an agent that never answers -------------------------------------------------------------
start_fake "$SOCK" silent || t_fail "stand-in agent (silent) starts"
run --socket="$SOCK" --timeout=0.3 qos
expect "silent agent: exit 1 after the timeout" 1 'Timed out waiting for rethink-agent to answer "qos"'
stop_fake

t_done
