#!/usr/bin/env bash
# QoS state and gates follow the links of a device: link down/up, address
# removed/added, default route removed, interface renamed and deleted, and
# the primary interface moving to a second path. Asserted through
# `rethinkctl --json qos` and the agent's structured log.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/qos-harness.bash"

q_setup_net || { t_fail "network namespaces set up"; t_done; exit; }
q_setup_cgroup || { t_fail "cgroup set up"; t_done; exit; }
q_write_config
# The second path is metered: no downloads over it.
sed -i 's/^Watch=rtct\*$/Watch=rtct*\nMetered=rtct1/' "$Q_CONF"
q_start_agent || { t_fail "agent starts and answers on its control socket"; t_done; exit; }
t_ok "agent starts and answers on its control socket"

dev() { ip -n "$Q_DEV" "$@"; }

# q_all_open: both gates open; q_all_closed: both closed.
q_all_open() { q_jq '.gates.downloads.open and .gates.registration.open'; }
q_all_closed() { q_jq '(.gates.downloads.open | not) and (.gates.registration.open | not)'; }
q_online() { q_iface_is rtct0 online && q_overall_is online && q_all_open; }
# q_offline_because REASON: rtct0 and the device offline, gates closed.
q_offline_because() {
	q_jq ".interfaces[] | select(.name == \"rtct0\") | .state == \"offline\" and .reason == \"$1\"" &&
		q_overall_is offline && q_all_closed
}

q_wait_check "rtct0 online, overall online, gates open at start" 15 q_online
q_wait_check "rtct1 without a default route is offline (no-default-route)" 10 \
	q_jq '.interfaces[] | select(.name == "rtct1") | .state == "offline" and .reason == "no-default-route"'
q_wait_check "primary is rtct0 with its address" 10 \
	q_jq '.primary.interface == "rtct0" and .primary.address == "10.231.0.2/24"'
# status_is FILTER: FILTER is true on the `status` result.
status_is() {
	local out
	out=$("$CTL" --socket="$Q_SOCK" --json status) || return 1
	jq -e "$1" >/dev/null <<<"$out"
}
t_check "status: online, eBPF enabled, 2 interfaces, the agent's pid" \
	status_is ".qos == \"online\" and .bpf == \"enabled\" and .bpf_reason == \"\" and .interfaces == 2 and .pid == $Q_AGENT_PID and (.version | length) > 0 and .uptime_usec >= 0"
t_check "rtct0 lists its address and default route" \
	q_jq '.interfaces[] | select(.name == "rtct0") | (.addresses | index("10.231.0.2/24")) != null and .default_route and .oper_state == "up" and .carrier'

# --- link down / up -----------------------------------------------------------
dev link set rtct0 down
q_wait_check "link down: rtct0 offline (link-down), overall offline, gates closed" 15 q_offline_because link-down
t_check "link down: status says offline" status_is '.qos == "offline"'
t_check "link down: transition logged (offline, was online)" q_log_has \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"offline\" and .QOS_PREV_STATE == \"online\" and .QOS_REASON == \"link-down\""
t_check "link down: overall transition logged" q_log_has \
	".MESSAGE_ID == \"$MID_OVERALL\" and .QOS_STATE == \"offline\" and .QOS_PREV_STATE == \"online\""
t_check "link down: gate closures logged" q_log_has \
	".MESSAGE_ID == \"$MID_GATE\" and .QOS_GATE == \"downloads\" and .QOS_GATE_OPEN == \"no\""

dev link set rtct0 up
t_wait_for 10 q_link_up rtct0
# The kernel dropped the routes through the link while it was down.
dev route replace default via 10.231.0.1 dev rtct0
q_wait_check "link up: back online, gates open" 15 q_online
t_check "link up: transition to online logged" q_log_has \
	".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"offline\""

# --- address removed / added ------------------------------------------------------
dev addr del 10.231.0.2/24 dev rtct0
q_wait_check "address removed: rtct0 offline (no-address), gates closed" 15 q_offline_because no-address
t_check "address removed: not listed any more" \
	q_jq '.interfaces[] | select(.name == "rtct0") | (.addresses | index("10.231.0.2/24")) == null'
dev addr add 10.231.0.2/24 dev rtct0
dev route replace default via 10.231.0.1 dev rtct0
q_wait_check "address added: back online, gates open" 15 q_online

# --- default route removed ------------------------------------------------------------
dev route del default
q_wait_check "default route removed: rtct0 offline (no-default-route), gates closed" 15 \
	q_offline_because no-default-route
dev route add default via 10.231.0.1 dev rtct0
q_wait_check "default route back: online, gates open" 15 q_online

# --- mobility: the default route moves to the second path ---------------------------
t_check "rtct1 is metered, rtct0 is not" \
	q_jq '(.interfaces[] | select(.name == "rtct1") | .metered) and (.interfaces[] | select(.name == "rtct0") | .metered | not)'
dev route replace default via 10.231.1.1 dev rtct1
q_wait_check "route moved to the metered path: primary rtct1, online, registration open, downloads closed (metered)" 15 \
	q_jq '.primary.interface == "rtct1" and .overall.state == "online" and .gates.registration.open and (.gates.downloads.open | not) and .gates.downloads.reason == "metered"'
q_wait_check "route moved: rtct1 online, rtct0 offline (no-default-route)" 15 \
	q_jq '(.interfaces[] | select(.name == "rtct1") | .state == "online") and (.interfaces[] | select(.name == "rtct0") | .state == "offline")'
q_wait_check "route moved: mobility entry logged" 5 q_log_has \
	".MESSAGE_ID == \"$MID_MOBILITY\" and .INTERFACE == \"rtct1\""
dev route replace default via 10.231.0.1 dev rtct0
q_wait_check "route back on rtct0: primary rtct0, downloads open again" 15 \
	q_jq '.primary.interface == "rtct0" and .overall.state == "online" and .gates.downloads.open'
q_wait_check "route back on rtct0: mobility entry logged" 5 q_log_has \
	".MESSAGE_ID == \"$MID_MOBILITY\" and .INTERFACE == \"rtct0\" and .QOS_OLD_INTERFACE == \"rtct1\""

# --- rename ------------------------------------------------------------------------------
dev link set rtct0 down
dev link set rtct0 name rtct9
dev link set rtct9 up
t_wait_for 10 q_link_up rtct9
dev route replace default via 10.231.0.1 dev rtct9
q_wait_check "renamed: shows as rtct9, online" 15 q_iface_is rtct9 online
t_check "renamed: rtct0 is gone from qos" q_jq '[.interfaces[] | select(.name == "rtct0")] | length == 0'
q_wait_check "renamed: primary is rtct9, gates open" 15 \
	q_jq '.primary.interface == "rtct9" and .gates.downloads.open and .gates.registration.open'

# --- delete ------------------------------------------------------------------------------
dev link del rtct1
q_wait_check "deleted: rtct1 is gone from qos" 15 q_jq '[.interfaces[] | select(.name == "rtct1")] | length == 0'
t_check "deleted: the rest is unaffected" q_iface_is rtct9 online
dev link del rtct9
q_wait_check "all deleted: no interfaces, overall offline, gates closed" 15 \
	q_jq '(.interfaces | length) == 0 and .overall.state == "offline"'
q_wait_check "all deleted: gates closed" 5 q_all_closed

# The agent survived all of it and stops cleanly, removing its socket.
t_check "agent still answers status" q_ctl_ok
q_stop_agent
t_check "agent exits 0 on SIGTERM" test "${Q_AGENT_RC:-1}" -eq 0
t_check "control socket removed on exit" test ! -e "$Q_SOCK"

t_done
