#!/usr/bin/env bash
# The Catalogue of a running rethink-domain, driven with nghttp and h2load
# (clients we did not write): publishing a signed package, descriptors,
# package download with Range, ETag, If-None-Match and If-Range, the error
# answers, and the same over TLS.
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
. "$(dirname "$0")/domain-harness.bash"

t_check "domain listening" d_start

head -c 2500000 /dev/urandom >"$D_TMP/pkg.bin"
SHA=$(sha256sum "$D_TMP/pkg.bin" | cut -d' ' -f1)
PKG=/catalogue/packages/$SHA

# --- publishing ------------------------------------------------------------------
st=$(d_status PUT "/admin/catalogue/packages/$SHA" "$D_TMP/pkg.bin")
t_check "upload without credential: 401" test "$st" = 401
t_check "401 body is JSON with code" grep -q '"code":401' "$D_TMP/body"
t_check "401 carries WWW-Authenticate" test -n "$(d_header www-authenticate)"

head -c 1000 /dev/urandom >"$D_TMP/other.bin"
st=$(d_status PUT "/admin/catalogue/packages/$SHA" "$D_TMP/other.bin" "$(d_admin)")
t_check "upload of bytes with another digest: 422" test "$st" = 422
t_check "422 says why" grep -q 'does not match' "$D_TMP/body"

t_check "upload and publish a signed hyperty" d_publish "$D_TMP/pkg.bin" hyperty temp-producer 1.0.0

# A descriptor signed by someone else, naming our trusted key: refused.
openssl genpkey -algorithm ed25519 -out "$D_TMP/stranger.key" 2>/dev/null
openssl dgst -sha256 -binary "$D_TMP/pkg.bin" >"$D_TMP/d2"
openssl pkeyutl -sign -inkey "$D_TMP/stranger.key" -rawin -in "$D_TMP/d2" -out "$D_TMP/s2"
printf '{"type":"runtime","objectName":"forged","version":"1","sha256":"%s","signature":"%s","publisher":"%s"}' \
	"$SHA" "$(basenc --base64url -w0 "$D_TMP/s2" | tr -d '=')" "$D_PUBLISHER" >"$D_TMP/forged.json"
st=$(d_status POST /admin/catalogue/descriptors "$D_TMP/forged.json" "$(d_admin)")
t_check "forged signature: 422" test "$st" = 422
st=$(d_status GET /.well-known/runtime/forged)
t_check "forged descriptor not stored" test "$st" = 404

printf '{"type":"hyperty","objectName":"x"}' >"$D_TMP/bad.json"
st=$(d_status POST /admin/catalogue/descriptors "$D_TMP/bad.json" "$(d_admin)")
t_check "invalid descriptor: 400" test "$st" = 400
t_check "400 names the field" grep -q "field 'version': missing" "$D_TMP/body"

# --- descriptors -----------------------------------------------------------------
st=$(d_status GET /.well-known/hyperty/temp-producer)
t_check "GET descriptor: 200" test "$st" = 200
t_check "descriptor has the digest" grep -q "\"sha256\":\"$SHA\"" "$D_TMP/body"
t_check "descriptor names the package" grep -q "\"sourcePackageURL\":\"$PKG\"" "$D_TMP/body"
t_check "descriptor is JSON" test "$(d_header content-type)" = application/json
st=$(d_status GET /.well-known/hyperty/)
t_check "listing" test "$st" = 200 -a "$(cat "$D_TMP/body")" = '["temp-producer"]'
st=$(d_status GET /.well-known/hyperty/nothing)
t_check "unknown descriptor: 404 JSON" test "$st" = 404
t_check "404 body" grep -q '"code":404' "$D_TMP/body"
st=$(d_status DELETE /.well-known/hyperty/temp-producer)
t_check "DELETE on a descriptor: 405" test "$st" = 405 -a "$(d_header allow)" = GET

# --- package download ----------------------------------------------------------------
d_fetch "$PKG" "$D_TMP/got.bin"
t_check "whole package (2.5 MB) byte for byte" cmp -s "$D_TMP/got.bin" "$D_TMP/pkg.bin"

st=$(d_status GET "$PKG")
t_check "ETag is the quoted digest" test "$(d_header etag)" = "\"$SHA\""
t_check "Accept-Ranges: bytes" test "$(d_header accept-ranges)" = bytes
t_check "Content-Length is the size" test "$(d_header content-length)" = 2500000

st=$(d_status GET "$PKG" "" "range: bytes=1000-1999")
t_check "Range a-b: 206" test "$st" = 206
t_check "Content-Range a-b" test "$(d_header content-range)" = "bytes 1000-1999/2500000"
t_check "Range a-b bytes" cmp -s "$D_TMP/body" <(tail -c +1001 "$D_TMP/pkg.bin" | head -c 1000)

st=$(d_status GET "$PKG" "" "range: bytes=2000000-")
t_check "Range a-: 206" test "$st" = 206
t_check "Range a- bytes" cmp -s "$D_TMP/body" <(tail -c +2000001 "$D_TMP/pkg.bin")
t_check "Content-Range a-" test "$(d_header content-range)" = "bytes 2000000-2499999/2500000"

st=$(d_status GET "$PKG" "" "range: bytes=-500")
t_check "Range -n: 206" test "$st" = 206
t_check "Range -n bytes" cmp -s "$D_TMP/body" <(tail -c 500 "$D_TMP/pkg.bin")

st=$(d_status GET "$PKG" "" "range: bytes=2500000-")
t_check "Range past the end: 416" test "$st" = 416
t_check "416 Content-Range" test "$(d_header content-range)" = "bytes */2500000"
t_check "416 body is JSON" grep -q '"code":416' "$D_TMP/body"

st=$(d_status GET "$PKG" "" "if-none-match: \"$SHA\"")
t_check "If-None-Match with the ETag: 304" test "$st" = 304
t_check "304 has no body" test ! -s "$D_TMP/body"
st=$(d_status GET "$PKG" "" "if-none-match: \"nope\"")
t_check "If-None-Match with another tag: 200" test "$st" = 200

st=$(d_status GET "$PKG" "" "range: bytes=0-9" "if-range: \"$SHA\"")
t_check "If-Range matching: 206" test "$st" = 206
st=$(d_status GET "$PKG" "" "range: bytes=0-9" "if-range: \"old\"")
t_check "If-Range not matching: whole 200" test "$st" = 200 -a "$(d_header content-length)" = 2500000

st=$(d_status GET /catalogue/packages/0000000000000000000000000000000000000000000000000000000000000000)
t_check "unknown package: 404" test "$st" = 404

# Many clients at once on the same package and descriptor.
if command -v h2load >/dev/null; then
	h2load -n 200 -c 4 -m 8 "$D_URL/.well-known/hyperty/temp-producer" >"$D_TMP/h2load.txt" 2>&1
	t_check "h2load 200 descriptor GETs, all 2xx" grep -q 'status codes: 200 2xx' "$D_TMP/h2load.txt"
	h2load -n 20 -c 2 -m 4 -H 'range: bytes=-100000' "$D_URL$PKG" >"$D_TMP/h2load2.txt" 2>&1
	t_check "h2load 20 concurrent range downloads succeeded" grep -q '20 succeeded, 0 failed' "$D_TMP/h2load2.txt"
fi

kill -TERM "$D_PID"
t_check "SIGTERM: clean exit" wait "$D_PID"

# --- over TLS ----------------------------------------------------------------------
(
	cd "$D_TMP" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout tls.key -out tls.pem -days 2 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1
) >/dev/null 2>&1
D_PORT=$(t_free_port)
D_URL=https://127.0.0.1:$D_PORT
t_check "domain over TLS listening" d_start --port="$D_PORT" --listen=127.0.0.1 \
	--certificate="$D_TMP/tls.pem" --private-key="$D_TMP/tls.key"
nghttp -v "$D_URL$PKG" >"$D_TMP/tls.txt" 2>&1
t_check "TLS: negotiated h2 via ALPN" grep -qi 'negotiated protocol: h2' "$D_TMP/tls.txt"
d_fetch "$PKG" "$D_TMP/tls.bin"
t_check "TLS: the same package after a restart" cmp -s "$D_TMP/tls.bin" "$D_TMP/pkg.bin"
st=$(d_status GET "$PKG" "" "range: bytes=5-14")
t_check "TLS: Range 206" test "$st" = 206 -a "$(d_header content-range)" = "bytes 5-14/2500000"
kill -TERM "$D_PID"
wait "$D_PID" 2>/dev/null

t_done
