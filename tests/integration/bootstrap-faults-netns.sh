#!/usr/bin/env bash
# Faults during the M2M device bootstrap, with the real rethink-agent and
# the real rethink-domain in network namespaces (bootstrap-netns.bash):
#   (a) the link is cut in the middle of an 8 MiB download (tbf slows it
#       down): the download pauses, resumes with Range from the partial
#       and the digest matches;
#   (g) orders from principals without rights: a local user through
#       rethinkctl on the device, a wrong admin credential at the domain;
#   (c) SIGKILL of the agent while downloading (resumes) and in DELIVERED
#       (verified again; a package damaged meanwhile is rolled back);
#   (b) the domain restarts: the agent registers again within its retry
#       bound and orders flow again;
#   (e) a corrupted package, a wrong signature, an untrusted publisher:
#       53, never offered for consent;
#   (f) an incompatible runtime version: 57 with that reason;
#   (d) a second device whose state directory is a small tmpfs that fills
#       up: 50 and nothing half-installed.
set -u
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
BUILD=${BUILD:-$PWD/build}
# shellcheck source=tests/integration/bootstrap-netns.bash
. "$(dirname "$0")/bootstrap-netns.bash"
for tool in setpriv sqlite3 unshare nghttp; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

BIG_SIZE=$((8 * 1024 * 1024))

# A publisher the domain trusts and the device does not.
openssl genpkey -algorithm ed25519 -out "$B_TMP/rogue.key" 2>/dev/null
ROGUE=$(openssl pkey -in "$B_TMP/rogue.key" -pubout -outform DER | tail -c 32 | basenc --base64url -w0 | tr -d '=')

b_setup_net || { t_fail "network set-up"; t_done; exit 1; }
# 12 Mbit/s from the domain to the device: 8 MiB take about 6 s, so a cut
# lands in the middle of a download.
tc -n "$B_DOM" qdisc add dev e2e0p root tbf rate 12mbit burst 32kbit latency 400ms ||
	{ t_fail "tbf on the domain's link"; t_done; exit 1; }
b_domain_init || { t_fail "rethinkctl domain init"; t_done; exit 1; }
b_start_domain --trusted-publishers="$(cat "$B_DIR/publisher.pub") $ROGUE" ||
	{ t_fail "domain starts"; tail -n 20 "$B_DLOG"; t_done; exit 1; }
b_follow_events || t_fail "the admin follows the events"
b_start_agent || { t_fail "agent starts"; tail -n 30 "$B_LOG"; t_done; exit 1; }
b_claim_device || { t_fail "device registered, claimed, streaming"; t_done; exit 1; }
t_ok "device registered, claimed, streaming"

# --- the catalogue ---------------------------------------------------------------------------------
b_package "$B_TMP/big.pkg" "$BIG_SIZE"
BIG_SHA=$(sha256sum "$B_TMP/big.pkg" | cut -d' ' -f1)
for n in e2e-cut e2e-kill e2e-fill; do
	t_check "publish $n (8 MiB)" b_publish hyperty "$n" "$B_TMP/big.pkg"
done
for n in e2e-deliv e2e-corrupt e2e-badsig e2e-future; do
	# Different bytes each: packages are stored by digest.
	b_package "$B_TMP/$n.pkg" "$((4096 + ${#n}))"
done
t_check "publish e2e-deliv" b_publish hyperty e2e-deliv "$B_TMP/e2e-deliv.pkg"
t_check "publish e2e-corrupt" b_publish hyperty e2e-corrupt "$B_TMP/e2e-corrupt.pkg"
t_check "publish e2e-badsig" b_publish hyperty e2e-badsig "$B_TMP/e2e-badsig.pkg"
t_check "publish e2e-future, for runtime 99.0.0" \
	b_publish hyperty e2e-future "$B_TMP/e2e-future.pkg" '"constraints": {"runtimeVersion": "99.0.0"}'
B_PUBLISHER_KEY=$B_TMP/rogue.key
t_check "publish e2e-rogue, signed by a publisher the device does not trust" \
	b_publish hyperty e2e-rogue "$B_TMP/e2e-deliv.pkg"
unset B_PUBLISHER_KEY

part_size() { stat -c %s "$B_STATE/software/downloads/$1.part" 2>/dev/null || echo 0; }
part_at_least() { [ "$(part_size "$1")" -ge "$2" ]; }
delivered() { b_comp_is "$1" '.state == "DELIVERED"'; }
tx_bytes() { ip -n "$B_DOM" -j -s link show dev e2e0p | jq '.[0].stats64.tx.bytes'; }
# What sending REST bytes of package costs at most on the wire: TCP/IP
# and Ethernet headers (about 5 %), TLS records and HTTP/2 frames, plus
# the requests, reports and keep-alives around it. Starting over from
# zero would cost more than that for the whole 8 MiB, as long as the
# partial was at least 2 MiB.
resend_bound() { echo $(($1 * 110 / 100 + 262144)); }
no_restart_from_zero() { ! b_log '.MESSAGE | test("server ignored Range, starting over")' | grep -q .; }
pkg_digest_is() { [ "$(sha256sum <"$B_STATE/software/downloads/$1.pkg" | cut -d' ' -f1)" = "$2" ]; }
uplink_up() {
	ip -n "$B_DEV" link set e2e0 up
	# The kernel dropped the default route with the link.
	ip -n "$B_DEV" route replace default via 10.77.0.1 dev e2e0
}

# --- (a) the link is cut in the middle of a download -------------------------------------------
t_check "(a) bootstrap of the 8 MiB e2e-cut" b_admin bootstrap "$B_EP" --hyperty=e2e-cut >/dev/null
b_check_wait "(a) the download runs (2 MiB in)" 30 part_at_least e2e-cut 2097152
ip -n "$B_DEV" link set e2e0 down
paused() { b_log ".MESSAGE_ID == \"$MID_DOWNLOAD\" and .COMPONENT == \"e2e-cut\" and .SWM_DOWNLOAD == \"paused\"" | grep -q .; }
b_check_wait "(a) link down: the download pauses (journal)" 15 paused
PAUSED=$(b_log ".MESSAGE_ID == \"$MID_DOWNLOAD\" and .COMPONENT == \"e2e-cut\" and .SWM_DOWNLOAD == \"paused\"" | tail -n 1 | jq -r .SWM_BYTES)
t_check "(a) paused mid-download ($PAUSED of $BIG_SIZE bytes)" test "$PAUSED" -gt 0 -a "$PAUSED" -lt "$BIG_SIZE"
t_check "(a) the partial is kept, as long as recorded" test "$(part_size e2e-cut)" -eq "$PAUSED"
t_check "(a) still DOWNLOAD_STARTED" b_comp_is e2e-cut '.state == "DOWNLOAD_STARTED"'
TX=$(tx_bytes)
uplink_up
b_check_wait "(a) link back: delivered" 40 delivered e2e-cut
resumed_at() { b_log ".MESSAGE_ID == \"$MID_DOWNLOAD\" and .COMPONENT == \"$1\" and .SWM_DOWNLOAD == \"running\" and .SWM_BYTES == \"$2\"" | grep -q .; }
t_check "(a) resumed at the partial's size (journal)" resumed_at e2e-cut "$PAUSED"
t_check "(a) the download never started over" no_restart_from_zero
SENT=$(($(tx_bytes) - TX))
t_check "(a) the domain sent only the rest ($SENT bytes on the wire for $((BIG_SIZE - PAUSED)))" \
	test "$SENT" -le "$(resend_bound $((BIG_SIZE - PAUSED)))"
t_check "(a) the package's digest matches" pkg_digest_is e2e-cut "$BIG_SHA"
b_check_wait "(a) the domain hears DELIVERED" 15 b_has_report e2e-cut DELIVERED
t_check "(a) the domain survived the connection the cut left behind" kill -0 "$B_DOMAIN_PID"

# --- (g) orders from principals without the right -------------------------------------------------
# A local user reaches the control socket, but e2e-cut's ACL gives it no
# right: rethinkctl fails with the agent's 403, nothing changes, the
# refusal is in the journal.
chmod 0666 "$B_SOCK"
as_nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$CTL" --socket="$B_SOCK" --timeout=5 "$@"; }
acl_refused() {
	as_nobody "$1" e2e-cut >"$B_TMP/nobody.out" 2>&1 && return 1
	grep -q 403 "$B_TMP/nobody.out"
}
t_check "(g) a local user may not accept: 403" acl_refused accept
t_check "(g) a local user may not reject: 403" acl_refused reject
t_check "(g) a local user may not uninstall: 403" acl_refused uninstall
t_check "(g) a local user does not even see the component" \
	test "$(as_nobody --json components | jq '.components | length')" = 0
t_check "(g) the refusals are journalled (uid 65534, the order)" \
	test "$(b_count ".MESSAGE_ID == \"$MID_ACL\" and .COMPONENT == \"e2e-cut\" and (.SWM_PRINCIPAL | test(\"uid=$(id -u nobody)\"))")" -ge 3
head -c 32 /dev/urandom | basenc --base64url -w0 >"$B_TMP/wrong-token"
orders=$(b_events '.event == "order"' | wc -l)
b_dom "$CTL" --domain="$B_URL" --ca-file="$B_DIR/ca.pem" --admin-token-file="$B_TMP/wrong-token" \
	confirm "$B_EP" e2e-cut >"$B_TMP/wrong.out" 2>&1
rc=$?
t_check "(g) a wrong admin credential: refused by the domain (exit $rc, 401)" \
	sh -c "[ $rc -eq 1 ] && grep -q 401 '$B_TMP/wrong.out'"
sleep 1
t_check "(g) no order was made" test "$(b_events '.event == "order"' | wc -l)" -eq "$orders"
t_check "(g) e2e-cut still waits for consent" b_comp_is e2e-cut '.state == "DELIVERED"'
t_check "(g) Alice herself may cancel it" b_admin cancel "$B_EP" e2e-cut >/dev/null
gone_initial() { b_comp_is "$1" '.state == "INITIAL"' && [ -z "$(b_files "$1")" ]; }
b_check_wait "(g) cancelled: nothing of e2e-cut left on disk" 10 gone_initial e2e-cut

# --- (c) SIGKILL of the agent while downloading, and in DELIVERED -----------------------------------
t_check "(c) bootstrap of the 8 MiB e2e-kill" b_admin bootstrap "$B_EP" --hyperty=e2e-kill >/dev/null
b_check_wait "(c) the download runs (2 MiB in)" 30 part_at_least e2e-kill 2097152
b_kill_agent KILL
PARTIAL=$(part_size e2e-kill)
t_check "(c) SIGKILL while downloading: the partial is kept ($PARTIAL bytes)" \
	test "$PARTIAL" -gt 0 -a "$PARTIAL" -lt "$BIG_SIZE"
TX=$(tx_bytes)
t_check "(c) the agent starts again" b_start_agent
b_check_wait "(c) delivered after the restart" 40 delivered e2e-kill
SENT=$(($(tx_bytes) - TX))
t_check "(c) resumed, not started over ($SENT bytes on the wire for $((BIG_SIZE - PARTIAL)))" \
	test "$SENT" -le "$(resend_bound $((BIG_SIZE - PARTIAL)))"
t_check "(c) the download never started over" no_restart_from_zero
t_check "(c) the package's digest matches" pkg_digest_is e2e-kill "$BIG_SHA"
t_check "(c) recovery journalled" test "$(b_count ".MESSAGE_ID == \"$MID_RECOVERED\" and .COMPONENT == \"e2e-kill\"")" -ge 1
b_check_wait "(c) the domain hears DELIVERED once the session is back" 30 b_has_report e2e-kill DELIVERED
t_check "(c) no orphans" b_no_orphans

t_check "(c) bootstrap of e2e-deliv" b_admin bootstrap "$B_EP" --hyperty=e2e-deliv >/dev/null
b_check_wait "(c) e2e-deliv delivered" 20 delivered e2e-deliv
b_kill_agent KILL
# While the agent is down the stored package of e2e-kill is damaged: it
# must not survive the restart's verification.
printf 'x' | dd of="$B_STATE/software/downloads/e2e-kill.pkg" bs=1 seek=100 conv=notrunc 2>/dev/null
t_check "(c) SIGKILL in DELIVERED; the agent starts again" b_start_agent
rolled_back() { b_comp_is e2e-kill '.state == "INITIAL" and .result == 53'; }
b_check_wait "(c) the damaged package is rolled back: 53" 15 rolled_back
t_check "(c) nothing of it left" test -z "$(b_files e2e-kill)"
t_check "(c) the intact one still waits for consent" b_comp_is e2e-deliv '.state == "DELIVERED" and .result == 3'
t_check "(c) ... recovered at the restart (journal), package intact" \
	sh -c "[ $(b_count ".MESSAGE_ID == \"$MID_RECOVERED\" and .COMPONENT == \"e2e-deliv\"") -ge 1 ] && cmp -s '$B_TMP/e2e-deliv.pkg' '$B_STATE/software/downloads/e2e-deliv.pkg'"
b_check_wait "(c) the session is back" 30 b_streaming
t_check "(c) Alice confirms e2e-deliv after the restart" b_admin confirm "$B_EP" e2e-deliv >/dev/null
installed() { b_comp_is "$1" '.state == "INSTALLED"'; }
b_check_wait "(c) installed" 15 installed e2e-deliv
b_check_wait "(c) the domain hears the 53 of e2e-kill" 15 \
	b_has_event '.event == "report" and .component == "e2e-kill" and .result == 53'
t_check "(c) no orphans, nothing installed twice" \
	sh -c "[ \"\$(ls '$B_STATE/software/installed' | paste -sd,)\" = e2e-deliv ]"
t_check "(c) no orphans in staging or trash" b_no_orphans

# --- (b) the domain restarts -----------------------------------------------------------------------------
opened=$(b_count ".MESSAGE_ID == \"$MID_OPENED\"")
registered=$(b_count ".MESSAGE_ID == \"$MID_REGISTERED\" or .MESSAGE_ID == \"$MID_UPDATED\"")
b_stop_domain
lost() { b_status | b_json_is '.registration.session.state != "streaming"'; }
b_check_wait "(b) domain down: the agent notices (session not streaming)" 20 lost
# Long enough for a few retries at the 4 s cap.
sleep 3
b_start_domain --trusted-publishers="$(cat "$B_DIR/publisher.pub") $ROGUE" || t_fail "(b) the domain starts again"
b_follow_events || t_fail "(b) the admin follows the events again"
reregistered() { [ "$(b_count ".MESSAGE_ID == \"$MID_REGISTERED\" or .MESSAGE_ID == \"$MID_UPDATED\"")" -gt "$registered" ]; }
reopened() { [ "$(b_count ".MESSAGE_ID == \"$MID_OPENED\"")" -gt "$opened" ]; }
b_check_wait "(b) the agent registers again" 30 reregistered
b_check_wait "(b) and opens a new session" 30 reopened
retry_bounded() {
	! b_log "(.MESSAGE_ID == \"$MID_REG_FAILED\" or .MESSAGE_ID == \"99ff175166bb4fe09f76604088a399c7\") and (.REG_RETRY_USEC | tonumber) > 4000000" | grep -q .
}
t_check "(b) every retry delay within RetryMaxSec=4" retry_bounded
t_check "(b) there were retries while it was down" \
	test "$(b_count ".MESSAGE_ID == \"$MID_REG_FAILED\" or .MESSAGE_ID == \"99ff175166bb4fe09f76604088a399c7\"")" -ge 1
t_check "(b) the domain lists the device registered" b_device_is '.state == "registered" and .claimed == true'

# --- (e), (f): packages that must never be offered for consent ---------------------------------------------
# The domain's stored copy of e2e-corrupt's package loses a byte's worth
# of integrity; e2e-badsig's descriptor gets another package's signature.
CORRUPT_SHA=$(sha256sum "$B_TMP/e2e-corrupt.pkg" | cut -d' ' -f1)
printf 'x' | dd of="$B_DIR/state/packages/$CORRUPT_SHA" bs=1 seek=40 conv=notrunc 2>/dev/null
DB=$B_DIR/state/domain.db
OTHER_SIG=$(sqlite3 "$DB" "SELECT json_extract(json, '\$.signature') FROM descriptors WHERE name = 'e2e-corrupt'")
sqlite3 "$DB" "UPDATE descriptors SET json = json_set(json, '\$.signature', '$OTHER_SIG') WHERE name = 'e2e-badsig'"
# What the catalogue serves, read with a client that is not ours.
served_sig() { b_dom nghttp "$B_URL/.well-known/hyperty/e2e-badsig" 2>/dev/null | jq -r .signature; }
t_check "(e) the catalogue now serves another package's signature for e2e-badsig" \
	test -n "$OTHER_SIG" -a "$(served_sig)" = "$OTHER_SIG"
t_check "(e, f) one bootstrap after the restart: four hyperties" \
	b_admin bootstrap "$B_EP" --hyperty=e2e-corrupt --hyperty=e2e-badsig --hyperty=e2e-rogue --hyperty=e2e-future >/dev/null
failed_with() {
	b_events ".event == \"report\" and .component == \"$1\" and .state == \"INITIAL\" and .result == $2 and (.reason | test(\"$3\"))" | grep -q .
}
b_check_wait "(e) corrupted package: 53, sha256 mismatch" 20 failed_with e2e-corrupt 53 "does not match its sha256"
b_check_wait "(e) wrong signature: 53, does not verify" 20 failed_with e2e-badsig 53 "signature does not verify"
b_check_wait "(e) untrusted publisher: 53" 20 failed_with e2e-rogue 53 "publisher is not trusted"
b_check_wait "(f) incompatible runtime: 57, with the reason" 20 failed_with e2e-future 57 "incompatible runtime version: needs 99.0.0"
t_check "(f) the report says update error" \
	b_has_event '.event == "report" and .component == "e2e-future" and .result == 57 and .resultText == "update error"'
t_check "(f) nothing fetched for the incompatible one" test -z "$(b_swm e2e-future DOWNLOAD_STARTED)"
t_check "(e) the untrusted one is refused before a byte is fetched" test -z "$(b_swm e2e-rogue DOWNLOAD_STARTED)"
for n in e2e-corrupt e2e-badsig e2e-rogue e2e-future; do
	t_check "(e, f) $n never offered for consent, never installed" \
		test -z "$(b_swm "$n" DELIVERED)$(b_swm "$n" INSTALLED)$(b_report "$n" DELIVERED)"
	t_check "(e, f) nothing of $n on disk" test -z "$(b_files "$n")"
done
domain_error_entries() {
	[ "$(b_dlog ".MESSAGE_ID == \"$MID_REPORT_ERROR\" and .DEVICE_ENDPOINT == \"$B_EP\" and (.SWM_RESULT == \"53\" or .SWM_RESULT == \"57\")" | wc -l)" -ge 4 ]
}
t_check "(e, f) the domain journals each error report" domain_error_entries

# --- (d) a second device whose state directory is a small tmpfs ----------------------------------------------
# In a mount namespace of its own: the tmpfs goes away with the agent.
# Its files are seen through /proc/PID/root.
S_SOCK=$B_TMP/small.sock
S_DIR=$B_TMP/small
S_LOG=$B_TMP/small.log
S_PID=
mkdir -p "$S_DIR"
b_write_agent_config "$B_TMP/small.conf" "$S_DIR" "$S_SOCK" "Endpoint=e2e-small-$B_ID"
nsenter --net="/run/netns/$B_DEV" unshare --mount --propagation private \
	sh -c "mount -t tmpfs -o size=3m,mode=0700 e2e-small '$S_DIR' && exec env RETHINK_LOG_TARGET=json '$AGENT' --config='$B_TMP/small.conf'" \
	2>>"$S_LOG" &
S_PID=$!
t_cleanup "kill -9 $S_PID"
s_ctl() { "$CTL" --socket="$S_SOCK" --timeout=5 "$@"; }
s_root() { echo "/proc/$S_PID/root$S_DIR"; }
s_up() { s_ctl status >/dev/null 2>&1; }
b_check_wait "(d) the second agent runs on a 3 MiB tmpfs" 15 s_up
t_check "(d) its state directory is the tmpfs" \
	sh -c "grep -q ' $S_DIR tmpfs ' /proc/$S_PID/mounts && [ \$(stat -f -c %T '/proc/$S_PID/root$S_DIR') = tmpfs ]"
s_registered() { s_ctl --json status | b_json_is '.registration.state == "registered"'; }
s_streaming() { s_ctl --json status | b_json_is '.registration.session.state == "streaming"'; }
b_check_wait "(d) it registers" 20 s_registered
t_check "(d) Alice claims it" b_admin devices claim "e2e-small-$B_ID" >/dev/null
b_check_wait "(d) its session streams" 20 s_streaming
# statfs of the path itself: df would look the mount up in our namespace.
s_free() { stat -f -c '%a %S' "$(s_root)" | awk '{ print $1 * $2 }'; }
FREE0=$(s_free)
t_check "(d) bootstrap of 8 MiB onto it" b_admin bootstrap "e2e-small-$B_ID" --hyperty=e2e-fill >/dev/null
s_full() { s_ctl --json components | b_json_is '.components[] | select(.name == "e2e-fill") | .state == "INITIAL" and .result == 50'; }
b_check_wait "(d) the disk fills up: result 50" 40 s_full
full_report() {
	b_events ".event == \"report\" and .endpoint == \"e2e-small-$B_ID\" and .component == \"e2e-fill\" and .result == 50" | grep -q .
}
b_check_wait "(d) reported to the domain with 50" 20 full_report
t_check "(d) it had started downloading" \
	b_has_event ".event == \"report\" and .endpoint == \"e2e-small-$B_ID\" and .component == \"e2e-fill\" and .state == \"DOWNLOAD_STARTED\""
t_check "(d) nothing of it left on the tmpfs" test -z "$(b_files e2e-fill "$(s_root)")"
s_clean() { [ -z "$(ls -A "$(s_root)/software/installed")" ] && b_no_orphans "$(s_root)"; }
t_check "(d) nothing installed, no orphans" s_clean
FREE1=$(s_free)
# The records grew a little meanwhile; the partial is gone.
t_check "(d) the space is free again ($FREE1 of $FREE0 bytes)" test "$FREE1" -ge "$((FREE0 - 262144))"
t_check "(d) never offered for consent" test -z "$(b_report e2e-fill DELIVERED)"
t_check "(d) the agent carries on" s_up
kill -TERM "$S_PID"
t_wait_for 10 b_pid_gone "$S_PID"
t_check "(d) the tmpfs went away with it" sh -c "! grep -q ' $S_DIR ' /proc/mounts"

t_check "the domain is still up" kill -0 "$B_DOMAIN_PID"
t_check "the agent is still up" b_ctl_ok
t_done
