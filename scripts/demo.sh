#!/usr/bin/env bash
# Runs the local demo: both servers with embedded defaults (SERVER1's keys
# generated into .data/server1/keys, SERVER2's result-signing key generated
# in memory, in-memory replay stores), logging as text for people. The
# zero-config defaults point each server at the other, so the outcome of a
# task comes back to SERVER1. Ctrl-C (or SIGTERM) stops both gracefully, and
# the script exits 0 once both have shut down.
#
# HANDOFF_SERVER1_PORT (8081) and HANDOFF_SERVER2_PORT (8082) move the
# servers; any SERVER1_* or SERVER2_* variable set beforehand wins over what
# this script derives from them.
set -euo pipefail
cd "$(dirname "$0")/.."

p1=${HANDOFF_SERVER1_PORT:-8081}
p2=${HANDOFF_SERVER2_PORT:-8082}
export SERVER1_ADDR=${SERVER1_ADDR:-localhost:$p1}
export SERVER1_ISSUER=${SERVER1_ISSUER:-http://localhost:$p1}
export SERVER1_AUDIENCE=${SERVER1_AUDIENCE:-http://127.0.0.1:$p2}
export SERVER1_HANDOFF_URL=${SERVER1_HANDOFF_URL:-http://127.0.0.1:$p2/handoff}
export SERVER1_HANDOFF_START_URL=${SERVER1_HANDOFF_START_URL:-http://127.0.0.1:$p2/handoff/start}
export SERVER1_LOG_FORMAT=${SERVER1_LOG_FORMAT:-text}
export SERVER2_ADDR=${SERVER2_ADDR:-127.0.0.1:$p2}
export SERVER2_AUDIENCE=${SERVER2_AUDIENCE:-http://127.0.0.1:$p2}
export SERVER2_TRUSTED_ISSUER=${SERVER2_TRUSTED_ISSUER:-http://localhost:$p1}
export SERVER2_LOG_FORMAT=${SERVER2_LOG_FORMAT:-text}

# A terminal's Ctrl-C reaches the servers too (one process group); a
# SIGTERM sent to this script alone does not, so stop forwards it. A second
# signal to a server that is already shutting down changes nothing.
pids=()
stopping=0
stop() {
	((stopping)) && return
	stopping=1
	for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop INT TERM

mkdir -p bin
if ! go build -o bin/ ./server1 ./server2; then
	((stopping)) && exit 0 # Ctrl-C during the build
	exit 1
fi
if ((stopping)); then exit 0; fi

# reap waits for one server to exit, through the interruptions a signal
# causes, and returns its exit status.
reap() {
	local rc
	while :; do
		if wait "$1"; then return 0; else rc=$?; fi
		kill -0 "$1" 2>/dev/null || return "$rc"
	done
}

# finish stops what still runs, waits for both servers and exits with $1,
# or 1 if a server did not shut down cleanly.
finish() {
	local status=$1 pid
	stop
	for pid in "${pids[@]}"; do reap "$pid" || status=1; done
	exit "$status"
}

# The servers write straight to this terminal, one whole line per write:
# no pipe that Ctrl-C could close while they still log their shutdown.
./bin/server1 serve &
pids+=($!)
./bin/server2 serve &
pids+=($!)

# Wait until both answer /readyz (SERVER2 is ready once it holds SERVER1's keys).
if command -v curl >/dev/null; then
	for url in "http://localhost:$p1/readyz" "http://127.0.0.1:$p2/readyz"; do
		for _ in $(seq 1 100); do
			((stopping)) && break 2
			curl -fsS -o /dev/null "$url" 2>/dev/null && break
			sleep 0.2 || true
		done
	done
fi
for pid in "${pids[@]}"; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: a server did not start; see its log above" >&2
		finish 1
	fi
done

((stopping)) || cat <<MSG

  Handoff broker demo is running.
    Open      http://localhost:$p1   (SERVER1, the customer portal)
    Sign in   alice / alice-demo-pw   (or bob / bob-demo-pw)
    Then choose "Continue on Payments": SERVER2 at http://127.0.0.1:$p2
    sets a one-time binding secret in the browser, and the browser carries
    a one-time token bound to it to SERVER2 by form POST.
    Approve (or cancel) there: the browser carries SERVER2's signed result
    back to SERVER1, which shows the transfer approved (or still pending).
  Press Ctrl-C to stop.

MSG

# wait -n returns when a server exits or a signal arrives (stop has run
# then). Bash before 4.3 has no -n: wait for both.
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 403)); then
	wait -n || true
else
	wait || true
fi
if ((!stopping)); then
	echo "demo: a server stopped on its own; stopping the other" >&2
	finish 1
fi
finish 0
