#!/usr/bin/env bash
# Degraded mode: started without the capabilities eBPF needs (CAP_BPF,
# CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_PERFMON dropped from the bounding set,
# so root gets none of them), the agent still works on netlink alone, says
# so once, and reports it on the control socket.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/qos-harness.bash"

command -v setpriv >/dev/null || t_skip_all "setpriv is missing"

q_setup_net || { t_fail "network namespaces set up"; t_done; exit; }
q_setup_cgroup || { t_fail "cgroup set up"; t_done; exit; }
q_write_config
q_start_agent setpriv --bounding-set=-bpf,-sys_admin,-net_admin,-perfmon --inh-caps=-all -- ||
	{ t_fail "agent starts without BPF capabilities"; t_done; exit; }
t_ok "agent starts without BPF capabilities"

# CAP_NET_ADMIN is bit 12, CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39.
caps_dropped() {
	local eff
	eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$Q_AGENT_PID/status") || return 1
	(( (0x$eff >> 12 & 1) == 0 && (0x$eff >> 21 & 1) == 0 && (0x$eff >> 38 & 1) == 0 && (0x$eff >> 39 & 1) == 0 ))
}
t_check "the agent process really lacks the capabilities" caps_dropped

t_check "qos: bpf.enabled is false with a reason" q_jq '.bpf.enabled == false and (.bpf.reason | length) > 0'
status_json() { "$CTL" --socket="$Q_SOCK" --json status; }
t_check "status: bpf is netlink-only with a reason" \
	sh -c '"$0" --socket="$1" --json status | jq -e ".bpf == \"netlink-only\" and (.bpf_reason | length) > 0" >/dev/null' "$CTL" "$Q_SOCK"
t_check "human output says netlink-only" sh -c '"$0" --socket="$1" qos | grep -q "BPF: netlink-only"' "$CTL" "$Q_SOCK"
q_wait_check "netlink still works: rtct0 online, gates open" 15 \
	q_jq '(.interfaces[] | select(.name == "rtct0") | .state == "online") and .gates.downloads.open and .gates.registration.open'

ip -n "$Q_DEV" link set rtct0 down
q_wait_check "link down: rtct0 offline (link-down), gates closed" 15 \
	q_jq '(.interfaces[] | select(.name == "rtct0") | .state == "offline" and .reason == "link-down") and .overall.state == "offline" and (.gates.downloads.open | not) and (.gates.registration.open | not)'
t_check "link down: transition logged" q_log_has \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"offline\""
ip -n "$Q_DEV" link set rtct0 up
t_wait_for 10 q_link_up rtct0
ip -n "$Q_DEV" route replace default via 10.231.0.1 dev rtct0
q_wait_check "link up: online again" 15 q_iface_is rtct0 online

# A configuration reload must not repeat the netlink-only entry.
kill -HUP "$Q_AGENT_PID"
q_wait_check "reload (SIGHUP) logged" 10 q_log_has ".MESSAGE_ID == \"$MID_RELOADED\""
t_check "still answering after the reload, still netlink-only" q_jq '.bpf.enabled == false'

t_check "netlink-only entry logged exactly once" test "$(q_log_count ".MESSAGE_ID == \"$MID_BPF_UNAVAILABLE\"")" -eq 1
t_check "netlink-only entry has a reason and warning priority or more" q_log_has \
	".MESSAGE_ID == \"$MID_BPF_UNAVAILABLE\" and (.QOS_REASON | length) > 0 and (.PRIORITY | tonumber) <= 4"
t_check "started entry says netlink only" q_log_has \
	".MESSAGE_ID == \"$MID_STARTED\" and (.MESSAGE | test(\"netlink\"))"

q_stop_agent
t_check "agent exits 0 on SIGTERM" test "${Q_AGENT_RC:-1}" -eq 0

t_done
