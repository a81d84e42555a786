#!/bin/bash
# The bootstrap admin API of the real rethink-domain, driven with nghttp (a
# client we did not write): a device registered by hand and claimed, a
# published hyperty, a bootstrap whose order waits for the device's session
# ("queued"), the records, the live event stream (also with a second
# request on the same connection while it is open) and the errors, which
# change nothing. The device side runs in tests/unit/test-bootstrap.c.
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=tests/integration/domain-harness.bash
. "$(dirname "$0")/domain-harness.bash"

command -v jq >/dev/null || t_skip_all "jq is missing"

EP=rtbt-dev-$$

d_start || { t_fail "the domain starts"; t_done; exit 1; }

# The route answers "no such device"; a domain without the module answers
# the router's "not found".
st=$(d_status GET "/admin/devices/$EP/components" "" "$(d_admin)")
if [ "$st" = 404 ] && grep -q '"not found"' "$D_TMP/body"; then
	t_skip_all "this rethink-domain does not serve bootstrap orders yet (services/domain.c)"
fi
t_check "unknown device: 404" test "$st" = 404

t_check "events without the admin credential: 401" \
	test "$(d_status GET /admin/events)" = 401

# A device registers by hand: an Ed25519 key, as the agent sends it.
openssl genpkey -algorithm ed25519 -out "$D_TMP/device.key" 2>/dev/null
key=$(openssl pkey -in "$D_TMP/device.key" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '=')
printf '{"publicKey":"%s","runtimeVersion":"0.1.0"}' "$key" >"$D_TMP/reg.json"
t_check "the device registers" test "$(d_status POST "/dm/rd?ep=$EP&lt=600" "$D_TMP/reg.json")" = 201

printf '{"hyperties":["rtbtsensor"]}' >"$D_TMP/boot.json"
st=$(d_status POST "/admin/devices/$EP/bootstrap" "$D_TMP/boot.json" "$(d_admin)")
t_check "bootstrap of an unclaimed device: 409" test "$st" = 409
t_check "claim" test "$(d_status POST "/admin/devices/$EP/claim" "" "$(d_admin)")" = 200

st=$(d_status POST "/admin/devices/$EP/bootstrap" "$D_TMP/boot.json" "$(d_admin)")
t_check "an unpublished hyperty: 404 naming it" \
	sh -c "[ '$st' = 404 ] && grep -q rtbtsensor '$D_TMP/body'"
printf '{"hyperties":["rtbtsensor"],"protostubs":"x"}' >"$D_TMP/bad.json"
t_check "a malformed bootstrap: 400" \
	test "$(d_status POST "/admin/devices/$EP/bootstrap" "$D_TMP/bad.json" "$(d_admin)")" = 400
t_check "an unknown action: 404" \
	test "$(d_status POST "/admin/devices/$EP/components/rtbtsensor/explode" "" "$(d_admin)")" = 404
st=$(d_status GET "/admin/devices/$EP/orders" "" "$(d_admin)")
t_check "nothing recorded by the refused requests" \
	sh -c "[ '$st' = 200 ] && [ \"\$(jq '.orders | length' '$D_TMP/body')\" = 0 ]"

printf '#!/bin/sh\nexec sleep 1000\n' >"$D_TMP/sensor.sh"
t_check "publish the hyperty" d_publish "$D_TMP/sensor.sh" hyperty rtbtsensor 1.0.0

# An admin follows the events; the bootstrap happens once its stream is
# open (the response headers are out: nghttp -v says so).
stdbuf -oL nghttp -v -t 4 -H "$(d_admin)" "$D_URL/admin/events" >"$D_TMP/events" 2>/dev/null &
follower=$!
t_cleanup "kill $follower"
t_wait_for 5 grep -q ':status: 200' "$D_TMP/events" || t_fail "the event stream opens"
st=$(d_status POST "/admin/devices/$EP/bootstrap" "$D_TMP/boot.json" "$(d_admin)")
t_check "bootstrap: 202" test "$st" = 202
t_check "the order waits for the device's session" \
	test "$(jq -r '.orders[0].status' "$D_TMP/body")" = queued
wait "$follower"
t_check "the follower heard of the order" \
	sh -c "grep '\"event\":\"order\"' '$D_TMP/events' | grep -q '\"status\":\"queued\"'"

st=$(d_status GET "/admin/devices/$EP/components" "" "$(d_admin)")
t_check "components: the hyperty, not reported yet" \
	sh -c "[ '$st' = 200 ] && [ \"\$(jq -r '.components[0].name + \" \" + (.components[0].state // \"none\") + \" \" + .components[0].lastOrder.status' '$D_TMP/body')\" = 'rtbtsensor none queued' ]"

# One connection: the event stream stays open while another request on it
# is answered.
nghttp -t 2 -H "$(d_admin)" "$D_URL/admin/events" "$D_URL/admin/devices/$EP/orders" >"$D_TMP/both" 2>/dev/null
t_check "a second request on the connection of an open event stream is answered" \
	grep -q '"orders":\[{' "$D_TMP/both"

t_check "a second bootstrap of an ordered component: 409" \
	test "$(d_status POST "/admin/devices/$EP/bootstrap" "$D_TMP/boot.json" "$(d_admin)")" = 409
t_check "confirm before the device reported anything is still an order: 202" \
	test "$(d_status POST "/admin/devices/$EP/components/rtbtsensor/confirm" "" "$(d_admin)")" = 202
st=$(d_status GET "/admin/devices/$EP/orders" "" "$(d_admin)")
t_check "orders, newest first" \
	test "$(jq -r '[.orders[].order] | join(",")' "$D_TMP/body")" = confirm,install

# The records survive a restart.
kill "$D_PID"; wait "$D_PID" 2>/dev/null
d_start || t_fail "the domain restarts"
st=$(d_status GET "/admin/devices/$EP/orders" "" "$(d_admin)")
t_check "orders kept across a restart" \
	sh -c "[ '$st' = 200 ] && [ \"\$(jq '.orders | length' '$D_TMP/body')\" = 2 ]"
t_check "bootstrap.db is its own file" test -s "$D_STATE/bootstrap.db"

t_done
