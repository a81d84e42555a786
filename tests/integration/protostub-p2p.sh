#!/usr/bin/env bash
# The p2p protostub against a real Local M2M Resource Directory
# (daemon/local-rd.c over TLS, served by tests/helpers/stub-host as the
# peer device, checking tokens with the key set of a real rethink-domain):
# device A's hyperty subscribes, reads and actuates through the stub over
# a real bus; the peer's 401/403/404/405 come back as codes with their
# descriptions; the peer restarting -> the stub reconnects and
# re-subscribes; connectivity offline -> no connection attempt; online ->
# at once, with the current value.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/domain-harness.bash"

HOST=$BUILD/tests/helpers/stub-host
STUB=$BUILD/protostubs/p2p
TOKEN_TOOL=$BUILD/tests/helpers/msg-token
for p in "$HOST" "$STUB" "$TOKEN_TOOL"; do
	[ -x "$p" ] || t_skip_all "$(basename "$p") is not built"
done
command -v jq >/dev/null || t_skip_all "jq is missing"
"$DOMAIN" --help 2>&1 | grep -q -- '--name' || t_skip_all "rethink-domain has no [Domain] Name= yet"

NAME=p2p.test
sed -i "s/^\[Domain\]\$/[Domain]\nName=$NAME/" "$D_TMP/domain.conf"

U=6e8b2d3f-1c7a-4b9f-8d42-3a5f7b9c1d
RT_A=runtime://$NAME/${U}a0 STUB1=runtime://$NAME/${U}a1 STUB2=runtime://$NAME/${U}a3 HA=hyperty://$NAME/${U}a2
HP=hyperty://$NAME/${U}c2
TEMP=ctxt://$NAME/${U}c2/temp
LAMP=ctxt://$NAME/${U}c2/lamp
DOOR=ctxt://$NAME/${U}c2/door
P_PORT=$(t_free_port)
PEER=https://127.0.0.1:$P_PORT

# The peer's certificate, from a CA of the test's own.
(
	cd "$D_TMP" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
		-days 2 -subj /CN=stub-test-ca 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout rd.key -out rd.csr \
			-subj /CN=127.0.0.1 2>/dev/null &&
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
		openssl x509 -req -in rd.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out rd.pem -days 2 \
			-extfile ext.cnf 2>/dev/null
) || t_skip_all "openssl cannot make test certificates"

d_start || { t_fail "rethink-domain starts"; t_done; exit 1; }
t_wait_for 10 test -f "$D_STATE/idm-key.pem" || t_fail "the IdM key exists"

# The peer: a Local RD offering a sensor anyone may read, a lamp device A
# may switch, a door device A may only read.
P_PID=
peer_start() {
	RETHINK_LOG_LEVEL=info "$HOST" --lrd-domain-url="$D_URL" --lrd-domain="$NAME" --lrd-port="$P_PORT" \
		--lrd-certificate="$D_TMP/rd.pem" --lrd-key="$D_TMP/rd.key" \
		--lrd-resource="$TEMP $HP sensor {\"*\":\"r\"}" \
		--lrd-resource="$LAMP $HP actuator {\"dev-a\":\"rw\"}" \
		--lrd-resource="$DOOR $HP actuator {\"dev-a\":\"r\"}" \
		<"$D_TMP/peer.in" >>"$D_TMP/peer.out" 2>>"$D_TMP/peer.err" &
	P_PID=$!
	t_cleanup "kill $P_PID"
	exec 5>"$D_TMP/peer.in"
	t_wait_for 10 grep -q '"lrd"' "$D_TMP/peer.out"
}
peer_stop() {
	kill -9 "$P_PID"
	wait "$P_PID" 2>/dev/null
	exec 5>&-
	: >"$D_TMP/peer.out"
}
mkfifo "$D_TMP/peer.in"
t_check "the peer serves its Local RD" peer_start
publish() { printf '{"publish":{"resource":"%s","value":%s}}\n' "$1" "$2" >&5; }

# Device A: the bus, one hyperty, two p2p stub instances (the second is
# started later with a bad token).
"$TOKEN_TOOL" "$D_STATE/idm-key.pem" "$NAME" dev-a "runtime peer" >"$D_TMP/device-token"
mkfifo "$D_TMP/a.in"
RETHINK_LOG_LEVEL=info "$HOST" --socket="$D_TMP/a.sock" --runtime="$RT_A" \
	--protostub="$STUB1=$D_TMP/stub1.token" --protostub="$STUB2=$D_TMP/stub2.token" \
	--hyperty="$HA" --device-token="$D_TMP/device-token" \
	<"$D_TMP/a.in" >"$D_TMP/a.out" 2>"$D_TMP/a.err" &
t_cleanup "kill $!"
exec 3>"$D_TMP/a.in"
t_cleanup "exec 3>&-"
t_wait_for 10 test -s "$D_TMP/stub2.token" || { t_fail "device A's bus is up"; t_done; exit 1; }

# stub N ADDRESS: starts p2p stub N toward the peer.
stub() {
	RETHINK_BUS=$D_TMP/a.sock RETHINK_ADDRESS=$2 RETHINK_RUNTIME=$RT_A RETHINK_DOMAIN=$NAME \
		RETHINK_BUS_TOKEN=$(cat "$D_TMP/stub$1.token") RETHINK_LOG_TARGET=console \
		RETHINK_LOG_LEVEL=${STUB_LOG_LEVEL:-info} \
		RETHINK_STUB_TARGET="{\"peer\":\"$PEER\",\"domain\":\"$NAME\",\"caFile\":\"$D_TMP/ca.pem\"}" \
		"$STUB" 2>"$D_TMP/stub$1.log" &
	t_cleanup "kill $!"
	eval "STUB_PID_$1=\$!"
}
stub 1 "$STUB1"

send() { printf '{"send":%s}\n' "$1" >&3; }
answer() { jq -c --argjson id "$1" \
	'select(.event=="received" and .message.type=="response" and .message.id==$id) | .message' \
	"$D_TMP/a.out" | tail -n 1; }
has_answer() { [ -n "$(answer "$1")" ]; }
# answered ID CODE: the answer to request ID comes (15 s) and has CODE.
answered() { t_wait_for 15 has_answer "$1" && [ "$(code_of "$1")" = "$2" ]; }
code_of() { answer "$1" | jq -r '.body.code'; }
desc_of() { answer "$1" | jq -r '.body.description // empty'; }
desc_has() { desc_of "$1" | grep -qF -- "$2"; }
got() { jq -e "select(.event==\"received\" and .message.type!=\"response\") | .message | select($1)" \
	"$D_TMP/a.out" >/dev/null 2>&1; }
attempts() { grep -c 'Connecting to the peer' "$D_TMP/stub1.log"; }
# req ID TYPE RESOURCE [VALUE]: hyperty A sends a request to the stub $VIA.
req() {
	local body="{\"resource\":\"$3\"}"
	[ $# -ge 4 ] && body="{\"resource\":\"$3\",\"value\":$4}"
	send "{\"id\":$1,\"type\":\"$2\",\"from\":\"$HA\",\"to\":\"$VIA\",\"body\":$body}"
}
VIA=$STUB1

t_wait_for 10 grep -q '"ready"' "$D_TMP/a.out" || t_fail "hyperty A is on the bus"
t_wait_for 10 grep -q '"token-read"' "$D_TMP/a.out" && t_ok "the stub reads the device token from the agent" ||
	t_fail "the stub reads the device token from the agent"

publish "$TEMP" '[{"n":"temp","v":20}]'
req 1 subscribe "$TEMP"
t_check "subscribe: 200" answered 1 200
t_wait_for 10 got ".type==\"update\" and .from==\"$TEMP\" and .to==\"$HA\" and .body.value[0].v==20" &&
	t_ok "the current value comes first" || t_fail "the current value comes first"
publish "$TEMP" '[{"n":"temp","v":21}]'
t_wait_for 10 got ".type==\"update\" and .body.value[0].v==21" && t_ok "a publication at the peer arrives" ||
	t_fail "a publication at the peer arrives"
req 2 subscribe "$TEMP"
t_check "subscribing again: 200" answered 2 200

req 3 read "$TEMP"
t_check "read: 200" answered 3 200
t_check "... with the last value" [ "$(answer 3 | jq -r '.body.value[0].v')" = 21 ]
req 4 update "$LAMP" '[{"n":"on","vb":true}]'
t_check "actuation: the peer's 202" answered 4 202
t_wait_for 10 grep -q "\"actuation\".*\"from\":\"$HA\"" "$D_TMP/peer.out" && t_ok "... handed to the reporter, from A's hyperty" ||
	t_fail "... handed to the reporter, from A's hyperty"
req 5 update "$DOOR" '[{"n":"open","vb":true}]'
t_check "actuation the ACL refuses: 403" answered 5 403
t_check "... with the peer's description" desc_has 5 "ACL does not let"
req 6 update "$TEMP" '[{"n":"temp","v":1}]'
t_check "updating a sensor: 405" answered 6 405
req 7 read "ctxt://$NAME/${U}c2/nothing"
t_check "unknown resource: 404" answered 7 404
req 8 read "ctxt://other.test/${U}c2/temp"
t_check "another domain's resource: 400 from the stub" answered 8 400
req 9 execute "$TEMP"
t_check "execute: 501" answered 9 501

# The peer restarts: the stub reconnects and subscribes again by itself.
peer_stop
t_wait_for 10 grep -q 'subscribing again in' "$D_TMP/stub1.log" && t_ok "the stub notices the peer is gone" ||
	t_fail "the stub notices the peer is gone"
peer_start || t_fail "the peer restarts"
publish "$TEMP" '[{"n":"temp","v":22}]'
t_wait_for 60 got ".type==\"update\" and .body.value[0].v==22" && t_ok "after the peer's restart the subscription delivers" ||
	t_fail "after the peer's restart the subscription delivers"

# Offline: no attempt; the peer restarts meanwhile; online: at once, and
# the current value arrives on the new stream.
printf '{"connectivity":"offline"}\n' >&3
t_wait_for 10 grep -q 'Connectivity is offline' "$D_TMP/stub1.log" && t_ok "the stub hears offline" ||
	t_fail "the stub hears offline"
n_before=$(attempts)
peer_stop
peer_start || t_fail "the peer restarts"
publish "$TEMP" '[{"n":"temp","v":23}]'
req 10 read "$TEMP"
t_check "a read while offline: 503" answered 10 503
sleep 3
t_check "no connection attempt while offline" [ "$(attempts)" = "$n_before" ]
printf '{"connectivity":"online"}\n' >&3
t_wait_for 10 got ".type==\"update\" and .body.value[0].v==23" && t_ok "online: subscribed again at once, current value" ||
	t_fail "online: subscribed again at once, current value"
t_check "... after one attempt" [ "$(attempts)" = $((n_before + 1)) ]

req 11 unsubscribe "$TEMP"
t_check "unsubscribe: 200" answered 11 200
req 12 unsubscribe "$TEMP"
t_check "unsubscribing again: 404" answered 12 404
publish "$TEMP" '[{"n":"temp","v":24}]'
req 13 read "$TEMP"
t_wait_for 10 has_answer 13 && t_check "the peer has the new value" [ "$(answer 13 | jq -r '.body.value[0].v')" = 24 ] ||
	t_fail "read after unsubscribe answered"
t_check "... but no notification came" sh -c "! jq -e 'select(.message.type==\"update\" and .message.body.value[0].v==24)' '$D_TMP/a.out' >/dev/null"

# A token the peer refuses: 401 with the peer's description.
echo "not.a.token" >"$D_TMP/device-token"
stub 2 "$STUB2"
VIA=$STUB2
t_wait_for 10 grep -q "\"instance\",\"address\":\"$STUB2\",\"connected\":true" "$D_TMP/a.out" ||
	t_fail "the second stub is on the bus"
req 14 read "$TEMP"
t_check "a bad token: the peer's 401" answered 14 401
t_check "... with its description" [ -n "$(desc_of 14)" ]
# A token without the peer scope: 403.
"$TOKEN_TOOL" "$D_STATE/idm-key.pem" "$NAME" dev-a runtime >"$D_TMP/device-token"
req 15 read "$TEMP"
t_check "after a 401 the stub reads the token again; without scope peer: 403" answered 15 403

t_check "the stubs are still running" kill -0 "$STUB_PID_1" "$STUB_PID_2"
[ "$T_FAILED" -eq 0 ] || tail -n "${STUB_LOG_LINES:-30}" "$D_TMP"/stub?.log "$D_TMP"/a.out "$D_TMP"/a.err "$D_TMP"/peer.err
t_done
