package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testRedisURL returns REDIS_URL (default database 15 on the local Redis),
// skipping the test when Redis does not answer, unless
// E2E_REQUIRE_REDIS=1 makes that a failure.
func testRedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/15"
	}
	opts, err := redis.ParseURL(u)
	require.NoError(t, err)
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("E2E_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis not reachable at %s: %v", opts.Addr, err)
		}
		t.Skipf("redis not reachable at %s: %v (set E2E_REQUIRE_REDIS=1 to fail instead)", opts.Addr, err)
	}
	return u
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	return port
}

func TestReplayStore_Redis(t *testing.T) {
	url := testRedisURL(t)
	ta := newTestApp(t, func(c *Config, _ *Options) { c.ReplayStore = url })
	ta.app.Start(t.Context())
	waitReady(t, ta)
	tok := ta.issuer.Mint(t, demoRequest())

	first := ta.newBrowser().handoff(tok)
	second := ta.newBrowser().handoff(tok)

	require.Equal(t, http.StatusSeeOther, first.StatusCode, first.Body)
	require.Equal(t, http.StatusConflict, second.StatusCode)
	assert.Equal(t, string(token.ReasonReplayed), pageReason(t, second))
	assert.Equal(t, uint64(2), histogramCount(t, ta))
}

func TestReplayStore_RedisDown(t *testing.T) {
	ta := newTestApp(t, func(c *Config, _ *Options) {
		c.ReplayStore = "redis://127.0.0.1:" + closedPort(t) + "/0"
	})
	ta.app.Start(t.Context())
	require.Eventually(t, func() bool { return !ta.app.rp.Status().Keys.FetchedAt.IsZero() }, 5*time.Second, 5*time.Millisecond)

	ready := ta.newBrowser().Get("/readyz")
	got := ta.newBrowser().handoff(ta.issuer.Mint(t, demoRequest()))

	assert.Equal(t, http.StatusServiceUnavailable, ready.StatusCode)
	assert.JSONEq(t, `{"jwks":"ok","replay_store":"fail","revocations":"off"}`, ready.Body)
	require.Equal(t, http.StatusServiceUnavailable, got.StatusCode)
	assert.Equal(t, string(token.ReasonUnavailable), pageReason(t, got))
	assert.Equal(t, 1.0, testutil.ToFloat64(ta.app.Metrics().ReplayErrors.WithLabelValues(redisstore.KindConnection)))
}

func TestInstrumentedReplay_ForwardsRemembersSince(t *testing.T) {
	ta := newTestApp(t, nil)
	early := ta.issuer.NewMinter(t, func(c *token.MinterConfig) {
		c.Now = func() time.Time { return ta.clock.Now().Add(-time.Minute) }
	})

	got := ta.newBrowser().handoff(ta.issuer.MintWith(t, early, demoRequest()))

	require.Equal(t, http.StatusUnauthorized, got.StatusCode)
	assert.Equal(t, string(token.ReasonIssuedBeforeRestart), pageReason(t, got))
}

// TestReplayStore_RedisAsksSharedMarkInConsume: with Redis as the replay
// store and revocation on, a token another replica marked revoked in
// Redis (and not yet in this replica's held list) is refused as revoked by
// the consume's own script: the one timed replay-store call of the
// handoff, not a separate question before it, and not an error.
func TestReplayStore_RedisAsksSharedMarkInConsume(t *testing.T) {
	url := testRedisURL(t)
	ta, _ := newRevocationApp(t, func(c *Config, _ *Options) { c.ReplayStore = url })
	ta.app.Start(t.Context())
	waitReady(t, ta)
	marked := ta.issuer.MintFull(t, demoRequest())
	store := ta.app.replay.Store.(*redisstore.Store)
	require.NoError(t, store.MarkRevoked(t.Context(), revocation.SharedKey(ta.issuer.URL, marked.ID), marked.ExpiresAt))

	got := ta.newBrowser().handoff(marked.Token)

	assert.Equal(t, string(token.ReasonRevoked), pageReason(t, got))
	assert.Equal(t, uint64(1), histogramCount(t, ta))
	for _, kind := range redisstore.ErrorKinds {
		assert.Zero(t, testutil.ToFloat64(ta.app.Metrics().ReplayErrors.WithLabelValues(kind)), kind)
	}
}
