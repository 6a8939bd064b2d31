// Package redistest runs real redis-server processes on loopback for tests:
// a plain server, a Sentinel-monitored master with one replica, and a
// three-master Cluster. Each process keeps its files in a temporary
// directory of the test (--dir, --save "", no append-only file), so no test
// writes an RDB or a config file into the source tree, and every process is
// killed when the test ends.
//
// Tests that need a binary which is not on PATH are skipped, or fail when
// E2E_REQUIRE_REDIS=1 (CI) says a missing Redis is a failure.
//
// It is for tests only: the processes run with short Sentinel timeouts and
// without persistence.
package redistest
