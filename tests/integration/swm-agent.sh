#!/usr/bin/env bash
# The software manager inside the real rethink-agent: its control commands
# are there, callers are identified by SO_PEERCRED, the state directory and
# the trusted publishers come from the configuration, and records survive a
# restart. Downloads and crash recovery are covered by swm-crash.sh: the
# agent learns its catalogue from registration, which does not exist yet,
# so a relative package URL ends here with result 56.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
AGENT=$BUILD/rethink-agent
SERVER=$BUILD/tests/helpers/swm-pkg-server
[ -x "$AGENT" ] || t_skip_all "no $AGENT"
[ -x "$SERVER" ] || t_skip_all "no $SERVER"
command -v jq >/dev/null || t_skip_all "needs jq"
command -v python3 >/dev/null || t_skip_all "needs python3"

DIR=$(mktemp -d /tmp/rtsw-agent.XXXXXX)
NAME=rtsw-probe
SOCK=$DIR/agent.sock
AGENT_PID=
SERVER_PID=
t_cleanup "rm -rf '$DIR'"
t_cleanup '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID'
t_cleanup '[ -n "$SERVER_PID" ] && kill $SERVER_PID'

printf '#!/bin/sh\nexit 0\n' >"$DIR/pkg"
mkdir -p "$DIR/srv"
# Only for the signed descriptor and the publisher key; nothing downloads.
"$SERVER" --file="$DIR/pkg" --name="$NAME" --out="$DIR/srv" >"$DIR/srv/stdout" 2>&1 &
SERVER_PID=$!
t_wait_for 10 grep -q '^PORT=' "$DIR/srv/stdout" || { t_fail "package server starts"; t_done; exit 1; }

cat >"$DIR/ctl.py" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
req = {"id": 1, "command": sys.argv[2]}
if len(sys.argv) > 3:
    req["args"] = json.loads(sys.argv[3])
s.sendall(json.dumps(req).encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode().strip())
PY
ctl() { python3 "$DIR/ctl.py" "$SOCK" "$@"; }

start() {
	RETHINK_LOG_TARGET=json RETHINK_LOG_LEVEL=info "$AGENT" --bpf=no --watch=lo \
		--control-socket="$SOCK" --state-directory="$DIR/state" \
		--trusted-publishers="$DIR/srv/publishers" "$@" 2>>"$DIR/log" &
	AGENT_PID=$!
	t_wait_for 10 test -S "$SOCK"
}
stop() { kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null; AGENT_PID=; }

t_check "agent starts with a state directory" start
t_check "one trusted publisher loaded" jq -e -s 'map(select(.MESSAGE | test("1 trusted package publisher"))) | length == 1' "$DIR/log" >/dev/null >/dev/null
t_check "components: empty at first" test "$(ctl components | jq '.result.components | length')" = 0
t_check "components.db created" test -f "$DIR/state/components.db"

DESC=$(cat "$DIR/srv/descriptor.json")
REPLY=$(ctl install "{\"descriptor\": $DESC}")
t_check "install by root accepted" test "$(jq -r .ok <<<"$REPLY")" = true
t_check "install: no catalogue known yet, 56" \
	test "$(jq -r '.result.component.state + " " + (.result.component.result | tostring) + " " + .result.component.reason' <<<"$REPLY")" = "INITIAL 56 relative package URL and no catalogue known"
t_check "install: ACL owned by the local admin" test "$(jq -r .result.component.acl.owner <<<"$REPLY")" = "local:uid=0"
t_check "install again replaces a failed one" test "$(ctl install "{\"descriptor\": $DESC}" | jq -r .ok)" = true
t_check "accept before delivery: 409" test "$(ctl accept "{\"name\": \"$NAME\"}" | jq -r .error.code)" = 409
t_check "unknown component: 404" test "$(ctl accept '{"name": "nope"}' | jq -r .error.code)" = 404
t_check "bad args: 400" test "$(ctl accept '{"nom": "x"}' | jq -r .error.code)" = 400
BAD=$(jq -c '.signature = "AAAA"' <<<"$DESC")
t_check "malformed descriptor: 400" test "$(ctl install "{\"descriptor\": $BAD}" | jq -r .error.code)" = 400

OTHER=$(jq -c '.objectName = "rtsw-other" | .publisher = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"' <<<"$DESC")
REPLY=$(ctl install "{\"descriptor\": $OTHER}")
t_check "untrusted publisher: result 53 at once" test "$(jq -r .result.component.result <<<"$REPLY")" = 53
t_check "journal: failure entry with its MESSAGE_ID" jq -e -s \
	'map(select(.MESSAGE_ID == "e22780f5272e4162ab204f585250639a" and .COMPONENT == "rtsw-other" and .SWM_RESULT == "53")) | length == 1' "$DIR/log" >/dev/null
t_check "journal: transition entries" jq -e -s \
	"map(select(.MESSAGE_ID == \"eaf2bc61d6ba4790acaa4b16191f8299\" and .COMPONENT == \"$NAME\" and .SWM_STATE == \"INITIAL\" and .SWM_RESULT == \"0\" and .SWM_PRINCIPAL == \"local:uid=0\")) | length == 2" "$DIR/log" >/dev/null

if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null && [ -x /usr/bin/python3 ]; then
	chmod 0711 "$DIR"
	chmod 0666 "$SOCK"
	as_nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups /usr/bin/python3 "$DIR/ctl.py" "$SOCK" "$@"; }
	t_check "nobody: install refused 403" test "$(as_nobody install "{\"descriptor\": $(jq -c '.objectName = "rtsw-evil"' <<<"$DESC")}" | jq -r .error.code)" = 403
	t_check "nobody: uninstall refused 403" test "$(as_nobody uninstall "{\"name\": \"$NAME\"}" | jq -r .error.code)" = 403
	t_check "nobody: sees no component" test "$(as_nobody components | jq '.result.components | length')" = 0
	t_check "journal: refusal entry" jq -e -s \
		'map(select(.MESSAGE_ID == "796c97f5aaf241e6b84419286b0686e0" and .SWM_ORDER == "uninstall")) | length == 1' "$DIR/log" >/dev/null
fi
t_check "nothing changed by refusals" test "$(ctl components | jq -r '[.result.components[].name] | join(",")')" = "$NAME,rtsw-other"

stop
t_check "restart" start
t_check "records survive the restart" test "$(ctl components | jq -r ".result.components[] | select(.name == \"$NAME\") | .state + \" \" + (.result | tostring)")" = "INITIAL 56"
t_check "recovery entry" jq -e -s \
	"map(select(.MESSAGE_ID == \"e28983ab0ff14472bce126659bd7622f\" and .COMPONENT == \"$NAME\")) | length >= 1" "$DIR/log" >/dev/null
REPLY=$(ctl uninstall "{\"name\": \"$NAME\"}")
t_check "uninstall of a pending component" test "$(jq -r .result.component.removed <<<"$REPLY")" = true
t_check "its record is gone" test "$(ctl components | jq -r '[.result.components[].name] | join(",")')" = rtsw-other
stop

t_done
