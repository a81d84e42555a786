#!/usr/bin/env bash
# rethinkctl against the real rethink-agent: install a signed component
# from its descriptor, watch it in `components`, refuse it with reject,
# order it again and consent with accept (then activate, deactivate,
# uninstall); error replies come out with their description and exit 1.
# The agent runs in a network namespace of our own with a veth uplink, so
# its downloads gate opens; the package server plays the domain's catalogue
# there.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
CTL=$BUILD/rethinkctl
AGENT=$BUILD/rethink-agent
SERVER=$BUILD/tests/helpers/swm-pkg-server
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
for f in "$CTL" "$AGENT" "$SERVER"; do
	[ -x "$f" ] || t_skip_all "no $f"
done
for tool in ip jq nsenter; do
	command -v "$tool" >/dev/null || t_skip_all "needs $tool"
done

ID=$$
NSA=rtcl-dev-$ID
NSB=rtcl-peer-$ID
DIR=$(mktemp -d /tmp/rtcl-comp.XXXXXX)
SOCK=$DIR/agent.sock
AGENT_PID=
SERVER_PID=
t_cleanup "rm -rf '$DIR'"
t_cleanup "ip netns del $NSA"
t_cleanup "ip netns del $NSB"
t_cleanup '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID'
t_cleanup '[ -n "$SERVER_PID" ] && kill $SERVER_PID'

ip netns add "$NSA" && ip netns add "$NSB" || t_skip_all "cannot create network namespaces"
ip link add rtcl0 netns "$NSA" type veth peer name rtcl0p netns "$NSB"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" addr add 10.233.0.2/24 dev rtcl0
ip -n "$NSB" addr add 10.233.0.1/24 dev rtcl0p
ip -n "$NSA" link set rtcl0 up
ip -n "$NSB" link set rtcl0p up
ip -n "$NSA" route add default via 10.233.0.1
IN_DEV=(nsenter --net=/run/netns/"$NSA")

# run ARGS...: rethinkctl on the agent; sets OUT, ERR and RC.
run() {
	"$CTL" --socket="$SOCK" "$@" >"$DIR/out" 2>"$DIR/err" </dev/null
	RC=$?
	OUT=$(cat "$DIR/out")
	ERR=$(cat "$DIR/err")
}
expect() {
	local name=$1 rc=$2 err=${3:-}
	if [ "$RC" -eq "$rc" ] && { [ -z "$err" ] || [[ $ERR == *"$err"* ]]; }; then
		t_ok "$name"
	else
		t_fail "$name"
		echo "#   rc=$RC (wanted $rc) stdout: $OUT stderr: $ERR"
	fi
}
state_of() { "$CTL" --socket="$SOCK" --json components | jq -r ".components[] | select(.name == \"$1\") | .state"; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }
running() { pgrep -f "$DIR/state/software/installed/$1/$1" | wc -l; }

printf '#!/bin/sh\nwhile :; do sleep 5; done\n' >"$DIR/pkg"
mkdir -p "$DIR/srv"
"${IN_DEV[@]}" "$SERVER" --file="$DIR/pkg" --name=rtcl-probe --out="$DIR/srv" >"$DIR/srv/stdout" 2>&1 &
SERVER_PID=$!
t_wait_for 10 grep -q '^PORT=' "$DIR/srv/stdout" || { t_fail "package server starts"; t_done; exit 1; }
PORT=$(sed -n 's/^PORT=//p' "$DIR/srv/stdout")

RETHINK_LOG_TARGET=json RETHINK_LOG_LEVEL=info "${IN_DEV[@]}" "$AGENT" --bpf=no --watch='rtcl*' \
	--recover-after-sec=0 --recover-after-samples=1 --poll-interval-sec=1 \
	--control-socket="$SOCK" --state-directory="$DIR/state" \
	--trusted-publishers="$DIR/srv/publishers" --domain-url="http://127.0.0.1:$PORT" 2>>"$DIR/agent.log" &
AGENT_PID=$!
t_check "agent starts" t_wait_for 10 test -S "$SOCK"
gate_open() { [ "$("$CTL" --socket="$SOCK" --json qos | jq -r .gates.downloads.open)" = true ]; }
t_check "downloads gate opens" t_wait_for 15 gate_open

run components
expect "components: exit 0 with none" 0
t_check "components: says there are none" test "$OUT" = "No components."

run install "$DIR/srv/descriptor.json"
expect "install: exit 0" 0
t_check "install: one line with name and state" grep -Eq '^rtcl-probe: (DOWNLOAD_STARTED|DOWNLOADED|DELIVERED) \(result [0-9]+, .+\)$' "$DIR/out"
t_check "delivered (waits for consent)" t_wait_for 20 is_state rtcl-probe DELIVERED

run components
expect "components: exit 0" 0
t_check "components: header" grep -Eq '^NAME +VERSION +TYPE +STATE +RESULT +PROGRESS +PROCESS +REASON$' "$DIR/out"
t_check "components: delivered row with result 3 and full progress" \
	grep -Eq '^rtcl-probe +1\.0\.0 +hyperty +DELIVERED +3 +100% +- +waiting for consent$' "$DIR/out"
t_check "components: count line" grep -q '^1 component listed\.$' "$DIR/out"
run --json components
t_check "--json components: the agent's result" \
	jq -e '[.components[].name] == ["rtcl-probe"] and .components[0].result == 3' "$DIR/out" >/dev/null

# Refuse it first: back to INITIAL, nothing installed, no consent possible.
run reject rtcl-probe
expect "reject: exit 0" 0
t_check "reject: back to INITIAL" is_state rtcl-probe INITIAL
t_check "reject: nothing installed" test ! -e "$DIR/state/software/installed/rtcl-probe"
run accept rtcl-probe
expect "accept after reject: exit 1 with the agent's description" 1 'Command "accept" failed: cannot confirm rtcl-probe in state INITIAL (error 409)'
t_check "error reply: nothing on stdout" test -z "$OUT"
run reject nope
expect "unknown component: exit 1, 404" 1 'no component nope (error 404)'

# Ordered again, then accepted.
run install "$DIR/srv/descriptor.json"
expect "install again after reject: exit 0" 0
t_check "delivered again" t_wait_for 20 is_state rtcl-probe DELIVERED
run accept rtcl-probe
expect "accept: exit 0" 0
t_check "accept: prints the installed state" grep -Eq "^rtcl-probe: INSTALLED \(result [0-9]+, .+\)$" "$DIR/out" || echo "#   got: $OUT"
t_check "accept: the agent agrees" is_state rtcl-probe INSTALLED
t_check "accept: the package is in place" cmp -s "$DIR/pkg" "$DIR/state/software/installed/rtcl-probe/rtcl-probe"

run activate rtcl-probe
expect "activate: exit 0" 0
up() { [ "$(running rtcl-probe)" -eq 1 ]; }
t_check "activate: the component runs" t_wait_for 10 up
run --json activate rtcl-probe
t_check "--json activate: the component object" jq -e '.component.name == "rtcl-probe" and .component.active == true' "$DIR/out" >/dev/null
run deactivate rtcl-probe
expect "deactivate: exit 0" 0
down() { [ "$(running rtcl-probe)" -eq 0 ]; }
t_check "deactivate: it stops" t_wait_for 10 down

run uninstall rtcl-probe
expect "uninstall: exit 0" 0
t_check "uninstall: says removed" test "$OUT" = "rtcl-probe: removed"
run --json components
t_check "uninstall: gone" jq -e '.components == []' "$DIR/out" >/dev/null

echo '{"objectName": ' >"$DIR/broken.json"
run install "$DIR/broken.json"
expect "install of broken JSON: exit 1, names the file" 1 "$DIR/broken.json is not a JSON object"
jq -c '.signature = "AAAA"' "$DIR/srv/descriptor.json" >"$DIR/badsig.json"
run install "$DIR/badsig.json"
expect "install of a malformed descriptor: the agent's 400" 1 '(error 400)'
run install "$DIR/missing.json"
expect "install of a missing file: exit 1" 1 "Failed to read $DIR/missing.json"
run accept
expect "accept without a name: exit 2" 2 'takes 1 argument'

t_done
