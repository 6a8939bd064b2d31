package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
)

// TestWaitReplicas runs a store opened with ?wait_replicas=1 against a
// master and a replica of the test's own. A consume it accepts is already
// on the replica when it returns, in one round trip with its WAIT; once the
// replica is gone, a consume fails closed (ErrNotReplicated, kind
// replication) and the token stays used on the master, so a retry is
// refused as replayed, never accepted.
func TestWaitReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", master.Port())
	redistest.WaitReplicaSynced(t, replica.Addr())
	rc := adminClient(t, replica.URL())

	plain, err := redisstore.New(redisstore.Config{URL: master.URL() + "?wait_replicas=1&wait_timeout=1s", Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Close() })
	opts, err := redis.ParseURL(master.URL())
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	rt := &roundTrips{}
	c.AddHook(rt)
	counted, err := redisstore.New(redisstore.Config{Client: c, WaitReplicas: 1, WaitTimeout: time.Second, Timeout: 5 * time.Second})
	require.NoError(t, err)

	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	consumes := []struct {
		name string
		do   func(ctx context.Context, key string, exp time.Time) error
	}{
		{"consume", plain.Consume},
		{"consume_unless_revoked", plain.ConsumeUnlessRevoked},
		{"counted_consume_unless_revoked", counted.ConsumeUnlessRevoked},
	}
	for _, cs := range consumes {
		key := token.ReplayKey("https://issuer.test", cs.name)
		rt.take()
		require.NoError(t, cs.do(ctx, key, exp), cs.name)
		if cs.name == "counted_consume_unless_revoked" {
			// EVALSHA and WAIT in one pipeline; a second pipeline with
			// EVAL only if Redis had not seen the script.
			sent := rt.take()
			require.NotEmpty(t, sent)
			assert.Equal(t, "pipeline: evalsha wait", sent[0])
		}
		n, err := rc.Exists(ctx, plain.RedisKey(key)).Result()
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "%s returned before the replica held the key", cs.name)
		require.ErrorIs(t, cs.do(ctx, key, exp), token.ErrAlreadyUsed, cs.name)
	}

	replica.Kill()
	for _, cs := range consumes {
		key := token.ReplayKey("https://issuer.test", cs.name+"-alone")
		err := cs.do(ctx, key, exp)
		require.ErrorIs(t, err, redisstore.ErrNotReplicated, cs.name)
		assert.Equal(t, redisstore.KindReplication, redisstore.ErrorKind(err))
		require.ErrorIs(t, cs.do(ctx, key, exp), token.ErrAlreadyUsed, cs.name)
	}
}
