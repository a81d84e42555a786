#!/usr/bin/env bash
# Loss on a link carrying TCP traffic: sock_ops sees the retransmits, the
# interface goes DEGRADED (downloads gate closed, registration open), and
# comes back to ONLINE only after the loss stops and stays stopped for the
# recovery hysteresis. The loss is made with nftables in the peer namespace
# (numgen random mod 100 < N drop); the traffic is iperf3, its client in the
# agent's sock_ops cgroup.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/qos-harness.bash"

for tool in iperf3 nft ss; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

LOSS_PERCENT=15
PORT=5201

q_setup_net || { t_fail "network namespaces set up"; t_done; exit; }
q_setup_cgroup || { t_fail "cgroup set up"; t_done; exit; }
# Recovery needs 4 clean samples over at least 4 s: long enough to see that
# it does not happen at once, short enough for a test.
q_write_config
sed -i 's/^RecoverAfterSec=.*/RecoverAfterSec=4/; s/^RecoverAfterSamples=.*/RecoverAfterSamples=4/' "$Q_CONF"
q_start_agent || { t_fail "agent starts"; t_done; exit; }
t_ok "agent starts"
t_check "eBPF is enabled (needed for retransmit counts)" q_jq '.bpf.enabled == true'

# Server in the peer namespace, client in the device namespace inside the
# agent's sock_ops cgroup.
nsenter --net="/run/netns/$Q_PEER" iperf3 -s -B 10.231.0.1 -p $PORT >"$Q_TMP/iperf3-server.log" 2>&1 &
SERVER_PID=$!
t_cleanup "kill $SERVER_PID"
server_listening() { nsenter --net="/run/netns/$Q_PEER" ss -Hltn "sport = :$PORT" | grep -q LISTEN; }
t_check "iperf3 server listening" t_wait_for 10 server_listening

start_client() {
	# A modest, steady rate: enough segments per poll interval to count
	# retransmits, little CPU on a shared machine.
	nsenter --net="/run/netns/$Q_DEV" sh -c \
		'echo $$ >"$1/cgroup.procs" && exec iperf3 -c 10.231.0.1 -p "$2" -t 600 -b 8M -i 0' \
		sh "$Q_CGROUP" "$PORT" >"$Q_TMP/iperf3-client.log" 2>&1 &
	CLIENT_PID=$!
	t_cleanup "kill $CLIENT_PID"
}
start_client

rtt_seen() { q_jq '.interfaces[] | select(.name == "rtct0") | .rtt_us > 0 and .tx_bps > 0'; }
q_wait_check "sock_ops and tc see the traffic (rtt_us, tx_bps > 0)" 20 rtt_seen
t_check "no loss yet: rtct0 online" q_iface_is rtct0 online

# --- loss on ----------------------------------------------------------------------
nft_peer() { nsenter --net="/run/netns/$Q_PEER" nft "$@"; }
nft_peer add table inet rtct &&
	nft_peer add chain inet rtct input '{ type filter hook input priority 0; policy accept; }' &&
	nft_peer add rule inet rtct input iifname rtct0p tcp dport $PORT numgen random mod 100 '<' $LOSS_PERCENT drop
t_check "loss rule installed ($LOSS_PERCENT%)" nft_peer list chain inet rtct input

q_wait_check "loss: rtct0 degraded" 30 q_iface_is rtct0 degraded
q_wait_check "loss: reason names retransmits or RTO" 5 \
	q_jq '.interfaces[] | select(.name == "rtct0") | .reason | test("retrans|rto")'
t_check "loss: retransmits counted" \
	q_jq '.interfaces[] | select(.name == "rtct0") | .retrans_per_mille > 0 or .rto_events > 0'
q_wait_check "loss: overall degraded, downloads closed, registration open" 10 \
	q_jq '.overall.state == "degraded" and (.gates.downloads.open | not) and .gates.registration.open'
t_check "loss: degraded transition logged with its reason" q_log_has \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"degraded\" and .QOS_PREV_STATE == \"online\" and (.QOS_REASON | test(\"retrans|rto\"))"
t_check "loss: downloads gate closure logged (degraded)" q_log_has \
	".MESSAGE_ID == \"$MID_GATE\" and .QOS_GATE == \"downloads\" and .QOS_REASON == \"degraded\""

# Let the loss go on for a few more polls: the state must hold.
sleep 3
t_check "loss goes on: still degraded (no flapping)" q_iface_is rtct0 degraded
t_check "loss goes on: no return to online logged" test "$(q_log_count \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"degraded\"")" -eq 0

# --- loss off ----------------------------------------------------------------------
nft_peer delete table inet rtct
monotonic_usec() {
	local ns
	ns=$(awk '/^now at [0-9]+ nsecs/ { print $3; exit }' /proc/timer_list 2>/dev/null)
	[[ $ns =~ ^[0-9]+$ ]] && echo $((ns / 1000))
}
LOSS_STOP_USEC=$(monotonic_usec)
# Recovery takes RecoverAfterSec of clean samples, so right after the loss
# stops the state is still degraded: a slow machine only makes that truer.
t_check "loss stopped: still degraded at once (hysteresis)" q_iface_is rtct0 degraded
# RTO events keep counting for RtoWindowSec (10 s by default), so recovery
# takes up to that plus RecoverAfterSec; the hang guard allows for it.
q_wait_check "loss stopped: back to online" 45 q_iface_is rtct0 online
t_check "loss stopped: recovery logged (online, was degraded)" q_log_has \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"degraded\""
t_check "loss stopped: exactly one recovery" test "$(q_log_count \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"degraded\"")" -eq 1
q_wait_check "loss stopped: overall online, gates open" 10 \
	q_jq '.overall.state == "online" and .gates.downloads.open and .gates.registration.open'

# The recovery was not early: the agent stamps transitions with
# CLOCK_MONOTONIC (QOS_MONOTONIC_USEC), which /proc/timer_list shows too.
# RecoverAfterSec=4 with 4 samples a second apart puts the return to online
# well over 2 s after the loss stopped; this is a lower bound, never a
# speed limit.
recovered_late_enough() {
	local o
	[[ $LOSS_STOP_USEC =~ ^[0-9]+$ ]] || return 0
	o=$(q_log ".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"degraded\"" | tail -n 1 | jq -r '.QOS_MONOTONIC_USEC')
	[[ $o =~ ^[0-9]+$ ]] || return 1
	echo "#   online $(( (o - LOSS_STOP_USEC) / 1000 )) ms after the loss stopped"
	[ $((o - LOSS_STOP_USEC)) -ge 2000000 ]
}
t_check "recovery came only after the hysteresis (>= 2 s after the loss stopped)" recovered_late_enough

t_done
