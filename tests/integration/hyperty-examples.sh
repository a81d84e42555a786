#!/usr/bin/env bash
# The example hyperties as processes on the real bus (daemon/bus.c, served
# by tests/helpers/bus-host, which also stands in for the domain): the
# producer registers and publishes, the consumer discovers it, subscribes,
# logs every value with its path and switches the actuator; configuration
# errors name their key; a producer that goes away is noticed; a thermal
# zone is read when there is one. Unix sockets only, no network.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
HOST=$BUILD/tests/helpers/bus-host
PRODUCER=$BUILD/hyperties/context-producer
CONSUMER=$BUILD/hyperties/context-consumer
for p in "$HOST" "$PRODUCER" "$CONSUMER"; do
	[ -x "$p" ] || t_skip_all "no $p"
done

DIR=$(mktemp -d /tmp/sdk-examples.XXXXXX)
HOST_PID=
t_cleanup "rm -rf '$DIR'"
# Components a killed bus-host left behind (it stops them itself on SIGTERM).
kill_components() {
	local pid
	for pid in $(sed -n 's/^started [a-z-]* pid=\([0-9]*\) .*/\1/p' "$DIR"/*/out 2>/dev/null); do
		# Only if the pid is still one of ours.
		grep -qa 'hyperties/context-' "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid"
	done
}
t_cleanup kill_components
t_cleanup '[ -n "$HOST_PID" ] && kill -TERM $HOST_PID && sleep 0.5 && kill -KILL $HOST_PID'

export RETHINK_LOG_TARGET=console RETHINK_LOG_LEVEL=info

# start_host NAME ARGS...: bus-host in $DIR/NAME, logs in out/err,
# commands (bus-host's stdin) written to fd 7.
start_host() {
	local name=$1; shift
	mkdir -p "$DIR/$name"; : >"$DIR/$name/out"; : >"$DIR/$name/err"
	rm -f "$DIR/$name/in"; mkfifo "$DIR/$name/in"
	exec 7<>"$DIR/$name/in"
	"$HOST" --socket="$DIR/$name/bus.sock" --domain=example.org "$@" \
		<&7 >"$DIR/$name/out" 2>"$DIR/$name/err" &
	HOST_PID=$!
}

stop_host() {
	[ -n "$HOST_PID" ] || return 0
	kill -TERM "$HOST_PID"
	wait "$HOST_PID"
	local rc=$?
	HOST_PID=
	return $rc
}

address_of() { sed -n "s/^started $2 pid=[0-9]* address=\(.*\)$/\1/p" "$DIR/$1/out"; }
pid_of() { sed -n "s/^started $2 pid=\([0-9]*\) .*/\1/p" "$DIR/$1/out"; }
count() { grep -c -- "$2" "$DIR/$1/err" || true; }
has_at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }

# --- pub/sub through the domain, and the actuator -----------------------------------
start_host main \
	--run=producer="$PRODUCER" --config='producer={"intervalSec":1,"source":"simulated"}' \
	--run=consumer="$CONSUMER" --config='consumer={"resource":"temperature","mode":"auto","switchAfter":3,"retrySec":1}'

t_wait_for 10 grep -q '^started consumer' "$DIR/main/out" || { t_fail "bus-host starts both"; t_done; exit 1; }
PROD=$(address_of main producer)
CONS=$(address_of main consumer)
RES="ctxt://example.org/${PROD#hyperty://example.org/}/temperature"
SW="ctxt://example.org/${PROD#hyperty://example.org/}/switch"

t_check "producer says its source is simulated" \
	t_wait_for 10 grep -q 'context-producer: Temperature source: simulated' "$DIR/main/err"
t_check "producer registers its resources" \
	t_wait_for 10 grep -q "context-producer: Registered temperature and switch as $PROD" "$DIR/main/err"
t_check "the registration names the switch as the actuator, with the default ACL" \
	grep -q "bus-host: registered $PROD (producer): {\"resources\":\[\"temperature\",\"switch\"\],\"actuators\":\[\"switch\"\],\"dataSchemes\":\[\"ctxt\"\],\"acl\":{\"\*\":\"rw\"}}" "$DIR/main/err"
t_check "consumer discovers the producer" \
	t_wait_for 10 grep -q "context-consumer: Found producer $PROD (messaging)" "$DIR/main/err"
t_check "consumer subscribes through the domain" \
	t_wait_for 10 grep -q "context-consumer: Subscribed to $RES via pubsub" "$DIR/main/err"
t_check "consumer logs 4 values with resource and path" \
	t_wait_for 20 has_at_least main "context-consumer: temperature [0-9.-]* Cel from $RES via pubsub (simulated)" 4

# Every value the consumer logged is one the producer published.
ok=1
while read -r v; do
	grep -q "context-producer: temperature $(printf '%.1f' "$v") Cel (simulated)" "$DIR/main/err" || ok=0
done < <(sed -n "s|.*context-consumer: temperature \([0-9.-]*\) Cel from $RES via pubsub.*|\1|p" "$DIR/main/err")
[ $ok = 1 ] && t_ok "consumer values are the producer's" || t_fail "consumer values are the producer's"

t_check "consumer switches the actuator on after 3 values" \
	t_wait_for 15 grep -q "context-consumer: switched $SW: 200 switched on" "$DIR/main/err"
t_check "producer logs who switched it on" \
	grep -q "context-producer: switch on by $CONS" "$DIR/main/err"
t_check "and off after 3 more" \
	t_wait_for 15 grep -q "context-consumer: switched $SW: 200 switched off" "$DIR/main/err"

# The actuator as seen from another device: a bad pack is answered 400
# with the rule, and changes nothing; a good one 200 with the new state.
echo "{\"actuate\":{\"resource\":\"$SW\",\"value\":[{\"n\":\"switch\",\"v\":1}]}}" >&7
t_check "a switch update without a boolean is answered 400" \
	t_wait_for 10 grep -q '^answer 400 SenML: no boolean value (vb) for the switch' "$DIR/main/out"
echo "{\"actuate\":{\"resource\":\"$SW\",\"value\":[{\"n\":\"switch\",\"vb\":true,\"vs\":\"x\"}]}}" >&7
t_check "a pack that is not SenML is answered 400 with the rule" \
	t_wait_for 10 grep -q '^answer 400 SenML: ' "$DIR/main/out"
t_check "refusals change nothing and are logged" test "$(count main 'context-producer: Refused a switch update')" = 2
echo "{\"actuate\":{\"resource\":\"$SW\",\"value\":[{\"n\":\"switch\",\"vb\":true}]}}" >&7
t_check "a good one is answered 200 with the state" \
	t_wait_for 10 grep -q '^answer 200 switched on \[{"n":"switch","vb":true}\]' "$DIR/main/out"
t_check "and the producer logs who switched it" \
	grep -q "context-producer: switch on by hyperty://example.org/00000000-0000-4000-8000-000000000001" "$DIR/main/err"

# The producer goes away: the domain publishes its status, the consumer
# leaves it and looks again.
kill -TERM "$(pid_of main producer)"
t_check "producer stops cleanly on SIGTERM" \
	t_wait_for 10 grep -q "producer (pid [0-9]*) exited with status 0" "$DIR/main/err"
t_check "consumer notices the producer is gone" \
	t_wait_for 10 grep -q "context-consumer: Leaving producer $PROD: disconnected" "$DIR/main/err"
t_check "consumer looks for another producer" \
	t_wait_for 10 grep -q "context-consumer: No live producer of temperature yet" "$DIR/main/err"

stop_host
t_check "consumer stops cleanly with the host" grep -q "consumer (pid [0-9]*) exited with status 0" "$DIR/main/err"
t_check "nothing was refused on the bus" bash -c "! grep -q 'not SenML\|Failed to publish\|refused' '$DIR/main/err'"

# --- a thermal zone ----------------------------------------------------------------------
mkdir -p "$DIR/thermal/thermal_zone0" "$DIR/thermal/thermal_zone1"
echo 45500 >"$DIR/thermal/thermal_zone1/temp"   # zone0 has no temp: skipped
start_host thermal \
	--run=producer="$PRODUCER" --config="producer={\"intervalSec\":1,\"thermalDir\":\"$DIR/thermal\"}" \
	--run=consumer="$CONSUMER" --config='consumer={"mode":"pubsub","retrySec":1}'
t_check "producer finds the readable zone" \
	t_wait_for 10 grep -q "context-producer: Temperature source: $DIR/thermal/thermal_zone1/temp" "$DIR/thermal/err"
t_check "consumer logs the thermal value, labelled" \
	t_wait_for 15 grep -q "context-consumer: temperature 45.5 Cel from ctxt://example.org/[0-9a-f-]*/temperature via pubsub (thermal)" "$DIR/thermal/err"
echo 47250 >"$DIR/thermal/thermal_zone1/temp"
t_check "a new reading goes through" \
	t_wait_for 15 grep -q "context-consumer: temperature 47.25 Cel from .* via pubsub (thermal)" "$DIR/thermal/err"
# The zone goes away: labelled simulated from then on.
rm -f "$DIR/thermal/thermal_zone1/temp"
t_check "a vanished zone turns into a labelled simulated source" \
	t_wait_for 15 grep -q "context-consumer: temperature [0-9.-]* Cel from .* via pubsub (simulated)" "$DIR/thermal/err"
stop_host

# --- a producer offering a local endpoint the consumer cannot reach -------------------------
start_host local --local-endpoint=https://127.0.0.1:1 \
	--run=producer="$PRODUCER" --config='producer={"intervalSec":1,"source":"simulated"}' \
	--run=consumer="$CONSUMER" --config='consumer={"mode":"auto","retrySec":1}'
t_check "auto: the consumer tries p2p first" \
	t_wait_for 15 grep -q "context-consumer: Found producer .* (local endpoint https://127.0.0.1:1)" "$DIR/local/err"
t_check "auto: no protostub, so pubsub" \
	t_wait_for 15 grep -q "context-consumer: No p2p protostub for https://127.0.0.1:1 (404 .*); using pubsub" "$DIR/local/err"
t_check "auto: values arrive via pubsub" \
	t_wait_for 15 grep -q "context-consumer: temperature [0-9.-]* Cel from .* via pubsub" "$DIR/local/err"
stop_host
start_host localp2p --local-endpoint=https://127.0.0.1:1 \
	--run=producer="$PRODUCER" --config='producer={"intervalSec":1,"source":"simulated"}' \
	--run=consumer="$CONSUMER" --config='consumer={"mode":"p2p","retrySec":1}'
t_check "p2p: no protostub means waiting, not pubsub" \
	t_wait_for 15 grep -q "context-consumer: No p2p protostub for https://127.0.0.1:1 (404 .*); mode is p2p" "$DIR/localp2p/err"
t_check "p2p: and no value" bash -c "! grep -q 'context-consumer: temperature' '$DIR/localp2p/err'"
stop_host

# --- mode p2p without a local endpoint: no silent fall-back -------------------------------
start_host p2p \
	--run=producer="$PRODUCER" --config='producer={"intervalSec":1,"source":"simulated"}' \
	--run=consumer="$CONSUMER" --config='consumer={"mode":"p2p","retrySec":1}'
t_check "mode p2p refuses the messaging-only producer" \
	t_wait_for 15 grep -q "context-consumer: Producer .* offers no local endpoint, and mode is p2p" "$DIR/p2p/err"
t_check "and logs no value" bash -c "! grep -q 'context-consumer: temperature' '$DIR/p2p/err'"
stop_host

# --- configuration errors name the key; nothing starts --------------------------------------
bad_config() { # PROGRAM JSON KEY
	local out rc
	out=$(RETHINK_COMPONENT_CONFIGURATION=$2 RETHINK_ADDRESS=hyperty://example.org/0b8f5e52-53f4-4f42-9d3a-55a3a1e1b0a1 \
		RETHINK_RUNTIME=runtime://example.org/6c1e1f2a-43a4-4b2b-8a0e-6d1f2a3b4c5d RETHINK_BUS_TOKEN=x \
		RETHINK_BUS="$DIR/none.sock" timeout 10 "$1" 2>&1)
	rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$3" <<<"$out"
}
t_check "producer: intervalSec 0" bad_config "$PRODUCER" '{"intervalSec":0}' "'intervalSec'"
t_check "producer: unknown source" bad_config "$PRODUCER" '{"source":"moon"}' "'source'"
t_check "producer: bad acl" bad_config "$PRODUCER" '{"acl":{"*":"x"}}' "'acl'"
t_check "producer: unknown key" bad_config "$PRODUCER" '{"colour":1}' "'colour'"
t_check "producer: thermal without zones" bad_config "$PRODUCER" "{\"source\":\"thermal\",\"thermalDir\":\"$DIR/nothing\"}" "'source'"
t_check "producer: not JSON" bad_config "$PRODUCER" '{"intervalSec":' "RETHINK_COMPONENT_CONFIGURATION"
t_check "consumer: bad mode" bad_config "$CONSUMER" '{"mode":"carrier-pigeon"}' "'mode'"
t_check "consumer: bad resource" bad_config "$CONSUMER" '{"resource":"a b"}' "'resource'"
t_check "consumer: negative switchAfter" bad_config "$CONSUMER" '{"switchAfter":-1}' "'switchAfter'"
t_check "consumer: without a bus token" bash -c "! env -u RETHINK_BUS_TOKEN RETHINK_ADDRESS=hyperty://example.org/0b8f5e52-53f4-4f42-9d3a-55a3a1e1b0a1 RETHINK_RUNTIME=runtime://example.org/6c1e1f2a-43a4-4b2b-8a0e-6d1f2a3b4c5d timeout 10 '$CONSUMER' 2>/dev/null"

# --- packaging: the descriptors are what the Catalogue accepts -------------------------------
CTL=$BUILD/rethinkctl
DOMAIN=$BUILD/rethink-domain
FETCH=$BUILD/tests/helpers/h2-fetch
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -x "$CTL" ] && [ -x "$DOMAIN" ] && [ -x "$FETCH" ] && command -v jq >/dev/null; then
	D_PID=
	t_cleanup '[ -n "$D_PID" ] && kill -KILL $D_PID'
	PORT=$(t_free_port)
	URL=https://127.0.0.1:$PORT
	"$CTL" domain init "$DIR/domain" --port="$PORT" --listen=127.0.0.1 >/dev/null
	"$DOMAIN" --config="$DIR/domain/domain.conf" >"$DIR/domain.log" 2>&1 &
	D_PID=$!
	port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
	t_check "rethink-domain starts" t_wait_for 10 port_open
	jqq() { jq -e "$@" >/dev/null; }
	make_examples() {
		"$ROOT/scripts/make-examples" --build="$BUILD" --out="$DIR/ex" \
			--publisher-key="$DIR/domain/publisher.key" --publish -- \
			--domain="$URL" --ca-file="$DIR/domain/ca.pem" --admin-token-file="$DIR/domain/admin-token" \
			>"$DIR/make-examples.log" 2>&1
	}
	t_check "make-examples packages and publishes both" make_examples
	t_check "rethinkctl says so for each" test "$(grep -c '^Published hyperty context-' "$DIR/make-examples.log")" = 2
	for name in context-producer context-consumer; do
		"$FETCH" --ca "$DIR/domain/ca.pem" --body-only "$URL/.well-known/hyperty/$name" >"$DIR/$name.served" 2>/dev/null
		t_check "the catalogue serves $name for $(uname -m) with its defaults" \
			jqq --arg sha "$(sha256sum "$DIR/ex/$name" | cut -d' ' -f1)" --arg arch "$(uname -m)" \
			'.type == "hyperty" and .sha256 == $sha and .constraints.arch == [$arch]
			 and (.constraints.runtimeVersion | length) > 0 and (.configuration | type) == "object"' \
			"$DIR/$name.served"
	done
	t_check "the producer's defaults are a configuration it accepts" \
		jqq '.configuration == {"intervalSec":2,"source":"auto","acl":{"*":"rw"}}' "$DIR/context-producer.served"
	kill "$D_PID"; wait "$D_PID" 2>/dev/null; D_PID=
else
	echo "# no rethinkctl/rethink-domain/h2-fetch/jq in $BUILD: publishing not checked"
fi

t_done
