#!/bin/bash
# Device registration end to end: the real rethink-agent in a device network
# namespace registers over TLS (a test CA made with the openssl command line)
# with the real rethink-domain in a peer namespace.
#
#   device ns $R_DEV                                 peer ns $R_PEER
#     rtrg0 10.232.0.2/24 <--- veth ---> rtrg0p 10.232.0.1/24
#     rtrg1 10.232.1.2/24 <--- veth ---> rtrg1p 10.232.1.1/24
#                                        lo: 10.232.9.1/32  (the domain)
#
# The domain's address is on neither link, so the device reaches it only
# through its default route, and moving the default route from rtrg0 to
# rtrg1 is a change of primary interface and address (mobility).
#
# Checks: the domain lists the device; link cut -> gate closed -> no
# registration request at all; link back -> registration at once; mobility
# -> an update at once; domain down -> retries with bounded growing delays;
# domain back after the registration expired -> 404 -> registered again.
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

AGENT=$BUILD/rethink-agent
DOMAIN=$BUILD/rethink-domain
CTL=$BUILD/rethinkctl

[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
for p in "$AGENT" "$DOMAIN" "$CTL"; do
	[ -x "$p" ] || t_skip_all "$(basename "$p") is not built"
done
for tool in ip jq nsenter nghttp openssl; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

R_DEV=rtrg-dev-$$
R_PEER=rtrg-peer-$$
R_TMP=$(mktemp -d "/tmp/rtrg-$T_NAME-XXXXXX")
R_LOG=$R_TMP/agent.log
R_SOCK=$R_TMP/agent.sock
R_ADDR=10.232.9.1
R_PORT=8443
R_URL=https://$R_ADDR:$R_PORT
R_AGENT_PID=
R_DOMAIN_PID=
t_cleanup "rm -rf '$R_TMP'"
[ -z "${R_KEEP_LOG:-}" ] || t_cleanup "cp \"$R_TMP/agent.log\" \"$R_KEEP_LOG\""

# Message IDs, from units/rethink.catalog.
MID_ATTEMPT=75396906fa7443fcbeb75714a147e9aa
MID_REGISTERED=c0f645c70a5841a78d906315b0c2c250
MID_UPDATED=aac165701b9a49ad88131c34c23b29fb
MID_FAILED=9b33030fa90f4d62b264c3a64f59f465
MID_LOST=b414fa33b58d493f87bfea07a689947b
MID_SUSPENDED=29fde05e310a4901b3fdb617dad411d6

r_dev() { nsenter --net="/run/netns/$R_DEV" "$@"; }
r_peer() { nsenter --net="/run/netns/$R_PEER" "$@"; }

r_setup_net() {
	ip netns add "$R_DEV" || return 1
	t_cleanup "ip netns del '$R_DEV'"
	ip netns add "$R_PEER" || return 1
	t_cleanup "ip netns del '$R_PEER'"
	ip -n "$R_DEV" link set lo up
	ip -n "$R_PEER" link set lo up
	ip -n "$R_PEER" addr add "$R_ADDR/32" dev lo || return 1
	local i
	for i in 0 1; do
		ip -n "$R_DEV" link add "rtrg$i" type veth peer name "rtrg${i}p" netns "$R_PEER" || return 1
		ip -n "$R_DEV" addr add "10.232.$i.2/24" dev "rtrg$i" || return 1
		ip -n "$R_PEER" addr add "10.232.$i.1/24" dev "rtrg${i}p" || return 1
		ip -n "$R_DEV" link set "rtrg$i" up || return 1
		ip -n "$R_PEER" link set "rtrg${i}p" up || return 1
	done
	ip -n "$R_DEV" route add default via 10.232.0.1 dev rtrg0
}

# A CA and a certificate for the domain's address, as an operator would
# make them with openssl.
r_make_certs() {
	(
		set -e
		cd "$R_TMP"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout ca.key -out ca.pem -days 2 -subj /CN=rtrg-test-ca
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout domain.key -out domain.csr -subj "/CN=$R_ADDR"
		printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$R_ADDR" >ext.cnf
		openssl x509 -req -in domain.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-out domain.pem -days 2 -extfile ext.cnf
	) >/dev/null 2>&1
}

r_write_configs() {
	head -c 32 /dev/urandom | base64 | tr -d '=+/\n' >"$R_TMP/admin-token"
	R_TOKEN=$(cat "$R_TMP/admin-token")
	openssl genpkey -algorithm ed25519 -out "$R_TMP/publisher.key" 2>/dev/null
	local publisher
	publisher=$(openssl pkey -in "$R_TMP/publisher.key" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '=')
	cat >"$R_TMP/domain.conf" <<CONF
[Domain]
StateDirectory=$R_TMP/domain-state
[HTTP]
Listen=$R_ADDR
Port=$R_PORT
Certificate=$R_TMP/domain.pem
PrivateKey=$R_TMP/domain.key
ShutdownGraceSec=1
[Admin]
TokenFile=$R_TMP/admin-token
[Catalogue]
TrustedPublishers=$publisher
[DeviceManagement]
MinLifetimeSec=1
CONF
	mkdir -p "$R_TMP/publishers"
	cat >"$R_TMP/agent.conf" <<CONF
[Agent]
ControlSocket=$R_SOCK
StateDirectory=$R_TMP/agent-state
LogLevel=debug
[Interfaces]
Watch=rtrg*
[QoS]
PollIntervalSec=1
SampleIntervalSec=0
[BPF]
Enable=no
[Software]
TrustedPublishers=$R_TMP/publishers
[Domain]
URL=$R_URL
CAFile=$R_TMP/ca.pem
LifetimeSec=4
RetryMaxSec=8
CONF
}

r_domain_port_open() { r_peer bash -c "exec 3<>/dev/tcp/$R_ADDR/$R_PORT" 2>/dev/null; }

r_start_domain() {
	nsenter --net="/run/netns/$R_PEER" "$DOMAIN" --config="$R_TMP/domain.conf" >>"$R_TMP/domain.log" 2>&1 &
	R_DOMAIN_PID=$!
	t_cleanup "kill -9 $R_DOMAIN_PID"
	t_wait_for 10 r_domain_port_open
}

r_stop_domain() {
	kill -TERM "$R_DOMAIN_PID" 2>/dev/null
	t_wait_for 10 r_domain_gone || kill -KILL "$R_DOMAIN_PID" 2>/dev/null
	wait "$R_DOMAIN_PID" 2>/dev/null
}
r_domain_gone() { ! kill -0 "$R_DOMAIN_PID" 2>/dev/null; }

r_start_agent() {
	nsenter --net="/run/netns/$R_DEV" env RETHINK_LOG_TARGET=json "$AGENT" --config="$R_TMP/agent.conf" \
		>"$R_TMP/agent.out" 2>"$R_LOG" &
	R_AGENT_PID=$!
	t_cleanup "r_stop_agent"
	t_wait_for 15 r_ctl_ok
}

r_stop_agent() {
	[ -n "$R_AGENT_PID" ] || return 0
	kill -TERM "$R_AGENT_PID" 2>/dev/null
	t_wait_for 10 r_agent_gone || kill -KILL "$R_AGENT_PID" 2>/dev/null
	wait "$R_AGENT_PID" 2>/dev/null
	R_AGENT_PID=
}
r_agent_gone() { ! kill -0 "$R_AGENT_PID" 2>/dev/null; }
r_ctl_ok() { "$CTL" --socket="$R_SOCK" --timeout=2 status >/dev/null 2>&1; }
r_status() { "$CTL" --socket="$R_SOCK" --timeout=5 --json status; }

# r_log FILTER: agent log entries (JSON lines) FILTER selects.
r_log() { jq -c -R "fromjson? | select($1)" <"$R_LOG"; }
r_count() { r_log "$1" | wc -l; }
r_mid() { echo ".MESSAGE_ID == \"$1\""; }

# The device as the domain's admin API shows it, through a client that is
# not ours (nghttp, which does not check the certificate), with an admin
# access token the credential gets at the IdM.
r_device() {
	local tok
	printf 'grant_type=client_credentials&client_id=admin&client_secret=%s' "$R_TOKEN" >"$R_TMP/admin.form"
	tok=$(r_peer nghttp -H ':method: POST' -H 'content-type: application/x-www-form-urlencoded' -d "$R_TMP/admin.form" \
		"$R_URL/idm/token" 2>/dev/null | jq -r .access_token)
	r_peer nghttp -H "authorization: Bearer $tok" "$R_URL/admin/devices" 2>/dev/null |
		jq -c --arg ep "$R_EP" '.devices[] | select(.endpoint == $ep)'
}
r_device_is() { r_device | jq -e "$1" >/dev/null; }

r_check_wait() {
	local name=$1 secs=$2; shift 2
	if t_wait_for "$secs" "$@"; then
		t_ok "$name"
	else
		t_fail "$name"
		echo "#   status: $(r_status 2>&1 | head -c 2000)"
		r_log '.MESSAGE_ID != null and (.MESSAGE_ID | test("^(75396906|c0f645c7|aac16570|9b33030f|b414fa33|29fde05e)"))' |
			tail -n 8 | sed 's/^/#   /'
	fi
}

r_setup_net || { t_fail "network set-up"; t_done; exit 1; }
r_make_certs || { t_fail "test certificates"; t_done; exit 1; }
r_write_configs
r_start_domain || { t_fail "domain starts"; cat "$R_TMP/domain.log"; t_done; exit 1; }
if ! r_start_agent; then
	t_fail "agent starts"
	tail -n 30 "$R_LOG" | sed 's/^/#   /'
	t_done
	exit 1
fi
t_ok "domain and agent started"

# --- first registration ---------------------------------------------------------
r_registered() { r_status | jq -e '.registration.state == "registered"' >/dev/null; }
r_check_wait "agent reports itself registered" 20 r_registered
R_EP=$(r_status | jq -r '.registration.endpoint')
t_check "endpoint derived and stored ($R_EP)" test "$(cat "$R_TMP/agent-state/endpoint")" = "$R_EP"
t_check "device key 0600" test "$(stat -c %a "$R_TMP/agent-state/device-key.pem")" = 600
t_check "IdM key 0600" test "$(stat -c %a "$R_TMP/agent-state/idm-key.pem")" = 600
r_check_wait "the domain lists the device as registered" 10 r_device_is '.state == "registered" and .lifetime == 4'
dev_key=$(openssl pkey -in "$R_TMP/agent-state/device-key.pem" -pubout -outform DER | tail -c 32 |
	basenc --base64url -w0 | tr -d '=')
t_check "the domain bound the device's Ed25519 key" r_device_is ".publicKey == \"$dev_key\"" 
t_check "first registration was a 201" test "$(r_log "$(r_mid $MID_REGISTERED)" | head -n 1 | jq -r .REG_STATUS)" = 201
r_keepalives() { [ "$(r_count "$(r_mid $MID_UPDATED) and .REG_REASON == \"keep-alive\"")" -ge 2 ]; }
r_check_wait "keep-alives refresh the 4 s registration" 20 r_keepalives
t_check "still registered after several lifetimes" r_device_is '.state == "registered"'

# --- link cut: no attempts; link back: registration at once ---------------------
ip -n "$R_DEV" link set rtrg0 down
r_suspended() { [ "$(r_count "$(r_mid $MID_SUSPENDED)")" -ge 1 ]; }
r_check_wait "link cut: registration suspended" 15 r_suspended
attempts=$(r_count "$(r_mid $MID_ATTEMPT)")
# Longer than a lifetime and than the retry cap: a keep-alive or a retry
# would have been due several times.
sleep 6
t_check "no registration attempt while the gate is closed" test "$(r_count "$(r_mid $MID_ATTEMPT)")" -eq "$attempts"
t_check "status says suspended" sh -c "'$CTL' --socket='$R_SOCK' --json status | jq -e '.registration.state == \"suspended\"' >/dev/null"

ip -n "$R_DEV" link set rtrg0 up
ip -n "$R_DEV" route replace default via 10.232.0.1 dev rtrg0
r_back() {
	r_log "$(r_mid $MID_REGISTERED) and .REG_REASON == \"gate-open\"" | grep -q .
}
# RetryMaxSec=8: even a failed first try is followed within the bound.
r_check_wait "link back: registered again (gate-open)" 15 r_back
first_after=$(r_log "$(r_mid $MID_ATTEMPT)" | sed -n "$((attempts + 1))p" | jq -r .REG_REASON)
t_check "the first attempt after the cut is the gate-open one (got $first_after)" test "$first_after" = gate-open

# --- mobility: the primary moves to rtrg1 -----------------------------------------
# A second default route first, so the device stays online (the gate open)
# while the primary changes: that is a mobility event and nothing else.
ip -n "$R_DEV" route add default via 10.232.1.1 dev rtrg1 metric 200
r_rtrg1_online() {
	"$CTL" --socket="$R_SOCK" --timeout=5 --json qos |
		jq -e '.interfaces[] | select(.name == "rtrg1") | .state == "online"' >/dev/null
}
r_check_wait "second uplink online" 15 r_rtrg1_online
updates=$(r_count "$(r_mid $MID_UPDATED) and .REG_REASON == \"mobility\"")
suspended=$(r_count "$(r_mid $MID_SUSPENDED)")
ip -n "$R_DEV" route del default via 10.232.0.1 dev rtrg0
r_mobility() { [ "$(r_count "$(r_mid $MID_UPDATED) and .REG_REASON == \"mobility\"")" -gt "$updates" ]; }
r_check_wait "mobility: update sent and accepted" 15 r_mobility
t_check "still registered after mobility" r_device_is '.state == "registered"'
t_check "the gate stayed open through the move" test "$(r_count "$(r_mid $MID_SUSPENDED)")" -eq "$suspended"

# --- domain down, then back after the registration expired ------------------------
r_stop_domain
r_failed() { [ "$(r_count "$(r_mid $MID_FAILED)")" -ge 3 ]; }
r_check_wait "domain down: attempts fail and are retried" 30 r_failed
t_check "retry delays bounded by RetryMaxSec (8 s)" sh -c \
	"! jq -R -e 'fromjson? | select(.MESSAGE_ID == \"$MID_FAILED\") | select((.REG_RETRY_USEC | tonumber) > 8000000)' '$R_LOG' >/dev/null"
# Equal jitter from 2 s doubling: [1, 2] s, [2, 4] s, [4, 8] s.
t_check "retry delays grow" sh -c \
	"jq -R -s -e '[split(\"\n\")[] | fromjson? | select(.MESSAGE_ID == \"$MID_FAILED\") | .REG_RETRY_USEC | tonumber] | .[0] <= 2000000 and .[0] <= .[2] and .[2] >= 4000000' '$R_LOG' >/dev/null"
# The 4 s lifetime runs out while the domain is away.
sleep 5
r_start_domain || t_fail "domain restarts"
r_relost() { r_log "$(r_mid $MID_LOST)" | grep -q .; }
r_check_wait "domain back: it had expired the registration (404)" 20 r_relost
r_rereg() { r_log "$(r_mid $MID_REGISTERED) and .REG_REASON == \"not-found\"" | grep -q .; }
r_check_wait "domain back: registered again" 20 r_rereg
r_check_wait "the domain lists the device as registered again" 10 r_device_is '.state == "registered"'

r_stop_agent
r_stop_domain

# --- no domain configured: registration off, and status says so -------------------
sed -i '/^\[Domain\]/,$d' "$R_TMP/agent.conf"
[ -z "${R_KEEP_LOG:-}" ] || cp "$R_LOG" "$R_KEEP_LOG.first"
: >"$R_LOG"
r_start_agent || t_fail "agent starts without a domain"
t_check "no domain: status says registration is off" sh -c \
	"'$CTL' --socket='$R_SOCK' --json status | jq -e '.registration.state == \"off\" and (.registration.reason | test(\"no domain\"))' >/dev/null"
sleep 1
t_check "no domain: no registration attempt" test "$(r_count "$(r_mid $MID_ATTEMPT)")" -eq 0
r_stop_agent
t_done
