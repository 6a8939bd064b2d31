package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

// openURLStore opens a Store by url with per-test prefixes, as SERVER2
// would from its configuration, closed when the test ends.
func openURLStore(t testing.TB, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(redisstore.Config{
		URL:              url,
		KeyPrefix:        "test:jti:",
		RevocationPrefix: "test:rev:",
		CompletionPrefix: "test:done:",
		Timeout:          2 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// assertOneWinner consumes key from every store in stores, many times
// each and all at once, and asserts that exactly one call succeeded and
// every other one was refused as already used.
func assertOneWinner(t *testing.T, stores []*redisstore.Store, key string) {
	t.Helper()
	const perStore = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		other    []error
	)
	exp := time.Now().Add(time.Minute)
	start := make(chan struct{})
	for _, s := range stores {
		for range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.Consume(context.Background(), key, exp)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					accepted++
				case !errors.Is(err, token.ErrAlreadyUsed):
					other = append(other, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	require.Empty(t, other)
	require.Equal(t, 1, accepted, "key %q", key)
}
