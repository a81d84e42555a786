#!/usr/bin/env bash
# rethinkctl against the real rethink-domain's admin API, over TLS with a
# set-up from `rethinkctl domain init`: publish a signed package (the
# catalogue then serves it), list, show and claim a device registered with
# an HTTP/2 POST, and the errors people meet: a wrong admin credential, an
# unreachable domain, an unverifiable certificate, descriptors the domain
# refuses (its 400 and 422 descriptions shown). Bootstrap orders and the
# event stream are checked when the domain has those routes.
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
CTL=$BUILD/rethinkctl
DOMAIN=$BUILD/rethink-domain
FETCH=$BUILD/tests/helpers/h2-fetch
for f in "$CTL" "$DOMAIN" "$FETCH"; do
	[ -x "$f" ] || t_skip_all "no $f"
done
for tool in openssl jq basenc sha256sum; do
	command -v "$tool" >/dev/null || t_skip_all "needs $tool"
done

TMP=$(mktemp -d /tmp/rtcl-admin-XXXXXX)
DIR=$TMP/domain
D_PID=
t_cleanup "rm -rf '$TMP'"
t_cleanup '[ -n "$D_PID" ] && kill -KILL $D_PID'
PORT=$(t_free_port)
URL=https://127.0.0.1:$PORT

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
fetch() { "$FETCH" --ca "$DIR/ca.pem" "$@"; }

"$CTL" domain init "$DIR" --port="$PORT" --listen=127.0.0.1 >/dev/null || { t_fail "domain init"; t_done; exit 1; }
# Debug level: the domain says when an admin starts following its events.
"$DOMAIN" --config="$DIR/domain.conf" --log-level=debug >>"$TMP/domain.log" 2>&1 &
D_PID=$!
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
t_check "rethink-domain starts" t_wait_for 10 port_open

ADMIN=(--domain="$URL" --ca-file="$DIR/ca.pem" --admin-token-file="$DIR/admin-token")

# --- publish ---------------------------------------------------------------------
printf '#!/bin/sh\necho hello from rtcl\n' >"$TMP/pkg"
echo '{"type": "hyperty", "objectName": "rtcl-hello", "version": "1.0.0", "hypertyType": ["context"]}' >"$TMP/desc.json"
SHA=$(sha256sum "$TMP/pkg" | cut -d' ' -f1)
run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/desc.json" --publisher-key="$DIR/publisher.key"
expect "publish: exit 0" 0
t_check "publish: says what it published" grep -q '^Published hyperty rtcl-hello 1\.0\.0 ' "$TMP/out"
t_check "publish: shows the digest" grep -q "sha256: $SHA" "$TMP/out"
fetch --body-only "$URL/.well-known/hyperty/rtcl-hello" >"$TMP/served.json" 2>/dev/null
t_check "the catalogue serves the descriptor with digest and publisher filled in" \
	jq -e --arg sha "$SHA" --arg pub "$(cat "$DIR/publisher.pub")" \
	'.sha256 == $sha and .publisher == $pub and (.signature | length) == 86 and .objectName == "rtcl-hello"' \
	"$TMP/served.json" >/dev/null
# The signature is Ed25519 over the digest (docs/crypto.md), checked here
# with another implementation.
openssl pkey -in "$DIR/publisher.key" -pubout -out "$TMP/pub.pem" 2>/dev/null
openssl dgst -sha256 -binary "$TMP/pkg" >"$TMP/pkg.sha256"
jq -r .signature "$TMP/served.json" | tr '_-' '/+' | awk '{ while (length($0) % 4) $0 = $0 "="; print }' |
	base64 -d >"$TMP/pkg.sig" 2>/dev/null
t_check "the signature verifies with openssl" \
	sh -c 'openssl pkeyutl -verify -pubin -inkey "$0" -rawin -in "$1" -sigfile "$2" >/dev/null' "$TMP/pub.pem" "$TMP/pkg.sha256" "$TMP/pkg.sig"
fetch --body-only "$URL/catalogue/packages/$SHA" >"$TMP/got" 2>/dev/null
t_check "the package bytes are served" cmp -s "$TMP/pkg" "$TMP/got"

run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/desc.json" --publisher-key="$DIR/publisher.key"
expect "publish again: exit 0" 0
t_check "publish again: already published" grep -q '^Already published: hyperty rtcl-hello 1\.0\.0' "$TMP/out"
run "${ADMIN[@]}" --json publish "$TMP/pkg" --descriptor="$TMP/desc.json" --publisher-key="$DIR/publisher.key"
t_check "--json publish: the stored descriptor" jq -e --arg sha "$SHA" '.sha256 == $sha' "$TMP/out" >/dev/null

echo '{"type": "hyperty", "objectName": "rtcl bad", "version": "1.0.0", "hypertyType": ["context"]}' >"$TMP/bad.json"
run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/bad.json" --publisher-key="$DIR/publisher.key"
expect "bad descriptor: exit 1 with the domain's 400 description" 1 \
	"Failed to publish the descriptor: field 'objectName': "
t_check "bad descriptor: the status is shown" grep -q '(HTTP 400)$' "$TMP/err"
openssl genpkey -algorithm ed25519 -out "$TMP/stranger.key" 2>/dev/null
echo '{"type": "hyperty", "objectName": "rtcl-other", "version": "1.0.0", "hypertyType": ["context"]}' >"$TMP/other.json"
run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/other.json" --publisher-key="$TMP/stranger.key"
expect "untrusted publisher: exit 1 with the domain's 422" 1 "(HTTP 422)"
t_check "untrusted publisher: nothing published" \
	test "$(fetch "$URL/.well-known/hyperty/rtcl-other" 2>/dev/null | head -n 1)" = "status 404"
run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/desc.json"
expect "publish without --publisher-key: exit 2" 2 "--publisher-key="
run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/desc.json" --publisher-key="$DIR/ca.key"
expect "publish with a key that is not Ed25519: exit 1" 1 "not an Ed25519 private key"
echo '[1]' >"$TMP/array.json"
run "${ADMIN[@]}" publish "$TMP/pkg" --descriptor="$TMP/array.json" --publisher-key="$DIR/publisher.key"
expect "publish with a descriptor that is not an object: exit 1" 1 "is not a JSON object"

# --- devices --------------------------------------------------------------------------
run "${ADMIN[@]}" devices
expect "devices: exit 0" 0
t_check "devices: none yet" test "$OUT" = "No devices."

KEY=$(openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d =)
fetch --method POST --header 'content-type: application/json' \
	--data "{\"publicKey\": \"$KEY\", \"runtimeVersion\": \"0.1.0\", \"arch\": \"x86_64\", \"freeBytes\": 4096}" \
	"$URL/dm/rd?ep=rtcl-dev-1&lt=3600" >"$TMP/reg" 2>&1
t_check "a device registers with an HTTP/2 POST" test "$(head -n 1 "$TMP/reg")" = "status 201"

# The environment does what the flags do.
export RETHINK_DOMAIN_URL=$URL RETHINK_CA_FILE=$DIR/ca.pem RETHINK_ADMIN_TOKEN_FILE=$DIR/admin-token
run devices
expect "devices (from the environment): exit 0" 0
t_check "devices: header" grep -Eq '^ENDPOINT +STATE +CLAIMED +LIFETIME +EXPIRES +ARCH +RUNTIME$' "$TMP/out"
t_check "devices: the device, unclaimed" grep -Eq '^rtcl-dev-1 +registered +no +1h +[0-9T:-]+Z +x86_64 +0\.1\.0$' "$TMP/out"
t_check "devices: count line" grep -q '^1 device listed\.$' "$TMP/out"
run devices show rtcl-dev-1
expect "devices show: exit 0" 0
t_check "devices show: fields" \
	sh -c 'grep -Eq "^ +Endpoint: rtcl-dev-1$" "$0" && grep -Eq "^ +Public key: $1$" "$0" && grep -Eq "^ +Claimed: no$" "$0" && grep -Eq "^ +Free bytes: 4096$" "$0"' \
	"$TMP/out" "$KEY"
run devices claim rtcl-dev-1
expect "devices claim: exit 0" 0
t_check "devices claim: says so" test "$OUT" = "Claimed rtcl-dev-1."
run --json devices show rtcl-dev-1
t_check "--json devices show: claimed now" jq -e '.claimed == true and .claimedAt != null' "$TMP/out" >/dev/null
run --json devices
t_check "--json devices: the domain's list" jq -e '[.devices[].endpoint] == ["rtcl-dev-1"]' "$TMP/out" >/dev/null
run devices show rtcl-nope
expect "devices show of an unknown device: exit 1, 404" 1 "(HTTP 404)"
run devices show 'a/b'
expect "devices show of a malformed endpoint: exit 2" 2 "Invalid endpoint"
run devices frob x
expect "devices with an unknown subcommand: exit 2" 2 "Use: devices"
unset RETHINK_DOMAIN_URL RETHINK_CA_FILE RETHINK_ADMIN_TOKEN_FILE

# --- errors people meet -------------------------------------------------------------------
head -c 32 /dev/urandom | basenc --base64url -w0 >"$TMP/wrong-token"
run --domain="$URL" --ca-file="$DIR/ca.pem" --admin-token-file="$TMP/wrong-token" devices
expect "wrong admin credential: exit 1, a clear message" 1 "the domain refused the admin credential (HTTP 401); check --admin-token-file="
t_check "wrong admin credential: nothing on stdout" test -z "$OUT"
run --domain="$URL" --ca-file="$DIR/ca.pem" devices
expect "no admin credential: exit 1, says how to give one" 1 "give one with --admin-token-file="
printf 'two words\n' >"$TMP/bad-token"
run --domain="$URL" --ca-file="$DIR/ca.pem" --admin-token-file="$TMP/bad-token" devices
expect "malformed admin credential: exit 1" 1 "not one line of printable characters"
run "${ADMIN[@]}" --domain="http://127.0.0.1:$(t_free_port)" devices
expect "unreachable domain: exit 1" 1 "cannot reach the domain at http://127.0.0.1:"
t_check "unreachable domain: says why" grep -q 'Connection refused' "$TMP/err"
"$CTL" domain init "$TMP/other" >/dev/null
run "${ADMIN[@]}" --ca-file="$TMP/other/ca.pem" devices
expect "another CA: exit 1, certificate rejected" 1 "the server's certificate was rejected"
run "${ADMIN[@]}" --domain=https://domain.example devices
expect "a host name: exit 1, numeric hosts only" 1 'Invalid domain URL "https://domain.example"'
run "${ADMIN[@]}" --domain="$URL/admin" devices
expect "a URL with a path: refused" 1 "Invalid domain URL"
run devices
expect "no domain: exit 1, says how to give one" 1 "use --domain=URL or set \$RETHINK_DOMAIN_URL"

# --- bootstrap, orders, events (when the domain has them) ------------------------------------
fetch --method POST --header "content-type: application/x-www-form-urlencoded" \
	--data "grant_type=client_credentials&client_id=admin&client_secret=$(cat "$DIR/admin-token")" \
	"$URL/idm/token" >"$TMP/token" 2>&1
ACCESS=$(sed -n 2p "$TMP/token" | jq -r .access_token)
fetch --header "authorization: Bearer $ACCESS" "$URL/admin/devices/rtcl-dev-1/orders" >"$TMP/probe" 2>&1
if [ "$(head -n 1 "$TMP/probe")" = "status 200" ]; then
	run "${ADMIN[@]}" bootstrap rtcl-dev-1 --application=rtcl-hello
	expect "bootstrap: exit 0" 0
	t_check "bootstrap: the install order" grep -Eq '^[0-9]+ +rtcl-hello +install +(queued|sent)$' "$TMP/out"
	run "${ADMIN[@]}" bootstrap rtcl-dev-1 --hyperty=rtcl-missing
	expect "bootstrap of an unpublished hyperty: exit 1, 404 naming it" 1 "rtcl-missing"
	run "${ADMIN[@]}" cancel rtcl-dev-1 rtcl-hello
	expect "cancel: exit 0" 0
	t_check "cancel: the order" grep -Eq '^[0-9]+ +rtcl-hello +cancel +(queued|sent)$' "$TMP/out"
	"$CTL" "${ADMIN[@]}" events >"$TMP/events" 2>&1 &
	EV_PID=$!
	t_cleanup "kill $EV_PID"
	following() { grep -q 'follows the bootstrap events' "$TMP/domain.log"; }
	t_check "events: the stream is open" t_wait_for 10 following
	"$CTL" "${ADMIN[@]}" confirm rtcl-dev-1 rtcl-hello >/dev/null 2>&1
	has_event() { grep -q rtcl-hello "$TMP/events"; }
	t_check "events: a line for the new order" t_wait_for 10 has_event
	kill -INT "$EV_PID"
	wait "$EV_PID"
	t_check "events: SIGINT ends it with exit 0" test $? -eq 0
else
	echo "# the domain has no bootstrap routes yet: bootstrap, confirm, cancel and events not checked"
	run "${ADMIN[@]}" bootstrap rtcl-dev-1 --application=rtcl-hello
	expect "bootstrap without the route: exit 1 with the 404" 1 "(HTTP 404)"
fi
run "${ADMIN[@]}" bootstrap rtcl-dev-1
expect "bootstrap without components: exit 2" 2 "--application="
run "${ADMIN[@]}" confirm rtcl-dev-1
expect "confirm without a name: exit 2" 2 'takes 2 arguments'

t_done
