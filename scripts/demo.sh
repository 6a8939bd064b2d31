#!/usr/bin/env bash
# Runs the local demo: both servers with embedded defaults (SERVER1's keys
# generated into .data/server1/keys, SERVER2's result-signing key generated
# in memory, in-memory replay stores). The zero-config defaults point each
# server at the other, so the outcome of a task comes back to SERVER1.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/ ./server1 ./server2

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./bin/server1 serve 2> >(sed 's/^/[server1] /' >&2) &
pids+=($!)
./bin/server2 serve 2> >(sed 's/^/[server2] /' >&2) &
pids+=($!)

# Wait until both answer /readyz (SERVER2 is ready once it holds SERVER1's keys).
if command -v curl >/dev/null; then
	for url in http://localhost:8081/readyz http://127.0.0.1:8082/readyz; do
		for _ in $(seq 1 100); do
			curl -fsS -o /dev/null "$url" 2>/dev/null && break
			sleep 0.2
		done
	done
fi

cat <<'MSG'

  Handoff broker demo is running.
    Open      http://localhost:8081   (SERVER1, the customer portal)
    Sign in   alice / alice-demo-pw   (or bob / bob-demo-pw)
    Then choose "Continue on Payments": SERVER2 at http://127.0.0.1:8082
    sets a one-time binding secret in the browser, and the browser carries
    a one-time token bound to it to SERVER2 by form POST.
    Approve (or cancel) there: the browser carries SERVER2's signed result
    back to SERVER1, which shows the transfer approved (or still pending).
  Press Ctrl-C to stop.

MSG
wait
