#!/usr/bin/env bash
# Crash recovery of the software manager: a real process (tests/helpers/
# swm-agent, the manager and its control socket as the agent runs them)
# downloads a signed package from a real HTTP/2 server over loopback and is
# SIGKILLed in every state: downloading, downloaded, delivered, installing,
# installed, active. Restarted on the same state directory it must resume
# or roll back, with no orphan files, no double install and no second copy
# of a running component.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
AGENT=$BUILD/tests/helpers/swm-agent
SERVER=$BUILD/tests/helpers/swm-pkg-server
[ -x "$AGENT" ] || t_skip_all "no $AGENT"
[ -x "$SERVER" ] || t_skip_all "no $SERVER"
command -v jq >/dev/null || t_skip_all "needs jq"
command -v python3 >/dev/null || t_skip_all "needs python3"

DIR=$(mktemp -d /tmp/rtsw-crash.XXXXXX)
NAME=rtsw-sensor
SERVER_PID=
AGENT_PID=
t_cleanup "rm -rf '$DIR'"
t_cleanup '[ -n "$SERVER_PID" ] && kill $SERVER_PID'
t_cleanup '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID'

# The package: a shell script that stays up (so "active" can be checked),
# padded to 1 MiB so a slow server takes a while to send it.
{
	printf '#!/bin/sh\nwhile :; do sleep 5; done\n'
	head -c $((1024 * 1024 - 40)) /dev/zero | tr '\0' '#'
	printf '\n'
} >"$DIR/pkg"
mkdir -p "$DIR/srv"
"$SERVER" --file="$DIR/pkg" --name="$NAME" --out="$DIR/srv" --chunk=8192 --interval-ms=4 \
	>"$DIR/srv/stdout" 2>"$DIR/srv/stderr" &
SERVER_PID=$!
t_wait_for 10 grep -q '^PORT=' "$DIR/srv/stdout" || { t_fail "package server starts"; t_done; exit 1; }
PORT=$(sed -n 's/^PORT=//p' "$DIR/srv/stdout")
CATALOGUE=http://127.0.0.1:$PORT

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

# start STATE_DIR [--crash-at=STATE]
start() {
	local sd=$1; shift
	"$AGENT" --state-dir="$sd" --socket="$sd.sock" --catalogue="$CATALOGUE" \
		--publishers="$DIR/srv/publishers" "$@" >>"$sd.log" 2>&1 &
	AGENT_PID=$!
	t_wait_for 10 test -S "$sd.sock"
}
ctl() { python3 "$DIR/ctl.py" "$SD.sock" "$@"; }
state() { ctl components | jq -r ".result.components[] | select(.name == \"$NAME\") | .state"; }
result() { ctl components | jq -r ".result.components[] | select(.name == \"$NAME\") | .result"; }
is_state() { [ "$(state 2>/dev/null)" = "$1" ]; }
install() { ctl install "{\"descriptor\": $(cat "$DIR/srv/descriptor.json")}"; }
kill9() {
	kill -KILL "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
	rm -f "$SD.sock"
}
crashed() { ! kill -0 "$AGENT_PID" 2>/dev/null; }
reap() { wait "$AGENT_PID" 2>/dev/null; AGENT_PID=; rm -f "$SD.sock"; }
count() { find "$SD/software/$1" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
running() { pgrep -f "$SD/software/installed/$NAME/$NAME" | wc -l; }
part_size() { stat -c %s "$SD/software/downloads/$NAME.part" 2>/dev/null || echo 0; }
no_orphans() {
	[ "$(count staging)" -eq 0 ] && [ "$(count trash)" -eq 0 ] &&
		[ "$(find "$SD/software" -name '*.tmp*' | wc -l)" -eq 0 ]
}
installed_once() {
	[ "$(count installed)" -eq 1 ] && [ -x "$SD/software/installed/$NAME/$NAME" ] &&
		cmp -s "$DIR/pkg" "$SD/software/installed/$NAME/$NAME" &&
		[ "$(ctl components | jq '.result.components | length')" -eq 1 ]
}

# --- killed while downloading: resumes with Range from the partial ---------------
SD=$DIR/downloading
start "$SD"
install >/dev/null
grown() { [ "$(part_size)" -ge 131072 ]; }
t_check "downloading: partial grows" t_wait_for 20 grown
kill9
PARTIAL=$(part_size)
t_check "downloading: partial kept after SIGKILL ($PARTIAL bytes)" test "$PARTIAL" -gt 0 -a "$PARTIAL" -lt "$(stat -c %s "$DIR/pkg")"
: >"$DIR/srv/requests.log"
start "$SD"
t_check "downloading: delivered after restart" t_wait_for 30 is_state DELIVERED
t_check "downloading: resumed with Range from the partial" grep -q "range=bytes=$PARTIAL- if-range=\"" "$DIR/srv/requests.log"
t_check "downloading: never restarted from zero" bash -c "! grep -q 'range= ' '$DIR/srv/requests.log'"
t_check "downloading: package complete and verified" cmp -s "$DIR/pkg" "$SD/software/downloads/$NAME.pkg"
t_check "downloading: no orphans" no_orphans
kill9

# --- killed right after DOWNLOADED was committed: verified again, delivered -------
SD=$DIR/downloaded
start "$SD" --crash-at=DOWNLOADED
install >/dev/null
t_check "downloaded: crashed at the commit" t_wait_for 30 crashed
reap
start "$SD"
t_check "downloaded: delivered after restart" t_wait_for 10 is_state DELIVERED
t_check "downloaded: result 3" test "$(result)" = 3
t_check "downloaded: no partial left" test ! -e "$SD/software/downloads/$NAME.part"

# --- killed while DELIVERED: still waits for consent; accept installs -------------
kill9
start "$SD"
t_check "delivered: still waiting for consent" is_state DELIVERED
t_check "delivered: nothing installed without consent" test "$(count installed)" -eq 0
ctl accept "{\"name\": \"$NAME\"}" >/dev/null
t_check "delivered: accept installs" is_state INSTALLED
t_check "delivered: installed once" installed_once
t_check "delivered: no orphans" no_orphans

# --- killed in INSTALLING (intent committed, files not moved): completed once -----
kill9
SD=$DIR/installing
start "$SD" --crash-at=INSTALLING
install >/dev/null
t_check "installing: delivered" t_wait_for 30 is_state DELIVERED
ctl accept "{\"name\": \"$NAME\"}" >/dev/null 2>&1
t_check "installing: crashed at the intent" t_wait_for 10 crashed
reap
start "$SD"
t_check "installing: installed after restart" is_state INSTALLED
t_check "installing: result 2" test "$(result)" = 2
t_check "installing: installed exactly once" installed_once
t_check "installing: no orphans, no package left" bash -c "[ \$(find '$SD/software/downloads' -mindepth 1 | wc -l) -eq 0 ]"
t_check "installing: no staging or trash left" no_orphans

# --- killed while INSTALLED: stays installed -------------------------------------
kill9
start "$SD"
t_check "installed: still installed" is_state INSTALLED
t_check "installed: once" installed_once

# --- killed while ACTIVE: the component dies with it, comes back once -------------
ctl activate "{\"name\": \"$NAME\"}" >/dev/null
up() { [ "$(running)" -eq 1 ]; }
t_check "active: component running" t_wait_for 10 up
PID1=$(pgrep -f "$SD/software/installed/$NAME/$NAME")
kill9
gone() { ! kill -0 "$PID1" 2>/dev/null; }
t_check "active: component does not outlive the agent" t_wait_for 10 gone
start "$SD"
t_check "active: restarted by the new agent" t_wait_for 10 up
t_check "active: reported active" test "$(ctl components | jq -r '.result.components[0].active')" = true
t_check "active: exactly one instance" test "$(running)" -eq 1

# --- uninstall after all that: nothing left ---------------------------------------
ctl uninstall "{\"name\": \"$NAME\"}" >/dev/null
none() { [ "$(running)" -eq 0 ]; }
t_check "uninstall: component stopped" t_wait_for 10 none
t_check "uninstall: no installed files" test "$(count installed)" -eq 0
t_check "uninstall: record gone" test "$(ctl components | jq '.result.components | length')" -eq 0
t_check "uninstall: no orphans" no_orphans

# --- a local user without rights is refused, nothing changes ----------------------
install >/dev/null
t_check "acl: delivered again" t_wait_for 30 is_state DELIVERED
# The system interpreter: a per-user one (pyenv shims) is not readable by nobody.
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null && [ -x /usr/bin/python3 ]; then
	chmod 0711 "$DIR"
	chmod 0666 "$SD.sock"
	REPLY=$(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups /usr/bin/python3 "$DIR/ctl.py" "$SD.sock" accept "{\"name\": \"$NAME\"}" 2>&1)
	t_check "acl: nobody's accept refused with 403" test "$(jq -r .error.code <<<"$REPLY")" = 403
	t_check "acl: still delivered" is_state DELIVERED
	t_check "acl: nothing installed" test "$(count installed)" -eq 0
fi
kill9

t_done
