# Shared set-up of the bootstrap suites (tests/integration/bootstrap-*netns.sh),
# sourced after tests/lib.sh; not a suite itself.
#
# The real rethink-domain (TLS, a set-up from `rethinkctl domain init`) in a
# domain namespace and the real rethink-agent in a device namespace:
#
#   device ns $B_DEV                              domain ns $B_DOM
#     e2e0 10.77.0.2/24 <---- veth ----> e2e0p 10.77.0.1/24
#     e2e1 10.77.1.2/24 <---- veth ----> e2e1p 10.77.1.1/24
#                                        lo: 10.77.9.1/32 (the domain)
#
# The domain's address is on neither link: the device reaches it through
# its default route only, so moving that route to e2e1 changes the
# device's primary address (mobility). Admin actions go through
# rethinkctl --domain (run in the domain namespace); device actions
# through rethinkctl --socket. Both daemons log JSON lines (the journal's
# fields), one file each; an admin follows `rethinkctl events` into
# $B_EVENTS for the whole run.

# shellcheck disable=SC2034  # variables are for the sourcing suites
AGENT=$BUILD/rethink-agent
DOMAIN=$BUILD/rethink-domain
CTL=$BUILD/rethinkctl

[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
for p in "$AGENT" "$DOMAIN" "$CTL"; do
	[ -x "$p" ] || t_skip_all "$(basename "$p") is not built"
done
for tool in ip tc jq nsenter openssl sha256sum; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

B_ID=$$
B_DEV=e2e-dev-$B_ID
B_DOM=e2e-dom-$B_ID
# shellcheck disable=SC2153  # T_NAME is tests/lib.sh's
B_TMP=$(mktemp -d "/tmp/e2e-$T_NAME-XXXXXX")
B_DIR=$B_TMP/domain
B_ADDR=10.77.9.1
B_PORT=8443
B_URL=https://$B_ADDR:$B_PORT
B_NAME=e2e.example
B_DM=dm:$B_NAME
B_SOCK=$B_TMP/agent.sock
B_STATE=$B_TMP/agent-state
B_LOG=$B_TMP/agent.log
B_DLOG=$B_TMP/domain.log
B_EVENTS=$B_TMP/events.ndjson
B_AGENT_PID=
B_DOMAIN_PID=
B_EVENTS_PID=
B_EP=
# Components reach the agent's bus on a socket of their own per agent
# (an agent without a bus yet does not know the key).
B_BUS_KEY="#BusSocket="
"$AGENT" --help 2>&1 | grep -q -- --bus-socket && B_BUS_KEY="BusSocket="
chmod 0711 "$B_TMP"
# Interrupted, the suite still removes its namespaces and processes.
trap 'exit 130' INT
trap 'exit 143' TERM
t_cleanup "rm -rf '$B_TMP'"
[ -z "${B_KEEP:-}" ] || t_cleanup "cp -r '$B_TMP' '$B_KEEP'"

# Message IDs, from units/rethink.catalog.
MID_REGISTERED=c0f645c70a5841a78d906315b0c2c250
MID_UPDATED=aac165701b9a49ad88131c34c23b29fb
MID_REG_FAILED=9b33030fa90f4d62b264c3a64f59f465
MID_TOKEN=f8ffc701e51a4ec592fa590e1bb125e8
MID_OPENED=f7bb7730518a4e678d0c8387eb44b059
MID_SWM=eaf2bc61d6ba4790acaa4b16191f8299
MID_SWM_FAILED=e22780f5272e4162ab204f585250639a
MID_DOWNLOAD=b15dac948e4c4ccb8945e9669d97a2bf
MID_CONSENT=f3a865f91d3549eb8c1f5307ad778562
MID_PROCESS=ba5bf076fce248c4a3add30ec9585061
MID_ACL=796c97f5aaf241e6b84419286b0686e0
MID_RECOVERED=e28983ab0ff14472bce126659bd7622f
MID_REPORT_ERROR=9f4caf53aabe40dfb30a3c0cb048181b

b_dev() { nsenter --net="/run/netns/$B_DEV" "$@"; }
b_dom() { nsenter --net="/run/netns/$B_DOM" "$@"; }

b_setup_net() {
	ip netns add "$B_DEV" || return 1
	t_cleanup "ip netns del '$B_DEV'"
	ip netns add "$B_DOM" || return 1
	t_cleanup "ip netns del '$B_DOM'"
	ip -n "$B_DEV" link set lo up
	ip -n "$B_DOM" link set lo up
	ip -n "$B_DOM" addr add "$B_ADDR/32" dev lo || return 1
	local i
	for i in 0 1; do
		ip -n "$B_DEV" link add "e2e$i" type veth peer name "e2e${i}p" netns "$B_DOM" || return 1
		ip -n "$B_DEV" addr add "10.77.$i.2/24" dev "e2e$i" || return 1
		ip -n "$B_DOM" addr add "10.77.$i.1/24" dev "e2e${i}p" || return 1
		ip -n "$B_DEV" link set "e2e$i" up || return 1
		ip -n "$B_DOM" link set "e2e${i}p" up || return 1
	done
	ip -n "$B_DEV" route add default via 10.77.0.1 dev e2e0
}

# The domain's set-up as an operator makes it: certificates for its
# address, the admin credential, the publisher key. Devices trust the
# publisher's public key.
b_domain_init() {
	"$CTL" domain init "$B_DIR" --address="$B_ADDR" --listen="$B_ADDR" --port="$B_PORT" >/dev/null || return 1
	mkdir -p "$B_TMP/publishers"
	cp "$B_DIR/publisher.pub" "$B_TMP/publishers/e2e.pub"
}

b_domain_port_open() { b_dom bash -c "exec 3<>/dev/tcp/$B_ADDR/$B_PORT" 2>/dev/null; }

# b_start_domain [FLAGS...]
b_start_domain() {
	# nsenter and env exec: $! is the domain itself.
	nsenter --net="/run/netns/$B_DOM" env RETHINK_LOG_TARGET=json "$DOMAIN" --config="$B_DIR/domain.conf" --name="$B_NAME" \
		--min-lifetime-sec=1 --shutdown-grace-sec=1 --log-level=debug "$@" >>"$B_DLOG" 2>&1 &
	B_DOMAIN_PID=$!
	t_cleanup "kill -9 $B_DOMAIN_PID"
	t_wait_for 15 b_domain_port_open
}

b_stop_domain() {
	[ -n "$B_DOMAIN_PID" ] || return 0
	kill -TERM "$B_DOMAIN_PID" 2>/dev/null
	t_wait_for 10 b_pid_gone "$B_DOMAIN_PID" || kill -KILL "$B_DOMAIN_PID" 2>/dev/null
	wait "$B_DOMAIN_PID" 2>/dev/null
	B_DOMAIN_PID=
}
b_pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# b_write_agent_config FILE STATE_DIR SOCKET [EXTRA INI LINES for [Domain]]:
# quick QoS recovery, so a link that comes back opens the gates at once;
# a short lifetime and retry cap, so re-registration is watchable.
b_write_agent_config() {
	cat >"$1" <<CONF
[Agent]
ControlSocket=$3
$B_BUS_KEY$3.bus
StateDirectory=$2
LogLevel=debug
[Interfaces]
Watch=e2e*
[QoS]
PollIntervalSec=1
SampleIntervalSec=0
RecoverAfterSec=0
RecoverAfterSamples=1
[BPF]
Enable=no
[Software]
TrustedPublishers=$B_TMP/publishers
[Domain]
URL=$B_URL
CAFile=$B_DIR/ca.pem
Name=$B_NAME
LifetimeSec=20
RetryMaxSec=4
${4:-}
CONF
}

b_start_agent() {
	[ -f "$B_TMP/agent.conf" ] || b_write_agent_config "$B_TMP/agent.conf" "$B_STATE" "$B_SOCK"
	nsenter --net="/run/netns/$B_DEV" env RETHINK_LOG_TARGET=json "$AGENT" --config="$B_TMP/agent.conf" >>"$B_TMP/agent.out" 2>>"$B_LOG" &
	B_AGENT_PID=$!
	t_cleanup "b_kill_agent"
	t_wait_for 15 b_ctl_ok
}

# b_kill_agent [SIGNAL]: stops the agent (SIGTERM: in order).
b_kill_agent() {
	[ -n "$B_AGENT_PID" ] || return 0
	# The shell's "Killed" notice for its job is of no interest.
	{
		kill "-${1:-TERM}" "$B_AGENT_PID"
		t_wait_for 10 b_pid_gone "$B_AGENT_PID" || kill -KILL "$B_AGENT_PID"
		wait "$B_AGENT_PID"
	} 2>/dev/null
	B_AGENT_PID=
	rm -f "$B_SOCK"
}

b_ctl() { "$CTL" --socket="$B_SOCK" --timeout=5 "$@"; }
b_ctl_ok() { b_ctl status >/dev/null 2>&1; }
b_status() { b_ctl --json status; }

# Admin actions, as an operator in the domain's network runs them.
B_ADMIN=(--domain="$B_URL" --ca-file="$B_DIR/ca.pem" --admin-token-file="$B_DIR/admin-token")
b_admin() { b_dom "$CTL" "${B_ADMIN[@]}" --timeout=10 "$@"; }

# An admin follows the events for the whole run; restarted with the domain.
b_follow_events() {
	local n
	n=$(b_followers)
	nsenter --net="/run/netns/$B_DOM" "$CTL" "${B_ADMIN[@]}" events >>"$B_EVENTS" 2>>"$B_TMP/events.err" &
	B_EVENTS_PID=$!
	t_cleanup "kill $B_EVENTS_PID"
	t_wait_for 10 b_followers_more "$n"
}
b_followers() { grep -c 'follows the bootstrap events' "$B_DLOG"; }
b_followers_more() { [ "$(b_followers)" -gt "$1" ]; }

# b_publish KIND NAME FILE [DESCRIPTOR EXTRA JSON, e.g. '"constraints": {...}']
b_publish() {
	local kind=$1 name=$2 file=$3 extra=${4:-} type=""
	[ "$kind" = hyperty ] && type='"hypertyType": ["context"],'
	printf '{"type": "%s", "objectName": "%s", "version": "1.0.0", %s "description": "e2e test package"%s}\n' \
		"$kind" "$name" "$type" "${extra:+, $extra}" >"$B_TMP/$name.json"
	b_admin publish "$file" --descriptor="$B_TMP/$name.json" --publisher-key="${B_PUBLISHER_KEY:-$B_DIR/publisher.key}" \
		>"$B_TMP/publish.out" 2>&1
}

# b_package FILE [SIZE]: a component that stays up, padded to SIZE bytes.
b_package() {
	local size=${2:-0}
	printf '#!/bin/sh\n# e2e component\nwhile :; do sleep 5; done\n' >"$1"
	if [ "$size" -gt 0 ]; then
		local have
		have=$(stat -c %s "$1")
		head -c "$((size - have - 1))" /dev/zero | tr '\0' '#' >>"$1"
		printf '\n' >>"$1"
	fi
}

# --- reading what happened -------------------------------------------------------

# b_json_is FILTER: the JSON on stdin is there and FILTER holds for it
# (jq -e alone passes on empty input).
b_json_is() {
	local j
	j=$(cat)
	[ -n "$j" ] && jq -e "$1" <<<"$j" >/dev/null 2>&1
}

# b_log FILTER: agent log entries (JSON lines) FILTER selects.
b_log() { jq -c -R "fromjson? | select($1)" <"$B_LOG"; }
b_count() { b_log "$1" | wc -l; }
b_dlog() { jq -c -R "fromjson? | select($1)" <"$B_DLOG"; }
# b_swm NAME STATE: the agent's transition entries of NAME into STATE.
b_swm() { b_log ".MESSAGE_ID == \"$MID_SWM\" and .COMPONENT == \"$1\" and .SWM_STATE == \"$2\""; }

# b_events FILTER: the admin's event lines FILTER selects.
b_events() { jq -c -R "fromjson? | select($1)" <"$B_EVENTS"; }
b_has_event() { b_events "$1" | grep -q .; }
# b_report NAME STATE: the report events of NAME in STATE.
b_report() { b_events ".event == \"report\" and .endpoint == \"$B_EP\" and .component == \"$1\" and .state == \"$2\""; }
b_has_report() { b_report "$1" "$2" | grep -q .; }

# b_comp NAME: the component as the device lists it to root.
b_comp() { b_ctl --json components | jq -c --arg n "$1" '.components[] | select(.name == $n)'; }
b_comp_is() { b_comp "$1" | b_json_is "$2"; }

# b_device: the device as the domain's admin API shows it.
b_device() { b_admin --json devices show "$B_EP"; }
b_device_is() { b_device 2>/dev/null | b_json_is "$1"; }

b_registered() { b_status | b_json_is '.registration.state == "registered"'; }
b_streaming() {
	b_status | b_json_is '.registration.session.state == "streaming" and .registration.session.token == true'
}

# b_running NAME: pids of NAME's installed executable.
b_running() { pgrep -f "$B_STATE/software/installed/$1/$1" || true; }

# b_files NAME: files of NAME anywhere under software/ (there should be
# none after a cancel or a failure).
b_files() { find "${2:-$B_STATE}/software" -name "$1*" 2>/dev/null; }
b_no_orphans() {
	local sd=${1:-$B_STATE}
	[ -z "$(find "$sd/software/staging" "$sd/software/trash" -mindepth 1 2>/dev/null)" ] &&
		[ -z "$(find "$sd/software" -name '*.tmp*' 2>/dev/null)" ]
}

# b_check_wait NAME SECONDS CMD...: t_check with a wait, and some context
# when it fails.
b_check_wait() {
	local name=$1 secs=$2; shift 2
	if t_wait_for "$secs" "$@"; then
		t_ok "$name"
	else
		t_fail "$name"
		echo "#   device: $(b_ctl --json components 2>&1 | jq -c '[.components[] | [.name, .state, .result, .reason]]' 2>&1 | head -c 600)"
		echo "#   last event: $(tail -n 1 "$B_EVENTS" 2>/dev/null | cut -c1-300)"
		echo "#   agent's last notice: $(b_log '(.PRIORITY | tonumber) <= 5' | tail -n 1 | jq -r .MESSAGE | cut -c1-300)"
	fi
}

# b_bring_up [DOMAIN FLAGS...]: network, domain, agent; the device registered, claimed and
# streaming; the admin following events. Exits the suite on failure.
b_bring_up() {
	b_setup_net || { t_fail "network set-up"; t_done; exit 1; }
	b_domain_init || { t_fail "rethinkctl domain init"; t_done; exit 1; }
	b_start_domain "$@" || { t_fail "domain starts"; tail -n 20 "$B_DLOG"; t_done; exit 1; }
	b_follow_events || t_fail "the admin follows the events"
	if ! b_start_agent; then
		t_fail "agent starts"
		tail -n 30 "$B_LOG" | sed 's/^/#   /'
		t_done
		exit 1
	fi
}

# b_claim_device: waits for the registration, claims the device and waits
# for its messaging session; sets B_EP.
b_claim_device() {
	t_wait_for 20 b_registered || return 1
	B_EP=$(b_status | jq -r '.registration.endpoint')
	b_admin devices claim "$B_EP" >/dev/null || return 1
	t_wait_for 20 b_streaming
}
