#!/usr/bin/env bash
# The Local M2M Resource Directory of a running rethink-agent, driven with
# nghttp (a client we did not write) over TLS: the agent fetches its
# domain's key set from a running rethink-domain, and tokens signed with
# the domain's own key (openssl command line, as docs/idm.md shows) open
# it; missing, expired, forged and foreign tokens are 401, a token without
# the peer scope 403, requests without rethink-from 400. Bad [LocalRD]
# settings are refused naming the key.
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
. "$(dirname "$0")/domain-harness.bash"
AGENT=$BUILD/rethink-agent
[ -x "$AGENT" ] || t_skip_all "rethink-agent is not built"
command -v jq >/dev/null || t_skip_all "jq is missing"

NAME=lrd.test
printf '[Domain]\nName=%s\n' "$NAME" >>"$D_TMP/domain.conf"
t_check "domain listening" d_start

A_DIR=$D_TMP/agent
mkdir -p "$A_DIR/publishers"
A_PORT=$(t_free_port)
A_PID=
t_cleanup '[ -n "$A_PID" ] && kill -KILL $A_PID'

# The agent's Local RD certificate, from a CA of the test's own.
(
	cd "$A_DIR" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
		-days 2 -subj /CN=lrd-test-ca 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout rd.key -out rd.csr \
			-subj /CN=127.0.0.1 2>/dev/null &&
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
		openssl x509 -req -in rd.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out rd.pem -days 2 \
			-extfile ext.cnf 2>/dev/null
) || t_skip_all "openssl cannot make test certificates"

a_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$A_PORT") 2>/dev/null; }
a_start() {
	RETHINK_LOG_TARGET=json RETHINK_LOG_LEVEL=info "$AGENT" --bpf=no --watch=lo \
		--control-socket="$A_DIR/agent.sock" --state-directory="$A_DIR/state" \
		--trusted-publishers="$A_DIR/publishers" --domain-url="$D_URL" --domain-name="$NAME" \
		--local-rd-listen=127.0.0.1 --local-rd-port="$A_PORT" \
		--local-rd-certificate="$A_DIR/rd.pem" --local-rd-key="$A_DIR/rd.key" "$@" 2>>"$A_DIR/log" &
	A_PID=$!
	t_wait_for 20 a_port_open
}
t_check "agent serves the Local RD" a_start
t_check "agent logs its endpoint" t_wait_for 10 grep -q "Local M2M Resource Directory at https://127.0.0.1:$A_PORT" "$A_DIR/log"

# r STATUS_VAR METHOD PATH [HEADER...]: one nghttp request over TLS to the
# agent; body in $A_DIR/body, headers in $A_DIR/headers.
r() {
	local method=$1 path=$2 args=()
	shift 2
	args=(--har="$A_DIR/har" -H ":method: $method")
	for h in "$@"; do args+=(-H "$h"); done
	rm -f "$A_DIR/har"
	nghttp "${args[@]}" "https://127.0.0.1:$A_PORT$path" >"$A_DIR/body" 2>"$A_DIR/err"
	python3 - "$A_DIR/har" >"$A_DIR/headers" 2>/dev/null <<'PY' || :
import json, sys
r = json.load(open(sys.argv[1]))["log"]["entries"][0]["response"]
for h in r["headers"]:
    print("%s: %s" % (h["name"], h["value"]))
PY
	sed -n 's/^:status: //p' "$A_DIR/headers" | head -n 1
}
hdr() { sed -n "s/^$1: //p" "$A_DIR/headers" | head -n 1; }
desc() { jq -r .description "$A_DIR/body" 2>/dev/null; }

# jws KEY KID CLAIMS_JSON: a compact ES256 JWS made with openssl.
jws() {
	python3 - "$1" "$2" "$3" <<'PY'
import base64, json, subprocess, sys
key, kid, claims = sys.argv[1:]
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
j = lambda o: b(json.dumps(o, separators=(",", ":")).encode())
si = j({"alg": "ES256", "typ": "JWT", "kid": kid}) + "." + j(json.loads(claims))
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
claims() { # SUB SCOPE [LIFETIME] [AUD]
	python3 -c 'import json, sys, time, uuid
sub, scope, life, iss, aud = sys.argv[1:6]; now = int(time.time()); life = int(life)
iat = now if life > 0 else now - 7200
print(json.dumps({"iss": iss, "sub": sub, "aud": aud, "iat": iat, "nbf": iat, "exp": iat + abs(life), "jti": str(uuid.uuid4()), "scope": scope}))' \
		"$1" "$2" "${3:-3600}" "$NAME" "${4:-$NAME}"
}

d_status GET /idm/jwks >/dev/null
KID=$(jq -r '.keys[0].kid' "$D_TMP/body")
t_check "domain key id known" test -n "$KID" -a "$KID" != null
GOOD=$(jws "$D_STATE/idm-key.pem" "$KID" "$(claims gw-int peer)")
RUNTIME_ONLY=$(jws "$D_STATE/idm-key.pem" "$KID" "$(claims gw-int runtime)")
EXPIRED=$(jws "$D_STATE/idm-key.pem" "$KID" "$(claims gw-int peer -3600)")
WRONG_AUD=$(jws "$D_STATE/idm-key.pem" "$KID" "$(claims gw-int peer 3600 other.test)")
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$A_DIR/forger.key" 2>/dev/null
FORGED=$(jws "$A_DIR/forger.key" "$KID" "$(claims gw-int peer)")
UNKNOWN_KID=$(jws "$A_DIR/forger.key" "not-a-domain-kid" "$(claims gw-int peer)")
FROM="rethink-from: hyperty://$NAME/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a02"

st=$(r GET /rd/resources "authorization: Bearer $GOOD" "$FROM")
t_check "list with a domain token: 200" test "$st" = 200
t_check "list: JSON with a resources array" test "$(jq -r '.resources | type' "$A_DIR/body")" = array
t_check "list: not cached" test "$(hdr cache-control)" = no-store

st=$(r GET /rd/resources "$FROM")
t_check "no token: 401" test "$st" = 401
t_check "401 challenges for a bearer token" grep -q '^www-authenticate: Bearer realm="rethink-agent"' "$A_DIR/headers"
t_check "401 body is JSON with code" test "$(jq -r .code "$A_DIR/body")" = 401
st=$(r GET /rd/resources "authorization: Bearer $EXPIRED" "$FROM")
t_check "expired token: 401 expired" test "$st" = 401 -a "$(desc)" = "token expired"
st=$(r GET /rd/resources "authorization: Bearer $FORGED" "$FROM")
t_check "token signed by another key: 401" test "$st" = 401
st=$(r GET /rd/resources "authorization: Bearer $UNKNOWN_KID" "$FROM")
t_check "unknown kid (after a refresh): 401" test "$st" = 401 -a "$(desc)" = "unknown kid"
st=$(r GET /rd/resources "authorization: Bearer $WRONG_AUD" "$FROM")
t_check "token for another audience: 401" test "$st" = 401
st=$(r GET /rd/resources "authorization: Bearer $RUNTIME_ONLY" "$FROM")
t_check "token without the peer scope: 403" test "$st" = 403
st=$(r GET /rd/resources "authorization: Bearer $GOOD")
t_check "no rethink-from: 400" test "$st" = 400 -a "$(desc)" = "header 'rethink-from': missing"
st=$(r GET "/rd/resources/0b5c2a7e-3a4d-4c8f-9a51-6f0e2d7c1a09/temperature" "authorization: Bearer $GOOD" "$FROM")
t_check "resource not offered: 404" test "$st" = 404 -a "$(desc)" = "no such resource"
st=$(r PUT "/rd/resources" "authorization: Bearer $GOOD" "$FROM")
t_check "PUT on the list: 405 with Allow" test "$st" = 405 -a "$(hdr allow)" = GET
logged_403() {
	jq -e -s 'map(select(.MESSAGE | test("Local RD: refused GET /rd/resources from hyperty://.* \\(subject gw-int\\): 403"))) | length >= 1' \
		"$A_DIR/log" >/dev/null
}
t_check "refusals are logged with the peer and the subject" logged_403
t_check "agent still running" kill -0 "$A_PID"

kill "$A_PID"
wait "$A_PID" 2>/dev/null
A_PID=

# Bad settings name their key; cleartext is for loopback only.
out=$("$AGENT" --local-rd-listen=rd.example --help 2>&1)
t_check "Listen= must be numeric" grep -q "local-rd-listen=rd.example: expected a numeric IPv4 or IPv6 address" <<<"$out"
RETHINK_LOG_TARGET=json "$AGENT" --bpf=no --watch=lo --control-socket="$A_DIR/agent2.sock" \
	--state-directory="$A_DIR/state" --trusted-publishers="$A_DIR/publishers" --domain-url="$D_URL" \
	--domain-name="$NAME" --local-rd-listen=0.0.0.0 --local-rd-port="$A_PORT" --local-rd-cleartext=yes \
	2>>"$A_DIR/log2" &
A_PID=$!
t_check "cleartext on a non-loopback address is refused, naming the key" \
	t_wait_for 10 grep -q 'LocalRD\] Cleartext=yes is only allowed with a loopback' "$A_DIR/log2"
t_check "and nothing listens" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$A_PORT) 2>/dev/null"

t_done
