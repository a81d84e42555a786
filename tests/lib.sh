# Shell test helpers, sourced by tests/*/*.sh.
#
# A script calls t_ok/t_fail per check and t_done at the end; t_done prints
# "# RESULT passed=N failed=M", which tests/run-all adds up. Cleanup hooks
# registered with t_cleanup run on every exit, also on failure.

T_PASSED=0
T_FAILED=0
T_CLEANUPS=()
T_NAME=$(basename "$0" .sh)

t_ok() { T_PASSED=$((T_PASSED + 1)); echo "ok - $*"; }
t_fail() { T_FAILED=$((T_FAILED + 1)); echo "not ok - $*"; }

# t_check NAME CMD...: runs CMD, passes when it exits 0.
t_check() {
	local name=$1; shift
	if "$@"; then t_ok "$name"; else t_fail "$name"; fi
}

t_skip_all() {
	echo "# SKIP $T_NAME: $*"
	echo "# RESULT passed=0 failed=0 skipped=1"
	exit 0
}

t_cleanup() { T_CLEANUPS+=("$*"); }

t_run_cleanups() {
	local i
	for ((i = ${#T_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${T_CLEANUPS[$i]}" >/dev/null 2>&1 || true
	done
	T_CLEANUPS=()
}
trap t_run_cleanups EXIT

t_done() {
	echo "# RESULT passed=$T_PASSED failed=$T_FAILED"
	[ "$T_FAILED" -eq 0 ]
}

# t_wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds.
t_wait_for() {
	local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
	until "$@"; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# A free TCP port on loopback.
t_free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
PY
}
