# The two-device M2M set-up shared by `make demo` (scripts/demo) and the
# exchange suites (tests/integration/m2m-*.sh); sourced, not run.
#
#   device A ns $M_A (producer)   domain ns $M_DOM                device B ns $M_B (consumer)
#     m2ma 10.$M_NET.1.2 <- veth -> m2map 10.$M_NET.1.1
#                                  lo 10.$M_NET.9.1 (rethink-domain)
#                                  m2mbp 10.$M_NET.2.1 <- veth -> m2mb 10.$M_NET.2.2
#
# The domain's namespace routes between the devices, so B reaches A's Local
# M2M Resource Directory directly (peer to peer) and both reach the domain.
# rethink-domain runs with a set-up from `rethinkctl domain init`; each
# device's agent has its own state directory, control and bus sockets, a
# Local RD certificate from the domain's CA, and runs its components with
# fork/exec (no systemd here). Admin actions use rethinkctl --domain.
#
# The caller sets BUILD, M_P (a name prefix, e.g. "rtdemo"), M_NET (second
# octet of 10.x.0.0/16), M_TMP (a directory) and defines
# m2m_on_cleanup CMD (run CMD when the caller ends), then calls the steps.

# shellcheck disable=SC2034  # variables are for the callers
M_DOM=$M_P-dom
M_A=$M_P-a
M_B=$M_P-b
M_ADDR=10.$M_NET.9.1
M_PORT=8443
M_URL=https://$M_ADDR:$M_PORT
M_NAME=${M_NAME:-demo.example}
M_DIR=$M_TMP/domain
M_DLOG=$M_TMP/domain.log
M_CTL=$BUILD/rethinkctl
M_ADMIN=(--domain="$M_URL" --ca-file="$M_DIR/ca.pem" --admin-token-file="$M_DIR/admin-token")
declare -A M_PID=()

m2m_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
m2m_admin() { m2m_ns "$M_DOM" "$M_CTL" "${M_ADMIN[@]}" --timeout=15 "$@"; }
# m2m_ctl a|b ARGS: rethinkctl on a device.
m2m_ctl() { local d=$1; shift; "$M_CTL" --socket="$M_TMP/$d/agent.sock" --timeout=10 "$@"; }
m2m_dev_ip() { [ "$1" = a ] && echo "10.$M_NET.1.2" || echo "10.$M_NET.2.2"; }
m2m_dev_ns() { [ "$1" = a ] && echo "$M_A" || echo "$M_B"; }

m2m_setup_net() {
	local ns d n
	for ns in "$M_DOM" "$M_A" "$M_B"; do
		ip netns add "$ns" || return 1
		m2m_on_cleanup "ip netns del '$ns'"
		ip -n "$ns" link set lo up
	done
	ip -n "$M_DOM" addr add "$M_ADDR/32" dev lo || return 1
	ip netns exec "$M_DOM" sysctl -qw net.ipv4.ip_forward=1 || return 1
	for d in a b; do
		n=1
		[ "$d" = b ] && n=2
		ip -n "$(m2m_dev_ns $d)" link add "m2m$d" type veth peer name "m2m${d}p" netns "$M_DOM" || return 1
		ip -n "$(m2m_dev_ns $d)" addr add "10.$M_NET.$n.2/24" dev "m2m$d" || return 1
		ip -n "$M_DOM" addr add "10.$M_NET.$n.1/24" dev "m2m${d}p" || return 1
		ip -n "$(m2m_dev_ns $d)" link set "m2m$d" up || return 1
		ip -n "$M_DOM" link set "m2m${d}p" up || return 1
		ip -n "$(m2m_dev_ns $d)" route add default via "10.$M_NET.$n.1" dev "m2m$d" || return 1
	done
}

# The domain's set-up, and a certificate from its CA for each device's
# Local RD (peers verify it with the domain's CA).
m2m_domain_init() {
	local d ip
	"$M_CTL" domain init "$M_DIR" --name="$M_NAME" --address="$M_ADDR" --listen="$M_ADDR" --port="$M_PORT" \
		>/dev/null || return 1
	mkdir -p "$M_TMP/publishers"
	cp "$M_DIR/publisher.pub" "$M_TMP/publishers/demo.pub"
	for d in a b; do
		ip=$(m2m_dev_ip $d)
		mkdir -p "$M_TMP/$d"
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=device-$d" \
			-keyout "$M_TMP/$d/rd.key" -out "$M_TMP/$d/rd.csr" 2>/dev/null || return 1
		printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$ip" >"$M_TMP/$d/rd.ext"
		openssl x509 -req -in "$M_TMP/$d/rd.csr" -CA "$M_DIR/ca.pem" -CAkey "$M_DIR/ca.key" -CAcreateserial \
			-days 2 -extfile "$M_TMP/$d/rd.ext" -out "$M_TMP/$d/rd.pem" 2>/dev/null || return 1
	done
}

m2m_domain_up() { m2m_ns "$M_DOM" bash -c "exec 3<>/dev/tcp/$M_ADDR/$M_PORT" 2>/dev/null; }

# nsenter and env exec, and no shell function runs in between: $! is the
# daemon itself, so stopping it stops the daemon.
m2m_start_domain() {
	nsenter --net="/run/netns/$M_DOM" env RETHINK_LOG_TARGET=json "$BUILD/rethink-domain" \
		--config="$M_DIR/domain.conf" --name="$M_NAME" --shutdown-grace-sec=1 "$@" >>"$M_DLOG" 2>&1 &
	M_PID[domain]=$!
	m2m_on_cleanup "kill -9 ${M_PID[domain]} 2>/dev/null"
	m2m_wait 15 m2m_domain_up
}

# m2m_wait SECONDS CMD...: until CMD succeeds.
m2m_wait() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
}

# m2m_publish KIND NAME FILE CONFIGURATION-JSON
m2m_publish() {
	local kind=$1 name=$2 file=$3 config=${4:-"{}"} version arch
	version=$(sed -n 's/^#define RETHINK_VERSION "\(.*\)"$/\1/p' lib/version.h)
	arch=$(uname -m)
	jq -n --arg kind "$kind" --arg name "$name" --arg version "$version" --arg arch "$arch" \
		--argjson config "$config" \
		'{type: $kind, objectName: $name, version: $version, description: ($name + " (rethink example)"),
		  constraints: {runtimeVersion: $version, arch: [$arch]}, configuration: $config}
		 + (if $kind == "hyperty" then {hypertyType: ["context"]} else {} end)' >"$M_TMP/$name.json" || return 1
	m2m_admin publish "$file" --descriptor="$M_TMP/$name.json" --publisher-key="$M_DIR/publisher.key" >/dev/null
}

# The examples and the protostubs, signed by the domain's publisher.
m2m_publish_all() {
	m2m_publish protocolstub messaging "$BUILD/protostubs/messaging" || return 1
	m2m_publish protocolstub p2p "$BUILD/protostubs/p2p" || return 1
	m2m_publish hyperty context-producer "$BUILD/hyperties/context-producer" \
		'{"intervalSec":1,"source":"auto","acl":{"*":"rw"}}' || return 1
	m2m_publish hyperty context-consumer "$BUILD/hyperties/context-consumer" \
		"{\"resource\":\"temperature\",\"mode\":\"auto\",\"switchAfter\":${M_SWITCH_AFTER:-3},\"staleSec\":10,\"retrySec\":2}" || return 1
	# The same consumer, told to use publish/subscribe through the domain.
	m2m_publish hyperty context-consumer-pubsub "$BUILD/hyperties/context-consumer" \
		"{\"resource\":\"temperature\",\"mode\":\"pubsub\",\"switchAfter\":${M_SWITCH_AFTER:-3},\"staleSec\":10,\"retrySec\":2}"
}

m2m_write_agent_config() {
	local d=$1 dir=$M_TMP/$1
	cat >"$dir/agent.conf" <<CONF
[Agent]
ControlSocket=$dir/agent.sock
BusSocket=$dir/bus.sock
StateDirectory=$dir/state
LogLevel=${M_LOG_LEVEL:-info}
[Interfaces]
Watch=m2m*
[QoS]
PollIntervalSec=1
SampleIntervalSec=0
RecoverAfterSec=1
RecoverAfterSamples=1
[BPF]
Enable=no
[Software]
TrustedPublishers=$M_TMP/publishers
[Components]
Launcher=fork
RestartInitialSec=1
RegistryLifetimeSec=${M_REGISTRY_LIFETIME:-60}
[Domain]
URL=$M_URL
CAFile=$M_DIR/ca.pem
Name=$M_NAME
# Both "devices" share this machine's id, from which the endpoint is made.
Endpoint=$M_P-device-$d
LifetimeSec=60
RetryMaxSec=3
[LocalRD]
Listen=$(m2m_dev_ip "$d")
Certificate=$dir/rd.pem
Key=$dir/rd.key
CONF
}

m2m_agent_up() { m2m_ctl "$1" status >/dev/null 2>&1; }

# m2m_start_agent a|b
m2m_start_agent() {
	local d=$1
	[ -f "$M_TMP/$d/agent.conf" ] || m2m_write_agent_config "$d"
	nsenter --net="/run/netns/$(m2m_dev_ns "$d")" env RETHINK_LOG_TARGET=json "$BUILD/rethink-agent" \
		--config="$M_TMP/$d/agent.conf" >>"$M_TMP/$d/agent.log" 2>&1 &
	M_PID[$d]=$!
	m2m_on_cleanup "kill -9 ${M_PID[$d]} 2>/dev/null; pkill -9 -f '$M_TMP/$d/state/' 2>/dev/null"
	m2m_wait 15 m2m_agent_up "$d"
}

m2m_stop_agent() {
	local d=$1 pid=${M_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	m2m_wait 10 m2m_pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	M_PID[$d]=
}
m2m_pid_gone() { ! kill -0 "$1" 2>/dev/null; }

m2m_status() { m2m_ctl "$1" --json status; }
m2m_endpoint() { m2m_status "$1" | jq -r '.registration.endpoint // empty'; }
m2m_registered() { m2m_status "$1" | jq -e '.registration.state == "registered"' >/dev/null 2>&1; }
m2m_streaming() {
	m2m_status "$1" | jq -e '.registration.session.state == "streaming" and .registration.session.token == true' \
		>/dev/null 2>&1
}

# m2m_claim a|b: waits for the registration, claims, waits for the session.
m2m_claim() {
	local ep
	m2m_wait 30 m2m_registered "$1" || return 1
	ep=$(m2m_endpoint "$1")
	m2m_admin devices claim "$ep" >/dev/null || return 1
	m2m_wait 30 m2m_streaming "$1"
}

# m2m_component_is a|b NAME JQ-FILTER
m2m_component_is() {
	m2m_ctl "$1" --json components 2>/dev/null |
		jq -e --arg n "$2" ".components[] | select(.name == \$n) | $3" >/dev/null 2>&1
}

# m2m_deploy a|b COMPONENT...: Alice's whole bootstrap of a device: the
# order, every component DELIVERED, her consent, INSTALLED, activated.
m2m_deploy() {
	local d=$1 ep c args=()
	shift
	ep=$(m2m_endpoint "$d")
	for c in "$@"; do
		case $c in
		messaging|p2p) args+=(--protostub="$c") ;;
		*) args+=(--hyperty="$c") ;;
		esac
	done
	m2m_admin bootstrap "$ep" "${args[@]}" >/dev/null || return 1
	for c in "$@"; do
		m2m_wait 60 m2m_component_is "$d" "$c" '.state == "DELIVERED"' || { echo "$c not DELIVERED" >&2; return 1; }
		m2m_admin confirm "$ep" "$c" >/dev/null || return 1
	done
	for c in "$@"; do
		m2m_wait 30 m2m_component_is "$d" "$c" '.state == "INSTALLED"' || { echo "$c not INSTALLED" >&2; return 1; }
		[ "$c" = p2p ] && continue   # started per peer by loadProtoStub
		m2m_admin activate "$ep" "$c" >/dev/null || return 1
	done
}

# m2m_log a|b|domain JQ-FILTER: log entries (JSON lines) the filter selects.
m2m_log() {
	local f=$M_TMP/$1/agent.log
	[ "$1" = domain ] && f=$M_DLOG
	jq -c -R "fromjson? | select($2)" <"$f" 2>/dev/null
}
m2m_has_log() { m2m_log "$1" "$2" | grep -q .; }
