package redisstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
)

// TestCluster runs the store against a real three-master Redis Cluster
// opened by its addr= URL: consume is exactly-once under concurrency from
// several Stores, and revocation and completion marks are shared, with
// keys spread over every shard; the one-script consume unless revoked
// works across shards.
func TestCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	url := "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	stores := []*redisstore.Store{openURLStore(t, url), openURLStore(t, url), openURLStore(t, url)}
	ctx := context.Background()
	for _, s := range stores {
		require.NoError(t, s.Ping(ctx))
	}

	const keys = 30
	for i := range keys {
		assertOneWinner(t, stores, fmt.Sprintf("https://issuer.test jti-%d", i))
	}
	for i, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		n, err := c.DBSize(ctx).Result()
		_ = c.Close()
		require.NoError(t, err)
		require.Positive(t, n, "node %d holds none of %d keys: the test did not spread over shards", i, keys)
	}

	// The one-script consume reads a token's mark and writes its replay
	// key: both in one hash slot, or the cluster refuses it (CROSSSLOT).
	until := time.Now().Add(time.Minute)
	for i := range keys {
		jti := fmt.Sprintf("guarded-%d", i)
		key := token.ReplayKey("https://issuer.test", jti)
		if i%2 == 0 {
			require.NoError(t, stores[i%3].MarkRevoked(ctx, revocation.SharedKey("https://issuer.test", jti), until))
			require.ErrorIs(t, stores[(i+1)%3].ConsumeUnlessRevoked(ctx, key, until), token.ErrMarkedRevoked, key)
			continue
		}
		require.NoError(t, stores[i%3].ConsumeUnlessRevoked(ctx, key, until), key)
		require.ErrorIs(t, stores[(i+1)%3].ConsumeUnlessRevoked(ctx, key, until), token.ErrAlreadyUsed, key)
		require.ErrorIs(t, stores[(i+2)%3].Consume(ctx, key, until), token.ErrAlreadyUsed, key)
	}

	// A mark only a replica of the release before wrote, under the old
	// name (no hash tag: mostly in another slot than the replay key), is
	// seen by the consume too.
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = admin.Close() })
	for i := range keys {
		jti := fmt.Sprintf("marked-on-old-%d", i)
		sum := sha256.Sum256([]byte(revocation.SharedKey("https://issuer.test", jti)))
		require.NoError(t, admin.Set(ctx, revocationPrefixOf(t, stores[0])+hex.EncodeToString(sum[:16]), 1, time.Minute).Err())
		key := token.ReplayKey("https://issuer.test", jti)
		require.ErrorIs(t, stores[i%3].ConsumeUnlessRevoked(ctx, key, until), token.ErrMarkedRevoked, key)
		n, err := admin.Exists(ctx, stores[0].RedisKey(key)).Result()
		require.NoError(t, err)
		require.Zero(t, n, "a token refused for an old replica's mark was recorded as used")
	}

	for i := range keys {
		key := fmt.Sprintf("https://issuer.test task-%d", i)
		require.NoError(t, stores[i%3].MarkRevoked(ctx, key, until))
		revoked, err := stores[(i+1)%3].IsRevoked(ctx, key)
		require.NoError(t, err)
		require.True(t, revoked, key)
		revoked, err = stores[(i+1)%3].IsRevoked(ctx, key+" other")
		require.NoError(t, err)
		require.False(t, revoked, key+" other")

		first, err := stores[i%3].MarkDone(ctx, key, until)
		require.NoError(t, err)
		require.True(t, first, key)
		first, err = stores[(i+2)%3].MarkDone(ctx, key, until)
		require.NoError(t, err)
		require.False(t, first, key)
		done, err := stores[(i+1)%3].IsDone(ctx, key)
		require.NoError(t, err)
		require.True(t, done, key)
	}
}
