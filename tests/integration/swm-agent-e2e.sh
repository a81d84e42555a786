#!/usr/bin/env bash
# End to end in the real rethink-agent, in network namespaces of our own:
# the QoS downloads gate from real netlink state drives a real HTTP/2
# package download (the package server plays the domain on loopback);
# a link going down pauses it and keeps the partial, the link coming back
# resumes it with Range. Then consent, install, activation, a SIGKILL of
# the agent (the component dies with it and comes back once), uninstall.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
AGENT=$BUILD/rethink-agent
SERVER=$BUILD/tests/helpers/swm-pkg-server
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
[ -x "$AGENT" ] || t_skip_all "no $AGENT"
[ -x "$SERVER" ] || t_skip_all "no $SERVER"
for tool in ip jq nsenter python3; do
	command -v "$tool" >/dev/null || t_skip_all "needs $tool"
done

ID=$$
NSA=rtsw-dev-$ID
NSB=rtsw-peer-$ID
DIR=$(mktemp -d /tmp/rtsw-e2e.XXXXXX)
NAME=rtsw-e2e
SOCK=$DIR/agent.sock
LOG=$DIR/agent.log
AGENT_PID=
SERVER_PID=
t_cleanup "rm -rf '$DIR'"
t_cleanup "ip netns del $NSA"
t_cleanup "ip netns del $NSB"
t_cleanup '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID'
t_cleanup '[ -n "$SERVER_PID" ] && kill $SERVER_PID'

ip netns add "$NSA" && ip netns add "$NSB" || t_skip_all "cannot create network namespaces"
ip link add rtsw0 netns "$NSA" type veth peer name rtsw0p netns "$NSB"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" addr add 10.232.0.2/24 dev rtsw0
ip -n "$NSB" addr add 10.232.0.1/24 dev rtsw0p
ip -n "$NSA" link set rtsw0 up
ip -n "$NSB" link set rtsw0p up
ip -n "$NSA" route add default via 10.232.0.1
# nsenter execs the program: $! is the program itself, not a subshell.
IN_DEV=(nsenter --net=/run/netns/"$NSA")

{
	printf '#!/bin/sh\nwhile :; do sleep 5; done\n'
	head -c $((1024 * 1024 - 40)) /dev/zero | tr '\0' '#'
	printf '\n'
} >"$DIR/pkg"
mkdir -p "$DIR/srv"
"${IN_DEV[@]}" "$SERVER" --file="$DIR/pkg" --name="$NAME" --out="$DIR/srv" --chunk=8192 --interval-ms=4 \
	>"$DIR/srv/stdout" 2>"$DIR/srv/stderr" &
SERVER_PID=$!
t_wait_for 10 grep -q '^PORT=' "$DIR/srv/stdout" || { t_fail "package server starts"; t_done; exit 1; }
PORT=$(sed -n 's/^PORT=//p' "$DIR/srv/stdout")

cat >"$DIR/ctl.py" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
req = {"id": 1, "command": sys.argv[2]}
if len(sys.argv) > 3:
    req["args"] = json.loads(sys.argv[3])
s.sendall(json.dumps(req).encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode().strip())
PY
ctl() { python3 "$DIR/ctl.py" "$SOCK" "$@"; }
comp() { ctl components | jq -r ".result.components[] | select(.name == \"$NAME\") | $1"; }
is_state() { [ "$(comp .state 2>/dev/null)" = "$1" ]; }
gate_open() { [ "$(ctl qos | jq -r .result.gates.downloads.open)" = "$1" ]; }
part_size() { stat -c %s "$DIR/state/software/downloads/$NAME.part" 2>/dev/null || echo 0; }
running() { pgrep -f "$DIR/state/software/installed/$NAME/$NAME" | wc -l; }
has_entry() { jq -e -s "map(select($1)) | length > 0" "$LOG" >/dev/null 2>&1; }

# The domain is the package server on the namespace's loopback; its
# registration endpoint does not exist, which only makes registration retry.
start() {
	RETHINK_LOG_TARGET=json RETHINK_LOG_LEVEL=info "${IN_DEV[@]}" "$AGENT" --bpf=no --watch='rtsw*' \
		--recover-after-sec=0 --recover-after-samples=1 --poll-interval-sec=1 \
		--control-socket="$SOCK" --state-directory="$DIR/state" \
		--trusted-publishers="$DIR/srv/publishers" --domain-url="http://127.0.0.1:$PORT" \
		2>>"$LOG" &
	AGENT_PID=$!
	t_wait_for 10 test -S "$SOCK"
}

t_check "agent starts" start
t_check "downloads gate opens (online)" t_wait_for 15 gate_open true
REPLY=$(ctl install "{\"descriptor\": $(cat "$DIR/srv/descriptor.json")}")
t_check "install accepted" test "$(jq -r .result.component.state <<<"$REPLY")" = DOWNLOAD_STARTED
grown() { [ "$(part_size)" -ge 131072 ]; }
t_check "download runs" t_wait_for 20 grown

ip -n "$NSA" link set rtsw0 down
t_check "link down closes the gate" t_wait_for 10 gate_open false
t_check "download paused (journal)" t_wait_for 5 has_entry \
	".MESSAGE_ID == \"b15dac948e4c4ccb8945e9669d97a2bf\" and .SWM_DOWNLOAD == \"paused\""
P1=$(part_size)
sleep 0.5
P2=$(part_size)
t_check "partial kept and not growing while closed ($P2 bytes)" test "$P1" -eq "$P2" -a "$P2" -gt 0
t_check "still DOWNLOAD_STARTED" is_state DOWNLOAD_STARTED

ip -n "$NSA" link set rtsw0 up
# The kernel dropped the default route with the link.
ip -n "$NSA" route replace default via 10.232.0.1
t_check "link up opens the gate" t_wait_for 15 gate_open true
t_check "delivered" t_wait_for 30 is_state DELIVERED
t_check "resumed with Range from the partial" grep -q "range=bytes=$P2- if-range=\"" "$DIR/srv/requests.log"
t_check "result 3" test "$(comp .result)" = 3

ctl accept "{\"name\": \"$NAME\"}" >/dev/null
t_check "accept installs" is_state INSTALLED
t_check "installed bytes are the package" cmp -s "$DIR/pkg" "$DIR/state/software/installed/$NAME/$NAME"
ctl activate "{\"name\": \"$NAME\"}" >/dev/null
up() { [ "$(running)" -eq 1 ]; }
t_check "activate runs it" t_wait_for 10 up
PID1=$(pgrep -f "$DIR/state/software/installed/$NAME/$NAME")

kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
gone() { ! kill -0 "$PID1" 2>/dev/null; }
t_check "the component dies with the agent" t_wait_for 10 gone
rm -f "$SOCK"
t_check "agent restarts" start
t_check "active component started again, once" t_wait_for 10 up
t_check "still installed and active" test "$(comp '.state + " " + (.active | tostring)')" = "INSTALLED true"

ctl uninstall "{\"name\": \"$NAME\"}" >/dev/null
none() { [ "$(running)" -eq 0 ]; }
t_check "uninstall stops it" t_wait_for 10 none
t_check "nothing left installed" test -z "$(ls -A "$DIR/state/software/installed")"
t_check "journal: every state of the component" bash -c "for s in DOWNLOAD_STARTED DOWNLOADED DELIVERED INSTALLING INSTALLED UNINSTALLING; do jq -e -s \"map(select(.MESSAGE_ID == \\\"eaf2bc61d6ba4790acaa4b16191f8299\\\" and .SWM_STATE == \\\"\$s\\\")) | length > 0\" '$LOG' >/dev/null || exit 1; done"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=

t_done
