#!/bin/bash
# End users end to end: the real rethink-domain and the real rethink-agent
# in a network namespace of our own (the domain on its loopback, h2c; a
# veth to a peer namespace gives the device a default route, so its QoS
# gates open), driven with rethinkctl. The device registers, the admin
# claims it and adds two users; both log in on the device (password from a
# file and from stdin), are listed, survive an agent restart and log out.
# A wrong password is refused with a clear message and stores nothing.
#
#   ns $U_NS: rethink-domain 127.0.0.1:$PORT, rethink-agent, rtus0 10.233.0.2/24
#   ns $U_PEER: rtus0p 10.233.0.1/24 (the default gateway)
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"

BUILD=${BUILD:-$PWD/build}
AGENT=$BUILD/rethink-agent
DOMAIN=$BUILD/rethink-domain
CTL=$BUILD/rethinkctl

[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for network namespaces"
for p in "$AGENT" "$DOMAIN" "$CTL"; do
	[ -x "$p" ] || t_skip_all "$(basename "$p") is not built"
done
for tool in ip jq nsenter basenc; do
	command -v "$tool" >/dev/null || t_skip_all "$tool is missing"
done

U_NS=rtus-dev-$$
U_PEER=rtus-peer-$$
U_EP=rtus-ep-$$
U_NAME=users.example
DIR=$(mktemp -d "/tmp/rtus-$T_NAME-XXXXXX")
SOCK=$DIR/agent.sock
LOG=$DIR/agent.log
PORT=18$((RANDOM % 900 + 100))
URL=http://127.0.0.1:$PORT
AGENT_PID=
DOMAIN_PID=
t_cleanup "rm -rf '$DIR'"
t_cleanup '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID'
t_cleanup '[ -n "$DOMAIN_PID" ] && kill -KILL $DOMAIN_PID'

# From units/rethink.catalog.
MID_LOGIN=1183eda9152f4fdca4666fb16dbc7892
MID_LOGIN_FAILED=1f87a1577dd444489ce0937d76961cce
MID_LOGOUT=bfd98e275d3d48738d59923348352037

ip netns add "$U_NS" || t_skip_all "cannot create network namespaces"
t_cleanup "ip netns del '$U_NS'"
ip netns add "$U_PEER" || t_skip_all "cannot create network namespaces"
t_cleanup "ip netns del '$U_PEER'"
ip -n "$U_NS" link set lo up
ip -n "$U_PEER" link set lo up
ip -n "$U_NS" link add rtus0 type veth peer name rtus0p netns "$U_PEER"
ip -n "$U_NS" addr add 10.233.0.2/24 dev rtus0
ip -n "$U_PEER" addr add 10.233.0.1/24 dev rtus0p
ip -n "$U_NS" link set rtus0 up
ip -n "$U_PEER" link set rtus0p up
ip -n "$U_NS" route add default via 10.233.0.1
IN=(nsenter --net="/run/netns/$U_NS")

head -c 32 /dev/urandom | basenc --base64url -w0 | tr -d '=' >"$DIR/admin-token"
mkdir -p "$DIR/publishers"
cat >"$DIR/domain.conf" <<CONF
[Domain]
Name=$U_NAME
StateDirectory=$DIR/domain-state
[HTTP]
Listen=127.0.0.1
Port=$PORT
ShutdownGraceSec=1
[Admin]
TokenFile=$DIR/admin-token
[DeviceManagement]
MinLifetimeSec=1
CONF
cat >"$DIR/agent.conf" <<CONF
[Agent]
ControlSocket=$SOCK
BusSocket=$DIR/bus.sock
StateDirectory=$DIR/agent-state
LogLevel=debug
[Interfaces]
Watch=rtus*
[QoS]
PollIntervalSec=1
SampleIntervalSec=0
RecoverAfterSec=0
RecoverAfterSamples=1
[BPF]
Enable=no
[Software]
TrustedPublishers=$DIR/publishers
[Domain]
URL=$URL
Name=$U_NAME
Endpoint=$U_EP
LifetimeSec=60
RetryMaxSec=1
CONF

ctl() { "${IN[@]}" "$CTL" --socket="$SOCK" --timeout=20 "$@"; }
admin() { "${IN[@]}" "$CTL" --domain="$URL" --admin-token-file="$DIR/admin-token" --timeout=20 "$@"; }
domain_up() { "${IN[@]}" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; }
has_entry() { jq -e -s "map(select($1)) | length > 0" "$LOG" >/dev/null 2>&1; }
n_entries() { jq -s "map(select($1)) | length" "$LOG" 2>/dev/null; }
registered() { admin devices --json 2>/dev/null | jq -e ".devices[] | select(.endpoint == \"$U_EP\")" >/dev/null; }
users_json() { ctl user list --json; }
file_sum() { sha256sum "$DIR/agent-state/users.json" 2>/dev/null | cut -d' ' -f1; }

start_domain() {
	"${IN[@]}" "$DOMAIN" --config="$DIR/domain.conf" >>"$DIR/domain.log" 2>&1 &
	DOMAIN_PID=$!
	t_wait_for 10 domain_up
}

start_agent() {
	RETHINK_LOG_TARGET=json "${IN[@]}" "$AGENT" --config="$DIR/agent.conf" 2>>"$LOG" &
	AGENT_PID=$!
	t_wait_for 10 test -S "$SOCK"
}

stop_agent() {
	kill -TERM "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

t_check "the domain starts" start_domain
t_check "the agent starts" start_agent
t_check "the device registers" t_wait_for 30 registered

# Before the claim the device has no token, so it cannot log anyone in.
printf 'alice-secret-1\n' >"$DIR/alice.pw"
chmod 600 "$DIR/alice.pw"
out=$(ctl user login alice --password-file="$DIR/alice.pw" 2>&1)
t_check "login before the claim is refused: no token ($out)" \
	sh -c "echo \"\$1\" | grep -q 'no token from the domain'" _ "$out"
t_check "nothing stored" test ! -e "$DIR/agent-state/users.json"

claim() { admin devices claim "$U_EP" >/dev/null; }
t_check "the admin claims the device" claim
t_check "the admin adds alice (password file)" admin users add alice --password-file="$DIR/alice.pw"
t_check "the admin adds bob (password on stdin)" sh -c "printf 'bob-secret-22\n' | \"\$@\" users add bob" _ \
	"${IN[@]}" "$CTL" --domain="$URL" --admin-token-file="$DIR/admin-token"
t_check "a second alice is refused" sh -c "! \"\$@\" users add alice --password-file='$DIR/alice.pw' 2>'$DIR/err'" _ \
	"${IN[@]}" "$CTL" --domain="$URL" --admin-token-file="$DIR/admin-token"
t_check "... saying why" grep -q exists "$DIR/err"
t_check "the domain lists both" test "$(admin users --json | jq -r '[.users[].name] | join(",")')" = alice,bob

# The session's token comes after the claim, at the next retry.
login_alice() { ctl user login alice --password-file="$DIR/alice.pw" >"$DIR/out" 2>"$DIR/err"; }
t_check "alice logs in" t_wait_for 30 login_alice
t_check "... as user://$U_NAME/alice" grep -q "Logged in alice as user://$U_NAME/alice" "$DIR/out"
t_check "bob logs in, password on stdin" sh -c "printf 'bob-secret-22\n' | \"\$@\" user login bob >/dev/null" _ \
	"${IN[@]}" "$CTL" --socket="$SOCK" --timeout=20

users_json >"$DIR/list.json"
t_check "user list: both, valid" \
	test "$(jq -r '[.users[] | .name + "=" + (.valid | tostring)] | sort | join(",")' "$DIR/list.json")" = "alice=true,bob=true"
t_check "user list: addresses" \
	test "$(jq -r '[.users[].address] | sort | join(",")' "$DIR/list.json")" = "user://$U_NAME/alice,user://$U_NAME/bob"
t_check "user list: expiry in the future" \
	jq -e "[.users[].expires_usec] | all(. > $(date +%s)000000)" "$DIR/list.json" >/dev/null
t_check "user list: no tokens" sh -c "! grep -q token '$DIR/list.json'"
t_check "user list as a table" sh -c "\"\$@\" user list | grep -q 'alice.*user://$U_NAME/alice.*valid'" _ \
	"${IN[@]}" "$CTL" --socket="$SOCK"

t_check "users.json is 0600" test "$(stat -c %a "$DIR/agent-state/users.json")" = 600
t_check "users.json keeps no password" sh -c "! grep -q -e alice-secret -e bob-secret '$DIR/agent-state/users.json'"
# The stored token: the domain's, for alice, through this device.
payload=$(jq -r '.users[] | select(.name == "alice") | .token' "$DIR/agent-state/users.json" | cut -d. -f2)
while [ $(( ${#payload} % 4 )) -ne 0 ]; do payload="$payload="; done
echo "$payload" | basenc --base64url -d >"$DIR/claims.json" 2>/dev/null
t_check "the token's subject is alice" test "$(jq -r .sub "$DIR/claims.json")" = "user://$U_NAME/alice"
t_check "the token names the device (azp)" test "$(jq -r .azp "$DIR/claims.json")" = "$U_EP"
t_check "the token's scope is user" test "$(jq -r .scope "$DIR/claims.json")" = user

t_check "journal: a login entry per user" test "$(n_entries ".MESSAGE_ID == \"$MID_LOGIN\"")" = 2
t_check "journal: the login names the user" has_entry \
	".MESSAGE_ID == \"$MID_LOGIN\" and .RETHINK_USER == \"bob\" and .RETHINK_USER_ADDRESS == \"user://$U_NAME/bob\""

# A wrong password: refused with the reason, nothing stored, the earlier
# login of alice untouched.
before=$(file_sum)
printf 'not-her-password\n' >"$DIR/wrong.pw"
ctl user login alice --password-file="$DIR/wrong.pw" >"$DIR/out" 2>"$DIR/err"
rc=$?
t_check "wrong password: exit status 1" test "$rc" = 1
t_check "wrong password: says so ($(cat "$DIR/err"))" grep -q "wrong user name or password" "$DIR/err"
t_check "wrong password: users.json unchanged" test "$(file_sum)" = "$before"
t_check "wrong password: alice still logged in" \
	test "$(users_json | jq -r '.users[] | select(.name == "alice") | .valid')" = true
ctl user login carol --password-file="$DIR/wrong.pw" >/dev/null 2>"$DIR/err"
t_check "unknown user: refused the same way" grep -q "wrong user name or password" "$DIR/err"
t_check "unknown user: not stored" test "$(users_json | jq '.users | length')" = 2
t_check "journal: failed logins" test "$(n_entries ".MESSAGE_ID == \"$MID_LOGIN_FAILED\"")" -ge 2

t_check "a bad user name is a usage error" sh -c "\"\$@\" user login Bad/Name </dev/null 2>/dev/null; [ \$? = 2 ]" _ \
	"${IN[@]}" "$CTL" --socket="$SOCK"
t_check "an empty password is refused before the agent" \
	sh -c "printf '\n' | \"\$@\" user login alice 2>&1 | grep -q 'empty'" _ "${IN[@]}" "$CTL" --socket="$SOCK"

# Logins survive a restart of the agent. A token that expired meanwhile
# (made so by hand) is listed as such until a new login renews it.
stop_agent
jq -c '(.users[] | select(.name == "bob") | .expires_usec) = 1000000' "$DIR/agent-state/users.json" >"$DIR/users.new"
cat "$DIR/users.new" >"$DIR/agent-state/users.json"
t_check "the agent restarts" start_agent
t_check "both still logged in after the restart" \
	test "$(users_json | jq -r '[.users[].name] | sort | join(",")')" = alice,bob
t_check "bob's token is listed as expired, alice's as valid" \
	test "$(users_json | jq -r '[.users[] | .name + "=" + (.valid | tostring)] | sort | join(",")')" = "alice=true,bob=false"
t_check "the table says expired" sh -c "\"\$@\" user list | grep -q 'bob.*expired'" _ "${IN[@]}" "$CTL" --socket="$SOCK"
t_check "a new login renews it" sh -c "printf 'bob-secret-22\n' | \"\$@\" user login bob >/dev/null" _ \
	"${IN[@]}" "$CTL" --socket="$SOCK" --timeout=20
t_check "bob's token is valid again" test "$(users_json | jq -r '.users[] | select(.name == "bob") | .valid')" = true

t_check "alice logs out" ctl user logout alice
t_check "only bob is left" test "$(users_json | jq -r '[.users[].name] | join(",")')" = bob
t_check "alice's token is gone from users.json" sh -c "! jq -e '.users[] | select(.name == \"alice\")' '$DIR/agent-state/users.json' >/dev/null"
ctl user logout alice >/dev/null 2>"$DIR/err"
rc=$?
t_check "a second logout fails ($rc)" test "$rc" = 1
t_check "... saying she is not logged in" grep -q "not logged in" "$DIR/err"
t_check "journal: the logout" has_entry ".MESSAGE_ID == \"$MID_LOGOUT\" and .RETHINK_USER == \"alice\""

# The domain side: last logins recorded; a removed user cannot log in.
t_check "the domain recorded alice's last login" \
	jq -e '.users[] | select(.name == "alice") | .last_login_usec > 0' <(admin users --json) >/dev/null
t_check "the admin removes bob" admin users remove bob
t_check "the domain lists only alice" test "$(admin users --json | jq -r '[.users[].name] | join(",")')" = alice
t_check "bob cannot log in again" sh -c "printf 'bob-secret-22\n' | \"\$@\" user login bob 2>&1 | grep -q 'wrong user name or password'" _ \
	"${IN[@]}" "$CTL" --socket="$SOCK" --timeout=20
t_check "... and his old login is kept until he logs out" \
	test "$(users_json | jq -r '[.users[].name] | join(",")')" = bob
t_check "bob logs out" ctl user logout bob
t_check "nobody is left" test "$(users_json | jq '.users | length')" = 0

t_check "the agent is still running" kill -0 "$AGENT_PID"
t_done
