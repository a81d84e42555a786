#!/usr/bin/env bash
# The M2M device bootstrap, all 16 steps, with the real rethink-agent on a
# device host and the real rethink-domain on a domain host (network
# namespaces, TLS): the device registers, Alice (the admin, with
# rethinkctl) sees and claims it, bootstraps an application and a
# protocol stub, follows the results, confirms: the component is
# installed and runs. In a second bootstrap she cancels: nothing is
# installed. Then mobility: the device's address changes, it updates its
# registration and the domain sees the new address; orders still reach it.
# The steps mirror tests/unit/test-bootstrap.c; faults in this setting are
# in bootstrap-faults-netns.sh. Set-up: bootstrap-netns.bash.
set -u
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
# shellcheck source=tests/integration/bootstrap-netns.bash
. "$(dirname "$0")/bootstrap-netns.bash"

APP=e2e-thermo
STUB=e2e-stub
LAMP=e2e-lamp

# shellcheck disable=SC2119  # no flags for the domain
b_bring_up

# --- steps 1-2: the agent starts and registers with the Catalogue -----------------
t_check "step 1: the agent runs and answers rethinkctl" b_ctl_ok
b_check_wait "step 2: the agent registers with the domain" 20 b_registered
B_EP=$(b_status | jq -r '.registration.endpoint')
t_check "step 2: the first registration was a 201 with a Location" \
	test "$(b_log ".MESSAGE_ID == \"$MID_REGISTERED\"" | head -n 1 |
		jq -r '.REG_STATUS + " " + (.REG_LOCATION | test("^/dm/rd/") | tostring)')" = "201 true"
# The IdM gives no token to a device nobody has claimed.
not_claimed() { b_status | b_json_is '.registration.session.last_error | test("403")'; }
b_check_wait "before the claim: the IdM refuses the device a token (403)" 20 not_claimed
t_check "before the claim: no session stream" test "$(b_count ".MESSAGE_ID == \"$MID_OPENED\"")" -eq 0

# --- steps 3-4: Alice sees the new device and claims it ------------------------------
b_admin devices >"$B_TMP/devices.txt" 2>&1
t_check "step 3: rethinkctl devices lists the device, registered, not claimed" \
	grep -Eq "^$B_EP +registered +no " "$B_TMP/devices.txt"
t_check "step 3: the domain holds the device's Ed25519 key" \
	b_device_is ".publicKey == \"$(openssl pkey -in "$B_STATE/device-key.pem" -pubout -outform DER |
		tail -c 32 | basenc --base64url -w0 | tr -d '=')\""
t_check "step 4: Alice claims it" test "$(b_admin devices claim "$B_EP" 2>&1)" = "Claimed $B_EP."
t_check "step 4: the domain shows it claimed" b_device_is '.claimed == true'
has_token() { b_log ".MESSAGE_ID == \"$MID_TOKEN\"" | grep -q .; }
b_check_wait "after the claim: the agent gets an access token (journal)" 20 has_token
b_check_wait "after the claim: the messaging session streams (status)" 20 b_streaming
t_check "after the claim: the session's runtime is in the domain's name" \
	test "$(b_status | jq -r '.registration.session.runtime')" = "runtime://$B_NAME/$(cat "$B_STATE/runtime-id")"

# --- the catalogue: signed packages published with rethinkctl -----------------------------
b_package "$B_TMP/$APP.pkg"
b_package "$B_TMP/$STUB.pkg" 4096
b_package "$B_TMP/$LAMP.pkg" 2048
t_check "publish the application's hyperty" b_publish hyperty "$APP" "$B_TMP/$APP.pkg"
t_check "publish the protocol stub" b_publish protocolstub "$STUB" "$B_TMP/$STUB.pkg"
t_check "publish a second hyperty" b_publish hyperty "$LAMP" "$B_TMP/$LAMP.pkg"

# --- step 5: the bootstrap order ------------------------------------------------------------
gate_open() { b_ctl --json qos | b_json_is '.gates.downloads.open == true'; }
t_check "the device's downloads gate is open" gate_open
# The application is also listed among the hyperties: it is ordered once.
b_admin --json bootstrap "$B_EP" --application="$APP" --hyperty="$APP" --protostub="$STUB" >"$B_TMP/boot.json" 2>&1
t_check "step 5: bootstrap ordered, protocol stub first, the application once, both sent" \
	jq -e "[.orders[] | .component + \":\" + .order + \":\" + .status] == [\"$STUB:install:sent\", \"$APP:install:sent\"]" \
	"$B_TMP/boot.json" >/dev/null
b_check_wait "step 5: the admin's events show the orders" 10 \
	b_has_event ".event == \"order\" and .component == \"$APP\" and .order == \"install\""

# --- steps 6-9: the device creates the component, downloads and verifies it ---------------
delivered() { b_comp_is "$1" '.state == "DELIVERED"'; }
b_check_wait "steps 6-9: $APP delivered on the device" 30 delivered "$APP"
b_check_wait "steps 6-9: $STUB delivered on the device" 30 delivered "$STUB"
t_check "steps 6-9: created by the DM order, then downloaded, then verified (journal)" \
	test "$(b_log ".MESSAGE_ID == \"$MID_SWM\" and .COMPONENT == \"$APP\"" | jq -r .SWM_STATE | paste -sd,)" \
	= "INITIAL,DOWNLOAD_STARTED,DOWNLOADED,DELIVERED"
t_check "steps 6-9: the creation is the domain's (principal $B_DM)" \
	test "$(b_swm "$APP" DOWNLOAD_STARTED | jq -r .SWM_PRINCIPAL)" = "$B_DM"
t_check "steps 6-9: downloaded over the gate, verified" \
	test "$(b_swm "$APP" DOWNLOADED | jq -r .SWM_REASON)" = "sha256 and signature verified"
t_check "steps 6-9: the whole package, byte for byte" \
	cmp -s "$B_TMP/$APP.pkg" "$B_STATE/software/downloads/$APP.pkg"
t_check "steps 6-9: progress complete (bytes = total = size)" \
	b_comp_is "$STUB" '.bytes == 4096 and .total == 4096 and .result == 3'

# --- steps 10-11: the ACL of the new component --------------------------------------------------
t_check "steps 10-11: owner is the DM server" b_comp_is "$APP" ".acl.owner == \"$B_DM\""
t_check "steps 10-11: DM server and local admin hold every right" \
	b_comp_is "$APP" ".acl.entries[\"$B_DM\"] == \"rwxd\" and .acl.entries[\"local:uid=0\"] == \"rwxd\""

# --- step 12: Alice learns the result -----------------------------------------------------------
b_check_wait "step 12: report DOWNLOADED, result 3" 10 b_has_report "$APP" DOWNLOADED
delivered_report() {
	b_report "$APP" DELIVERED |
		b_json_is 'select(.result == 3 and .resultText == "downloaded" and .reason == "waiting for consent" and .active == false)'
}
t_check "step 12: report DELIVERED, result 3 (downloaded), waiting for consent" delivered_report
both_accepted() { [ "$(b_events '.event == "order" and .order == "install" and .status == "accepted" and .code == 201' | wc -l)" -eq 2 ]; }
b_check_wait "step 12: the device accepted both install orders (201)" 10 both_accepted
t_check "step 12: nothing installed or running before consent" \
	test -z "$(ls -A "$B_STATE/software/installed")$(pgrep -f "$B_STATE/software/installed/")"

# --- step 13: Alice confirms ---------------------------------------------------------------------
b_admin confirm "$B_EP" "$APP" >"$B_TMP/confirm.txt" 2>&1
t_check "step 13: rethinkctl confirm sends the order" grep -Eq "^[0-9]+ +$APP +confirm +(sent|accepted)$" "$B_TMP/confirm.txt"
installed() { b_comp_is "$1" '.state == "INSTALLED"'; }
b_check_wait "step 13: installed on the device" 20 installed "$APP"
consent() { b_log ".MESSAGE_ID == \"$MID_CONSENT\" and .COMPONENT == \"$1\" and .SWM_CONSENT == \"$2\" and .SWM_PRINCIPAL == \"$B_DM\"" | grep -q .; }
t_check "step 13: consent recorded with the domain's principal (journal)" consent "$APP" accepted
t_check "step 13: the executable is the package, mode 0755" \
	sh -c "cmp -s '$B_TMP/$APP.pkg' '$B_STATE/software/installed/$APP/$APP' && [ \"\$(stat -c %a '$B_STATE/software/installed/$APP/$APP')\" = 755 ]"
t_check "step 13: its descriptor next to it" \
	jq -e ".objectName == \"$APP\"" "$B_STATE/software/installed/$APP/descriptor.json" >/dev/null
t_check "step 13: the package left the download area" test ! -e "$B_STATE/software/downloads/$APP.pkg"
b_check_wait "step 13: report INSTALLED, result 2, by $B_DM" 10 b_has_report "$APP" INSTALLED
b_check_wait "step 13: the confirm order accepted (200)" 10 \
	b_has_event ".event == \"order\" and .component == \"$APP\" and .order == \"confirm\" and .status == \"accepted\" and .code == 200"
t_check "step 13: not running until activated" test -z "$(b_running "$APP")"

# --- steps 14-15: the Catalogue has it executed ------------------------------------------------
t_check "steps 14-15: rethinkctl activate (domain side)" b_admin activate "$B_EP" "$APP" >/dev/null
running() { [ -n "$(b_running "$1")" ]; }
b_check_wait "steps 14-15: the component process runs" 10 running "$APP"
PID=$(b_running "$APP" | head -n 1)
t_check "steps 14-15: one process, in its install directory" \
	test "$(b_running "$APP" | wc -l) $(readlink "/proc/$PID/cwd")" = "1 $B_STATE/software/installed/$APP"
t_check "steps 14-15: it knows its name and version" \
	sh -c "tr '\\0' '\\n' </proc/$PID/environ | grep -qx 'RETHINK_COMPONENT=$APP' && tr '\\0' '\\n' </proc/$PID/environ | grep -qx 'RETHINK_COMPONENT_VERSION=1.0.0'"
t_check "steps 14-15: the device lists it active with its pid" b_comp_is "$APP" ".active == true and .pid == $PID"

# --- step 16: Alice is told it is loaded ------------------------------------------------------
active_report() { b_events ".event == \"report\" and .component == \"$APP\" and .state == \"INSTALLED\" and .active == true and .principal == \"$B_DM\" and .result == 2" | grep -q .; }
b_check_wait "step 16: report INSTALLED, active, result 2" 10 active_report

# --- consent on the device: the local administrator accepts the protocol stub ------------------
t_check "rethinkctl accept (device side) of the protocol stub" b_ctl accept "$STUB" >/dev/null
local_report() { b_events ".event == \"report\" and .component == \"$STUB\" and .state == \"INSTALLED\" and .principal == \"local:uid=0\"" | grep -q .; }
b_check_wait "the domain hears of it, with the local principal" 10 local_report

# --- a second bootstrap: Alice cancels ----------------------------------------------------------
b_admin bootstrap "$B_EP" --application="$APP" >"$B_TMP/again.txt" 2>&1
t_check "bootstrap of what is installed: refused, naming it" \
	sh -c "grep -q '$APP' '$B_TMP/again.txt' && grep -q '(HTTP 409)' '$B_TMP/again.txt'"
t_check "cancel round: bootstrap of $LAMP" b_admin bootstrap "$B_EP" --hyperty="$LAMP" >/dev/null
b_check_wait "cancel round: $LAMP delivered (report)" 30 b_has_report "$LAMP" DELIVERED
t_check "cancel round: Alice cancels" b_admin cancel "$B_EP" "$LAMP" >/dev/null
cancelled() {
	b_events ".event == \"report\" and .component == \"$LAMP\" and .state == \"INITIAL\" and .prevState == \"DELIVERED\" and .result == 0 and .principal == \"$B_DM\"" | grep -q .
}
b_check_wait "cancel round: report INITIAL, result 0, by $B_DM" 10 cancelled
t_check "cancel round: the device says cancelled" b_comp_is "$LAMP" '.state == "INITIAL" and .result == 0 and .reason == "cancelled"'
t_check "cancel round: consent refused by $B_DM (journal)" consent "$LAMP" rejected
t_check "cancel round: nothing of $LAMP on disk" test -z "$(b_files "$LAMP")"
t_check "cancel round: nothing of $LAMP running" test -z "$(b_running "$LAMP")"
t_check "cancel round: never installed (journal)" test -z "$(b_swm "$LAMP" INSTALLED)"
b_admin confirm "$B_EP" "$LAMP" >/dev/null 2>&1
refused() {
	b_events ".event == \"order\" and .component == \"$LAMP\" and .order == \"confirm\" and .status == \"refused\" and .code >= 400 and (.description | type) == \"string\"" | grep -q .
}
b_check_wait "cancel round: a confirm after the cancel is refused by the device" 10 refused
t_check "cancel round: still nothing installed" \
	sh -c "[ ! -e '$B_STATE/software/installed/$LAMP' ] && [ \"\$(ls '$B_STATE/software/installed' | paste -sd,)\" = '$STUB,$APP' ]"
domain_refusal() { b_dlog ".MESSAGE_ID == \"6ab3e3075936422fa4bcf70b31f7a95f\" and .DEVICE_ENDPOINT == \"$B_EP\"" | grep -q .; }
t_check "the domain journals the refusal" domain_refusal

# --- mobility: the device moves to its second uplink ----------------------------------------------
# A second default route first, so the device stays online while its
# primary interface and address change.
ip -n "$B_DEV" route add default via 10.77.1.1 dev e2e1 metric 200
e2e1_online() { b_ctl --json qos | b_json_is '.interfaces[] | select(.name == "e2e1") | .state == "online"'; }
b_check_wait "mobility: second uplink online" 15 e2e1_online
updates=$(b_count ".MESSAGE_ID == \"$MID_UPDATED\" and .REG_REASON == \"mobility\"")
opened=$(b_count ".MESSAGE_ID == \"$MID_OPENED\"")
ip -n "$B_DEV" route del default via 10.77.0.1 dev e2e0
moved() { [ "$(b_count ".MESSAGE_ID == \"$MID_UPDATED\" and .REG_REASON == \"mobility\"")" -gt "$updates" ]; }
b_check_wait "mobility: the agent updates its registration at once (journal)" 15 moved
primary_e2e1() { b_ctl --json qos | b_json_is '.primary.interface == "e2e1" and (.primary.address | startswith("10.77.1.2/"))'; }
t_check "mobility: the new primary is e2e1 (10.77.1.2)" primary_e2e1
address() { b_device_is '.address == "10.77.1.2"'; }
b_check_wait "mobility: the domain records the device's new address (10.77.1.2)" 10 address
t_check "mobility: still registered" b_device_is '.state == "registered"'
reopened() { [ "$(b_count ".MESSAGE_ID == \"$MID_OPENED\"")" -gt "$opened" ] && b_streaming; }
b_check_wait "mobility: a new session stream from the new address" 20 reopened

# Orders still reach the device after the move: Alice uninstalls.
t_check "uninstall after mobility: rethinkctl uninstall (domain side)" b_admin uninstall "$B_EP" "$APP" >/dev/null
removed() { b_events ".event == \"report\" and .component == \"$APP\" and .removed == true" | grep -q .; }
b_check_wait "uninstall after mobility: report removed" 20 removed
not_running() { [ -z "$(b_running "$1")" ]; }
t_check "uninstall after mobility: the process is gone" t_wait_for 10 not_running "$APP"
t_check "uninstall after mobility: nothing of $APP on disk" test -z "$(b_files "$APP")"
t_check "no orphans in staging or trash" b_no_orphans

# --- the end: SIGTERM stops the agent and its components -----------------------------------------
b_ctl activate "$STUB" >/dev/null
b_check_wait "the protocol stub runs" 10 running "$STUB"
b_kill_agent TERM
t_check "agent stopped: no component process left" t_wait_for 10 not_running "$STUB"
t_check "no error entries from the agent" \
	test "$(b_count '(.PRIORITY | tonumber) <= 3')" -eq 0
t_check "the domain is still up" kill -0 "$B_DOMAIN_PID"
t_done
