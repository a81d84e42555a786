#!/usr/bin/env bash
# The messaging protostub against a real rethink-domain (h2c on loopback),
# on a real bus: two devices, each a daemon/bus.c served by
# tests/helpers/stub-host (which plays one hyperty over libhyperty) and its
# own messaging stub with its own device token. Global Registry create,
# keep-alive, discovery and errors through the stub; A subscribes through
# the domain, B publishes, A gets it; the domain SIGKILLed and restarted ->
# both stubs re-open their sessions, what was sent meanwhile arrives, the
# subscription holds; connectivity offline -> no connection attempt at
# all, even with the domain back; online -> at once, and what waited in
# the stub is delivered.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/domain-harness.bash"

HOST=$BUILD/tests/helpers/stub-host
STUB=$BUILD/protostubs/messaging
TOKEN_TOOL=$BUILD/tests/helpers/msg-token
for p in "$HOST" "$STUB" "$TOKEN_TOOL"; do
	[ -x "$p" ] || t_skip_all "$(basename "$p") is not built"
done
command -v jq >/dev/null || t_skip_all "jq is missing"
"$DOMAIN" --help 2>&1 | grep -q -- '--name' || t_skip_all "rethink-domain has no [Domain] Name= yet"

NAME=stubs.test
sed -i "s/^\[Domain\]\$/[Domain]\nName=$NAME/" "$D_TMP/domain.conf"

U=5d7a1c2e-0b6f-4a8e-9c31-2f4e6a8b0c
RT_A=runtime://$NAME/${U}a0 STUB_A=runtime://$NAME/${U}a1 HA=hyperty://$NAME/${U}a2
RT_B=runtime://$NAME/${U}b0 STUB_B=runtime://$NAME/${U}b1 HB=hyperty://$NAME/${U}b2
REG=domain://registry.$NAME
SM=domain://msg-node.$NAME/sm
RES=ctxt://$NAME/${U}b2/temp
RES_A=ctxt://$NAME/${U}a2/humidity

d_start || { t_fail "rethink-domain starts"; t_done; exit 1; }
t_wait_for 10 test -f "$D_STATE/idm-key.pem" || t_fail "the IdM key exists"

# device TAG RUNTIME STUB HYPERTY SUBJECT: one device's agent side (the bus
# with a route for the domain to the stub and one hyperty, in stub-host)
# and its messaging stub. Files are $D_TMP/TAG.*; fd 3 (A) or 4 (B) feeds
# the host's commands.
device() {
	local tag=$1 rt=$2 stub=$3 hy=$4 fd=$5
	"$TOKEN_TOOL" "$D_STATE/idm-key.pem" "$NAME" "$6" >"$D_TMP/$tag.device-token"
	mkfifo "$D_TMP/$tag.in"
	RETHINK_LOG_LEVEL=${STUB_LOG_LEVEL:-info} "$HOST" --socket="$D_TMP/$tag.sock" --runtime="$rt" \
		--protostub="$stub=$D_TMP/$tag.stub-token" --route="$NAME=$stub" --hyperty="$hy" \
		--device-token="$D_TMP/$tag.device-token" \
		<"$D_TMP/$tag.in" >"$D_TMP/$tag.out" 2>"$D_TMP/$tag.err" &
	t_cleanup "kill $!"
	eval "exec $fd>\"\$D_TMP/\$tag.in\""
	t_cleanup "exec $fd>&-"
	t_wait_for 10 test -s "$D_TMP/$tag.stub-token" || return 1
	RETHINK_BUS=$D_TMP/$tag.sock RETHINK_ADDRESS=$stub RETHINK_RUNTIME=$rt RETHINK_DOMAIN=$NAME \
		RETHINK_BUS_TOKEN=$(cat "$D_TMP/$tag.stub-token") RETHINK_LOG_TARGET=console \
		RETHINK_LOG_LEVEL=${STUB_LOG_LEVEL:-info} \
		RETHINK_STUB_TARGET="{\"domain\":\"$NAME\",\"domainUrl\":\"$D_URL\"}" \
		"$STUB" 2>"$D_TMP/$tag.log" &
	t_cleanup "kill $!"
	eval "STUB_PID_$tag=\$!"
}
device A "$RT_A" "$STUB_A" "$HA" 3 dev-a || t_fail "device A's bus is up"
device B "$RT_B" "$STUB_B" "$HB" 4 dev-b || t_fail "device B's bus is up"

opened() { [ "$(grep -c 'Messaging session of .* open' "$D_TMP/$1.log")" -ge "$2" ]; }
attempts() { grep -c 'Connecting to the Messaging Service' "$D_TMP/$1.log"; }
# send TAG MESSAGE: a hyperty of device TAG sends MESSAGE.
send() { if [ "$1" = A ]; then printf '{"send":%s}\n' "$2" >&3; else printf '{"send":%s}\n' "$2" >&4; fi; }
# answer TAG ID: the response to request ID on device TAG (compact JSON).
answer() { jq -c --argjson id "$2" \
	'select(.event=="received" and .message.type=="response" and .message.id==$id) | .message' \
	"$D_TMP/$1.out" | tail -n 1; }
has_answer() { [ -n "$(answer "$1" "$2")" ]; }
# answered TAG ID CODE: the answer to request ID on device TAG comes and has CODE.
answered() { t_wait_for 10 has_answer "$1" "$2" && [ "$(code_of "$1" "$2")" = "$3" ]; }
code_of() { answer "$1" "$2" | jq -r '.body.code'; }
# got TAG JQ: a message (not a response) matching the jq condition arrived on device TAG.
got() { jq -e "select(.event==\"received\" and .message.type!=\"response\") | .message | select($2)" \
	"$D_TMP/$1.out" >/dev/null 2>&1; }

t_wait_for 20 opened A 1 && t_ok "stub A opens its session" || t_fail "stub A opens its session"
t_wait_for 20 opened B 1 && t_ok "stub B opens its session" || t_fail "stub B opens its session"
t_check "... with the token it read from the agent" grep -q '"token-read"' "$D_TMP/A.out"
t_wait_for 10 grep -q '"ready"' "$D_TMP/A.out" || t_fail "hyperty A is on the bus"
t_wait_for 10 grep -q '"ready"' "$D_TMP/B.out" || t_fail "hyperty B is on the bus"

# Global Registry through the stub.
REC='{"descriptor":"https://catalogue.stubs.test/.well-known/hyperty/Thermo","resources":["temp"],"dataSchemes":["ctxt"],"location":{"type":"messaging"},"lifetime":60}'
send B "{\"id\":11,\"type\":\"create\",\"from\":\"$HB\",\"to\":\"$REG\",\"body\":{\"resource\":\"$HB\",\"value\":$REC}}"
t_wait_for 10 has_answer B 11 && t_ok "registry create answered" || t_fail "registry create answered"
t_check "... 201" [ "$(code_of B 11)" = 201 ]
t_check "... from the registry's address" [ "$(answer B 11 | jq -r .from)" = "$REG" ]
t_check "... the entry's runtime is the stub" [ "$(answer B 11 | jq -r .body.value.runtime)" = "$STUB_B" ]

send B "{\"id\":12,\"type\":\"update\",\"from\":\"$HB\",\"to\":\"$REG\",\"body\":{\"resource\":\"$HB\",\"attribute\":\"keepalive\"}}"
t_check "keep-alive: 204" answered B 12 204

send A "{\"id\":13,\"type\":\"read\",\"from\":\"$HA\",\"to\":\"$REG\",\"body\":{\"criteria\":{\"resource\":\"temp\",\"limit\":5}}}"
t_wait_for 10 has_answer A 13 && t_ok "discovery from device A answered" || t_fail "discovery from device A answered"
t_check "... finds B's hyperty" [ "$(answer A 13 | jq -r '.body.value.hyperties[0].url')" = "$HB" ]

send A "{\"id\":14,\"type\":\"read\",\"from\":\"$HA\",\"to\":\"$REG\",\"body\":{\"criteria\":{\"colour\":\"red\"}}}"
t_check "unknown criterion: the registry's 400" answered A 14 400
t_check "... with its description" [ -n "$(answer A 14 | jq -r '.body.description // empty')" ]
send A "{\"id\":15,\"type\":\"create\",\"from\":\"$HA\",\"to\":\"$REG\",\"body\":{\"resource\":\"$HA\"}}"
t_check "create without a record: 400 from the stub" answered A 15 400
send A "{\"id\":16,\"type\":\"execute\",\"from\":\"$HA\",\"to\":\"$REG\",\"body\":{}}"
t_check "execute at the registry: 501" answered A 16 501
send A "{\"id\":17,\"type\":\"delete\",\"from\":\"$HA\",\"to\":\"$REG\",\"body\":{\"resource\":\"$HB\"}}"
t_check "deleting another device's entry: the registry's 403" answered A 17 403

# Publish/subscribe: A subscribes through the domain, B publishes.
send A "{\"id\":21,\"type\":\"subscribe\",\"from\":\"$HA\",\"to\":\"$SM\",\"body\":{\"resource\":\"$RES\"}}"
t_check "subscribe: 200 from the subscription manager" answered A 21 200
send B "{\"id\":22,\"type\":\"create\",\"from\":\"$HB\",\"to\":\"$RES\",\"body\":{\"value\":[{\"n\":\"temp\",\"v\":21.5}]}}"
t_wait_for 10 got A ".type==\"update\" and .to==\"$HA\" and .body.value[0].v==21.5" &&
	t_ok "the subscriber on device A gets the publication" || t_fail "the subscriber on device A gets the publication"
send A "{\"id\":23,\"type\":\"update\",\"from\":\"$HA\",\"to\":\"$RES\",\"body\":{\"value\":[{\"n\":\"temp\"}]}}"
t_check "bad SenML: the domain's 400 comes back" answered A 23 400
send B "{\"id\":24,\"type\":\"subscribe\",\"from\":\"$HB\",\"to\":\"$SM\",\"body\":{\"resource\":\"$RES_A\"}}"
t_wait_for 10 has_answer B 24 || t_fail "B's subscription answered"

# The domain goes away (SIGKILL); a publication sent meanwhile waits in
# stub B; the domain comes back; both stubs re-open, the value arrives.
kill -9 "$D_PID"
wait "$D_PID" 2>/dev/null
t_wait_for 10 grep -q 'Messaging session of .* down' "$D_TMP/A.log" && t_ok "stub A notices the domain is gone" ||
	t_fail "stub A notices the domain is gone"
send B "{\"id\":25,\"type\":\"update\",\"from\":\"$HB\",\"to\":\"$RES\",\"body\":{\"value\":[{\"n\":\"temp\",\"v\":22}]}}"
d_start || t_fail "rethink-domain restarts"
t_wait_for 60 opened A 2 && t_ok "stub A re-opens its session" || t_fail "stub A re-opens its session"
t_wait_for 60 opened B 2 && t_ok "stub B re-opens its session" || t_fail "stub B re-opens its session"
# read_is ID V: A reads RES (request ID) and gets V.
read_is() {
	send A "{\"id\":$1,\"type\":\"read\",\"from\":\"$HA\",\"to\":\"$RES\",\"body\":{}}"
	t_wait_for 10 has_answer A "$1" && [ "$(answer A "$1" | jq -r '.body.value[0].v')" = "$2" ]
}
ok=
for id in 31 32 33 34 35; do read_is $id 22 && { ok=1; break; }; sleep 1; done
t_check "what B sent while the domain was down reached it" [ -n "$ok" ]
send B "{\"id\":26,\"type\":\"update\",\"from\":\"$HB\",\"to\":\"$RES\",\"body\":{\"value\":[{\"n\":\"temp\",\"v\":23}]}}"
t_wait_for 10 got A ".type==\"update\" and .body.value[0].v==23" && t_ok "deliveries continue on the re-opened sessions" ||
	t_fail "deliveries continue on the re-opened sessions"

# Device A offline: stub A drops its connection and does not try at all,
# though the domain restarts meanwhile; what A's hyperty sends waits in
# the stub; online: at once, and it is delivered.
printf '{"connectivity":"offline"}\n' >&3
t_wait_for 10 grep -q 'Connectivity is offline' "$D_TMP/A.log" && t_ok "stub A hears offline" ||
	t_fail "stub A hears offline"
n_before=$(attempts A)
kill -9 "$D_PID"
wait "$D_PID" 2>/dev/null
d_start || t_fail "rethink-domain restarts"
t_wait_for 60 opened B 3 || t_fail "stub B re-opens by itself"
send A "{\"id\":41,\"type\":\"create\",\"from\":\"$HA\",\"to\":\"$RES_A\",\"body\":{\"value\":[{\"n\":\"humidity\",\"v\":50}]}}"
# 20 messages of 60 KiB while offline: the stub keeps at most 1 MiB and
# answers the rest 503 at once.
PAD=$(head -c 61440 /dev/zero | tr '\0' x)
for id in $(seq 50 69); do
	send A "{\"id\":$id,\"type\":\"execute\",\"from\":\"$HA\",\"to\":\"runtime://$NAME/${U}e0\",\"body\":{\"pad\":\"$PAD\"}}"
done
full() { [ "$(jq -c 'select(.message.type=="response" and .message.body.code==503)' "$D_TMP/A.out" | grep -c 'queue is full')" -ge 1 ]; }
t_wait_for 10 full && t_ok "past 1 MiB queued the stub answers 503 at once" || t_fail "past 1 MiB queued the stub answers 503 at once"
sleep 3
t_check "no connection attempt while offline" [ "$(attempts A)" = "$n_before" ]
t_check "... and nothing delivered" sh -c "! grep -q '\"v\":50' '$D_TMP/B.out'"
printf '{"connectivity":"online"}\n' >&3
t_wait_for 10 opened A 3 && t_ok "online: the session is back at once" || t_fail "online: the session is back at once"
t_check "... after one attempt" [ "$(attempts A)" = $((n_before + 1)) ]
t_wait_for 10 got B ".type==\"update\" and .to==\"$HB\" and .body.value[0].v==50" &&
	t_ok "what was sent while offline reaches B's subscriber" || t_fail "what was sent while offline reaches B's subscriber"
t_check "the queued big messages went out: the domain's 404" answered A 50 404
big_answers() { jq -r 'select(.message.type=="response" and .message.id>=50) | .message.id' "$D_TMP/A.out"; }
big_done() { [ "$(big_answers | wc -l)" -ge 20 ]; }
t_wait_for 20 big_done || t_fail "all 20 big messages answered ($(big_answers | wc -l))"
once_each() { [ "$(big_answers | wc -l)" = 20 ] && [ "$(big_answers | sort -u | wc -l)" = 20 ]; }
t_check "... each exactly once (queued: the domain's 404, refused: 503)" once_each

t_check "the stubs are still running" kill -0 "$STUB_PID_A" "$STUB_PID_B"
t_check "the domain is still running" d_alive
[ "$T_FAILED" -eq 0 ] || tail -n "${STUB_LOG_LINES:-30}" "$D_TMP"/?.log "$D_TMP"/?.out "$D_TMP"/?.err
t_done
