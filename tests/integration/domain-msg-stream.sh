#!/usr/bin/env bash
# The Messaging Service of a real rethink-domain driven with clients we did
# not write: nghttp holds a session's NDJSON stream open while other nghttp
# requests route messages, subscribe and publish; h2load POSTs messages
# concurrently; bad input gets a JSON 4xx; a SIGKILLed and restarted domain
# still has the subscription and the last value.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/domain-harness.bash"

TOKEN_TOOL=$BUILD/tests/helpers/msg-token
[ -x "$TOKEN_TOOL" ] || t_skip_all "msg-token is not built"
command -v stdbuf >/dev/null || t_skip_all "stdbuf is missing"
command -v h2load >/dev/null || t_skip_all "h2load is missing"
"$DOMAIN" --help 2>&1 | grep -q -- '--name' || t_skip_all "rethink-domain has no [Domain] Name= yet"

NAME=msg.test
# The domain's name goes into [Domain]; the harness wrote that section first.
sed -i "s/^\[Domain\]\$/[Domain]\nName=$NAME/" "$D_TMP/domain.conf"

RT_A=runtime://$NAME/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a01
RT_B=runtime://$NAME/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a02
SM=domain://msg-node.$NAME/sm
RES=ctxt://$NAME/greenhouse/temp

d_start || { t_fail "rethink-domain starts"; t_done; exit 1; }
t_wait_for 10 test -f "$D_STATE/idm-key.pem" || t_fail "the IdM key exists"
TOK_A=$("$TOKEN_TOOL" "$D_STATE/idm-key.pem" "$NAME" dev-a)
TOK_B=$("$TOKEN_TOOL" "$D_STATE/idm-key.pem" "$NAME" dev-b)
AUTH_A="authorization: Bearer $TOK_A"
AUTH_B="authorization: Bearer $TOK_B"

# open RUNTIME AUTH: opens (or re-opens) a session; prints its id.
open() {
	printf '{"runtime":"%s"}' "$1" >"$D_TMP/open.json"
	local st
	st=$(d_status POST /msg/sessions "$D_TMP/open.json" "$2")
	[ "$st" = 201 ] || [ "$st" = 200 ] || return 1
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["session"])' "$D_TMP/body"
}

# post SID AUTH FROM TO TYPE ID BODY: POSTs one message; prints the status.
post() {
	printf '{"id":%s,"type":"%s","from":"%s","to":"%s","body":%s}' "$6" "$5" "$3" "$4" "$7" >"$D_TMP/msg.json"
	d_status POST "/msg/sessions/$1/messages" "$D_TMP/msg.json" "$2"
}

# stream SID AUTH OUT: nghttp reads the session's stream into OUT, unbuffered,
# for at most 20 s (killed earlier by the cleanup).
stream() {
	timeout 20 stdbuf -o0 nghttp -H "$2" "$D_URL/msg/sessions/$1/stream" >"$3" 2>/dev/null &
	t_cleanup "kill $! 2>/dev/null"
	STREAM_PID=$!
}

# has OUT PATTERN: the stream OUT shows a line matching PATTERN (fixed string).
has() { grep -qF -- "$2" "$1"; }

is_json_error() {
	python3 - "$D_TMP/body" "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["code"] == int(sys.argv[2]), j
assert sys.argv[3] in j["description"], j
PY
}

SID_A=$(open "$RT_A" "$AUTH_A") && t_ok "runtime A opens a session" || t_fail "runtime A opens a session"
SID_B=$(open "$RT_B" "$AUTH_B") && t_ok "runtime B opens a session" || t_fail "runtime B opens a session"
again=$(open "$RT_B" "$AUTH_B")
t_check "re-opening gives the same session" [ "$again" = "$SID_B" ]
t_check "another subject cannot take runtime B" [ "$(d_status POST /msg/sessions "$D_TMP/open.json" "$AUTH_A")" = 403 ]
t_check "no token: 401" [ "$(d_status POST /msg/sessions "$D_TMP/open.json")" = 401 ]

stream "$SID_B" "$AUTH_B" "$D_TMP/b.out"
sleep 0.3

t_check "A routes a message to B: 202" [ "$(post "$SID_A" "$AUTH_A" "$RT_A" "$RT_B" execute 1 '{"attribute":"ping"}')" = 202 ]
t_wait_for 5 has "$D_TMP/b.out" '"id":1,"type":"execute"' && t_ok "B's nghttp stream shows it" || t_fail "B's nghttp stream shows it"

t_check "B subscribes: 202" [ "$(post "$SID_B" "$AUTH_B" "$RT_B" "$SM" subscribe 2 "{\"resource\":\"$RES\"}")" = 202 ]
t_wait_for 5 has "$D_TMP/b.out" '"id":2,"type":"response"' && t_ok "B gets the subscription's answer" || t_fail "B gets the subscription's answer"
t_check "A publishes: 202" [ "$(post "$SID_A" "$AUTH_A" "$RT_A" "$RES" create 3 '{"value":[{"n":"temp","u":"Cel","v":24.5}]}')" = 202 ]
t_wait_for 5 has "$D_TMP/b.out" '"value":[{"n":"temp","u":"Cel","v":24.5}]' && t_ok "B's stream shows the publication" || t_fail "B's stream shows the publication"

# Bad input: JSON errors, nothing routed, the server keeps serving.
printf '{"id":4,"type":"shout","from":"%s","to":"%s","body":{}}' "$RT_A" "$RT_B" >"$D_TMP/bad.json"
t_check "malformed message: 400" [ "$(d_status POST "/msg/sessions/$SID_A/messages" "$D_TMP/bad.json" "$AUTH_A")" = 400 ]
t_check "... with the parser's reason" is_json_error 400 "field 'type'"
t_check "spoofed from: 403" [ "$(post "$SID_A" "$AUTH_A" "$RT_B" "$RT_B" execute 5 '{}')" = 403 ]
t_check "... as JSON" is_json_error 403 "'from'"
t_check "bad SenML: 202, answered on A's session" [ "$(post "$SID_A" "$AUTH_A" "$RT_A" "$RES" update 6 '{"value":[{"n":"temp"}]}')" = 202 ]
t_check "A's session is not B's: 403" [ "$(post "$SID_A" "$AUTH_B" "$RT_B" "$RT_A" execute 7 '{}')" = 403 ]
sleep 0.3
t_check "nothing of it reached B" sh -c "! grep -qE '\"id\":(4|5|6|7),' '$D_TMP/b.out'"

# h2load: 400 concurrent POSTs of messages from A to B on 4 connections.
printf '{"id":8,"type":"execute","from":"%s","to":"%s","body":{}}' "$RT_A" "$RT_B" >"$D_TMP/load.json"
h2load -n 400 -c 4 -m 10 -d "$D_TMP/load.json" -H "$AUTH_A" "$D_URL/msg/sessions/$SID_A/messages" >"$D_TMP/h2load.out" 2>&1
t_check "h2load: every POST accepted" grep -q "status codes: 400 2xx" "$D_TMP/h2load.out"
count_8() { [ "$(grep -c '"id":8,' "$D_TMP/b.out")" -ge 400 ]; }
t_wait_for 10 count_8 && t_ok "B's stream got all 400" || t_fail "B's stream got all 400 ($(grep -c '"id":8,' "$D_TMP/b.out"))"
t_check "the stream is still open" kill -0 "$STREAM_PID"

# SIGKILL and restart: the subscription and the last value are still there.
kill -9 "$D_PID"
wait "$D_PID" 2>/dev/null
d_start || t_fail "rethink-domain restarts"
SID_A=$(open "$RT_A" "$AUTH_A") || t_fail "A re-opens after the restart"
SID_B=$(open "$RT_B" "$AUTH_B") || t_fail "B re-opens after the restart"
stream "$SID_B" "$AUTH_B" "$D_TMP/b2.out"
sleep 0.3
post "$SID_B" "$AUTH_B" "$RT_B" "$RES" read 9 '{}' >/dev/null
t_wait_for 5 has "$D_TMP/b2.out" '"id":9,"type":"response"' && t_ok "read after restart answered" || t_fail "read after restart answered"
t_check "... with the last value" has "$D_TMP/b2.out" '"value":[{"n":"temp","u":"Cel","v":24.5}]'
post "$SID_A" "$AUTH_A" "$RT_A" "$RES" update 10 '{"value":[{"n":"temp","u":"Cel","v":25}]}' >/dev/null
t_wait_for 5 has "$D_TMP/b2.out" '"value":[{"n":"temp","u":"Cel","v":25}]' && t_ok "the subscription survived SIGKILL" || t_fail "the subscription survived SIGKILL"
t_check "the domain is still running" d_alive

t_done
