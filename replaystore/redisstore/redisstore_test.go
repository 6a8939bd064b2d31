package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		giveCfg   redisstore.Config
		wantErr   bool
		wantNoLog string // a secret that must not appear in the error
	}{
		{name: "ok/single", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/15"}},
		{name: "ok/password_and_tls", giveCfg: redisstore.Config{URL: "rediss://:pw@127.0.0.1:6380/0"}},
		{name: "ok/unix_socket", giveCfg: redisstore.Config{URL: "unix:///run/redis.sock?db=2"}},
		{name: "ok/sentinel", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:26379/0?master_name=mymaster&addr=127.0.0.1:26380"}},
		{name: "ok/cluster", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002"}},
		{name: "ok/injected_client", giveCfg: redisstore.Config{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})}},
		{name: "fail/no_url", giveCfg: redisstore.Config{}, wantErr: true},
		{name: "fail/url_and_client", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379", Client: redis.NewClient(&redis.Options{})}, wantErr: true},
		{name: "fail/negative_timeout", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379", Timeout: -time.Second}, wantErr: true},
		{name: "fail/same_prefixes", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379", KeyPrefix: "x:", RevocationPrefix: "x:"}, wantErr: true},
		{name: "fail/same_as_default_revocation_prefix", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379", KeyPrefix: redisstore.DefaultRevocationPrefix}, wantErr: true},
		{name: "fail/completion_prefix_same_as_key_prefix", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379", CompletionPrefix: redisstore.DefaultKeyPrefix}, wantErr: true},
		{name: "fail/completion_prefix_same_as_revocation_prefix", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379", CompletionPrefix: "x:", RevocationPrefix: "x:"}, wantErr: true},
		{name: "fail/unknown_scheme", giveCfg: redisstore.Config{URL: "http://127.0.0.1:6379"}, wantErr: true},
		{name: "fail/unknown_option", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379?colour=blue"}, wantErr: true},
		{name: "fail/bad_port_hides_password", giveCfg: redisstore.Config{URL: "redis://:s3cret-pw@127.0.0.1:port/0"}, wantErr: true, wantNoLog: "s3cret-pw"},
		{name: "fail/bad_db_hides_password", giveCfg: redisstore.Config{URL: "redis://:s3cret-pw@127.0.0.1:6379/x"}, wantErr: true, wantNoLog: "s3cret-pw"},
		{name: "fail/cluster_read_only", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:7000?addr=127.0.0.1:7001&read_only=true"}, wantErr: true},
		{name: "fail/sentinel_replica_only", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:26379?master_name=m&replica_only=true"}, wantErr: true},
		{name: "fail/sentinel_empty_master", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:26379?master_name="}, wantErr: true},
		{name: "fail/cluster_database", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:7000/3?addr=127.0.0.1:7001"}, wantErr: true},
		{name: "ok/wait_replicas", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=1&wait_timeout=50ms"}},
		{name: "ok/wait_replicas_default_timeout", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=2"}},
		{name: "ok/sentinel_wait_replicas", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:26379/0?master_name=m&wait_replicas=1&wait_timeout=20ms"}},
		{name: "ok/wait_replicas_in_config", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0", WaitReplicas: 1, WaitTimeout: 10 * time.Millisecond}},
		{name: "fail/wait_replicas_zero", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=0"}, wantErr: true},
		{name: "fail/wait_replicas_not_a_number", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=one"}, wantErr: true},
		{name: "fail/wait_timeout_alone", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_timeout=50ms"}, wantErr: true},
		{name: "fail/wait_timeout_not_a_duration", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=1&wait_timeout=50"}, wantErr: true},
		{name: "fail/wait_timeout_zero", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=1&wait_timeout=0s"}, wantErr: true},
		{name: "fail/wait_timeout_not_below_timeout", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=1&wait_timeout=200ms"}, wantErr: true},
		{name: "fail/wait_in_url_and_config", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0?wait_replicas=1", WaitReplicas: 1}, wantErr: true},
		{name: "fail/cluster_wait_replicas", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:7000?addr=127.0.0.1:7001&wait_replicas=1"}, wantErr: true},
		{name: "fail/brace_in_key_prefix", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0", KeyPrefix: "{app}:jti:"}, wantErr: true},
		{name: "fail/brace_in_revocation_prefix", giveCfg: redisstore.Config{URL: "redis://127.0.0.1:6379/0", RevocationPrefix: "app:rev}"}, wantErr: true},
		{name: "fail/wait_hides_password", giveCfg: redisstore.Config{URL: "redis://:s3cret-pw@127.0.0.1:6379/0?wait_replicas=x"}, wantErr: true, wantNoLog: "s3cret-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisstore.New(tt.giveCfg)
			if !tt.wantErr {
				require.NoError(t, err)
				require.NoError(t, s.Close())
				return
			}
			require.Error(t, err)
			assert.Nil(t, s)
			if tt.wantNoLog != "" {
				assert.NotContains(t, err.Error(), tt.wantNoLog)
			}
		})
	}
}

func TestNew_ReportsEveryProblem(t *testing.T) {
	_, err := redisstore.New(redisstore.Config{Timeout: -1, KeyPrefix: "p:", RevocationPrefix: "p:"})
	require.Error(t, err)
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	assert.Len(t, joined.Unwrap(), 3)
}

func TestStore_CloseLeavesInjectedClientOpen(t *testing.T) {
	url := requireRedis(t)
	c := adminClient(t, url)
	s, err := redisstore.New(redisstore.Config{Client: c})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.NoError(t, c.Ping(context.Background()).Err())
}

func TestConsume(t *testing.T) {
	tests := []struct {
		name          string
		givePriorUses int
		giveExpiresIn time.Duration
		wantErr       error
	}{
		{name: "ok/first_use", giveExpiresIn: time.Minute},
		{name: "fail/second_use", givePriorUses: 1, giveExpiresIn: time.Minute, wantErr: token.ErrAlreadyUsed},
		{name: "fail/third_use", givePriorUses: 2, giveExpiresIn: time.Minute, wantErr: token.ErrAlreadyUsed},
		// Without the MinRetention floor Redis would drop the key at once
		// and the replay would pass.
		{name: "fail/second_use_expiry_in_past", givePriorUses: 1, giveExpiresIn: -time.Hour, wantErr: token.ErrAlreadyUsed},
		{name: "fail/second_use_zero_expiry", givePriorUses: 1, wantErr: token.ErrAlreadyUsed},
	}
	s, _ := newStore(t, redisstore.Config{})
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "https://issuer.test " + tt.name
			var exp time.Time
			if tt.giveExpiresIn != 0 {
				exp = time.Now().Add(tt.giveExpiresIn)
			}
			for range tt.givePriorUses {
				_ = s.Consume(ctx, key, exp)
			}
			err := s.Consume(ctx, key, exp)
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.wantErr)
		})
	}
}

func TestConsume_SetsExpiry(t *testing.T) {
	tests := []struct {
		name          string
		giveExpiresIn time.Duration
		wantTTLAbove  time.Duration
		wantTTLAtMost time.Duration
	}{
		{name: "ok/token_expiry", giveExpiresIn: 90 * time.Second, wantTTLAbove: 60 * time.Second, wantTTLAtMost: 90 * time.Second},
		{name: "ok/past_expiry_floored", giveExpiresIn: -time.Minute, wantTTLAbove: 0, wantTTLAtMost: redisstore.MinRetention},
	}
	s, admin := newStore(t, redisstore.Config{})
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, s.Consume(ctx, tt.name, time.Now().Add(tt.giveExpiresIn)))
			ttl, err := admin.PTTL(ctx, s.RedisKey(tt.name)).Result()
			require.NoError(t, err)
			assert.Greater(t, ttl, tt.wantTTLAbove)
			assert.LessOrEqual(t, ttl, tt.wantTTLAtMost)
		})
	}
}

func TestConsume_ForgetsAfterExpiry(t *testing.T) {
	// The store's clock runs an hour behind, so MinRetention does not lift
	// the short expiry and the test need not wait a whole second.
	s, admin := newStore(t, redisstore.Config{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	ctx := context.Background()
	require.NoError(t, s.Consume(ctx, "k", time.Now().Add(300*time.Millisecond)))
	require.ErrorIs(t, s.Consume(ctx, "k", time.Now().Add(300*time.Millisecond)), token.ErrAlreadyUsed)
	redistest.WaitFor(t, 5*time.Second, func() bool {
		n, err := admin.Exists(ctx, s.RedisKey("k")).Result()
		return err == nil && n == 0
	}, "the consumed key to expire")
	assert.NoError(t, s.Consume(ctx, "k", time.Now().Add(time.Minute)))
}

func TestConsume_RaceHasOneWinner(t *testing.T) {
	const racers = 200
	tests := []struct {
		name       string
		giveStores int
	}{
		{name: "ok/one_store", giveStores: 1},
		{name: "ok/two_replicas", giveStores: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A generous timeout: the property under test is atomicity, and
			// 200 callers queue for a pool of a few connections.
			stores, _ := newReplicas(t, tt.giveStores, redisstore.Config{Timeout: 10 * time.Second})

			var wins, used atomic.Int64
			var others []error
			var mu sync.Mutex
			start := make(chan struct{})
			var wg sync.WaitGroup
			exp := time.Now().Add(time.Minute)
			for i := range racers {
				wg.Go(func() {
					<-start
					err := stores[i%len(stores)].Consume(context.Background(), "the-jti", exp)
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, token.ErrAlreadyUsed):
						used.Add(1)
					default:
						mu.Lock()
						others = append(others, err)
						mu.Unlock()
					}
				})
			}
			close(start)
			wg.Wait()
			require.Empty(t, others)
			assert.EqualValues(t, 1, wins.Load())
			assert.EqualValues(t, racers-1, used.Load())
		})
	}
}

func TestConsume_SharedAcrossReplicas(t *testing.T) {
	// Two replicas: each its own client and connection pool, one Redis.
	stores, _ := newReplicas(t, 2, redisstore.Config{})
	a, b := stores[0], stores[1]

	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	require.NoError(t, a.Consume(ctx, "used-at-a", exp))
	assert.ErrorIs(t, b.Consume(ctx, "used-at-a", exp), token.ErrAlreadyUsed)
	require.NoError(t, b.Consume(ctx, "used-at-b", exp))
	assert.ErrorIs(t, a.Consume(ctx, "used-at-b", exp), token.ErrAlreadyUsed)
}

func TestStore_Unreachable(t *testing.T) {
	var observed []string
	s, err := redisstore.New(redisstore.Config{
		URL: "redis://" + closedPort(t) + "/0",
		Observe: func(op string, _ time.Duration, err error) {
			observed = append(observed, op+":"+redisstore.ErrorKind(err))
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	err = s.Consume(ctx, "k", time.Now().Add(time.Minute))
	require.Error(t, err)
	assert.NotErrorIs(t, err, token.ErrAlreadyUsed)
	assert.Equal(t, redisstore.KindConnection, redisstore.ErrorKind(err))

	err = s.Ping(ctx)
	require.Error(t, err)
	assert.Equal(t, redisstore.KindConnection, redisstore.ErrorKind(err))

	_, err = s.IsRevoked(ctx, "k")
	assert.Error(t, err)
	assert.Error(t, s.MarkRevoked(ctx, "k", time.Now().Add(time.Minute)))

	assert.Equal(t, []string{"consume:connection", "ping:connection", "is_revoked:connection", "mark_revoked:connection"}, observed)
}

func TestConsume_SlowRedisFailsWithinTimeout(t *testing.T) {
	// A server of the test's own: CLIENT PAUSE stops every client of the
	// server, which would disturb other tests sharing one Redis.
	rs := redistest.Start(t)
	var kinds []string
	var mu sync.Mutex
	s, err := redisstore.New(redisstore.Config{
		URL:     rs.URL(),
		Timeout: 200 * time.Millisecond,
		Observe: func(op string, _ time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			kinds = append(kinds, op+":"+redisstore.ErrorKind(err))
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	admin := adminClient(t, rs.URL())
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", 1000, "WRITE").Err())
	err = s.Consume(ctx, "slow", time.Now().Add(time.Minute))
	require.NoError(t, admin.Do(ctx, "CLIENT", "UNPAUSE").Err())

	require.Error(t, err)
	assert.NotErrorIs(t, err, token.ErrAlreadyUsed)
	assert.Equal(t, redisstore.KindTimeout, redisstore.ErrorKind(err))
	mu.Lock()
	assert.Equal(t, []string{"consume:timeout"}, kinds)
	mu.Unlock()
	attempt := 0
	redistest.WaitFor(t, 5*time.Second, func() bool {
		// A fresh key each time: an attempt that timed out may have landed.
		attempt++
		return s.Consume(ctx, fmt.Sprint("after-unpause ", attempt), time.Now().Add(time.Minute)) == nil
	}, "consume to work after CLIENT UNPAUSE")
}

func TestConsume_RedisRestart(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs func(dir string) []string
		// wantOldKey is what consuming a key used before the restart gives
		// after it: the guarantee each persistence setting buys.
		wantOldKey error
	}{
		{
			name:       "ok/no_persistence_forgets",
			giveArgs:   func(string) []string { return nil },
			wantOldKey: nil,
		},
		{
			name: "ok/aof_fsync_always_remembers",
			giveArgs: func(dir string) []string {
				return []string{"--dir", dir, "--appendonly", "yes", "--appendfsync", "always"}
			},
			wantOldKey: token.ErrAlreadyUsed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := redistest.Start(t, tt.giveArgs(t.TempDir())...)
			s, err := redisstore.New(redisstore.Config{URL: rs.URL(), Timeout: 5 * time.Second})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			ctx := context.Background()
			exp := time.Now().Add(time.Minute)
			require.NoError(t, s.Consume(ctx, "before", exp))

			rs.Kill()
			err = s.Consume(ctx, "while-down", exp)
			require.Error(t, err)
			assert.NotErrorIs(t, err, token.ErrAlreadyUsed)
			assert.Equal(t, redisstore.KindConnection, redisstore.ErrorKind(err))

			rs.Restart()
			redistest.WaitFor(t, 10*time.Second, func() bool { return s.Ping(ctx) == nil }, "the store to reconnect")
			assert.NoError(t, s.Consume(ctx, "after", exp))
			err = s.Consume(ctx, "before", exp)
			if tt.wantOldKey == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantOldKey)
			}
		})
	}
}

func TestRevocation(t *testing.T) {
	stores, admin := newReplicas(t, 2, redisstore.Config{})
	s, b := stores[0], stores[1]
	ctx := context.Background()

	revoked, err := s.IsRevoked(ctx, "sub alice")
	require.NoError(t, err)
	assert.False(t, revoked, "nothing marked yet")

	require.NoError(t, s.MarkRevoked(ctx, "sub alice", time.Now().Add(time.Hour)))
	revoked, err = s.IsRevoked(ctx, "sub alice")
	require.NoError(t, err)
	assert.True(t, revoked)

	// A later, shorter revocation must not cut the first one short.
	require.NoError(t, s.MarkRevoked(ctx, "sub alice", time.Now().Add(time.Minute)))
	ttl, err := admin.PTTL(ctx, s.RevocationKey("sub alice")).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 50*time.Minute)
	// A longer one extends it.
	require.NoError(t, s.MarkRevoked(ctx, "sub alice", time.Now().Add(2*time.Hour)))
	ttl, err = admin.PTTL(ctx, s.RevocationKey("sub alice")).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 110*time.Minute)

	require.NoError(t, s.MarkRevoked(ctx, "sub bob", time.Now().Add(-time.Second)))
	revoked, err = s.IsRevoked(ctx, "sub bob")
	require.NoError(t, err)
	assert.False(t, revoked, "a revocation already over records nothing")

	// Revocation and replay entries live apart.
	require.NoError(t, s.Consume(ctx, "sub carol", time.Now().Add(time.Minute)))
	revoked, err = s.IsRevoked(ctx, "sub carol")
	require.NoError(t, err)
	assert.False(t, revoked)
	assert.NoError(t, s.Consume(ctx, "sub alice", time.Now().Add(time.Minute)))

	// Another replica sees the revocation.
	revoked, err = b.IsRevoked(ctx, "sub alice")
	require.NoError(t, err)
	assert.True(t, revoked)
}

func TestRevocation_Expires(t *testing.T) {
	s, _ := newStore(t, redisstore.Config{})
	ctx := context.Background()
	require.NoError(t, s.MarkRevoked(ctx, "jti x", time.Now().Add(300*time.Millisecond)))
	redistest.WaitFor(t, 5*time.Second, func() bool {
		revoked, err := s.IsRevoked(ctx, "jti x")
		return err == nil && !revoked
	}, "the revocation to expire")
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		name     string
		giveErr  error
		wantKind string
	}{
		{name: "ok/nil", giveErr: nil, wantKind: ""},
		{name: "ok/deadline", giveErr: fmt.Errorf("redisstore: consume: %w", context.DeadlineExceeded), wantKind: redisstore.KindTimeout},
		{name: "ok/pool_timeout", giveErr: redis.ErrPoolTimeout, wantKind: redisstore.KindTimeout},
		{name: "ok/net_timeout", giveErr: &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, wantKind: redisstore.KindTimeout},
		{name: "ok/canceled", giveErr: fmt.Errorf("x: %w", context.Canceled), wantKind: redisstore.KindCanceled},
		{name: "ok/refused", giveErr: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, wantKind: redisstore.KindConnection},
		{name: "ok/eof", giveErr: io.EOF, wantKind: redisstore.KindConnection},
		{name: "ok/client_closed", giveErr: redis.ErrClosed, wantKind: redisstore.KindConnection},
		{name: "ok/redis_error_reply", giveErr: fmt.Errorf("redisstore: consume: %w", replyErr("READONLY You can't write against a read only replica.")), wantKind: redisstore.KindOther},
		{name: "ok/unknown", giveErr: errors.New("something"), wantKind: redisstore.KindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redisstore.ErrorKind(tt.giveErr)
			assert.Equal(t, tt.wantKind, got)
			if tt.giveErr != nil {
				assert.Contains(t, redisstore.ErrorKinds, got)
			}
		})
	}
}

// replyErr is an error reply from Redis: go-redis marks those with a
// RedisError method.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

var _ redis.Error = replyErr("")

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
