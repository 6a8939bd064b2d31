package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
)

// TestSentinel_Failover runs the store against a real Sentinel-monitored
// master with one replica, opened by its master_name= URL. Consume and the
// marks work; when the master is killed the store fails closed (errors,
// never an acceptance of a used token) until Sentinel promotes the replica,
// and then works again through the same Store, never reopened.
func TestSentinel_Failover(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("ok/%d_sentinels", n), func(t *testing.T) { testSentinelFailover(t, n) })
	}
}

func testSentinelFailover(t *testing.T, sentinels int) {
	set := redistest.StartSentinelSet(t, sentinels)
	oldMaster := "127.0.0.1:" + set.Master.Port()
	require.Equal(t, oldMaster, set.MasterAddr(t))
	stores := []*redisstore.Store{openURLStore(t, set.URL()), openURLStore(t, set.URL())}
	s := stores[0]
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	require.NoError(t, s.Ping(ctx))

	const used = "https://issuer.test jti-before"
	assertOneWinner(t, stores, used)
	require.NoError(t, s.MarkRevoked(ctx, "task-revoked", exp))
	first, err := s.MarkDone(ctx, "task-done", exp)
	require.NoError(t, err)
	require.True(t, first)

	// Replication is asynchronous: wait until the replica holds what the
	// master acknowledged, so the failover below loses nothing.
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + set.Replica.Port()})
	defer rc.Close()
	redistest.WaitFor(t, 10*time.Second, func() bool {
		n, err := rc.Exists(ctx, s.RedisKey(used), s.RevocationKey("task-revoked"), s.CompletionKey("task-done")).Result()
		return err == nil && n == 3
	}, "the replica to hold the entries")

	set.Master.Kill()
	killed := time.Now()

	var refused int
	i := 0
	redistest.WaitFor(t, 20*time.Second, func() bool {
		i++
		err := s.Consume(ctx, fmt.Sprintf("https://issuer.test jti-during-%d", i), exp)
		if err != nil {
			require.NotErrorIs(t, err, token.ErrAlreadyUsed)
			refused++
		}
		replay := s.Consume(ctx, used, exp)
		require.Error(t, replay, "a used token was accepted during the failover")
		return err == nil
	}, "the store to write again after the failover")
	require.Positive(t, refused, "the store never refused while the master was down")
	t.Logf("writes refused for %v after the master was killed (%d consumes refused)", time.Since(killed).Round(10*time.Millisecond), refused)
	require.Equal(t, "127.0.0.1:"+set.Replica.Port(), set.MasterAddr(t))

	for _, st := range stores {
		require.ErrorIs(t, st.Consume(ctx, used, exp), token.ErrAlreadyUsed)
		revoked, err := st.IsRevoked(ctx, "task-revoked")
		require.NoError(t, err)
		require.True(t, revoked)
		first, err := st.MarkDone(ctx, "task-done", exp)
		require.NoError(t, err)
		require.False(t, first)
	}
	assertOneWinner(t, stores, "https://issuer.test jti-after")
	require.ErrorIs(t, stores[1].Consume(ctx, fmt.Sprintf("https://issuer.test jti-during-%d", i), exp), token.ErrAlreadyUsed)
}
