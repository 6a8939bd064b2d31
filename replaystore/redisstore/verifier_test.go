package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
	"github.com/handoffbroker/handoff/replaystore/redisstore/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "https://relying.test"
)

// mintFor returns a minter and a verifier that trusts it and consumes jtis
// in store.
func mintFor(t testing.TB, store token.ReplayStore) (*token.Minter, *token.Verifier) {
	t.Helper()
	ring, err := keys.NewEphemeral(token.EdDSA)
	require.NoError(t, err)
	m, err := token.NewMinter(token.MinterConfig{Issuer: testIssuer, Keys: ring})
	require.NoError(t, err)
	v, err := token.NewVerifier(token.VerifierConfig{
		Issuers:  []token.TrustedIssuer{{Issuer: testIssuer, Keys: ring}},
		Audience: testAudience,
		Replay:   store,
	})
	require.NoError(t, err)
	return m, v
}

func mint(t testing.TB, m *token.Minter) string {
	t.Helper()
	tok, err := m.Mint(token.MintRequest{
		Subject:  "alice",
		Audience: testAudience,
		Task:     token.Task{ID: "transfer-42", Action: "approve"},
	})
	require.NoError(t, err)
	return tok.Token
}

func TestVerifier_WithRedisStore(t *testing.T) {
	live, _ := newReplicas(t, 2, redisstore.Config{})
	down, err := redisstore.New(redisstore.Config{URL: "redis://" + closedPort(t) + "/0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = down.Close() })

	tests := []struct {
		name       string
		giveFirst  *redisstore.Store // nil: the token is fresh
		giveStore  *redisstore.Store
		wantReason token.Reason
	}{
		{name: "ok/fresh_token", giveStore: live[0]},
		{name: "fail/replayed", giveFirst: live[0], giveStore: live[0], wantReason: token.ReasonReplayed},
		{name: "fail/replayed_at_other_replica", giveFirst: live[0], giveStore: live[1], wantReason: token.ReasonReplayed},
		{name: "fail/redis_unreachable", giveStore: down, wantReason: token.ReasonUnavailable},
	}
	ring, err := keys.NewEphemeral(token.EdDSA)
	require.NoError(t, err)
	m, err := token.NewMinter(token.MinterConfig{Issuer: testIssuer, Keys: ring})
	require.NoError(t, err)
	verifier := func(store *redisstore.Store) *token.Verifier {
		v, err := token.NewVerifier(token.VerifierConfig{
			Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: ring}}, Audience: testAudience, Replay: store,
		})
		require.NoError(t, err)
		return v
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mint(t, m)
			if tt.giveFirst != nil {
				_, err := verifier(tt.giveFirst).Verify(ctx, tok, token.Expect{AnyTask: true})
				require.NoError(t, err)
			}
			got, err := verifier(tt.giveStore).Verify(ctx, tok, token.Expect{AnyTask: true})
			if tt.wantReason == "" {
				require.NoError(t, err)
				assert.Equal(t, "alice", got.Claims().Subject)
				return
			}
			assert.Nil(t, got)
			assert.Equal(t, tt.wantReason, token.ReasonOf(err))
		})
	}
}

func TestVerifier_SlowRedisIsUnavailable(t *testing.T) {
	rs := redistest.Start(t)
	s, err := redisstore.New(redisstore.Config{URL: rs.URL(), Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	m, v := mintFor(t, s)
	ctx := context.Background()

	admin := adminClient(t, rs.URL())
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", 1000, "WRITE").Err())
	_, err = v.Verify(ctx, mint(t, m), token.Expect{AnyTask: true})
	require.NoError(t, admin.Do(ctx, "CLIENT", "UNPAUSE").Err())
	assert.Equal(t, token.ReasonUnavailable, token.ReasonOf(err))
}

// TestVerifier_RedisClockAheadOfVerifiers checks that a used token stays
// refused up to the last instant the verifiers can judge it unexpired when
// Redis, which expires keys by its own clock, runs ahead of the replicas'
// clocks (within token.ReplayMargin). Redis's clock here is the real one;
// the replicas' is set behind it.
func TestVerifier_RedisClockAheadOfVerifiers(t *testing.T) {
	tests := []struct {
		name           string
		giveRedisAhead time.Duration
	}{
		{name: "fail/redis_1ms_ahead", giveRedisAhead: time.Millisecond},
		{name: "fail/redis_5s_ahead", giveRedisAhead: 5 * time.Second},
		{name: "fail/redis_100s_ahead", giveRedisAhead: 100 * time.Second},
	}
	ring, err := keys.NewEphemeral(token.EdDSA)
	require.NoError(t, err)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clock atomic.Pointer[time.Time]
			now := func() time.Time { return *clock.Load() }
			setClock := func(at time.Time) { clock.Store(&at) }
			mintAt := time.Now().Add(-tt.giveRedisAhead - token.DefaultTTL - token.DefaultLeeway)
			setClock(mintAt)
			m, err := token.NewMinter(token.MinterConfig{Issuer: testIssuer, Keys: ring, Now: now})
			require.NoError(t, err)
			minted, err := m.Mint(token.MintRequest{Subject: "alice", Audience: testAudience, Task: token.Task{ID: "transfer-42", Action: "approve"}})
			require.NoError(t, err)
			replicas, _ := newReplicas(t, 2, redisstore.Config{Now: now})
			verifiers := make([]*token.Verifier, len(replicas))
			for i, s := range replicas {
				verifiers[i], err = token.NewVerifier(token.VerifierConfig{
					Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: ring}}, Audience: testAudience, Replay: s, Now: now,
				})
				require.NoError(t, err)
			}

			setClock(mintAt.Add(time.Second))
			_, err = verifiers[0].Verify(ctx, minted.Token, token.Expect{AnyTask: true})
			require.NoError(t, err)

			setClock(minted.ExpiresAt.Add(token.DefaultLeeway - time.Millisecond))
			for _, v := range verifiers {
				_, err = v.Verify(ctx, minted.Token, token.Expect{AnyTask: true})
				assert.Equal(t, token.ReasonReplayed, token.ReasonOf(err), "resubmission at the verifiers' last instant: %v", err)
			}
		})
	}
}

// TestVerifier_ResubmissionsAcrossExpiry hammers used tokens with
// concurrent resubmissions over two replicas sharing one Redis while the
// real clock crosses exp + leeway: not one is accepted a second time. The
// tokens are minted in the past so that the crossing comes within seconds,
// and each group of tokens goes to verifiers with its own leeway, so the
// groups cross one after another, each hammered on its own.
func TestVerifier_ResubmissionsAcrossExpiry(t *testing.T) {
	const (
		rounds, groups, tokens, workers = 2, 10, 10, 8
		leewayStep                      = 100 * time.Millisecond
	)
	ring, err := keys.NewEphemeral(token.EdDSA)
	require.NoError(t, err)
	replicas, _ := newReplicas(t, 2, redisstore.Config{})
	leeway := func(g int) time.Duration { return token.DefaultLeeway + time.Duration(g)*leewayStep }
	verifiers := make([][]*token.Verifier, groups)
	for g := range verifiers {
		for _, s := range replicas {
			v, err := token.NewVerifier(token.VerifierConfig{
				Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: ring}}, Audience: testAudience, Replay: s, Leeway: leeway(g),
			})
			require.NoError(t, err)
			verifiers[g] = append(verifiers[g], v)
		}
	}
	m, err := token.NewMinter(token.MinterConfig{Issuer: testIssuer, Keys: ring, Now: func() time.Time {
		return time.Now().Add(2*time.Second - token.DefaultTTL - token.DefaultLeeway)
	}})
	require.NoError(t, err)
	ctx := context.Background()
	var accepted atomic.Int64
	for range rounds {
		var exp time.Time
		used := make([][]string, groups)
		for g := range used {
			for range tokens {
				minted, err := m.Mint(token.MintRequest{Subject: "alice", Audience: testAudience, Task: token.Task{ID: "transfer-42", Action: "approve"}})
				require.NoError(t, err)
				_, err = verifiers[g][0].Verify(ctx, minted.Token, token.Expect{AnyTask: true})
				require.NoError(t, err)
				used[g] = append(used[g], minted.Token)
				exp = later(exp, minted.ExpiresAt)
			}
		}
		var wg sync.WaitGroup
		for g := range groups {
			boundary := exp.Add(leeway(g))
			redistest.WaitFor(t, 5*time.Second, func() bool { return time.Until(boundary) < 30*time.Millisecond }, "exp + leeway to come close")
			for i, tok := range used[g] {
				for w := range workers {
					v := verifiers[g][(i+w)%len(replicas)]
					wg.Go(func() {
						for {
							_, err := v.Verify(ctx, tok, token.Expect{AnyTask: true})
							switch r := token.ReasonOf(err); {
							case err == nil:
								accepted.Add(1)
							case r == token.ReasonExpired:
								return
							case r != token.ReasonReplayed:
								t.Errorf("resubmission refused with %q, want replayed or expired: %v", r, err)
								return
							}
						}
					})
				}
			}
		}
		wg.Wait()
	}
	assert.Zero(t, accepted.Load(), "resubmissions of %d used tokens accepted across exp + leeway", rounds*groups*tokens)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestVerifier_RecordsUntilReplayRetention checks the rule both stores
// follow: the key a Verifier consumes expires, by Redis's clock, at exactly
// token.ReplayRetention (exp + token.MaxLeeway + token.ReplayMargin),
// whatever the consuming verifier's leeway, so replicas of different
// leeways all find it.
func TestVerifier_RecordsUntilReplayRetention(t *testing.T) {
	for _, leeway := range []time.Duration{time.Nanosecond, token.DefaultLeeway, token.MaxLeeway} {
		t.Run(fmt.Sprintf("ok/leeway_%v", leeway), func(t *testing.T) {
			s, admin := newStore(t, redisstore.Config{})
			ring, err := keys.NewEphemeral(token.EdDSA)
			require.NoError(t, err)
			m, err := token.NewMinter(token.MinterConfig{Issuer: testIssuer, Keys: ring})
			require.NoError(t, err)
			v, err := token.NewVerifier(token.VerifierConfig{
				Issuers: []token.TrustedIssuer{{Issuer: testIssuer, Keys: ring}}, Audience: testAudience, Replay: s, Leeway: leeway,
			})
			require.NoError(t, err)
			minted, err := m.Mint(token.MintRequest{Subject: "alice", Audience: testAudience, Task: token.Task{ID: "transfer-42", Action: "approve"}})
			require.NoError(t, err)
			got, err := v.Verify(context.Background(), minted.Token, token.Expect{AnyTask: true})
			require.NoError(t, err)

			at, err := admin.Do(context.Background(), "PEXPIRETIME", s.RedisKey(testIssuer+" "+got.Claims().ID)).Int64()
			require.NoError(t, err)
			want := minted.ExpiresAt.Add(token.MaxLeeway + token.ReplayMargin)
			assert.Equal(t, want.UnixMilli(), at, "key expires at %v, want exp + %v + %v", time.UnixMilli(at).UTC(), token.MaxLeeway, token.ReplayMargin)
			assert.Equal(t, token.ReplayRetention(minted.ExpiresAt), want)
		})
	}
}
