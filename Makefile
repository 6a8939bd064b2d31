# Everyday entry points. The README names two: `make demo` and `make test`.
GO ?= go

.PHONY: demo test check bench compare load build

## demo: build both servers and run the local demo (SERVER1 on
## http://localhost:8081, SERVER2 on http://127.0.0.1:8082; generated keys,
## in-memory replay store; text logs). Ctrl-C stops both gracefully.
demo:
	@bash scripts/demo.sh

## test: the whole test suite, with the race detector. Tests that need Redis,
## Chromium or Docker skip with a message unless E2E_REQUIRE_REDIS=1,
## E2E_REQUIRE_BROWSER=1 or E2E_REQUIRE_DOCKER=1 (CI sets all three). Output
## is plain go test's, then every skipped test grouped by what it lacked,
## and a count line; the exit status is go test's.
test:
	@$(GO) build -o bin/testsummary ./scripts/testsummary
	GO=$(GO) bin/testsummary -race -count=1 -timeout 30m ./...

## check: formatting, vet and staticcheck, as CI runs them.
check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	staticcheck ./...
	cd bench && $(GO) vet ./... && staticcheck ./...

## bench: the broker's benchmarks with their raw Ed25519/ES256 baselines,
## then the heap held by 1,000,000 SERVER2 sessions (docs/BENCHMARKS.md,
## "Broker engine" and "Memory at one million").
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./broker/...
	$(GO) test -run '^$$' -bench '^BenchmarkSessionsFootprint$$' -benchtime 1x ./shared

## compare: SERVER2 against the benchmark peers in bench/ (a hand-written
## peer and the floor), each pinned to one core and driven by e2e/load,
## plus SERVER1's handoff page; prints the markdown table of
## docs/BENCHMARKS.md. Needs taskset and redis-server; about 5 minutes.
## COMPARE_FLAGS passes flags (for example --nice -10 as root).
compare:
	cd bench && $(GO) run ./compare --root .. $(COMPARE_FLAGS)

## build: the two servers and the load tool, into bin/.
build:
	$(GO) build -o bin/ ./server1 ./server2 ./e2e/load

## load: build the load tool (see docs/BENCHMARKS.md for how it is run).
load:
	$(GO) build -o bin/ ./e2e/load
