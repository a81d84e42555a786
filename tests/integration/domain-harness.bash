# Shared set-up of the domain suites (tests/integration/domain-*.sh),
# sourced after tests/lib.sh; not a suite itself.
#
# A rethink-domain on 127.0.0.1 (h2c) with a state directory, an admin
# credential and a trusted publisher key in a temporary directory, driven
# with nghttp: a client we did not write. Packages are signed with the
# openssl command line, as docs/crypto.md shows.

# shellcheck disable=SC2034  # variables are for the sourcing suites
DOMAIN=$BUILD/rethink-domain
[ -x "$DOMAIN" ] || t_skip_all "rethink-domain is not built"
for tool in nghttp openssl basenc python3; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

D_TMP=$(mktemp -d "/tmp/rtdom-$T_NAME-XXXXXX")
t_cleanup "rm -rf '$D_TMP'"
D_STATE=$D_TMP/state
D_PID=
D_PORT=$(t_free_port)
D_URL=http://127.0.0.1:$D_PORT

head -c 32 /dev/urandom | basenc --base64url -w0 | tr -d '=' >"$D_TMP/admin-token"
D_TOKEN=$(cat "$D_TMP/admin-token")
openssl genpkey -algorithm ed25519 -out "$D_TMP/publisher.key" 2>/dev/null
D_PUBLISHER=$(openssl pkey -in "$D_TMP/publisher.key" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '=')

cat >"$D_TMP/domain.conf" <<CONF
[Domain]
StateDirectory=$D_STATE
[HTTP]
Listen=127.0.0.1
Port=$D_PORT
ShutdownGraceSec=2
[Admin]
TokenFile=$D_TMP/admin-token
[Catalogue]
TrustedPublishers=$D_PUBLISHER
[DeviceManagement]
MinLifetimeSec=1
CONF

d_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$D_PORT") 2>/dev/null; }

# d_start [FLAGS...]: starts the domain with our config, waits until it
# accepts connections; D_PID is its pid.
d_start() {
	"$DOMAIN" --config="$D_TMP/domain.conf" "$@" >>"$D_TMP/domain.log" 2>&1 &
	D_PID=$!
	t_cleanup "kill -9 $D_PID"
	t_wait_for 10 d_port_open
}

d_alive() { kill -0 "$D_PID" 2>/dev/null; }

# d_status METHOD PATH [DATA_FILE] [HEADER...]: one request; prints the
# status. The body goes to $D_TMP/body, the response headers ("name: value"
# lines, from nghttp's HAR output) to $D_TMP/headers.
d_status() {
	local method=$1 path=$2 data=${3:-} args=()
	shift $(($# < 3 ? $# : 3))
	args=(--har="$D_TMP/har" -H ":method: $method")
	[ -n "$data" ] && args+=(-d "$data")
	for h in "$@"; do args+=(-H "$h"); done
	rm -f "$D_TMP/har"
	nghttp "${args[@]}" "$D_URL$path" >"$D_TMP/body" 2>"$D_TMP/err"
	python3 - "$D_TMP/har" >"$D_TMP/headers" 2>/dev/null <<'PY' || :
import json, sys
r = json.load(open(sys.argv[1]))["log"]["entries"][0]["response"]
for h in r["headers"]:
    print("%s: %s" % (h["name"], h["value"]))
PY
	sed -n 's/^:status: //p' "$D_TMP/headers" | head -n 1
}

# d_header NAME: a response header of the last d_status.
d_header() { sed -n "s/^$1: //p" "$D_TMP/headers" | head -n 1; }

# d_admin: the authorization header of an admin, with an access token the
# IdM issues for the credential (a fresh one each time: admin routes take
# no credential, and the domain refuses tokens older than its start).
d_admin() {
	local tok
	printf 'grant_type=client_credentials&client_id=admin&client_secret=%s' "$D_TOKEN" >"$D_TMP/d-admin.form"
	tok=$(nghttp -H ':method: POST' -H 'content-type: application/x-www-form-urlencoded' -d "$D_TMP/d-admin.form" \
		"$D_URL/idm/token" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null)
	echo "authorization: Bearer $tok"
}

# d_sign FILE: prints the base64url signature of FILE's SHA-256.
d_sign() {
	openssl dgst -sha256 -binary "$1" >"$D_TMP/digest"
	openssl pkeyutl -sign -inkey "$D_TMP/publisher.key" -rawin -in "$D_TMP/digest" -out "$D_TMP/sig"
	basenc --base64url -w0 "$D_TMP/sig" | tr -d '='
}

# d_publish FILE KIND NAME VERSION: uploads and publishes; 0 when both
# were accepted.
d_publish() {
	local file=$1 kind=$2 name=$3 version=$4 sha st type=""
	sha=$(sha256sum "$file" | cut -d' ' -f1)
	st=$(d_status PUT "/admin/catalogue/packages/$sha" "$file" "$(d_admin)")
	[ "$st" = 201 ] || [ "$st" = 200 ] || return 1
	[ "$kind" = hyperty ] && type='"hypertyType":["context"],'
	printf '{"type":"%s","objectName":"%s","version":"%s",%s"sha256":"%s","signature":"%s","publisher":"%s"}' \
		"$kind" "$name" "$version" "$type" "$sha" "$(d_sign "$file")" "$D_PUBLISHER" >"$D_TMP/desc.json"
	st=$(d_status POST /admin/catalogue/descriptors "$D_TMP/desc.json" "$(d_admin)")
	[ "$st" = 201 ] || [ "$st" = 200 ]
}

# d_fetch PATH OUT [HEADER...]: response body of a GET into OUT.
d_fetch() {
	local path=$1 out=$2 args=()
	shift 2
	for h in "$@"; do args+=(-H "$h"); done
	nghttp "${args[@]}" "$D_URL$path" >"$out" 2>/dev/null
}
