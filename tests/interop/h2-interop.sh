#!/usr/bin/env bash
# HTTP/2 interoperability: our server answered by clients we did not write
# (nghttp, h2load), and our client fetching from a server we did not write
# (nghttpd), over TLS (ALPN h2, test CA) and h2c (prior knowledge).
set -u
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
SERVER=$BUILD/tests/helpers/h2-test-server
FETCH=$BUILD/tests/helpers/h2-fetch
for tool in nghttp h2load nghttpd openssl; do
	command -v "$tool" >/dev/null || t_skip_all "$tool not installed"
done
[ -x "$SERVER" ] && [ -x "$FETCH" ] || { t_fail "helpers built ($SERVER, $FETCH)"; t_done; exit 1; }

WORK=$(mktemp -d)
t_cleanup "rm -rf '$WORK'"

# --- test certificates: a CA, a server certificate for localhost/127.0.0.1,
# and an unrelated CA.
(
	cd "$WORK" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout ca.key -out ca.pem -days 2 -subj /CN=rethink-test-ca
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout other.key -out other-ca.pem -days 2 -subj /CN=rethink-other-ca
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout server.key -out server.csr -subj /CN=localhost
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
		-out server.pem -days 2 -extfile ext.cnf
) >/dev/null 2>&1
t_check "test certificates generated" test -s "$WORK/server.pem"

# start_ours NAME ARGS...: starts our test server, sets PORT_<NAME> and PID_<NAME>.
start_ours() {
	local name=$1; shift
	"$SERVER" --interval-ms 20 --max-body 1048576 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	local pid=$!
	t_cleanup "kill $pid"
	eval "PID_$name=$pid"
	if t_wait_for 10 grep -q '^PORT=' "$WORK/$name.out"; then
		eval "PORT_$name=$(sed -n 's/^PORT=//p' "$WORK/$name.out")"
	else
		eval "PORT_$name=0"
	fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_ours H2C
start_ours TLS --cert "$WORK/server.pem" --key "$WORK/server.key"
t_check "our h2c server listening" test "$PORT_H2C" -gt 0
t_check "our TLS server listening" test "$PORT_TLS" -gt 0

H2C=http://127.0.0.1:$PORT_H2C
TLS=https://localhost:$PORT_TLS

# Expected bytes of /big?n=N: byte i is i*7 mod 256.
python3 -c '
import sys
n = 3000000
sys.stdout.buffer.write(bytes((i * 7) & 255 for i in range(n)))' > "$WORK/big.expected"
head -c 2097152 /dev/urandom > "$WORK/2m.bin"
head -c 300000 /dev/urandom > "$WORK/300k.bin"

# --- nghttp against our server -------------------------------------------------
# nghttp does not verify certificates (it warns on stderr); what it checks
# here is TLS with ALPN h2 and the HTTP/2 exchange itself.
for mode in H2C TLS; do
	base=${!mode}
	out=$(nghttp "$base/hello" 2>/dev/null)
	t_check "nghttp $mode GET /hello body" test "$out" = "hello"

	nghttp -v "$base/hello" >"$WORK/v.txt" 2>&1
	t_check "nghttp $mode GET /hello :status 200" grep -q ':status: 200' "$WORK/v.txt"
	[ "$mode" = TLS ] && t_check "nghttp TLS negotiated h2 via ALPN" grep -qi 'negotiated protocol: h2' "$WORK/v.txt"

	nghttp -d "$WORK/300k.bin" "$base/echo" >"$WORK/echo.out" 2>/dev/null
	t_check "nghttp $mode POST /echo 300 KB round trip" cmp -s "$WORK/echo.out" "$WORK/300k.bin"

	nghttp "$base/big?n=3000000" >"$WORK/big.out" 2>/dev/null
	t_check "nghttp $mode GET /big 3 MB" cmp -s "$WORK/big.out" "$WORK/big.expected"

	nghttp "$base/stream?n=5" >"$WORK/stream.out" 2>/dev/null
	t_check "nghttp $mode GET /stream 5 NDJSON lines" \
		test "$(tr -d '\n' <"$WORK/stream.out")" = '{"n":0}{"n":1}{"n":2}{"n":3}{"n":4}'

	nghttp -v -d "$WORK/2m.bin" "$base/echo" >"$WORK/413.txt" 2>&1
	t_check "nghttp $mode POST 2 MB: 413" grep -q ':status: 413' "$WORK/413.txt"
	t_check "nghttp $mode POST 2 MB: JSON error body" grep -q '{"code":413,"description":"request body too large"}' "$WORK/413.txt"

	nghttp -v "$base/nope" >"$WORK/404.txt" 2>&1
	t_check "nghttp $mode GET /nope: 404 JSON" grep -q '{"code":404,"description":"not found"}' "$WORK/404.txt"

	# Many concurrent streams on one connection, next to a long-lived one.
	nghttp -n "$base/stream?n=10" "$base/hello" "$base/hello" "$base/big?n=100000" "$base/hello" \
		>"$WORK/multi.txt" 2>&1
	t_check "nghttp $mode concurrent streams with a long-lived one" test $? -eq 0

	h2load -n 2000 -c 4 -m 16 "$base/hello" >"$WORK/h2load.txt" 2>&1
	t_check "h2load $mode 2000 requests succeeded" grep -q '2000 succeeded, 0 failed, 0 errored' "$WORK/h2load.txt"
	t_check "h2load $mode 2000 x 2xx" grep -q 'status codes: 2000 2xx' "$WORK/h2load.txt"
done

# --- our client against nghttpd ------------------------------------------------
DOC=$WORK/doc
mkdir -p "$DOC"
printf 'hello from nghttpd\n' > "$DOC/hello.txt"
cp "$WORK/big.expected" "$DOC/big.bin"

NPORT_H2C=$(t_free_port)
nghttpd --no-tls --echo-upload -d "$DOC" "$NPORT_H2C" >/dev/null 2>&1 &
t_cleanup "kill $!"
NPORT_TLS=$(t_free_port)
nghttpd --echo-upload -d "$DOC" "$NPORT_TLS" "$WORK/server.key" "$WORK/server.pem" >/dev/null 2>&1 &
t_cleanup "kill $!"
t_check "nghttpd h2c listening" t_wait_for 10 port_open "$NPORT_H2C"
t_check "nghttpd TLS listening" t_wait_for 10 port_open "$NPORT_TLS"

for mode in h2c tls; do
	if [ $mode = h2c ]; then
		base=http://127.0.0.1:$NPORT_H2C; opts=()
	else
		base=https://127.0.0.1:$NPORT_TLS; opts=(--ca "$WORK/ca.pem" --server-name localhost)
	fi
	out=$("$FETCH" "${opts[@]}" "$base/hello.txt" 2>&1)
	t_check "h2-fetch $mode GET from nghttpd" test "$out" = "$(printf 'status 200\nhello from nghttpd')"

	"$FETCH" "${opts[@]}" --body-only "$base/big.bin" >"$WORK/fetch-big.out" 2>/dev/null
	t_check "h2-fetch $mode GET 3 MB from nghttpd" cmp -s "$WORK/fetch-big.out" "$WORK/big.expected"

	"$FETCH" "${opts[@]}" --body-only --data-file "$WORK/2m.bin" "$base/echo" >"$WORK/fetch-echo.out" 2>/dev/null
	t_check "h2-fetch $mode POST 2 MB echoed by nghttpd" cmp -s "$WORK/fetch-echo.out" "$WORK/2m.bin"

	out=$("$FETCH" "${opts[@]}" "$base/missing" 2>&1 | head -n 1)
	t_check "h2-fetch $mode 404 from nghttpd" test "$out" = "status 404"
done

# Verification failures are clear errors, not responses.
"$FETCH" --ca "$WORK/other-ca.pem" --server-name localhost "https://127.0.0.1:$NPORT_TLS/hello.txt" \
	>"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
t_check "h2-fetch with the wrong CA fails" test $rc -ne 0
t_check "h2-fetch with the wrong CA says why" grep -q 'certificate' "$WORK/bad.err"
"$FETCH" --ca "$WORK/ca.pem" --server-name rethink.example "https://127.0.0.1:$NPORT_TLS/hello.txt" \
	>"$WORK/bad.out" 2>"$WORK/bad.err"
t_check "h2-fetch with the wrong host name fails" test $? -ne 0

# And our client against our server, TLS, for completeness of the matrix.
out=$("$FETCH" --ca "$WORK/ca.pem" --max-bytes 16 "https://localhost:$PORT_TLS/stream" 2>&1)
t_check "h2-fetch TLS long-lived stream from our server" test "$out" = "$(printf 'status 200\n{"n":0}\n{"n":1}\n')"

# Graceful shutdown of our servers on SIGTERM.
kill -TERM "$PID_TLS"
t_check "our TLS server exits on SIGTERM" t_wait_for 10 bash -c "! kill -0 $PID_TLS 2>/dev/null"
wait "$PID_TLS"
t_check "our TLS server exit status 0 after SIGTERM" test $? -eq 0

t_done
