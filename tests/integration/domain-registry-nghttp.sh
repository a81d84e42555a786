#!/usr/bin/env bash
# The IdM and the Global Registry of a running rethink-domain, driven with
# nghttp (a client we did not write): JWKS, admin tokens from the token
# endpoint, a device token signed with the openssl command line (with the
# domain's own key, as docs/idm.md shows), registration, discovery with
# paging, the 4xx answers, and a restart that keeps entries and tokens.
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
. "$(dirname "$0")/domain-harness.bash"

NAME=$(sed -n 's/^Name=//p' "$D_TMP/domain.conf" | head -n 1)
if [ -z "$NAME" ]; then
	NAME=registry.test
	printf '[Domain]\nName=%s\n' "$NAME" >>"$D_TMP/domain.conf"
fi

t_check "domain listening" d_start

urlq() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$D_TMP/body" "$1" 2>/dev/null; }

# --- IdM ------------------------------------------------------------------------
st=$(d_status GET /idm/jwks)
t_check "GET /idm/jwks: 200" test "$st" = 200
KID=$(json_get '["keys"][0]["kid"]')
t_check "JWKS holds one P-256 key" test "$(json_get '["keys"][0]["crv"]')" = P-256 -a -n "$KID"
t_check "IdM key file is 0600" test "$(stat -c %a "$D_STATE/idm-key.pem")" = 600

FORM="content-type: application/x-www-form-urlencoded"
printf 'grant_type=client_credentials&client_secret=%s' "$D_TOKEN" >"$D_TMP/admin.form"
st=$(d_status POST /idm/token "$D_TMP/admin.form" "$FORM")
t_check "admin token: 200" test "$st" = 200
ADMIN=$(json_get '["access_token"]')
t_check "admin token has scope admin" test "$(json_get '["scope"]')" = admin
t_check "token response is not cached" test "$(d_header cache-control)" = no-store

printf 'grant_type=client_credentials&client_secret=wrong' >"$D_TMP/bad.form"
st=$(d_status POST /idm/token "$D_TMP/bad.form" "$FORM")
t_check "wrong admin secret: 401 invalid_client" test "$st" = 401 -a "$(json_get '["error"]')" = invalid_client
t_check "401 also has code and description" test "$(json_get '["code"]')" = 401 -a -n "$(json_get '["description"]')"
printf 'grant_type=implicit' >"$D_TMP/bad.form"
st=$(d_status POST /idm/token "$D_TMP/bad.form" "$FORM")
t_check "unsupported grant: 400" test "$st" = 400 -a "$(json_get '["error"]')" = unsupported_grant_type

# jws KEY KID CLAIMS_JSON: a compact ES256 JWS signed with the openssl
# command line (JWS wants R||S, openssl gives DER).
jws() {
	python3 - "$1" "$2" "$3" <<'PY'
import base64, json, subprocess, sys
key, kid, claims = sys.argv[1:]
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
j = lambda o: b(json.dumps(o, separators=(",", ":")).encode())
header = {"alg": "ES256", "typ": "JWT"}
if kid:
    header["kid"] = kid
si = j(header) + "." + j(json.loads(claims))
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=si.encode(), capture_output=True, check=True).stdout
i = 3 if der[1] & 0x80 else 2
def integer(i):
    assert der[i] == 2
    n = der[i + 1]
    return int.from_bytes(der[i + 2:i + 2 + n], "big"), i + 2 + n
r, i = integer(i)
s, i = integer(i)
print(si + "." + b(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
PY
}
claims() { # ISS SUB AUD [SCOPE] [LIFETIME]
	python3 -c 'import json, sys, time, uuid
iss, sub, aud = sys.argv[1:4]; now = int(time.time())
c = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + int(sys.argv[5]), "jti": str(uuid.uuid4())}
if sys.argv[4]: c["scope"] = sys.argv[4]
print(json.dumps(c))' "$1" "$2" "$3" "${4:-}" "${5:-3600}"
}
# mint SUBJECT SCOPE: an access token signed by the domain's own key.
mint() { jws "$D_STATE/idm-key.pem" "$KID" "$(claims "$NAME" "$1" "$NAME" "$2")"; }
DEV=$(mint dev-int "runtime peer")
OTHER=$(mint dev-other "runtime peer")
t_check "device tokens minted" test -n "$DEV" -a -n "$OTHER"

# A device as device management knows it today: an Ed25519 key, claimed.
# Its P-256 assertion is valid, but the IdM has no P-256 key to check it.
openssl genpkey -algorithm ed25519 -out "$D_TMP/dev.ed25519" 2>/dev/null
EDPUB=$(openssl pkey -in "$D_TMP/dev.ed25519" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '=')
printf '{"publicKey":"%s"}' "$EDPUB" >"$D_TMP/dm.json"
st=$(d_status POST "/dm/rd?ep=dev-int&lt=3600" "$D_TMP/dm.json")
t_check "device registered with DM" test "$st" = 201
st=$(d_status POST /admin/devices/dev-int/claim "" "$(d_admin)")
t_check "device claimed" test "$st" = 200
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$D_TMP/dev.p256" 2>/dev/null
assertion_form() { # ENDPOINT
	printf 'grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=%s' \
		"$(jws "$D_TMP/dev.p256" "" "$(claims "$1" "$1" "https://$NAME/idm/token" "" 120)")" >"$D_TMP/assert.form"
}
assertion_form dev-int
st=$(d_status POST /idm/token "$D_TMP/assert.form" "$FORM")
t_check "device with only an Ed25519 key: 401" test "$st" = 401 -a "$(json_get '["description"]')" = "no P-256 key registered for the client"
assertion_form dev-unknown
st=$(d_status POST /idm/token "$D_TMP/assert.form" "$FORM")
t_check "unknown device: 401 unknown client" test "$st" = 401 -a "$(json_get '["description"]')" = "unknown client"

# --- registry ---------------------------------------------------------------------
RT=runtime://$NAME/$(python3 -c 'import uuid; print(uuid.uuid4())')
reg_body() {
	printf '{"descriptor":"https://catalogue.%s/.well-known/hyperty/Sensor","runtime":"%s","user":"user://idp.example/alice","resources":["temperature"],"tags":["%s"],"location":{"type":"messaging"}}' \
		"$NAME" "$RT" "$1" >"$D_TMP/reg.json"
}
U1=$(python3 -c 'import uuid; print(uuid.uuid4())')
U2=$(python3 -c 'import uuid; print(uuid.uuid4())')
reg_body first
st=$(d_status PUT "/registry/hyperties/$U1" "$D_TMP/reg.json" "authorization: Bearer $DEV")
t_check "register: 201" test "$st" = 201
t_check "register: Location" test "$(d_header location)" = "/registry/hyperties/$U1"
t_check "register: live" test "$(json_get '["status"]')" = live
reg_body second
st=$(d_status PUT "/registry/hyperties/$U2" "$D_TMP/reg.json" "authorization: Bearer $DEV")
t_check "register second: 201" test "$st" = 201

st=$(d_status GET "/registry/hyperties?resource=temperature&limit=1" "" "authorization: Bearer $ADMIN")
t_check "discovery by resource (admin): 200" test "$st" = 200
t_check "discovery: one per page" test "$(json_get '["hyperties"].__len__()')" = 1
NEXT=$(json_get '["next"]')
t_check "discovery: next cursor" test -n "$NEXT"
FIRST=$(json_get '["hyperties"][0]["url"]')
st=$(d_status GET "/registry/hyperties?resource=temperature&limit=1&cursor=$(urlq "$NEXT")" "" "authorization: Bearer $OTHER")
t_check "discovery page 2 (another device): 200" test "$st" = 200
SECOND=$(json_get '["hyperties"][0]["url"]')
t_check "page 2 is the other entry" test -n "$SECOND" -a "$SECOND" != "$FIRST"
st=$(d_status GET "/registry/hyperties?tag=second&user=$(urlq user://idp.example/alice)" "" "authorization: Bearer $DEV")
t_check "discovery by tag and user" test "$st" = 200 -a "$(json_get '["hyperties"][0]["url"]')" = "hyperty://$NAME/$U2"

# --- 4xx ---------------------------------------------------------------------------
U3=$(python3 -c 'import uuid; print(uuid.uuid4())')
printf '{"descriptor":' >"$D_TMP/bad.json"
st=$(d_status PUT "/registry/hyperties/$U3" "$D_TMP/bad.json" "authorization: Bearer $DEV")
t_check "malformed JSON: 400" test "$st" = 400 -a "$(json_get '["code"]')" = 400
st=$(d_status GET "/registry/hyperties/$U3" "" "authorization: Bearer $DEV")
t_check "nothing stored: 404" test "$st" = 404
st=$(d_status GET "/registry/hyperties?resource=temperature")
t_check "discovery without token: 401" test "$st" = 401 -a -n "$(d_header www-authenticate)"
st=$(d_status GET "/registry/hyperties?limit=1000" "" "authorization: Bearer $DEV")
t_check "limit out of range: 400" test "$st" = 400
reg_body third
st=$(d_status PUT "/registry/hyperties/$U3" "$D_TMP/reg.json" "authorization: Bearer $ADMIN")
t_check "register with admin token: 403" test "$st" = 403
st=$(d_status PUT "/registry/hyperties/$U3" "$D_TMP/reg.json" "authorization: Bearer $OTHER")
t_check "another device's runtime: 403" test "$st" = 403
st=$(d_status DELETE "/registry/hyperties/$U1" "" "authorization: Bearer $OTHER")
t_check "another device's entry: 403" test "$st" = 403
t_check "server still serving" d_alive

# --- restart: entries and tokens survive ----------------------------------------------
kill -TERM "$D_PID"; wait "$D_PID" 2>/dev/null
t_check "domain restarted" d_start
st=$(d_status GET "/registry/hyperties/$U1" "" "authorization: Bearer $DEV")
t_check "entry and token valid after restart" test "$st" = 200
st=$(d_status DELETE "/registry/hyperties/$U1" "" "authorization: Bearer $DEV")
t_check "unregister: 204" test "$st" = 204
st=$(d_status GET "/registry/hyperties/$U1" "" "authorization: Bearer $DEV")
t_check "unregistered: 404" test "$st" = 404

kill -TERM "$D_PID"; wait "$D_PID" 2>/dev/null
t_done
