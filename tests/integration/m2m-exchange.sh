#!/bin/bash
# The M2M communication procedure end to end with the real binaries: a
# domain and two devices in network namespaces (scripts/m2m-lib.bash).
# Device A runs the context-producer hyperty and the messaging protostub;
# device B the context-consumer in two configurations (auto: peer to peer
# through the p2p protostub; pubsub: through the domain's Messaging
# Service) and both protostubs. All of it arrives by bootstrap orders with
# Alice's consent.
#
# Checks: hyperties on the bus with their addresses, the producer in the
# Global Registry with its local endpoint, values received on both paths
# are values the producer published, actuation over both paths, consumers
# without a valid token refused on both paths (401), a crashed component
# restarted and back in business, a producer that goes away seen by the
# consumer, the runtime APIs from rethinkctl (load-protostub), errors on
# the bus for bad messages.
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
for p in rethink-agent rethink-domain rethinkctl protostubs/messaging protostubs/p2p hyperties/context-producer \
	hyperties/context-consumer; do
	[ -x "$BUILD/$p" ] || t_skip_all "$p is not built"
done
for tool in ip jq nsenter openssl nghttp; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

M_P=m2mx$$
M_P=${M_P:0:8}
M_NET=$((60 + $$ % 40))
M_TMP=$(mktemp -d "/tmp/m2mx-XXXXXX")
chmod 0711 "$M_TMP"
M_LOG_LEVEL=debug
# Short registry entries, so a device that loses its link shows as
# disconnected within the test.
M_REGISTRY_LIFETIME=10
m2m_on_cleanup() { t_cleanup "$1"; }
t_cleanup "rm -rf '$M_TMP'"
[ -z "${M_KEEP:-}" ] || t_cleanup "cp -r '$M_TMP' '$M_KEEP'"
# shellcheck source=scripts/m2m-lib.bash
. "$(dirname "$0")/../../scripts/m2m-lib.bash"

# Component output (their own log lines) goes to the agent's stderr.
comp_log() { grep -a "^<[0-9]>$2: " "$M_TMP/$1/agent.log" | sed 's/^<[0-9]>[^:]*: //'; }
comp_has() { comp_log "$1" "$2" | grep -q -- "$3"; }
comp_count() { comp_log "$1" "$2" | grep -c -- "$3"; }
instances() { m2m_ctl "$1" --json instances; }
instance_of() { instances "$1" | jq -r --arg c "$2" '.instances[] | select(.component == $c) | .address'; }
instance_is() { instances "$1" | jq -e --arg c "$2" ".instances[] | select(.component == \$c) | $3" >/dev/null 2>&1; }
pid_of() { m2m_ctl "$1" --json components | jq -r --arg n "$2" '.components[] | select(.name == $n) | .pid // 0'; }

m2m_setup_net || { t_fail "network set-up"; t_done; exit 1; }
m2m_domain_init || { t_fail "domain set-up"; t_done; exit 1; }
m2m_start_domain || { t_fail "domain starts"; tail -n 20 "$M_DLOG"; t_done; exit 1; }
t_check "examples and protostubs published" m2m_publish_all
t_check "agent A starts" m2m_start_agent a
t_check "agent B starts" m2m_start_agent b
t_check "device A registered and claimed" m2m_claim a
t_check "device B registered and claimed" m2m_claim b
t_check "device A bootstrapped (messaging, context-producer) with consent" m2m_deploy a messaging context-producer
t_check "device B bootstrapped (messaging, p2p, two consumers) with consent" \
	m2m_deploy b messaging p2p context-consumer context-consumer-pubsub

# --- components on the bus ----------------------------------------------------------
t_check "producer on A's bus as a hyperty" m2m_wait 20 instance_is a context-producer \
	'.kind == "hyperty" and .connected and (.address | startswith("hyperty://'"$M_NAME"'/"))'
t_check "messaging protostub on A's bus as a runtime" m2m_wait 20 instance_is a messaging \
	'.kind == "protostub" and .connected and (.address | startswith("runtime://'"$M_NAME"'/"))'
PRODUCER=$(instance_of a context-producer)
t_check "producer offers its resources (temperature, switch)" m2m_wait 20 instance_is a context-producer \
	"(.resources | sort) == [\"ctxt://${PRODUCER#hyperty://}/switch\", \"ctxt://${PRODUCER#hyperty://}/temperature\"]"
t_check "producer registered in the Global Registry" m2m_wait 30 instance_is a context-producer '.registry == true'

# --- peer to peer -------------------------------------------------------------------
t_check "consumer found the producer with its local endpoint" m2m_wait 30 comp_has b context-consumer \
	"Found producer $PRODUCER (local endpoint https://$(m2m_dev_ip a):8444)"
t_check "consumer (auto) subscribed peer to peer" m2m_wait 30 comp_has b context-consumer \
	"Subscribed to ctxt://${PRODUCER#hyperty://}/temperature via p2p"
t_check "p2p protostub on B's bus" m2m_wait 10 instance_is b p2p '.connected and .key == "peer:https://'"$(m2m_dev_ip a)"':8444"'
t_check "values arrive peer to peer" m2m_wait 30 comp_has b context-consumer "temperature .* Cel from ctxt://${PRODUCER#hyperty://}/temperature via p2p"
# Every value the consumer logged is one the producer published.
values_match() {
	local v
	for v in $(comp_log b context-consumer | sed -n "s/^temperature \([0-9.-]*\) Cel from .* via $1.*/\1/p" | sort -u); do
		comp_log a context-producer | grep -q "^temperature $(printf '%.1f' "$v") Cel" || { echo "# $v not published"; return 1; }
	done
}
t_check "p2p values are the producer's" values_match p2p
CONSUMER=$(instance_of b context-consumer)
t_check "actuation peer to peer reaches the producer" m2m_wait 30 comp_has a context-producer "switch o[nf]* by $CONSUMER"
t_check "the consumer sees its switch accepted" m2m_wait 10 comp_has b context-consumer "switched ctxt://${PRODUCER#hyperty://}/switch: 20"

# --- publish/subscribe through the domain --------------------------------------------------------
t_check "consumer (pubsub) subscribed through the domain" m2m_wait 30 comp_has b context-consumer-pubsub \
	"Subscribed to ctxt://${PRODUCER#hyperty://}/temperature via pubsub"
t_check "values arrive through the domain" m2m_wait 30 comp_has b context-consumer-pubsub "temperature .* via pubsub"
values_match_pubsub() {
	local v
	for v in $(comp_log b context-consumer-pubsub | sed -n 's/^temperature \([0-9.-]*\) Cel from .* via pubsub.*/\1/p' | sort -u); do
		comp_log a context-producer | grep -q "^temperature $(printf '%.1f' "$v") Cel" || { echo "# $v not published"; return 1; }
	done
}
t_check "pubsub values are the producer's" values_match_pubsub
CONSUMER_PS=$(instance_of b context-consumer-pubsub)
t_check "actuation through the domain reaches the producer" m2m_wait 30 comp_has a context-producer "switch o[nf]* by $CONSUMER_PS"
t_check "the producer's answer comes back through the domain" m2m_wait 20 comp_has b context-consumer-pubsub "switched ctxt://${PRODUCER#hyperty://}/switch: 200"

# --- refusals -----------------------------------------------------------------------
lrd_status() {
	m2m_ns "$M_B" nghttp -v "$@" "https://$(m2m_dev_ip a):8444/rd/resources/${PRODUCER#hyperty://}/temperature" 2>&1 |
		sed -n 's/.*:status: \([0-9]*\).*/\1/p' | head -n 1
}
t_check "p2p: a consumer without a token is refused (401)" test "$(lrd_status -H "rethink-from: $CONSUMER")" = 401
t_check "p2p: a forged token is refused (401)" \
	test "$(lrd_status -H "rethink-from: $CONSUMER" -H 'authorization: Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA')" = 401
msg_status() {
	printf '{"runtime":"runtime://%s/00000000-0000-4000-8000-000000000001"}' "$M_NAME" >"$M_TMP/session.json"
	m2m_ns "$M_B" nghttp -v -d "$M_TMP/session.json" "$@" "$M_URL/msg/sessions" 2>&1 |
		sed -n 's/.*:status: \([0-9]*\).*/\1/p' | head -n 1
}
t_check "pubsub: a consumer without a token is refused (401)" test "$(msg_status)" = 401

# --- the runtime's services refuse what they must (a probe hyperty on A) ----------------------------
T=${PRODUCER#hyperty://}
jq -n --arg t "ctxt://$T/temperature" '{script: [
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["a/b"]}}},
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["x"], bogus: 1}}},
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["x", "x"]}}},
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["x"], actuators: ["y"]}}},
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["x"], acl: {"*": "rwx"}}}},
	{type: "read", to: "runtime", body: {attribute: "token"}},
	{type: "read", to: "runtime", body: {attribute: "nope"}},
	{type: "execute", to: "runtime", body: {attribute: "loadHyperty", value: {name: "nothing-here"}}},
	{type: "update", to: $t, body: {resource: $t, value: [{n: "temperature", v: 99}]}},
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["probe"]}}},
	{type: "create", to: "runtime", body: {attribute: "registration", value: {resources: ["probe"]}}}
]}' >"$M_TMP/probe-config.json"
probe_step() { comp_log a bus-probe | grep -q "^probe $1 $2 "; }
if m2m_publish hyperty bus-probe "$BUILD/tests/helpers/bus-probe" "$(cat "$M_TMP/probe-config.json")" &&
	m2m_deploy a bus-probe && m2m_wait 20 comp_has a bus-probe "probe done"; then
	t_check "registration: a resource name is one path segment (400)" probe_step 1 400
	t_check "registration: unknown fields are refused (400)" probe_step 2 400
	t_check "registration: a name listed twice is refused (400)" probe_step 3 400
	t_check "registration: actuators must be resources (400)" probe_step 4 400
	t_check "registration: a bad ACL is refused (400)" probe_step 5 400
	t_check "a hyperty gets no device token (403)" probe_step 6 403
	t_check "an unknown runtime resource is 404" probe_step 7 404
	t_check "loadHyperty of something not installed is 404" probe_step 8 404
	t_check "updating a sensor of another hyperty is refused (405)" probe_step 9 405
	t_check "a good registration is 200" probe_step 10 200
	t_check "the same registration again is 200 and changes nothing" probe_step 11 200
	t_check "... offered once" test "$(m2m_log a '.MESSAGE | test("bus-probe\\) offers")' | wc -l)" = 1
	t_check "the producer was not actuated by the probe" bash -c "! grep -aq 'switch .* by $(instance_of a bus-probe)' '$M_TMP/a/agent.log'"
else
	t_fail "the probe hyperty runs its script"
fi

# --- the runtime APIs from rethinkctl ------------------------------------------------------------
t_check "load-protostub for the peer answers the running stub's address" \
	test "$(m2m_ctl b load-protostub "https://$(m2m_dev_ip a):8444")" = "$(instance_of b p2p)"
t_check "load-protostub for another domain is refused" bash -c \
	"! $M_CTL --socket=$M_TMP/b/agent.sock load-protostub other.example 2>$M_TMP/err && grep -q 'own domain' $M_TMP/err"
t_check "load-hyperty by the descriptor's Catalogue URL answers the running hyperty" \
	test "$(m2m_ctl a load-hyperty "$M_URL/.well-known/hyperty/context-producer")" = "$PRODUCER"
t_check "load-hyperty of something not installed is 404" bash -c \
	"! $M_CTL --socket=$M_TMP/b/agent.sock load-hyperty nothing-here 2>$M_TMP/err && grep -q 'not installed' $M_TMP/err"

# --- a crash: restarted with backoff, back on the bus ------------------------------------------
OLD=$(pid_of a context-producer)
t_check "producer runs" test "${OLD:-0}" -gt 0
kill -9 "$OLD"
producer_restarted() { local p; p=$(pid_of a context-producer); [ "${p:-0}" -gt 0 ] && [ "$p" != "$OLD" ]; }
t_check "crashed producer restarted" m2m_wait 30 producer_restarted
t_check "restarted producer back on the bus under the same address" m2m_wait 20 instance_is a context-producer \
	".connected and .address == \"$PRODUCER\""
N=$(comp_count b context-consumer-pubsub "via pubsub")
more_values() { [ "$(comp_count b context-consumer-pubsub "via pubsub")" -gt "$N" ]; }
t_check "values flow again after the restart" m2m_wait 30 more_values

# --- the producer's device loses its link: disconnected after the entry's lifetime --------------
entry_status() {
	m2m_admin --json discover --resource=temperature 2>/dev/null |
		jq -e --arg u "$PRODUCER" --arg s "$1" '.hyperties[] | select(.url == $u) | .status == $s' >/dev/null
}
ip -n "$M_A" link set m2ma down
t_check "the domain's registry marks the entry disconnected" m2m_wait 40 entry_status disconnected
t_check "consumer hears the producer is disconnected" m2m_wait 40 comp_has b context-consumer-pubsub \
	"Producer $PRODUCER is disconnected\|Leaving producer $PRODUCER"
ip -n "$M_A" link set m2ma up
ip -n "$M_A" route replace default via "10.$M_NET.1.1" dev m2ma
t_check "the domain's registry lists the entry as live again once the link is back" m2m_wait 40 entry_status live

# --- producer gone ----------------------------------------------------------------------
t_check "producer deactivated by the admin" m2m_admin deactivate "$(m2m_endpoint a)" context-producer
t_check "producer left A's bus" m2m_wait 20 bash -c "! $M_CTL --socket=$M_TMP/a/agent.sock --json instances | jq -e '.instances[] | select(.component == \"context-producer\") | .connected' | grep -q true"
t_check "consumer sees the producer go" m2m_wait 60 comp_has b context-consumer "Leaving producer $PRODUCER\|Producer $PRODUCER is deleted\|Producer $PRODUCER is disconnected"

# --- stopping: the agent stops its components, nothing is left ------------------------------------
B_PID=${M_PID[b]}
m2m_stop_agent b
t_check "agent B stopped" m2m_pid_gone "$B_PID"
# (pgrep from this shell: a "bash -c" would find its own command line.)
no_components_of_b() { ! pgrep -f "$M_TMP/b/state/" >/dev/null; }
t_check "no component of B is left running" m2m_wait 10 no_components_of_b

t_done
