#!/usr/bin/env bash
# rethink-domain as a service: flags, start-up errors that name the key,
# the service manager protocol (READY=1, RELOADING=1, STOPPING=1 on
# NOTIFY_SOCKET), SIGHUP reload (good and bad), SIGTERM, and its state
# directory (SQLite in WAL mode).
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
. "$(dirname "$0")/domain-harness.bash"

out=$("$DOMAIN" --help 2>&1)
t_check "--help exits 0" test $? -eq 0
t_check "--help lists every key's flag" grep -q -- '--trusted-publishers=' <<<"$out"
t_check "--version" grep -q '^rethink-domain ' <<<"$("$DOMAIN" --version)"

"$DOMAIN" --config="$D_TMP/domain.conf" --port=http >"$D_TMP/e1" 2>&1
t_check "bad flag value: exit 1" test $? -eq 1
t_check "bad flag value names the key" grep -q -- '--port=http: not a number (\[HTTP\] Port)' "$D_TMP/e1"

"$DOMAIN" --config="$D_TMP/domain.conf" --listen=0.0.0.0 >"$D_TMP/e2" 2>&1
t_check "h2c on a non-loopback address: refused" test $? -eq 1
t_check "h2c refusal says why" grep -q 'cleartext h2c is only allowed on a loopback address' "$D_TMP/e2"

printf '[HTTP]\nListen=127.0.0.1\nMaxConnections=lots\n' >"$D_TMP/bad.conf"
"$DOMAIN" --config="$D_TMP/bad.conf" >"$D_TMP/e3" 2>&1
t_check "bad config value: exit 1" test $? -eq 1
t_check "bad config value names file, line and key" grep -q 'bad.conf:3: \[HTTP\] MaxConnections=lots: not a number' "$D_TMP/e3"

"$DOMAIN" --config="$D_TMP/missing.conf" >"$D_TMP/e4" 2>&1
t_check "--config naming a missing file: exit 1" test $? -eq 1

# The shipped default file: every key in it, uncommented, is accepted, and
# every flag it mentions exists.
CONF=$(dirname "$0")/../../units/conf/domain.conf
sed -e 's/^#\([A-Z][A-Za-z]*=\)/\1/' "$CONF" >"$D_TMP/all.conf"
timeout 3 "$DOMAIN" --config="$D_TMP/all.conf" --listen=127.0.0.1 --port=0 \
	--state-directory="$D_TMP/state-all" >"$D_TMP/e5" 2>&1
t_check "units/conf/domain.conf with every key set starts" grep -q 'Listening on' "$D_TMP/e5"
missing=0
for flag in $(sed -n 's/^# flag: \(--[a-z-]*\)=.*/\1/p' "$CONF"); do
	grep -q -- "$flag=" <<<"$out" || { echo "flag $flag not in --help"; missing=1; }
done
t_check "every flag in domain.conf is known" test $missing -eq 0
t_check "domain.conf documents every key" \
	test "$(grep -c '^# flag:' "$CONF")" -eq "$(grep -c '^     --[a-z-]*=' <<<"$out")"

# --- service manager protocol ------------------------------------------------------
NOTIFY=$D_TMP/notify.sock
python3 - "$NOTIFY" "$D_TMP/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode() + "\n")
PY
t_cleanup "kill $!"
t_wait_for 10 test -S "$NOTIFY"

export NOTIFY_SOCKET=$NOTIFY
t_check "domain listening" d_start
unset NOTIFY_SOCKET
t_check "READY=1 sent" t_wait_for 10 grep -q 'READY=1' "$D_TMP/notify.log"
t_check "state directory holds the database" test -f "$D_STATE/domain.db"
t_check "database is in WAL mode" test "$(python3 -c '
import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode").fetchone()[0])' "$D_STATE/domain.db")" = wal

OLD_ACCESS=$(d_admin)
st=$(d_status GET /admin/devices "" "$OLD_ACCESS")
t_check "admin API with a token for the configured credential: 200" test "$st" = 200
st=$(d_status GET /admin/devices "" "authorization: Bearer $D_TOKEN")
t_check "the credential itself on an admin route: 401, says to get a token" \
	test "$st" = 401 -a -n "$(grep -F 'POST /idm/token' "$D_TMP/body")"

# Reload with a new credential: the old one, and the tokens it got, stop
# working. Tokens are refused by the second they were issued in, so the
# reload comes in a later second than the token.
OLD_TOKEN=$D_TOKEN
head -c 32 /dev/urandom | basenc --base64url -w0 | tr -d '=' >"$D_TMP/admin-token"
D_TOKEN=$(cat "$D_TMP/admin-token")
sleep 1.1
kill -HUP "$D_PID"
t_check "RELOADING=1 sent" t_wait_for 10 grep -q 'RELOADING=1' "$D_TMP/notify.log"
t_check "READY=1 again after the reload" t_wait_for 10 test "$(grep -c 'READY=1' "$D_TMP/notify.log")" -ge 2
printf 'grant_type=client_credentials&client_id=admin&client_secret=%s' "$OLD_TOKEN" >"$D_TMP/old.form"
st=$(d_status POST /idm/token "$D_TMP/old.form" "content-type: application/x-www-form-urlencoded")
t_check "old credential after reload: no token (401)" test "$st" = 401
st=$(d_status GET /admin/devices "" "$OLD_ACCESS")
t_check "token of the old credential after reload: 401" \
	test "$st" = 401 -a -n "$(grep -F 'credential changed' "$D_TMP/body")"
st=$(d_status GET /admin/devices "" "$(d_admin)")
t_check "new credential after reload: 200" test "$st" = 200

# A broken file on reload changes nothing and says why.
cp "$D_TMP/domain.conf" "$D_TMP/domain.conf.good"
printf '[Catalogue]\nMaxPackageSize=huge\n' >>"$D_TMP/domain.conf"
kill -HUP "$D_PID"
t_check "bad reload is logged naming the key" \
	t_wait_for 10 grep -q 'MaxPackageSize=huge: not a number' "$D_TMP/domain.log"
t_check "still serving after a bad reload" d_alive
st=$(d_status GET /admin/devices "" "$(d_admin)")
t_check "credential unchanged by the bad reload" test "$st" = 200
cp "$D_TMP/domain.conf.good" "$D_TMP/domain.conf"

kill -TERM "$D_PID"
wait "$D_PID"
t_check "SIGTERM: exit 0" test $? -eq 0
t_check "STOPPING=1 sent" grep -q 'STOPPING=1' "$D_TMP/notify.log"
t_check "port closed after exit" test "$(d_port_open && echo open)" = ""

# --- socket activation ---------------------------------------------------------------
if command -v systemd-socket-activate >/dev/null; then
	D_PORT=$(t_free_port)
	D_URL=http://127.0.0.1:$D_PORT
	systemd-socket-activate -l "127.0.0.1:$D_PORT" "$DOMAIN" --config="$D_TMP/domain.conf" --port=1 \
		>"$D_TMP/sa.log" 2>&1 &
	SA=$!
	t_cleanup "kill -9 $SA"
	t_wait_for 10 d_port_open
	st=$(d_status GET /.well-known/hyperty/)
	t_check "socket activation: served on the passed socket" test "$st" = 200
	t_check "socket activation: logged" grep -q 'socket from the service manager' "$D_TMP/sa.log"
	kill -TERM $SA
	wait $SA
	t_check "socket activation: SIGTERM exit 0" test $? -eq 0

	# h2c on a passed socket that is not on loopback: refused.
	D_PORT=$(t_free_port)
	systemd-socket-activate -l "0.0.0.0:$D_PORT" "$DOMAIN" --config="$D_TMP/domain.conf" >"$D_TMP/sa2.log" 2>&1 &
	SA=$!
	t_cleanup "kill -9 $SA"
	# The service starts at the first connection.
	t_wait_for 10 d_port_open
	t_check "socket activation: h2c on 0.0.0.0 refused" t_wait_for 10 grep -q 'Refusing cleartext h2c' "$D_TMP/sa2.log"
	kill -9 $SA 2>/dev/null
fi

t_done
