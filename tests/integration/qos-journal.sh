#!/usr/bin/env bash
# The agent's structured log: every QoS transition entry carries MESSAGE_ID,
# MESSAGE, PRIORITY, INTERFACE, QOS_STATE, QOS_PREV_STATE, QOS_REASON,
# QOS_RTT_US, QOS_RETRANS_PER_MILLE, QOS_RX_BPS and QOS_TX_BPS with sane
# values. No journal runs here, so the agent writes its entries as JSON
# lines on stderr (RETHINK_LOG_TARGET=json), with the fields the journal
# would get.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/qos-harness.bash"

CATALOG=$(dirname "$0")/../../units/rethink.catalog

q_setup_net || { t_fail "network namespaces set up"; t_done; exit; }
q_setup_cgroup || { t_fail "cgroup set up"; t_done; exit; }
q_write_config
q_start_agent || { t_fail "agent starts"; t_done; exit; }
t_ok "agent starts"
q_wait_check "rtct0 online" 15 q_iface_is rtct0 online

ip -n "$Q_DEV" link set rtct0 down
q_wait_check "link down seen" 15 q_iface_is rtct0 offline
ip -n "$Q_DEV" link set rtct0 up
t_wait_for 10 q_link_up rtct0
ip -n "$Q_DEV" route replace default via 10.231.0.1 dev rtct0
q_wait_check "link up seen" 15 q_iface_is rtct0 online
q_stop_agent

t_check "every log line is one JSON object" \
	sh -c 'jq -e -s "all(type == \"object\")" "$0" >/dev/null && [ "$(wc -l <"$0")" -eq "$(jq -c . "$0" | wc -l)" ]' "$Q_LOG"
t_check "every entry has MESSAGE, PRIORITY 0-7, SYSLOG_IDENTIFIER" \
	sh -c 'jq -e -s "all(.MESSAGE != null and (.PRIORITY | test(\"^[0-7]\$\")) and .SYSLOG_IDENTIFIER == \"rethink-agent\")" "$0" >/dev/null' "$Q_LOG"

# The fields of a transition entry, with their value checks.
fields_ok='
	(.MESSAGE_ID | test("^[0-9a-f]{32}$")) and
	(.MESSAGE | type == "string" and length > 0) and
	(.PRIORITY | test("^[0-7]$")) and
	(.INTERFACE | type == "string") and
	(.QOS_STATE | test("^(online|degraded|offline)$")) and
	(.QOS_PREV_STATE | test("^(online|degraded|offline)$")) and
	(.QOS_REASON | type == "string" and length > 0) and
	(.QOS_RTT_US | test("^[0-9]+$")) and
	(.QOS_RETRANS_PER_MILLE | test("^[0-9]+$")) and
	(.QOS_RX_BPS | test("^[0-9]+$")) and
	(.QOS_TX_BPS | test("^[0-9]+$"))'

down=".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"offline\" and .QOS_PREV_STATE == \"online\""
up=".MESSAGE_ID == \"$MID_LINK\" and .INTERFACE == \"rtct0\" and .QOS_STATE == \"online\" and .QOS_PREV_STATE == \"offline\" and .QOS_REASON == \"usable\""
t_check "link-down entry: all fields present and well-formed" q_log_has "$down and $fields_ok"
t_check "link-down entry: reason link-down, priority warning (4)" q_log_has "$down and .QOS_REASON == \"link-down\" and .PRIORITY == \"4\""
t_check "link-down entry: MESSAGE names the interface and state" q_log_has "$down and (.MESSAGE | test(\"rtct0\")) and (.MESSAGE | test(\"offline\"; \"i\"))"
t_check "link-up entry: all fields present, priority info (6)" q_log_has "$up and $fields_ok and .PRIORITY == \"6\""
t_check "overall entries: all fields present" q_log_has ".MESSAGE_ID == \"$MID_OVERALL\" and .QOS_STATE == \"offline\" and $fields_ok"
t_check "every transition entry is well-formed" \
	test "$(q_log_count ".MESSAGE_ID == \"$MID_LINK\" or .MESSAGE_ID == \"$MID_OVERALL\"")" -eq \
	"$(q_log_count "(.MESSAGE_ID == \"$MID_LINK\" or .MESSAGE_ID == \"$MID_OVERALL\") and $fields_ok")"
t_check "gate entries carry QOS_GATE and QOS_GATE_OPEN" q_log_has \
	".MESSAGE_ID == \"$MID_GATE\" and (.QOS_GATE | test(\"^(downloads|registration)$\")) and (.QOS_GATE_OPEN | test(\"^(yes|no)$\"))"

catalogued() {
	local id
	[ -f "$CATALOG" ] || return 1
	for id in $(q_log '.MESSAGE_ID != null' | jq -r .MESSAGE_ID | sort -u); do
		grep -q "^-- $id" "$CATALOG" || { echo "# $id not in the catalog"; return 1; }
	done
}
t_check "every MESSAGE_ID logged is in the journal catalog" catalogued

t_done
