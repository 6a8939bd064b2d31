package redisstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker"
	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

// roundTrips counts the round trips a client makes to Redis: each command
// sent alone, and each pipeline as one.
type roundTrips struct {
	n     atomic.Int64
	mu    sync.Mutex
	names []string
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record(cmd.Name())
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		name := "pipeline:"
		for _, c := range cmds {
			name += " " + c.Name()
		}
		r.record(name)
		return next(ctx, cmds)
	}
}

func (r *roundTrips) record(name string) {
	r.n.Add(1)
	r.mu.Lock()
	r.names = append(r.names, name)
	r.mu.Unlock()
}

// take returns the commands recorded since the last take.
func (r *roundTrips) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := r.names
	r.names = nil
	return names
}

// countedStore is a Store on the shared test Redis whose client counts its
// round trips.
func countedStore(t *testing.T, cfg redisstore.Config) (*redisstore.Store, *roundTrips, *redis.Client) {
	t.Helper()
	url := requireRedis(t)
	admin := adminClient(t, url)
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	rt := &roundTrips{}
	c.AddHook(rt)
	cfg.Client = c
	cfg.KeyPrefix, cfg.RevocationPrefix, cfg.CompletionPrefix = testPrefixes(t, admin)
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	s, err := redisstore.New(cfg)
	require.NoError(t, err)
	return s, rt, admin
}

// TestRelyingParty_OneRoundTripPerHandoff verifies tokens through a
// broker.RelyingParty whose replay store is the Redis store (and so, by
// default, its revocation Sharer), counting what its client sends: one
// round trip per token, the shared revocation mark asked in the consume's
// own script. Before, every token cost two (EXISTS of the mark, then SET
// NX).
func TestRelyingParty_OneRoundTripPerHandoff(t *testing.T) {
	s, rt, admin := countedStore(t, redisstore.Config{})
	is := brokertest.StartIssuer(t)
	rp, err := broker.New(broker.Config{
		Issuer:        is.URL,
		Audience:      testAudience,
		JWKSURL:       is.JWKSURL,
		RevocationURL: is.RevocationURL,
		Replay:        s,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rp.Close() })
	ctx := context.Background()
	require.NoError(t, rp.Refresh(ctx))

	task := token.Task{ID: "transfer-42", Action: "approve"}
	req := token.MintRequest{Subject: "alice", Audience: testAudience, Task: task}
	want := token.Expect{Task: &task}
	_, err = rp.Verify(ctx, is.Mint(t, req), want) // loads the script into Redis
	require.NoError(t, err)

	used := is.Mint(t, req)
	_, err = rp.Verify(ctx, used, want)
	require.NoError(t, err)
	markedOnly := is.MintFull(t, req)
	require.NoError(t, s.MarkRevoked(ctx, revocation.SharedKey(is.URL, markedOnly.ID), markedOnly.ExpiresAt))
	listed := is.MintFull(t, req)
	is.RevokeToken(t, listed.ID, listed.ExpiresAt)
	rt.take()

	tests := []struct {
		name           string
		giveToken      string
		wantReason     token.Reason
		wantRoundTrips int
	}{
		{name: "ok/fresh_token", giveToken: is.Mint(t, req), wantRoundTrips: 1},
		{name: "fail/replayed", giveToken: used, wantReason: token.ReasonReplayed, wantRoundTrips: 1},
		{name: "fail/revoked_by_a_shared_mark", giveToken: markedOnly.Token, wantReason: token.ReasonRevoked, wantRoundTrips: 1},
		{name: "fail/revoked_in_the_held_list", giveToken: listed.Token, wantReason: token.ReasonRevoked, wantRoundTrips: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantRoundTrips == 0 {
				require.NoError(t, rp.Refresh(ctx))
				rt.take()
			}
			_, err := rp.Verify(ctx, tt.giveToken, want)
			sent := rt.take()
			if tt.wantReason == "" {
				require.NoError(t, err)
			} else {
				var te *token.Error
				require.ErrorAs(t, err, &te)
				assert.Equal(t, tt.wantReason, te.Reason)
			}
			assert.Len(t, sent, tt.wantRoundTrips, "commands sent: %q", sent)
		})
	}
	// Explain consumes nothing, so it asks the mark itself.
	ex := rp.Explain(ctx, markedOnly.Token, want)
	assert.Equal(t, token.ReasonRevoked, token.ReasonOf(ex.Err))
	// A token refused for its mark was not consumed: were the mark gone,
	// it would still be usable once.
	n, err := admin.Exists(ctx, s.RedisKey(token.ReplayKey(is.URL, markedOnly.ID))).Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestConsumeUnlessRevoked: the one-script consume refuses a marked token
// as revoked without recording its use, a used one as replayed, and of
// racing consumes of one token, by either method and from two replicas,
// exactly one wins.
func TestConsumeUnlessRevoked(t *testing.T) {
	stores, admin := newReplicas(t, 2, redisstore.Config{})
	s := stores[0]
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	const iss = "https://issuer.test"

	require.NoError(t, s.Consume(ctx, token.ReplayKey(iss, "used"), exp))
	require.NoError(t, s.MarkRevoked(ctx, revocation.SharedKey(iss, "marked"), exp))
	require.NoError(t, s.Consume(ctx, token.ReplayKey(iss, "marked-and-used"), exp))
	require.NoError(t, s.MarkRevoked(ctx, revocation.SharedKey(iss, "marked-and-used"), exp))
	require.NoError(t, s.MarkRevoked(ctx, revocation.SharedKey(iss, "other"), exp))

	tests := []struct {
		name    string
		giveJTI string
		wantErr error
	}{
		{name: "ok/fresh", giveJTI: "fresh"},
		{name: "ok/another_token_marked", giveJTI: "not-other"},
		{name: "fail/replayed", giveJTI: "used", wantErr: token.ErrAlreadyUsed},
		{name: "fail/marked", giveJTI: "marked", wantErr: token.ErrMarkedRevoked},
		{name: "fail/marked_and_used", giveJTI: "marked-and-used", wantErr: token.ErrMarkedRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := token.ReplayKey(iss, tt.giveJTI)
			err := stores[1].ConsumeUnlessRevoked(ctx, key, exp)
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.ErrorIs(t, s.ConsumeUnlessRevoked(ctx, key, exp), token.ErrAlreadyUsed)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
	n, err := admin.Exists(ctx, s.RedisKey(token.ReplayKey(iss, "marked"))).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a token refused for its mark was recorded as used")

	var wg sync.WaitGroup
	var wins atomic.Int64
	key := token.ReplayKey(iss, "raced")
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[i%2]
			consume := st.Consume
			if i%4 < 2 {
				consume = st.ConsumeUnlessRevoked
			}
			err := consume(ctx, key, exp)
			if err == nil {
				wins.Add(1)
				return
			}
			assert.ErrorIs(t, err, token.ErrAlreadyUsed)
		}()
	}
	wg.Wait()
	require.Equal(t, int64(1), wins.Load())
}

// TestRollingUpgrade: replicas of the release before ConsumeUnlessRevoked
// (which consume with SET NX on the same replay key and read marks under
// the old revocation key) run beside upgraded ones on one Redis. A token
// used on either is refused by the other, and a mark written by either is
// seen by the other's revocation check.
func TestRollingUpgrade(t *testing.T) {
	stores, admin := newReplicas(t, 1, redisstore.Config{})
	s := stores[0]
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	const iss = "https://issuer.test"
	// oldMarkKey is how the release before spelled a token's mark:
	// RevocationPrefix and the first 128 bits of SHA-256 of the
	// SharedKey, in hex.
	oldMarkKey := func(jti string) string {
		sum := sha256.Sum256([]byte(revocation.SharedKey(iss, jti)))
		return revocationPrefixOf(t, s) + hex.EncodeToString(sum[:16])
	}
	oldConsume := s.Consume // unchanged: SET NX PXAT of RedisKey

	require.NoError(t, oldConsume(ctx, token.ReplayKey(iss, "used-on-old"), exp))
	require.ErrorIs(t, s.ConsumeUnlessRevoked(ctx, token.ReplayKey(iss, "used-on-old"), exp), token.ErrAlreadyUsed)
	require.NoError(t, s.ConsumeUnlessRevoked(ctx, token.ReplayKey(iss, "used-on-new"), exp))
	require.ErrorIs(t, oldConsume(ctx, token.ReplayKey(iss, "used-on-new"), exp), token.ErrAlreadyUsed)

	require.NoError(t, s.MarkRevoked(ctx, revocation.SharedKey(iss, "marked-on-new"), exp))
	n, err := admin.Exists(ctx, oldMarkKey("marked-on-new")).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "an old replica's EXISTS misses a mark made by a new one")
	require.NoError(t, admin.Set(ctx, oldMarkKey("marked-on-old"), 1, time.Minute).Err())
	revoked, err := s.IsRevoked(ctx, revocation.SharedKey(iss, "marked-on-old"))
	require.NoError(t, err)
	require.True(t, revoked, "a new replica's IsRevoked misses a mark made by an old one")
	// The hot path: a new replica's handoff consumes through the script.
	require.ErrorIs(t, s.ConsumeUnlessRevoked(ctx, token.ReplayKey(iss, "marked-on-old"), exp), token.ErrMarkedRevoked,
		"a new replica's consume misses a mark made by an old one")
	n, err = admin.Exists(ctx, s.RedisKey(token.ReplayKey(iss, "marked-on-old"))).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a token refused for an old replica's mark was recorded as used")
}

// revocationPrefixOf recovers the store's RevocationPrefix from a key it
// builds for something other than a token.
func revocationPrefixOf(t *testing.T, s *redisstore.Store) string {
	t.Helper()
	k := s.RevocationKey("subject")
	return k[:len(k)-32]
}

// TestConsumeUnlessRevoked_KeysAsDocumented: the script reads the mark
// RevocationKey names and writes the key RedisKey names, for any issuer
// and jti, so operators and older replicas find both.
func TestConsumeUnlessRevoked_KeysAsDocumented(t *testing.T) {
	s, admin := newStore(t, redisstore.Config{})
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	for _, jti := range []string{"a", "with space", "{braced}", strings.Repeat("x", 300)} {
		key := token.ReplayKey("https://issuer.test", jti)
		require.NoError(t, s.ConsumeUnlessRevoked(ctx, key, exp), jti)
		n, err := admin.Exists(ctx, s.RedisKey(key)).Result()
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "%q: RedisKey was not written", jti)

		marked := token.ReplayKey("https://issuer.test", "marked "+jti)
		require.NoError(t, admin.Set(ctx, s.RevocationKey(revocation.SharedKey("https://issuer.test", "marked "+jti)), 1, time.Minute).Err())
		require.ErrorIs(t, s.ConsumeUnlessRevoked(ctx, marked, exp), token.ErrMarkedRevoked, jti)
	}
}

// TestConsumeUnlessRevoked_Allocations bounds what the store allocates per
// consume beyond a bare PING over the same client (go-redis's own
// command, pool and context work): the keys, their one string, the
// script's argument, and the two strings of the old mark name the script
// also reads while releases before it may run beside it (docs/STORES.md,
// Upgrading). It allocated 12 more, without the old name, before the keys
// were built from one hash and the no-WAIT path lost its closures.
func TestConsumeUnlessRevoked_Allocations(t *testing.T) {
	s, _ := newStore(t, redisstore.Config{})
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	var n int
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = token.ReplayKey("https://issuer.test", "alloc "+strconv.Itoa(i))
	}
	ping := testing.AllocsPerRun(100, func() { require.NoError(t, s.Ping(ctx)) })
	consume := testing.AllocsPerRun(100, func() {
		require.NoError(t, s.ConsumeUnlessRevoked(ctx, keys[n], exp))
		n++
	})
	t.Logf("allocations: ping %.1f, consume unless revoked %.1f", ping, consume)
	require.LessOrEqual(t, consume-ping, 9.0)
}
