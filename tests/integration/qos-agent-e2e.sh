#!/usr/bin/env bash
# End to end: the real rethink-agent in a private network namespace, with
# real netlink, real eBPF and a private NOTIFY_SOCKET. Checks readiness,
# the journal fields of a link-down transition, the gates, a bad and a good
# reload, and that SIGTERM leaves no tc filter of ours behind.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
AGENT=$BUILD/rethink-agent
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root"
[ -x "$AGENT" ] || t_skip_all "no $AGENT"
command -v jq >/dev/null || t_skip_all "needs jq"
command -v python3 >/dev/null || t_skip_all "needs python3"

NSA=rtag-e2e-$$-a
NSB=rtag-e2e-$$-b
DIR=$(mktemp -d /tmp/rtag-e2e.XXXXXX)
LOG=$DIR/log
NOTIFY=$DIR/notify.log
CONF=$DIR/agent.conf
SOCK=$DIR/agent.sock
AGENT_PID=
LISTENER_PID=

t_cleanup "rm -rf '$DIR'"
t_cleanup "ip netns del $NSA"
t_cleanup "ip netns del $NSB"
t_cleanup '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID'
t_cleanup '[ -n "$LISTENER_PID" ] && kill $LISTENER_PID'

ip netns add "$NSA" && ip netns add "$NSB" || t_skip_all "cannot create network namespaces"
ip link add rtag0 netns "$NSA" type veth peer name rtag1 netns "$NSB"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" addr add 10.88.0.1/24 dev rtag0
ip -n "$NSB" addr add 10.88.0.2/24 dev rtag1
ip -n "$NSA" link set rtag0 up
ip -n "$NSB" link set rtag1 up
ip -n "$NSA" route add default via 10.88.0.2

# The service manager's end of NOTIFY_SOCKET: one line per datagram,
# newlines inside a datagram become '|'.
python3 - "$DIR/notify" "$NOTIFY" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
PY
LISTENER_PID=$!
t_wait_for 5 test -S "$DIR/notify" || { t_fail "notify listener"; t_done; exit 1; }
: >"$NOTIFY"

cat >"$CONF" <<EOF
[Interfaces]
Watch=rtag*
[QoS]
SampleIntervalSec=0
EOF

# nsenter rather than `ip netns exec`: the latter remounts /sys, which would
# hide the cgroup2 mount the sock_ops program attaches to.
NOTIFY_SOCKET=$DIR/notify WATCHDOG_USEC=2000000 RETHINK_LOG_TARGET=json RETHINK_LOG_LEVEL=info \
	nsenter --net=/run/netns/"$NSA" "$AGENT" --config="$CONF" --control-socket="$SOCK" 2>"$LOG" &
AGENT_PID=$!

# has_entry JQ-FILTER: some JSON line of the log matches.
has_entry() { jq -e -s "map(select($1)) | length > 0" "$LOG" >/dev/null 2>&1; }
notified() { grep -q -- "$1" "$NOTIFY"; }
qos_cmd() {
	python3 - "$SOCK" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(json.dumps({"id": 1, "command": sys.argv[2]}).encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(json.dumps(json.loads(buf)["result"]))
PY
}

LINK_ID=4e80148f069a47fc9609e498c2a844ee
OVERALL_ID=ebe79763aa994dfda161dc0901fb3572
GATE_ID=35c7ca176a7444729af06ce0389270be
BPF_ID=44e45b99a3e54a8dbb8fab27c92cef07
RELOAD_FAILED_ID=2512783824ea4aab82c62c7173ec76ac
RELOADED_ID=a1825f53291e4d6f9bf43b83343e379d

if t_wait_for 10 notified 'READY=1'; then t_ok "READY=1 sent"; else t_fail "READY=1 sent"; fi
t_check "STATUS= lines while starting" notified 'STATUS=Starting'
t_check "agent alive" kill -0 $AGENT_PID
watchdog_pings() { [ "$(grep -c 'WATCHDOG=1' "$NOTIFY")" -ge 2 ]; }
t_check "watchdog pings with WATCHDOG_USEC set" t_wait_for 5 watchdog_pings

BPF=1
if has_entry ".MESSAGE_ID == \"$BPF_ID\""; then
	BPF=0
	echo "# eBPF unavailable here: $(jq -r "select(.MESSAGE_ID == \"$BPF_ID\") | .MESSAGE" "$LOG")"
fi

tc_ours() { ip netns exec "$NSA" tc filter show dev rtag0 "$1" 2>/dev/null | grep -q 'qos_tc_'; }
if [ $BPF = 1 ]; then
	t_check "tc ingress filter attached before READY" tc_ours ingress
	t_check "tc egress filter attached before READY" tc_ours egress
fi

t_check "rtag0 online at start" has_entry \
	".MESSAGE_ID == \"$LINK_ID\" and .INTERFACE == \"rtag0\" and .QOS_STATE == \"online\""
t_check "downloads gate opened at start" has_entry \
	".MESSAGE_ID == \"$GATE_ID\" and .QOS_GATE == \"downloads\" and .QOS_GATE_OPEN == \"yes\""

t_check "mobility entry: primary is rtag0" has_entry \
	".MESSAGE_ID == \"f8de35b4b8cd42de88a41317ea61e808\" and .INTERFACE == \"rtag0\" and .QOS_NEW_ADDRESS == \"10.88.0.1/24\""

STATUS=$(qos_cmd status)
t_check "status: online" test "$(jq -r .qos <<<"$STATUS")" = online
t_check "status: one watched interface" test "$(jq -r .interfaces <<<"$STATUS")" = 1
t_check "status: status_text is the STATUS= line" notified "STATUS=$(jq -r .status_text <<<"$STATUS")"

# --- link down -> OFFLINE, with every field ---
ip -n "$NSA" link set rtag0 down
OFFLINE=".MESSAGE_ID == \"$LINK_ID\" and .INTERFACE == \"rtag0\" and .QOS_STATE == \"offline\""
if t_wait_for 5 has_entry "$OFFLINE"; then t_ok "link down -> offline entry"; else t_fail "link down -> offline entry"; fi
ENTRY=$(jq -c -s "map(select($OFFLINE)) | first" "$LOG")
t_check "offline: PRIORITY warning" test "$(jq -r .PRIORITY <<<"$ENTRY")" = 4
t_check "offline: QOS_PREV_STATE online" test "$(jq -r .QOS_PREV_STATE <<<"$ENTRY")" = online
t_check "offline: QOS_REASON link-down" test "$(jq -r .QOS_REASON <<<"$ENTRY")" = link-down
for f in MESSAGE QOS_RTT_US QOS_RETRANS_PER_MILLE QOS_RX_BPS QOS_TX_BPS; do
	t_check "offline: has $f" jq -e "has(\"$f\")" <<<"$ENTRY" >/dev/null
done
t_check "overall offline entry" has_entry ".MESSAGE_ID == \"$OVERALL_ID\" and .QOS_STATE == \"offline\""
t_check "registration gate closed" has_entry \
	".MESSAGE_ID == \"$GATE_ID\" and .QOS_GATE == \"registration\" and .QOS_GATE_OPEN == \"no\" and .QOS_REASON == \"offline\""
QOS=$(qos_cmd qos)
t_check "qos: overall offline" test "$(jq -r .overall.state <<<"$QOS")" = offline
t_check "qos: downloads closed" test "$(jq -r .gates.downloads.open <<<"$QOS")" = false
t_check "qos: rtag0 reason link-down" test "$(jq -r '.interfaces[0].reason' <<<"$QOS")" = link-down

# --- back up (the kernel dropped the default route with the link) ---
ip -n "$NSA" link set rtag0 up
ip -n "$NSA" route replace default via 10.88.0.2
online_again() { [ "$(qos_cmd qos | jq -r .overall.state)" = online ]; }
t_check "back online after link up and route" t_wait_for 5 online_again

# --- bad reload: logged with the key, old config stays ---
cp "$CONF" "$DIR/good.conf"
printf '[Interfaces]\nWatch=rtag*\nMetered=rtag*\n[QoS]\nRttThresholdMs=abc\n' >"$CONF"
: >"$NOTIFY"
kill -HUP $AGENT_PID
if t_wait_for 5 has_entry ".MESSAGE_ID == \"$RELOAD_FAILED_ID\""; then
	t_ok "bad reload logged"
else
	t_fail "bad reload logged"
fi
t_check "bad reload names file, line and key" has_entry \
	".MESSAGE_ID == \"$RELOAD_FAILED_ID\" and (.MESSAGE | contains(\"agent.conf:5: [QoS] RttThresholdMs=abc: not a number\"))"
reload_notified() {
	local a b
	a=$(grep -n 'RELOADING=1' "$NOTIFY" | head -n 1 | cut -d: -f1)
	b=$(grep -n 'READY=1' "$NOTIFY" | tail -n 1 | cut -d: -f1)
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}
t_check "RELOADING=1, then READY=1" t_wait_for 5 reload_notified
t_check "RELOADING=1 carries MONOTONIC_USEC" notified 'RELOADING=1|.*MONOTONIC_USEC='
t_check "agent alive after bad reload" kill -0 $AGENT_PID
QOS=$(qos_cmd qos)
t_check "old config in force (rtag0 not metered)" test "$(jq -r '.interfaces[0].metered' <<<"$QOS")" = false
t_check "old config in force (downloads open)" test "$(jq -r .gates.downloads.open <<<"$QOS")" = true

# --- good reload: applied ---
printf '[Interfaces]\nWatch=rtag*\nMetered=rtag*\n[QoS]\nSampleIntervalSec=0\n' >"$CONF"
kill -HUP $AGENT_PID
t_check "good reload logged" t_wait_for 5 has_entry ".MESSAGE_ID == \"$RELOADED_ID\""
QOS=$(qos_cmd qos)
t_check "new config: rtag0 metered" test "$(jq -r '.interfaces[0].metered' <<<"$QOS")" = true
t_check "new config: downloads closed, metered" test "$(jq -r .gates.downloads.reason <<<"$QOS")" = metered
t_check "new config: registration still open" test "$(jq -r .gates.registration.open <<<"$QOS")" = true

# --- SIGTERM: clean stop, nothing left in the kernel ---
kill -TERM $AGENT_PID
exited() { ! kill -0 $AGENT_PID 2>/dev/null; }
t_check "exits on SIGTERM" t_wait_for 5 exited
wait $AGENT_PID
RC=$?
AGENT_PID=
t_check "exit status 0" test $RC -eq 0
t_check "STOPPING=1 sent" notified 'STOPPING=1'
t_check "no tc ingress filter of ours left" eval '! tc_ours ingress'
t_check "no tc egress filter of ours left" eval '! tc_ours egress'
t_check "control socket removed" test ! -e "$SOCK"

# --- a bad config at start: non-zero exit naming the key ---
printf '[Gate]\nDownloadsOnMetered=sometimes\n' >"$CONF"
OUT=$(RETHINK_LOG_TARGET=console nsenter --net=/run/netns/"$NSA" "$AGENT" --config="$CONF" \
	--control-socket="$SOCK" 2>&1)
RC=$?
t_check "bad config at start: non-zero exit" test $RC -ne 0
t_check "bad config at start: names the key" grep -q \
	'agent.conf:2: \[Gate\] DownloadsOnMetered=sometimes: not a boolean' <<<"$OUT"

t_done
