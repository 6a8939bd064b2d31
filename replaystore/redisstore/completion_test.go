package redisstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

func TestMarkDone(t *testing.T) {
	stores, admin := newReplicas(t, 2, redisstore.Config{})
	a, b := stores[0], stores[1]
	ctx := context.Background()
	until := time.Now().Add(time.Hour)

	done, err := a.IsDone(ctx, "task-1")
	require.NoError(t, err)
	assert.False(t, done, "nothing recorded yet")

	first, err := a.MarkDone(ctx, "task-1", until)
	require.NoError(t, err)
	assert.True(t, first)
	first, err = b.MarkDone(ctx, "task-1", until)
	require.NoError(t, err)
	assert.False(t, first, "another replica must see the completion")
	done, err = b.IsDone(ctx, "task-1")
	require.NoError(t, err)
	assert.True(t, done)

	ttl, err := admin.PTTL(ctx, a.CompletionKey("task-1")).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 59*time.Minute, "the record is kept until until")

	// Completions, uses and revocations live apart.
	require.NoError(t, a.Consume(ctx, "task-1", until))
	revoked, err := a.IsRevoked(ctx, "task-1")
	require.NoError(t, err)
	assert.False(t, revoked)
	require.NoError(t, a.MarkRevoked(ctx, "task-2", until))
	require.NoError(t, a.Consume(ctx, "task-3", until))
	for _, key := range []string{"task-2", "task-3"} {
		done, err := a.IsDone(ctx, key)
		require.NoError(t, err)
		assert.False(t, done, key)
	}
	assert.NotEqual(t, a.CompletionKey("task-1"), a.RedisKey("task-1"))
	assert.NotEqual(t, a.CompletionKey("task-1"), a.RevocationKey("task-1"))
}

func TestMarkDone_PastUntilStillRecords(t *testing.T) {
	s, admin := newStore(t, redisstore.Config{})
	ctx := context.Background()
	first, err := s.MarkDone(ctx, "task", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.True(t, first)
	ttl, err := admin.PTTL(ctx, s.CompletionKey("task")).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0), "kept at least MinRetention")
	first, err = s.MarkDone(ctx, "task", time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, first)
}

func TestMarkDone_RaceHasOneWinner(t *testing.T) {
	const racers = 200
	stores, _ := newReplicas(t, 2, redisstore.Config{Timeout: 10 * time.Second})
	var wins, losses atomic.Int64
	var mu sync.Mutex
	var errs []error
	start := make(chan struct{})
	var wg sync.WaitGroup
	until := time.Now().Add(time.Hour)
	for i := range racers {
		wg.Go(func() {
			<-start
			first, err := stores[i%len(stores)].MarkDone(context.Background(), "the-task", until)
			switch {
			case err != nil:
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			case first:
				wins.Add(1)
			default:
				losses.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	require.Empty(t, errs)
	assert.EqualValues(t, 1, wins.Load())
	assert.EqualValues(t, racers-1, losses.Load())
}

func TestMarkDone_Unreachable(t *testing.T) {
	s, err := redisstore.New(redisstore.Config{URL: "redis://" + closedPort(t) + "/0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	first, err := s.MarkDone(ctx, "task", time.Now().Add(time.Hour))
	require.Error(t, err)
	assert.False(t, first, "an error never reads as a first completion")
	_, err = s.IsDone(ctx, "task")
	require.Error(t, err)
}
