#!/usr/bin/env bash
# rethinkctl against a running rethink-domain: discover (the Global
# Registry: criteria, paging, --all, --json), resources (the M2M Resource
# Directory through GET /admin/resources), devices show (address,
# components, orders) and uninstall, with a device that registers, is
# claimed, gets its token with a client assertion, registers hyperties and
# publishes values, all over HTTP/2 with nghttp.
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
. "$(dirname "$0")/domain-harness.bash"
CTL_BIN=$BUILD/rethinkctl
[ -x "$CTL_BIN" ] || t_skip_all "rethinkctl is not built"
command -v jq >/dev/null || t_skip_all "jq is missing"

NAME=disc.test
printf '[Domain]\nName=%s\n' "$NAME" >>"$D_TMP/domain.conf"
t_check "domain listening" d_start

CTL=("$CTL_BIN" --domain="$D_URL" --admin-token-file="$D_TMP/admin-token")
OUT= ERR= RC=
run() {
	"${CTL[@]}" "$@" >"$D_TMP/out" 2>"$D_TMP/err"
	RC=$?
	OUT=$(cat "$D_TMP/out")
	ERR=$(cat "$D_TMP/err")
}
# expect NAME RC [STDERR_PART]
expect() {
	if [ "$RC" = "$2" ] && { [ -z "${3:-}" ] || grep -qF -- "$3" "$D_TMP/err"; }; then
		t_ok "$1"
	else
		t_fail "$1"
		echo "#   rc=$RC (wanted $2) stdout: $OUT stderr: $ERR"
	fi
}
FORM="content-type: application/x-www-form-urlencoded"

# --- a device: registered, claimed, with a token of its own --------------------------------
jws() { # KEY CLAIMS_JSON: a compact ES256 JWS (openssl gives DER, JWS wants R||S)
	python3 - "$1" "$2" <<'PY'
import base64, json, subprocess, sys
key, claims = sys.argv[1:]
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
j = lambda o: b(json.dumps(o, separators=(",", ":")).encode())
si = j({"alg": "ES256", "typ": "JWT"}) + "." + j(json.loads(claims))
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=si.encode(), capture_output=True, check=True).stdout
i = 3 if der[1] & 0x80 else 2
def integer(i):
    n = der[i + 1]
    return int.from_bytes(der[i + 2:i + 2 + n], "big"), i + 2 + n
r, i = integer(i)
s, i = integer(i)
print(si + "." + b(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
PY
}
EP=disc-dev-1
openssl genpkey -algorithm ed25519 -out "$D_TMP/dev.ed25519" 2>/dev/null
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$D_TMP/dev.p256" 2>/dev/null
EDPUB=$(openssl pkey -in "$D_TMP/dev.ed25519" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '=')
openssl pkey -in "$D_TMP/dev.p256" -pubout >"$D_TMP/dev.p256.pub"
jq -n --arg k "$EDPUB" --rawfile t "$D_TMP/dev.p256.pub" '{publicKey: $k, tokenKey: $t, arch: "x86_64"}' >"$D_TMP/dm.json"
t_check "device registers" test "$(d_status POST "/dm/rd?ep=$EP&lt=3600" "$D_TMP/dm.json")" = 201
run devices claim "$EP"
expect "rethinkctl devices claim: exit 0" 0
ASSERTION=$(jws "$D_TMP/dev.p256" "$(python3 -c 'import json, sys, time, uuid; now = int(time.time())
print(json.dumps({"iss": sys.argv[1], "sub": sys.argv[1], "aud": sys.argv[2], "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}))' \
	"$EP" "https://$NAME/idm/token")")
printf 'grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=%s' \
	"$ASSERTION" >"$D_TMP/assert.form"
t_check "device token from its client assertion" test "$(d_status POST /idm/token "$D_TMP/assert.form" "$FORM")" = 200
DEV=$(jq -r .access_token "$D_TMP/body")
DEV_AUTH="authorization: Bearer $DEV"

# --- discover --------------------------------------------------------------------------------
RT=runtime://$NAME/$(python3 -c 'import uuid; print(uuid.uuid4())')
register() { # USER RESOURCE TAG
	local u
	u=$(python3 -c 'import uuid; print(uuid.uuid4())')
	printf '{"descriptor":"https://catalogue.%s/.well-known/hyperty/Sensor","runtime":"%s","user":"user://idp.example/%s","resources":["%s"],"dataSchemes":["ctxt"],"tags":["%s"],"location":{"type":"messaging"},"lifetime":600}' \
		"$NAME" "$RT" "$1" "$2" "$3" >"$D_TMP/reg.json"
	test "$(d_status PUT "/registry/hyperties/$u" "$D_TMP/reg.json" "$DEV_AUTH")" = 201
}
if register alice temperature kitchen && register alice temperature garden && register bob humidity kitchen; then
	t_ok "three hyperties registered"
else
	t_fail "three hyperties registered"
fi

run discover
expect "discover: exit 0" 0
t_check "discover: header" grep -Eq '^URL +STATUS +USER +RESOURCES +SCHEMES +TAGS +LOCATION +EXPIRES$' "$D_TMP/out"
t_check "discover: three live entries" test "$(grep -c "^hyperty://$NAME/.* live " "$D_TMP/out")" = 3
t_check "discover: count line" grep -q '^3 hyperties listed\.$' "$D_TMP/out"
run discover --resource=temperature
t_check "discover --resource: two" test "$RC" = 0 -a "$(grep -c '^hyperty://.* temperature ' "$D_TMP/out")" = 2
run discover --user=user://idp.example/bob
t_check "discover --user: bob's one" test "$RC" = 0 -a "$(grep -c '^hyperty://.*user://idp.example/bob .*humidity' "$D_TMP/out")" = 1
run discover --tag=kitchen --resource=temperature
t_check "discover: criteria combine" test "$RC" = 0 -a "$(grep -c '^hyperty://' "$D_TMP/out")" = 1
run discover --scheme=ctxt --status=disconnected
expect "discover --status=disconnected: exit 0" 0
t_check "discover: none disconnected" test "$OUT" = "No hyperties found."
run discover dataobjects
t_check "discover dataobjects: none" test "$RC" = 0 -a "$OUT" = "No data objects found."

run discover --limit=1
t_check "discover --limit=1: one, and how to go on" \
	test "$RC" = 0 -a "$(grep -c '^hyperty://' "$D_TMP/out")" = 1 -a -n "$(grep -F 'More: add --cursor=' "$D_TMP/out")"
FIRST=$(grep -o "^hyperty://[^ ]*" "$D_TMP/out")
run --json discover --limit=1
NEXT=$(jq -r .next "$D_TMP/out")
t_check "--json discover --limit=1: next is the page's last url" test "$NEXT" = "$FIRST"
run --json discover --limit=1 --cursor="$NEXT"
t_check "discover --cursor: the next page" \
	test "$(jq -r '.hyperties | length' "$D_TMP/out")" = 1 -a "$(jq -r '.hyperties[0].url' "$D_TMP/out")" != "$FIRST"
run --json discover --limit=1 --all
t_check "discover --limit=1 --all: every page" \
	test "$(jq -r '[.hyperties[].url] | unique | length' "$D_TMP/out")" = 3 -a "$(jq -r 'has("next")' "$D_TMP/out")" = false

run discover --status=gone
expect "discover --status=gone: exit 2" 2 "live or disconnected"
run discover --limit=101
expect "discover --limit=101: exit 2" 2 "1 to 100"
run discover --limit=0
expect "--limit=0: exit 2" 2 "Invalid --limit="
run discover things
expect "discover things: exit 2" 2 "Use: discover"
run discover --user=alice
expect "discover --user=alice: the domain's 400, exit 1" 1 "(HTTP 400)"
"$CTL_BIN" --domain="$D_URL" discover >"$D_TMP/out" 2>"$D_TMP/err"
RC=$?
expect "discover without a credential: exit 1" 1 "give one with --admin-token-file="

# --- resources --------------------------------------------------------------------------------
printf '{"runtime":"%s"}' "$RT" >"$D_TMP/session.json"
t_check "messaging session opened" test "$(d_status POST /msg/sessions "$D_TMP/session.json" "$DEV_AUTH")" = 201
MSGS=$(jq -r .messages "$D_TMP/body")
{
	printf '{"id":1,"type":"create","from":"%s","to":"ctxt://%s/home/kitchen/temp","body":{"value":[{"n":"temp","v":21.5,"u":"Cel"}]}}\n' "$RT" "$NAME"
	printf '{"id":2,"type":"create","from":"%s","to":"ctxt://%s/home/garden/hum","body":{"value":[{"n":"hum","v":40,"u":"%%RH"}]}}\n' "$RT" "$NAME"
	printf '{"id":3,"type":"create","from":"%s","to":"ctxt://%s/plant/line-1","body":{"value":[{"n":"state","vs":"running"}]}}\n' "$RT" "$NAME"
} >"$D_TMP/pub.ndjson"
t_check "three values published" test "$(d_status POST "$MSGS" "$D_TMP/pub.ndjson" "$DEV_AUTH")" = 202

run resources
expect "resources: exit 0" 0
t_check "resources: header" grep -Eq '^RESOURCE +REPORTER +SUBSCRIBERS +LAST VALUE$' "$D_TMP/out"
t_check "resources: a value with its reporter" \
	grep -Eq "^ctxt://$NAME/home/kitchen/temp +$RT +0 +temp=21.5Cel$" "$D_TMP/out"
t_check "resources: a string value" grep -Eq "^ctxt://$NAME/plant/line-1 .* state=running$" "$D_TMP/out"
t_check "resources: the registry's status resources too" \
	test "$(grep -Ec "^ctxt://$NAME/registry/hyperty/[0-9a-f-]+ +domain://registry.$NAME +0 +status=live$" "$D_TMP/out")" = 3
t_check "resources: count line" grep -q '^6 resources listed\.$' "$D_TMP/out"
run resources --prefix="ctxt://$NAME/home"
t_check "resources --prefix: the two under it" test "$RC" = 0 -a "$(grep -c "^ctxt://$NAME/home/" "$D_TMP/out")" = 2 \
	-a -z "$(grep plant "$D_TMP/out")"
run --json resources --limit=2
t_check "--json resources --limit=2: two and a next" \
	test "$(jq -r '.resources | length' "$D_TMP/out")" = 2 -a "$(jq -r .next "$D_TMP/out")" = "ctxt://$NAME/home/kitchen/temp"
t_check "--json resources: reporter and SenML value" \
	jq -e ".resources[1] | .reporter == \"$RT\" and .value[0].v == 21.5 and .subscribers == 0" "$D_TMP/out" >/dev/null
run --json resources --limit=2 --all
t_check "resources --all: all six" test "$(jq -r '.resources | length' "$D_TMP/out")" = 6
run resources --prefix=http://x
expect "resources --prefix=http://x: exit 2" 2 "ctxt://"
run resources --resource=temp
expect "resources --resource: exit 2" 2 "for discover"

st=$(d_status GET /admin/resources)
t_check "GET /admin/resources without a token: 401" test "$st" = 401
st=$(d_status GET /admin/resources "" "$DEV_AUTH")
t_check "GET /admin/resources with a device token: 403" test "$st" = 403
st=$(d_status GET "/admin/resources?limit=0" "" "$(d_admin)")
t_check "GET /admin/resources?limit=0: 400" test "$st" = 400 -a -n "$(grep -F "'limit'" "$D_TMP/body")"
st=$(d_status GET "/admin/resources?sort=x" "" "$(d_admin)")
t_check "GET /admin/resources with an unknown parameter: 400" test "$st" = 400

# --- devices show, uninstall ---------------------------------------------------------------------
run devices show "$EP"
expect "devices show: exit 0" 0
t_check "devices show: the address it registered from" grep -Eq '^ +Address: 127\.0\.0\.1$' "$D_TMP/out"
t_check "devices show: since when" grep -Eq '^ +Address since: [0-9]{4}-[0-9]{2}-[0-9]{2}T' "$D_TMP/out"
t_check "devices show: no components, no orders" \
	sh -c 'grep -qx "No components." "$0" && grep -qx "No orders." "$0"' "$D_TMP/out"
run --json devices show "$EP"
t_check "--json devices show: address, components, orders" \
	jq -e '.address == "127.0.0.1" and .components == [] and .orders == []' "$D_TMP/out" >/dev/null
run uninstall "$EP" rtdisc-none
expect "uninstall of a component the device does not have: exit 1, the domain says why" 1 "(HTTP 404)"
run uninstall "$EP" 'a/b'
expect "uninstall with a malformed name: exit 2" 2 "Invalid endpoint or component name"

t_done
