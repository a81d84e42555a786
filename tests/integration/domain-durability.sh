#!/usr/bin/env bash
# "A killed (SIGKILL) and restarted rethink-domain has lost no accepted
# registration, device, package or subscription": devices register and
# packages are published, the domain is SIGKILLed right after the last
# answer, restarted on the same state directory, and everything answered
# with 201/200 before the kill is there. Also a kill in the middle of an
# upload leaves neither a partial package nor litter behind. (There are no
# subscriptions yet: the Messaging Service is not built.)
set -u
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
. "$(dirname "$0")/domain-harness.bash"

N_DEVICES=25

t_check "domain listening" d_start

ok=0
: >"$D_TMP/locations"
for i in $(seq 1 $N_DEVICES); do
	key=$(openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkey -pubout -outform DER | tail -c 32 \
		| basenc --base64url -w0 | tr -d '=')
	printf '{"publicKey":"%s","arch":"x86_64","freeBytes":%d}' "$key" "$i" >"$D_TMP/reg.json"
	st=$(d_status POST "/dm/rd?ep=sensor-$i&lt=3600" "$D_TMP/reg.json")
	if [ "$st" = 201 ]; then
		ok=$((ok + 1))
		echo "sensor-$i $(d_header location) $key" >>"$D_TMP/locations"
	fi
done
t_check "$N_DEVICES registrations answered 201" test "$ok" -eq "$N_DEVICES"

for i in 1 2 3; do
	head -c $((100000 * i + 7)) /dev/urandom >"$D_TMP/pkg$i.bin"
	t_check "package $i published" d_publish "$D_TMP/pkg$i.bin" protocolstub "stub-$i" "1.$i"
done
st=$(d_status POST /admin/devices/sensor-7/claim "" "$(d_admin)")
t_check "sensor-7 claimed" test "$st" = 200

# No grace: the last answer has just arrived.
kill -9 "$D_PID"
wait "$D_PID" 2>/dev/null
t_check "domain killed" test "$(d_alive && echo alive)" = ""

t_check "domain restarted on the same state" d_start
st=$(d_status GET /admin/devices "" "$(d_admin)")
t_check "device list after restart: 200" test "$st" = 200
python3 - "$D_TMP/body" "$D_TMP/locations" <<'PY'
import json, sys
devices = {d["endpoint"]: d for d in json.load(open(sys.argv[1]))["devices"]}
bad = 0
for line in open(sys.argv[2]):
    ep, location, key = line.split()
    d = devices.get(ep)
    if not d or d["state"] != "registered" or d["publicKey"] != key or "/dm/rd/" + d["id"] != location:
        print("lost or changed:", ep, d)
        bad += 1
if not devices.get("sensor-7", {}).get("claimed"):
    print("claim of sensor-7 lost")
    bad += 1
sys.exit(1 if bad else 0)
PY
t_check "every registration, key and the claim survived" test $? -eq 0

# The registrations are alive, not just listed: their ids still work.
ok=0
while read -r ep location key; do
	[ "$(d_status POST "$location")" = 204 ] && ok=$((ok + 1))
done <"$D_TMP/locations"
t_check "all $N_DEVICES registrations accept updates after restart" test "$ok" -eq "$N_DEVICES"

for i in 1 2 3; do
	st=$(d_status GET "/.well-known/protocolstub/stub-$i")
	t_check "descriptor stub-$i survived" test "$st" = 200
	d_fetch "/catalogue/packages/$(sha256sum "$D_TMP/pkg$i.bin" | cut -d' ' -f1)" "$D_TMP/got$i.bin"
	t_check "package $i survived byte for byte" cmp -s "$D_TMP/got$i.bin" "$D_TMP/pkg$i.bin"
done

# --- killed during an upload ------------------------------------------------------
head -c 30000000 /dev/urandom >"$D_TMP/huge.bin"
HSHA=$(sha256sum "$D_TMP/huge.bin" | cut -d' ' -f1)
nghttp -H ':method: PUT' -H "$(d_admin)" -d "$D_TMP/huge.bin" "$D_URL/admin/catalogue/packages/$HSHA" \
	>/dev/null 2>&1 &
UP=$!
t_cleanup "kill $UP"
# Kill once the upload has started to land on disk (or, on a very fast
# machine, has finished: both outcomes are checked below).
t_wait_for 20 sh -c "ls -A '$D_STATE/packages' | grep -q '^\\.upload-\\|$HSHA'"
kill -9 "$D_PID"
wait "$D_PID" 2>/dev/null
wait "$UP" 2>/dev/null

t_check "domain restarted after a kill mid-upload" d_start
t_check "no partial upload left in the package directory" \
	test -z "$(ls -A "$D_STATE/packages" | grep '^\.upload-')"
st=$(d_status PUT "/admin/catalogue/packages/$HSHA" "$D_TMP/huge.bin" "$(d_admin)")
t_check "the interrupted package uploads again (201, or 200 if it had completed)" \
	test "$st" = 201 -o "$st" = 200
t_check "stored package is byte-identical" cmp -s "$D_STATE/packages/$HSHA" "$D_TMP/huge.bin"

kill -TERM "$D_PID"
t_check "SIGTERM: clean exit" wait "$D_PID"
t_done
