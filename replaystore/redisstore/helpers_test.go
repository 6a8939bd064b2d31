package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
)

// defaultRedisURL uses database 15 so tests stay clear of a developer's data.
const defaultRedisURL = "redis://127.0.0.1:6379/15"

// requireRedis returns the URL of the shared test Redis (REDIS_URL, default
// defaultRedisURL), skipping the test when it does not answer.
func requireRedis(t testing.TB) string {
	t.Helper()
	u, err := sharedRedis()
	if err != nil {
		redistest.SkipOrFail(t, "%v", err)
	}
	return u
}

// sharedRedis probes the shared test Redis once per test binary.
var sharedRedis = sync.OnceValues(func() (string, error) {
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = defaultRedisURL
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		return "", fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.MaxRetries, opts.DialerRetries = -1, 1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis not reachable at %s: %w", opts.Addr, err)
	}
	return u, nil
})

// adminClient is a plain client on url for inspecting what a Store wrote.
func adminClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testPrefixes returns replay, revocation and completion prefixes unique to this test, so
// parallel tests and packages sharing one Redis never see each other's keys.
// Its keys are deleted when the test ends.
func testPrefixes(t testing.TB, admin *redis.Client) (replay, revocation, completion string) {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	base := "test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := admin.Scan(ctx, 0, base+"*", 1000).Iterator()
		for iter.Next(ctx) {
			_ = admin.Del(ctx, iter.Val()).Err()
		}
	})
	return base + "jti:", base + "rev:", base + "done:"
}

// newStore returns a Store on the shared test Redis with per-test prefixes,
// closed when the test ends. cfg.URL and the prefixes are filled in when
// empty.
func newStore(t testing.TB, cfg redisstore.Config) (*redisstore.Store, *redis.Client) {
	t.Helper()
	stores, admin := newReplicas(t, 1, cfg)
	return stores[0], admin
}

// newReplicas returns n Stores, each with its own client as separate
// replicas would have, sharing one Redis and one set of prefixes. Timeout
// defaults to a generous 5s: these tests are about semantics, and a loaded
// machine must not turn them into timeouts.
func newReplicas(t testing.TB, n int, cfg redisstore.Config) ([]*redisstore.Store, *redis.Client) {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.URL == "" {
		cfg.URL = requireRedis(t)
	}
	admin := adminClient(t, cfg.URL)
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix, cfg.RevocationPrefix, cfg.CompletionPrefix = testPrefixes(t, admin)
	}
	stores := make([]*redisstore.Store, n)
	for i := range stores {
		s, err := redisstore.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	return stores, admin
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + redistest.FreePort(t)
}
