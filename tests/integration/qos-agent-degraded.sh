#!/usr/bin/env bash
# End to end with real TCP traffic and real loss: rethink-agent's sock_ops
# program measures a TCP stream from its cgroup across a veth pair; nftables
# on the far end drops a share of the segments. The link must become
# DEGRADED (a journal entry with QOS_STATE=degraded and the promised
# fields), the downloads gate must close while registration stays open, and
# once the loss stops the link must recover. Periodic samples carry the
# tc traffic rates.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
AGENT=$BUILD/rethink-agent
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root"
[ -x "$AGENT" ] || t_skip_all "no $AGENT"
for c in jq python3 nft; do
	command -v $c >/dev/null || t_skip_all "needs $c"
done
CGROOT=$(awk '{for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break }}' \
	/proc/self/mountinfo)
[ -n "$CGROOT" ] || t_skip_all "no cgroup2 mount"

NSA=rtag-deg-$$-a
NSB=rtag-deg-$$-b
DIR=$(mktemp -d /tmp/rtag-deg.XXXXXX)
CG=$CGROOT/rtag-deg-$$
LOG=$DIR/log
AGENT_PID=
SERVER_PID=
CLIENT_PID=

t_cleanup "rm -rf '$DIR'"
t_cleanup "rmdir '$CG'"
t_cleanup "ip netns del $NSA"
t_cleanup "ip netns del $NSB"
t_cleanup '[ -n "$AGENT_PID" ] && kill $AGENT_PID && sleep 0.5 && kill -KILL $AGENT_PID'
t_cleanup '[ -n "$SERVER_PID" ] && kill $SERVER_PID'
t_cleanup '[ -n "$CLIENT_PID" ] && kill $CLIENT_PID'

ip netns add "$NSA" && ip netns add "$NSB" || t_skip_all "cannot create network namespaces"
mkdir "$CG" || t_skip_all "cannot create a cgroup"
ip link add rtag0 netns "$NSA" type veth peer name rtag1 netns "$NSB"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" addr add 10.87.0.1/24 dev rtag0
ip -n "$NSB" addr add 10.87.0.2/24 dev rtag1
ip -n "$NSA" link set rtag0 up
ip -n "$NSB" link set rtag1 up
ip -n "$NSA" route add default via 10.87.0.2

# Short hysteresis so the test is quick; the thresholds are what the loss
# below clearly exceeds and a clean veth never reaches.
cat >"$DIR/agent.conf" <<EOF
[Interfaces]
Watch=rtag*
[QoS]
RetransmitThresholdPerMille=20
RtoThreshold=3
RtoWindowSec=5
DegradeAfterSamples=2
DegradeAfterSec=1
RecoverAfterSamples=2
RecoverAfterSec=2
PollIntervalSec=1
SampleIntervalSec=1
[BPF]
CgroupPath=$CG
EOF

RETHINK_LOG_TARGET=json nsenter --net=/run/netns/"$NSA" "$AGENT" --config="$DIR/agent.conf" \
	--control-socket="$DIR/agent.sock" 2>"$LOG" &
AGENT_PID=$!

has_entry() { jq -e -s "map(select($1)) | length > 0" "$LOG" >/dev/null 2>&1; }
LINK_ID=4e80148f069a47fc9609e498c2a844ee
GATE_ID=35c7ca176a7444729af06ce0389270be
SAMPLE_ID=4691d80f441a4dbc84b2afae76d58378
BPF_ID=44e45b99a3e54a8dbb8fab27c92cef07

t_wait_for 10 has_entry '.MESSAGE_ID == "77a2b83a1e16477a9c09a321c03db2ad"' || {
	t_fail "agent started"; t_done; exit 1
}
has_entry ".MESSAGE_ID == \"$BPF_ID\"" && t_skip_all "eBPF unavailable: $(jq -r "select(.MESSAGE_ID == \"$BPF_ID\") | .QOS_REASON" "$LOG")"
t_ok "agent started with eBPF"

# A sink in B, and a sender in A inside the measured cgroup.
nsenter --net=/run/netns/"$NSB" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.87.0.2", 5999)); s.listen(8)
while True:
    c, _ = s.accept()
    while c.recv(65536):
        pass
' &
SERVER_PID=$!
sleep 0.5
nsenter --net=/run/netns/"$NSA" sh -c 'echo $$ >"$0/cgroup.procs" && exec python3 -c "
import socket, time
buf = b\"x\" * 16384
while True:
    try:
        s = socket.create_connection((\"10.87.0.2\", 5999), timeout=5)
        while True:
            s.sendall(buf)
            time.sleep(0.002)
    except OSError:
        time.sleep(0.2)
"' "$CG" &
CLIENT_PID=$!

rates() { has_entry ".MESSAGE_ID == \"$SAMPLE_ID\" and .INTERFACE == \"rtag0\" and (.QOS_TX_BPS | tonumber) > 100000"; }
t_check "samples show tc tx rate" t_wait_for 10 rates

# 30 % loss of what reaches B.
ip netns exec "$NSB" nft -f - <<EOF
table inet rtagdeg {
	chain in {
		type filter hook prerouting priority -300;
		tcp dport 5999 numgen random mod 100 < 30 drop
	}
}
EOF

DEGRADED=".MESSAGE_ID == \"$LINK_ID\" and .INTERFACE == \"rtag0\" and .QOS_STATE == \"degraded\""
if t_wait_for 20 has_entry "$DEGRADED"; then t_ok "loss -> degraded entry"; else t_fail "loss -> degraded entry"; fi
ENTRY=$(jq -c -s "map(select($DEGRADED)) | first" "$LOG")
echo "# $(jq -r .MESSAGE <<<"$ENTRY")"
t_check "degraded: PRIORITY warning" test "$(jq -r .PRIORITY <<<"$ENTRY")" = 4
t_check "degraded: QOS_PREV_STATE online" test "$(jq -r .QOS_PREV_STATE <<<"$ENTRY")" = online
t_check "degraded: reason names retransmits or rto" \
	grep -qE 'retransmits|rto' <<<"$(jq -r .QOS_REASON <<<"$ENTRY")"
t_check "degraded: evidence in the fields" test \
	"$(jq -r '((.QOS_RETRANS_PER_MILLE | tonumber) > 20) or ((.QOS_RTO_EVENTS | tonumber) >= 3)' <<<"$ENTRY")" = true
for f in QOS_RTT_US QOS_RX_BPS QOS_TX_BPS; do
	t_check "degraded: has $f" jq -e "has(\"$f\")" <<<"$ENTRY" >/dev/null
done
t_check "downloads gate closed: degraded" has_entry \
	".MESSAGE_ID == \"$GATE_ID\" and .QOS_GATE == \"downloads\" and .QOS_GATE_OPEN == \"no\" and .QOS_REASON == \"degraded\""
t_check "registration gate not closed" eval "! has_entry '.MESSAGE_ID == \"$GATE_ID\" and .QOS_GATE == \"registration\" and .QOS_GATE_OPEN == \"no\"'"

ip netns exec "$NSB" nft delete table inet rtagdeg
RECOVERED=".MESSAGE_ID == \"$LINK_ID\" and .INTERFACE == \"rtag0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"degraded\""
t_check "loss gone -> recovered" t_wait_for 30 has_entry "$RECOVERED"

kill $CLIENT_PID 2>/dev/null; CLIENT_PID=
if command -v bpftool >/dev/null; then
	t_check "sock_ops attached to the configured cgroup" eval "bpftool cgroup show '$CG' | grep -q sock_ops"
fi
kill -TERM $AGENT_PID
exited() { ! kill -0 $AGENT_PID 2>/dev/null; }
t_check "exits on SIGTERM" t_wait_for 5 exited
AGENT_PID=
if command -v bpftool >/dev/null; then
	t_check "no sock_ops program left on the cgroup" eval "! bpftool cgroup show '$CG' | grep -q sock_ops"
fi

t_done
