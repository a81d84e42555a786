#!/usr/bin/env bash
# rethinkctl domain init makes a set-up the real rethink-domain starts
# with: TLS with the new server certificate, verified by our HTTP/2 client
# against the new CA and the name (and refused against another name or
# CA), the admin credential accepted, keys private. It refuses to
# overwrite a set-up unless --force.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
CTL=$BUILD/rethinkctl
DOMAIN=$BUILD/rethink-domain
FETCH=$BUILD/tests/helpers/h2-fetch
for f in "$CTL" "$DOMAIN" "$FETCH"; do
	[ -x "$f" ] || t_skip_all "no $f"
done
command -v openssl >/dev/null || t_skip_all "needs openssl"

TMP=$(mktemp -d /tmp/rtcl-init-XXXXXX)
DIR=$TMP/domain
D_PID=
t_cleanup "rm -rf '$TMP'"
t_cleanup '[ -n "$D_PID" ] && kill -KILL $D_PID'
PORT=$(t_free_port)

run() {
	"$CTL" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	RC=$?
	OUT=$(cat "$TMP/out")
	ERR=$(cat "$TMP/err")
}
expect() {
	local name=$1 rc=$2 err=${3:-}
	if [ "$RC" -eq "$rc" ] && { [ -z "$err" ] || [[ $ERR == *"$err"* ]]; }; then
		t_ok "$name"
	else
		t_fail "$name"
		echo "#   rc=$RC (wanted $rc) stdout: $OUT stderr: $ERR"
	fi
}
mode_of() { stat -c %a "$DIR/$1"; }

run domain init "$DIR" --name=rtcl.example --port="$PORT" --listen=127.0.0.1
expect "domain init: exit 0" 0
for f in ca.pem ca.key server.pem server.key admin-token publisher.key publisher.pub domain.conf; do
	t_check "domain init: made $f" test -s "$DIR/$f"
done
t_check "domain init: state directory" test -d "$DIR/state"
for f in ca.key server.key admin-token publisher.key; do
	t_check "domain init: $f is 0600" test "$(mode_of "$f")" = 600
done
t_check "domain init: prints what it made and the next commands" \
	sh -c 'grep -q "^  admin-token " "$0" && grep -q "rethink-domain --config=$1/domain.conf" "$0" && grep -q "RETHINK_DOMAIN_URL=https://127.0.0.1:$2" "$0"' \
	"$TMP/out" "$DIR" "$PORT"
t_check "domain init: the config names the files by absolute path" \
	sh -c 'grep -qx "Certificate=$1/server.pem" "$0" && grep -qx "TokenFile=$1/admin-token" "$0" && grep -qx "StateDirectory=$1/state" "$0"' \
	"$DIR/domain.conf" "$DIR"
t_check "domain init: the trusted publisher is publisher.pub" \
	grep -qx "TrustedPublishers=$(cat "$DIR/publisher.pub")" "$DIR/domain.conf"
# The publisher key is the Ed25519 key whose public half publisher.pub holds.
pub_of_key() { openssl pkey -in "$DIR/publisher.key" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '='; }
t_check "domain init: publisher.key is Ed25519 and matches publisher.pub" test "$(pub_of_key)" = "$(cat "$DIR/publisher.pub")"
t_check "domain init: admin token is 43 base64url characters" grep -Eqx '[A-Za-z0-9_-]{43}' "$DIR/admin-token"
t_check "domain init: CA is EC P-256, self-signed, a CA" \
	sh -c 'openssl x509 -in "$0" -noout -text | grep -q "ASN1 OID: prime256v1" && openssl x509 -in "$0" -noout -text | grep -q "CA:TRUE" && openssl verify -CAfile "$0" "$0" >/dev/null' "$DIR/ca.pem"
t_check "domain init: CA valid for 10 years" \
	sh -c 'openssl x509 -in "$0" -noout -checkend $((9 * 366 * 86400)) >/dev/null' "$DIR/ca.pem"
t_check "domain init: server certificate signed by the CA" sh -c 'openssl verify -CAfile "$0" "$1" >/dev/null' "$DIR/ca.pem" "$DIR/server.pem"
t_check "domain init: server certificate names" \
	sh -c 'openssl x509 -in "$0" -noout -ext subjectAltName | grep -q "DNS:rtcl.example, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"' "$DIR/server.pem"

cp "$DIR/admin-token" "$TMP/token.before"
run domain init "$DIR" --port="$PORT"
expect "domain init again: refused, exit 1" 1 "already holds a domain set-up; use --force"
t_check "domain init again: nothing changed" cmp -s "$TMP/token.before" "$DIR/admin-token"
run domain init "$DIR" --name='bad name'
expect "domain init with a bad --name: exit 2" 2 "Invalid --name="
run domain init "$DIR" --address=host.example
expect "domain init with a bad --address: exit 2" 2 "Invalid --address="
run domain frob "$DIR"
expect "domain with an unknown subcommand: exit 2" 2 'Unknown domain command "frob"'

"$DOMAIN" --config="$DIR/domain.conf" >>"$TMP/domain.log" 2>&1 &
D_PID=$!
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
t_check "rethink-domain starts with the set-up" t_wait_for 10 port_open

"$FETCH" --ca "$DIR/ca.pem" --server-name rtcl.example "https://127.0.0.1:$PORT/.well-known/hyperty/" >"$TMP/fetch" 2>&1
t_check "TLS: chain and name verify (rtcl.example)" test "$(head -n 1 "$TMP/fetch")" = "status 200" || cat "$TMP/fetch"
"$FETCH" --ca "$DIR/ca.pem" "https://127.0.0.1:$PORT/.well-known/hyperty/" >"$TMP/fetch" 2>&1
t_check "TLS: the IP address verifies too" test "$(head -n 1 "$TMP/fetch")" = "status 200"
"$FETCH" --ca "$DIR/ca.pem" "https://localhost:$PORT/.well-known/hyperty/" >"$TMP/fetch" 2>&1
t_check "TLS: localhost verifies too" test "$(head -n 1 "$TMP/fetch")" = "status 200"
"$FETCH" --ca "$DIR/ca.pem" --server-name other.example "https://127.0.0.1:$PORT/.well-known/hyperty/" >"$TMP/fetch" 2>&1
t_check "TLS: another name is refused" test "$(head -n 1 "$TMP/fetch")" != "status 200"
run domain init "$TMP/other" --port="$PORT"
"$FETCH" --ca "$TMP/other/ca.pem" "https://127.0.0.1:$PORT/.well-known/hyperty/" >"$TMP/fetch" 2>&1
t_check "TLS: another CA is refused" test "$(head -n 1 "$TMP/fetch")" != "status 200"

# The credential gets an admin access token at /idm/token; admin routes
# take the token, not the credential.
"$FETCH" --ca "$DIR/ca.pem" --method POST --header "content-type: application/x-www-form-urlencoded" \
	--data "grant_type=client_credentials&client_id=admin&client_secret=$(cat "$DIR/admin-token")" \
	"https://127.0.0.1:$PORT/idm/token" >"$TMP/fetch" 2>&1
t_check "the admin credential gets a token" test "$(head -n 1 "$TMP/fetch")" = "status 200"
ACCESS=$(sed -n 2p "$TMP/fetch" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
"$FETCH" --ca "$DIR/ca.pem" --header "authorization: Bearer $ACCESS" \
	"https://127.0.0.1:$PORT/admin/devices" >"$TMP/fetch" 2>&1
t_check "the admin token is accepted" test "$(head -n 1 "$TMP/fetch")" = "status 200"
"$FETCH" --ca "$DIR/ca.pem" --header "authorization: Bearer $(cat "$DIR/admin-token")" \
	"https://127.0.0.1:$PORT/admin/devices" >"$TMP/fetch" 2>&1
t_check "the credential itself is not" test "$(head -n 1 "$TMP/fetch")" = "status 401"
"$FETCH" --ca "$DIR/ca.pem" --method POST --header "content-type: application/x-www-form-urlencoded" \
	--data "grant_type=client_credentials&client_id=admin&client_secret=$(cat "$TMP/other/admin-token")" \
	"https://127.0.0.1:$PORT/idm/token" >"$TMP/fetch" 2>&1
t_check "another credential gets no token" test "$(head -n 1 "$TMP/fetch")" = "status 401"
t_check "the domain keeps its database in the state directory" test -f "$DIR/state/domain.db"

kill "$D_PID"; wait "$D_PID" 2>/dev/null; D_PID=
run domain init "$DIR" --force --port="$PORT" --listen=127.0.0.1
expect "domain init --force: exit 0" 0
t_check "domain init --force: a new credential" sh -c '! cmp -s "$0" "$1"' "$TMP/token.before" "$DIR/admin-token"

t_done
